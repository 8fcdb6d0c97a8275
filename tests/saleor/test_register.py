"""Install (token exchange) per Saleor's protocol, against a fake Saleor over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, func, select

from saleor_discord_app.models import AuditEvent, Installation
from tests.conftest import install
from tests.fakes.saleor import FakeSaleor


def register(client: TestClient, fake: FakeSaleor, token: str | None = None, api_url: str | None = None):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/saleor/register",
        json={"auth_token": token or fake.app_token},
        headers={
            "Saleor-Api-Url": api_url or fake.api_url,
            "Saleor-Domain": "127.0.0.1",
            "Saleor-Schema-Version": "3.23",
        },
    )


def test_install_proves_the_token_fetches_jwks_and_encrypts_the_token(
    client: TestClient, fake_saleor: FakeSaleor, session: Session
) -> None:
    response = register(client, fake_saleor)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    installation = session.exec(select(Installation)).one()
    assert installation.app_id == fake_saleor.app_id
    assert installation.app_token == fake_saleor.app_token
    assert installation.jwks == fake_saleor.jwks
    assert installation.saleor_schema_version == "3.23"
    assert fake_saleor.graphql_requests[0]["token"] == fake_saleor.app_token
    raw = session.exec(text("SELECT app_token FROM installation")).one()[0]  # type: ignore[call-overload]
    assert fake_saleor.app_token not in raw
    assert session.exec(select(AuditEvent.kind)).all() == ["installation.installed"]


def test_reinstall_replaces_token_and_app_id(client: TestClient, fake_saleor: FakeSaleor, session: Session) -> None:
    install(client, fake_saleor)
    fake_saleor.app_id, fake_saleor.app_token = "QXBwOjI=", "a-brand-new-token-for-reinstall"
    assert register(client, fake_saleor).status_code == 200
    session.expire_all()
    installation = session.exec(select(Installation)).one()
    assert (installation.app_id, installation.app_token) == ("QXBwOjI=", "a-brand-new-token-for-reinstall")


def test_many_stores_on_one_deployment(client: TestClient, session: Session) -> None:
    with FakeSaleor(app_id="QXBwOjE=").serve() as first, FakeSaleor(app_id="QXBwOjk=").serve() as second:
        install(client, first)
        install(client, second)
    rows = session.exec(select(Installation.saleor_api_url, Installation.app_id)).all()
    assert len(rows) == 2 and {app for _, app in rows} == {"QXBwOjE=", "QXBwOjk="}


def test_url_outside_the_allow_list_is_403(client: TestClient, fake_saleor: FakeSaleor, session: Session) -> None:
    response = register(client, fake_saleor, api_url="https://evil.example.com/graphql/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "SALEOR_URL_PROHIBITED"
    assert "evil.example.com" in response.json()["error"]["message"]
    assert session.exec(select(func.count()).select_from(Installation)).one() == 0


def test_a_token_saleor_does_not_know_is_401(client: TestClient, fake_saleor: FakeSaleor, session: Session) -> None:
    response = register(client, fake_saleor, token="forged-token")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNKNOWN_APP_ID"
    assert session.exec(select(func.count()).select_from(Installation)).one() == 0


def test_jwks_unavailable_is_401(client: TestClient, fake_saleor: FakeSaleor, session: Session) -> None:
    fake_saleor.jwks_available = False
    response = register(client, fake_saleor)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "JWKS_NOT_AVAILABLE"
    assert session.exec(select(func.count()).select_from(Installation)).one() == 0


def test_bad_requests_get_an_error_saleor_can_show(client: TestClient, fake_saleor: FakeSaleor) -> None:
    no_header = client.post("/api/saleor/register", json={"auth_token": "x"})
    assert no_header.status_code == 400 and no_header.json()["error"]["message"]
    not_json = client.post("/api/saleor/register", content=b"{oops", headers={"Saleor-Api-Url": fake_saleor.api_url})
    assert not_json.status_code == 400
    no_token = client.post("/api/saleor/register", json={}, headers={"Saleor-Api-Url": fake_saleor.api_url})
    assert no_token.status_code == 400 and no_token.json()["error"]["code"] == "MISSING_AUTH_TOKEN"
    not_api = register(client, fake_saleor, api_url="http://127.0.0.1:1/")
    assert not_api.status_code == 400
