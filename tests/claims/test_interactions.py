"""``POST /api/discord/interactions``: signature checks, PING, and ``/claim`` answered ephemerally."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from saleor_discord_app.claims import endpoints, service
from saleor_discord_app.config import get_settings
from saleor_discord_app.memberships.tasks import sync_membership
from saleor_discord_app.models import AuditEvent, ClaimAttempt, ClaimCode, CustomerLink, LinkMethod
from tests.claims.conftest import Store, make_membership, make_store
from tests.fakes.discord import FakeDiscord

URL = "/api/discord/interactions"


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(URL, content=body, headers=headers)


def reply_of(response: Any) -> str:
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["type"] == 4
    assert data["data"]["flags"] == 64  # ephemeral: only the user who typed it sees it
    assert data["data"]["allowed_mentions"] == {"parse": []}
    return str(data["data"]["content"])


def nothing_changed(session: Session) -> None:
    session.expire_all()
    assert session.exec(select(ClaimAttempt)).first() is None
    assert session.exec(select(CustomerLink)).first() is None
    assert all(row.used_at is None for row in session.exec(select(ClaimCode)))
    assert not session.exec(select(AuditEvent).where(col(AuditEvent.kind).startswith("claim.r"))).all()


def test_ping_gets_pong(client: TestClient, fake: FakeDiscord) -> None:
    body, headers = fake.build_interaction(None, fake.add_user(), interaction_type=1)
    response = post(client, body, headers)
    assert response.status_code == 200
    assert response.json() == {"type": 1}
    assert response.headers["content-type"].startswith("application/json")


def test_claim_links_and_grants(client: TestClient, session: Session, fake: FakeDiscord, store: Store) -> None:
    user = fake.add_user(username="alice")
    fake.add_member(store.guild_id, user)
    membership = make_membership(session, store)
    code = service.issue_code(session, membership)
    session.commit()

    body, headers = fake.build_interaction(store.guild_id, user, "claim", {"code": code.lower()})
    content = reply_of(post(client, body, headers))
    assert content == "Linked! You'll get your role in a moment."
    session.expire_all()
    link = session.exec(select(CustomerLink)).one()
    assert (link.discord_user_id, link.discord_username, link.linked_via) == (user, "alice", LinkMethod.CLAIM_SLASH)

    assert membership.id is not None
    sync_membership.run(membership.id)
    assert fake.member_roles(store.guild_id, user) == {store.role_id}

    # The same code again, by someone else: refused.
    body, headers = fake.build_interaction(store.guild_id, fake.add_user(username="mallory"), "claim", {"code": code})
    assert "already been used" in reply_of(post(client, body, headers))


def test_wrong_expired_and_other_store_codes_get_clear_replies(client: TestClient, session: Session,
                                                                fake: FakeDiscord, store: Store) -> None:
    user = fake.add_user()
    other = make_store(session, fake, "Other")
    other_code = service.issue_code(session, make_membership(session, other, email="x@example.com"))
    expired_code = service.issue_code(session, make_membership(session, store), valid_for=-service.FAILURE_WINDOW)
    session.commit()
    for typed, expected in [("ABCD-EFGH-JKMN", "isn't valid"), (other_code, "different Discord server"),
                            (expired_code, "expired")]:
        body, headers = fake.build_interaction(store.guild_id, user, "claim", {"code": typed})
        content = reply_of(post(client, body, headers))
        assert expected in content
        assert typed not in content


@pytest.mark.parametrize("tamper", ["body", "signature", "missing", "stale", "future", "other_key", "no_key"])
def test_bad_signatures_get_401_and_change_nothing(client: TestClient, session: Session, fake: FakeDiscord,
                                                   store: Store, tamper: str, monkeypatch: pytest.MonkeyPatch) -> None:
    user = fake.add_user()
    fake.add_member(store.guild_id, user)
    code = service.issue_code(session, make_membership(session, store))
    session.commit()
    body, headers = fake.build_interaction(store.guild_id, user, "claim", {"code": code})
    if tamper == "body":
        payload = json.loads(body)
        payload["member"]["user"]["id"] = fake.add_user()
        body = json.dumps(payload).encode()
    elif tamper == "signature":
        headers["X-Signature-Ed25519"] = "00" * 64
    elif tamper == "missing":
        headers = {"Content-Type": "application/json"}
    elif tamper in ("stale", "future"):
        shift = -301 if tamper == "stale" else 301
        headers = {"Content-Type": "application/json", **fake.sign_interaction(body, str(int(time.time()) + shift))}
    elif tamper == "other_key":
        monkeypatch.setattr(get_settings(), "discord_public_key", FakeDiscord(application_id="42").public_key_hex)
    elif tamper == "no_key":
        monkeypatch.setattr(get_settings(), "discord_public_key", "")
    response = post(client, body, headers)
    assert response.status_code == 401
    nothing_changed(session)


def test_bad_signature_on_ping_is_401(client: TestClient, fake: FakeDiscord) -> None:
    body = b'{"type":1}'
    headers = fake.sign_interaction(b'{"type": 1}')
    assert post(client, body, headers).status_code == 401


def test_claim_outside_a_server_asks_to_use_it_there(client: TestClient, session: Session, fake: FakeDiscord,
                                                     store: Store) -> None:
    body, headers = fake.build_interaction(None, fake.add_user(), "claim", {"code": "ABCD-EFGH-JKMN"})
    assert reply_of(post(client, body, headers)) == endpoints.USE_IN_SERVER
    nothing_changed(session)


def test_unknown_command(client: TestClient, session: Session, fake: FakeDiscord, store: Store) -> None:
    body, headers = fake.build_interaction(store.guild_id, fake.add_user(), "refund", {"order": "1"})
    assert reply_of(post(client, body, headers)) == "Unknown command."
    nothing_changed(session)


def test_throttled_over_the_endpoint(client: TestClient, session: Session, fake: FakeDiscord, store: Store) -> None:
    user = fake.add_user()
    for _ in range(service.MAX_FAILURES):
        body, headers = fake.build_interaction(store.guild_id, user, "claim", {"code": "ZZZZ-ZZZZ-ZZZZ"})
        assert "isn't valid" in reply_of(post(client, body, headers))
    body, headers = fake.build_interaction(store.guild_id, user, "claim", {"code": "ZZZZ-ZZZZ-ZZZZ"})
    assert reply_of(post(client, body, headers)).startswith("Too many attempts, try again in 15 minutes")


def test_verify_signature_unit(fake: FakeDiscord) -> None:
    body = b'{"type":1}'
    headers = fake.sign_interaction(body, "1700000000")
    sig, ts = headers["X-Signature-Ed25519"], headers["X-Signature-Timestamp"]
    key = fake.public_key_hex
    assert endpoints.verify_signature(key, sig, ts, body, now=1700000000)
    assert endpoints.verify_signature(key, sig, ts, body, now=1700000300)
    assert not endpoints.verify_signature(key, sig, ts, body, now=1700000301)
    assert not endpoints.verify_signature(key, sig, ts, body + b" ", now=1700000000)
    assert not endpoints.verify_signature(key, "zz", ts, body, now=1700000000)
    assert not endpoints.verify_signature(key, sig, "not-a-number", body, now=1700000000)
    assert not endpoints.verify_signature("abc", sig, ts, body, now=1700000000)
