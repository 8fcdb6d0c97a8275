"""Access-rule API, authenticated with the Dashboard's JWT."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from saleor_discord_app.models import AccessRule, Installation
from tests.fakes.saleor import FakeSaleor, new_rsa_key

GUILD = "900000000000000001"
ROLE = "900000000000000101"


def headers(fake: FakeSaleor, token: str) -> dict[str, str]:
    return {"authorization-bearer": token, "saleor-api-url": fake.api_url}


def body(**overrides: object) -> dict[str, object]:
    return {"product_id": "UHJvZHVjdDox", "guild_id": GUILD, "role_ids": [ROLE], "duration_days": 30, **overrides}


def test_staff_with_manage_products_creates_lists_and_changes_rules(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation
) -> None:
    auth = headers(fake_saleor, fake_saleor.dashboard_token(permissions=["MANAGE_PRODUCTS"]))
    created = client.post("/api/rules", json=body(name="VIP"), headers=auth)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["name"] == "VIP"
    assert rule["on_end_action"] == "remove_role"
    listed = client.get("/api/rules", params={"product_id": "UHJvZHVjdDox"}, headers=auth)
    assert [r["id"] for r in listed.json()] == [rule["id"]]
    assert client.get("/api/rules", params={"product_id": "other"}, headers=auth).json() == []
    changed = client.patch(f"/api/rules/{rule['id']}", json={"grace_days": 2, "duration_days": 60}, headers=auth)
    assert changed.status_code == 200
    assert (changed.json()["grace_days"], changed.json()["duration_days"]) == (2, 60)
    bad = client.patch(f"/api/rules/{rule['id']}", json={"on_end_action": "swap_to_alumni"}, headers=auth)
    assert bad.status_code == 422
    assert "alumni_role_id" in bad.text
    assert client.get(f"/api/rules/{rule['id'] + 100}", headers=auth).status_code == 404


def test_invalid_rules_are_refused(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    auth = headers(fake_saleor, fake_saleor.dashboard_token(permissions=["MANAGE_PRODUCTS"]))
    for bad in (
        body(product_id=None),
        body(role_ids=[]),
        body(role_ids=[GUILD]),
        body(guild_id="abc"),
        body(duration_days=0),
        body(on_end_action="swap_to_alumni"),
        body(unknown_field=1),
    ):
        assert client.post("/api/rules", json=bad, headers=auth).status_code == 422, bad
    assert session.exec(select(func.count()).select_from(AccessRule)).one() == 0


def test_token_checks(client: TestClient, fake_saleor: FakeSaleor, installation: Installation) -> None:
    cases = {
        "missing permission": (fake_saleor.dashboard_token(permissions=["MANAGE_ORDERS"]), 403),
        "another app": (fake_saleor.dashboard_token(permissions=["MANAGE_PRODUCTS"], app="QXBwOjk5"), 401),
        "wrong issuer": (
            fake_saleor.dashboard_token(permissions=["MANAGE_PRODUCTS"], issuer="http://127.0.0.1:1/graphql/"),
            401,
        ),
        "expired": (fake_saleor.dashboard_token(permissions=["MANAGE_PRODUCTS"], expires_in=-60), 401),
        "foreign key": (fake_saleor.dashboard_token(permissions=["MANAGE_PRODUCTS"], key=new_rsa_key()), 401),
        "garbage": ("not-a-token", 401),
    }
    for name, (token, status) in cases.items():
        response = client.get("/api/rules", headers=headers(fake_saleor, token))
        assert response.status_code == status, name
    assert client.get("/api/rules").status_code == 401
    unknown = {
        "authorization-bearer": fake_saleor.dashboard_token(permissions=["MANAGE_PRODUCTS"]),
        "saleor-api-url": "http://127.0.0.1:9/graphql/",
    }
    assert client.get("/api/rules", headers=unknown).status_code == 401
    ok = fake_saleor.dashboard_token(permissions=["MANAGE_PRODUCTS"])
    assert (
        client.get(
            "/api/rules", headers={"Authorization": f"Bearer {ok}", "saleor-api-url": fake_saleor.api_url}
        ).status_code
        == 200
    )


def test_rules_are_scoped_to_their_store(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation
) -> None:
    from tests.conftest import install

    auth = headers(fake_saleor, fake_saleor.dashboard_token(permissions=["MANAGE_PRODUCTS"]))
    rule_id = client.post("/api/rules", json=body(), headers=auth).json()["id"]
    with FakeSaleor(app_id="QXBwOjc=").serve() as other:
        install(client, other)
        other_auth = headers(other, other.dashboard_token(permissions=["MANAGE_PRODUCTS"]))
        assert client.get(f"/api/rules/{rule_id}", headers=other_auth).status_code == 404
        assert client.get("/api/rules", headers=other_auth).json() == []
