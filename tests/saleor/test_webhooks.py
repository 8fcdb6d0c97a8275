"""Webhook signature verification, signed exactly as Saleor signs, with the JWKS served over HTTP."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import time_machine
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from saleor_discord_app.models import Installation, WebhookEvent
from saleor_discord_app.sqltypes import utcnow
from tests.conftest import deliver
from tests.factories import paid_payload
from tests.fakes.saleor import FakeSaleor, new_rsa_key, public_jwk, sign_detached


def event_count(session: Session) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(WebhookEvent)).one()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_valid_signature_is_accepted_and_recorded(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", paid_payload())
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False
    event = session.exec(select(WebhookEvent)).one()
    assert event.event_type == "ORDER_FULLY_PAID"
    assert event.installation_id == installation.id
    assert event.payload["order"]["id"] == "T3JkZXI6MQ=="


def test_tampered_body_is_rejected(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    body = json.dumps(paid_payload()).encode()
    signature = fake_saleor.sign(body)
    tampered = body.replace(b"ashley@example.com", b"mallory@example.com")
    response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", tampered, signature=signature)
    assert response.status_code == 401
    assert event_count(session) == 0


def test_wrong_key_is_rejected(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    body = json.dumps(paid_payload()).encode()
    other = new_rsa_key()
    # Same kid as the store's key, signed by someone else's key.
    response = deliver(
        client, fake_saleor, "ORDER_FULLY_PAID", body, signature=sign_detached(body, other, fake_saleor.kid)
    )
    assert response.status_code == 401
    # Signed with a key of its own kid: unknown kid.
    response = deliver(
        client, fake_saleor, "ORDER_FULLY_PAID", body, signature=sign_detached(body, other, public_jwk(other)["kid"])
    )
    assert response.status_code == 401
    assert event_count(session) == 0


def test_rotated_key_refetches_jwks_once(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    fetches_after_install = fake_saleor.jwks_fetches
    fake_saleor.rotate_key()
    with time_machine.travel(utcnow() + timedelta(seconds=61), tick=True):
        response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", paid_payload())
        assert response.status_code == 200, response.text
        assert fake_saleor.jwks_fetches == fetches_after_install + 1
        # The new key is cached: the next delivery needs no fetch.
        response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", paid_payload(order_id="T3JkZXI6Mg=="))
        assert response.status_code == 200
        assert fake_saleor.jwks_fetches == fetches_after_install + 1
    stored = session.get(Installation, installation.id)
    assert stored is not None and stored.jwks == fake_saleor.jwks
    assert event_count(session) == 2


def test_forged_requests_refetch_at_most_once_a_minute(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    body = json.dumps(paid_payload()).encode()
    forged = sign_detached(body, new_rsa_key(), "forged-kid")
    start = fake_saleor.jwks_fetches
    with time_machine.travel(utcnow() + timedelta(seconds=61), tick=True):
        for _ in range(5):
            assert deliver(client, fake_saleor, "ORDER_FULLY_PAID", body, signature=forged).status_code == 401
    assert fake_saleor.jwks_fetches == start + 1
    assert event_count(session) == 0


def test_unknown_store_is_rejected(client: TestClient, fake_saleor: FakeSaleor, session: Session) -> None:
    response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", paid_payload())
    assert response.status_code == 401
    assert "unknown store" in response.json()["error"]["message"]
    assert event_count(session) == 0


def test_hs256_with_the_public_key_is_rejected(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    body = json.dumps(paid_payload()).encode()
    header = {"alg": "HS256", "b64": False, "crit": ["b64"], "kid": fake_saleor.kid, "typ": "JWT"}
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    public_pem = fake_saleor.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded_header = _b64(json.dumps(header, separators=(",", ":")).encode())
    mac = hmac.new(public_pem, encoded_header.encode() + b"." + body, hashlib.sha256).digest()
    response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", body, signature=f"{encoded_header}..{_b64(mac)}")
    assert response.status_code == 401
    assert event_count(session) == 0


def test_alg_none_is_rejected(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    body = json.dumps(paid_payload()).encode()
    header = _b64(json.dumps({"alg": "none", "kid": fake_saleor.kid}).encode())
    for signature in (f"{header}..", f"{header}.{_b64(body)}."):
        assert deliver(client, fake_saleor, "ORDER_FULLY_PAID", body, signature=signature).status_code == 401
    assert event_count(session) == 0


def test_missing_or_garbage_signature_is_rejected(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    body = json.dumps(paid_payload()).encode()
    for signature in ("", "not-a-jws", "a.b.c.d"):
        assert deliver(client, fake_saleor, "ORDER_FULLY_PAID", body, signature=signature).status_code == 401
    assert event_count(session) == 0


def test_malformed_json_is_400(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", body)
        assert response.status_code == 400, body
    assert event_count(session) == 0


def test_event_not_served_by_the_url_is_400(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    response = deliver(client, fake_saleor, "ORDER_CANCELLED", paid_payload(), slug="order-fully-paid")
    assert response.status_code == 400
    assert event_count(session) == 0


def test_same_delivery_three_times_is_recorded_once(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    body = json.dumps(paid_payload()).encode()
    responses = [deliver(client, fake_saleor, "ORDER_FULLY_PAID", body) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.json()["duplicate"] for r in responses] == [False, True, True]
    assert event_count(session) == 1


def test_uninstalled_store_is_unknown(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    body = json.dumps({"app": {"id": fake_saleor.app_id}, "recipient": {"id": fake_saleor.app_id}}).encode()
    assert deliver(client, fake_saleor, "APP_DELETED", body).status_code == 200
    from tests.conftest import process_pending_events

    process_pending_events()
    response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", paid_payload())
    assert response.status_code == 401
    stored = session.get(Installation, installation.id)
    assert stored is not None and stored.app_token is None and stored.status == "uninstalled"


def test_pyjwt_itself_refuses_rs256_key_for_hs256() -> None:
    """Belt and braces: the library we rely on refuses HMAC with an RSA public key."""
    key = new_rsa_key()
    token = jwt.api_jws.encode(b"x", key, algorithm="RS256", is_payload_detached=True)
    assert token.count(".") == 2
