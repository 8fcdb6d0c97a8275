"""Replays the exact requests a real Saleor 3.23.28 sent to an app (tests/data, copied from shared/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from saleor_discord_app.models import Installation, Membership, MembershipStatus, OrderRecord
from saleor_discord_app.saleor.jws import SignatureError, verify_webhook_signature
from saleor_discord_app.sqltypes import utcnow
from tests.conftest import process_pending_events
from tests.factories import make_rule

RECORDED = json.loads((Path(__file__).parents[1] / "data" / "saleor-3.23.28-webhooks.json").read_text())
WEBHOOKS = [r for r in RECORDED["requests"] if r["path"].startswith("/api/saleor/webhooks/")]


@pytest.mark.parametrize(
    "request_", WEBHOOKS, ids=[f"{r['scenario']}-{r['headers']['Saleor-Event']}" for r in WEBHOOKS]
)
def test_every_recorded_signature_verifies_and_a_tampered_copy_does_not(request_: dict[str, Any]) -> None:
    body = request_["body"].encode()
    verify_webhook_signature(request_["headers"]["Saleor-Signature"], body, RECORDED["jwks"])
    tampered = body.replace(b'"', b"'", 1)
    with pytest.raises(SignatureError):
        verify_webhook_signature(request_["headers"]["Saleor-Signature"], tampered, RECORDED["jwks"])


def _recorded_store(session: Session) -> Installation:
    installation = Installation(
        saleor_api_url=RECORDED["saleor_api_url"],
        app_id="QXBwOjU=",
        app_token="recorded-token",
        jwks=RECORDED["jwks"],
        jwks_fetched_at=utcnow(),
    )
    session.add(installation)
    session.commit()
    session.refresh(installation)
    return installation


def test_replaying_the_recorded_session_ends_in_the_right_state(client: TestClient, session: Session) -> None:
    installation = _recorded_store(session)
    assert installation.id is not None
    make_rule(session, installation.id, product_id="UHJvZHVjdDoxNjU=", duration_days=None)

    for request_ in WEBHOOKS:
        if request_["scenario"] == "uninstall":
            continue
        response = client.post(request_["path"], content=request_["body"].encode(), headers=request_["headers"])
        assert response.status_code == 200, (request_["scenario"], response.text)
    assert set(process_pending_events()) == {"processed"}

    session.expire_all()
    by_order = {m.order_number: m for m in session.exec(select(Membership))}
    assert set(by_order) == {"31", "32", "33"}
    assert by_order["31"].status == MembershipStatus.REVOKED and by_order["31"].end_reason == "refunded"
    assert by_order["32"].status == MembershipStatus.REVOKED and by_order["32"].end_reason == "cancelled"
    assert by_order["33"].status == MembershipStatus.REVOKED and by_order["33"].end_reason == "chargeback"
    assert by_order["32"].customer_email == "guest.buyer@example.com" and by_order["32"].saleor_user_id is None
    states = {r.order_number or r.order_id: r.state for r in session.exec(select(OrderRecord))}
    assert sorted(states.values()) == ["cancelled", "refunded", "unpaid"]

    uninstall = next(r for r in WEBHOOKS if r["scenario"] == "uninstall")
    response = client.post(uninstall["path"], content=uninstall["body"].encode(), headers=uninstall["headers"])
    assert response.status_code == 200
    process_pending_events()
    session.expire_all()
    stored = session.get(Installation, installation.id)
    assert stored is not None and stored.status == "uninstalled" and stored.app_token is None


def test_recorded_paid_alone_creates_a_pending_membership(client: TestClient, session: Session) -> None:
    installation = _recorded_store(session)
    assert installation.id is not None
    make_rule(session, installation.id, product_id="UHJvZHVjdDoxNjU=")
    paid = next(
        r for r in WEBHOOKS if r["scenario"] == "paid_registered" and r["headers"]["Saleor-Event"] == "order_fully_paid"
    )
    assert client.post(paid["path"], content=paid["body"].encode(), headers=paid["headers"]).status_code == 200
    process_pending_events()
    membership = session.exec(select(Membership)).one()
    assert membership.status == MembershipStatus.PENDING
    assert membership.saleor_user_id == "VXNlcjo2"
    assert membership.ends_at is not None
