"""Claim codes: format, storage, normalisation and every refusal of ``redeem`` (F8)."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from sqlmodel import Session, col, select

from saleor_discord_app.claims import repository, service
from saleor_discord_app.claims.service import ClaimOutcome, redeem
from saleor_discord_app.db import session_scope
from saleor_discord_app.memberships.discord_sync import NOT_IN_SERVER_REASON
from saleor_discord_app.memberships.tasks import sync_membership
from saleor_discord_app.models import (
    AuditEvent,
    ClaimAttempt,
    ClaimCode,
    CustomerLink,
    LinkMethod,
    Membership,
    MembershipStatus,
)
from saleor_discord_app.sqltypes import utcnow
from tests.claims.conftest import Store, make_membership, make_store
from tests.fakes.discord import FakeDiscord

CODE_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


def issue(session: Session, membership: Membership, **kwargs: Any) -> str:
    code = service.issue_code(session, membership, **kwargs)
    session.commit()
    return code


def claim(code: str, user_id: str, store: Store, *, username: str = "alice") -> service.RedeemResult:
    with session_scope() as db:
        return redeem(db, code=code, discord_user_id=user_id, discord_username=username, guild_id=store.guild_id,
                      via=LinkMethod.CLAIM_SLASH)


def code_row(session: Session, membership: Membership) -> ClaimCode:
    session.expire_all()
    return session.exec(select(ClaimCode).where(ClaimCode.membership_id == membership.id)).one()


def test_codes_are_typeable_unguessable_and_stored_hashed(session: Session, store: Store) -> None:
    assert len(service.ALPHABET) == 32
    assert not set("ILOU") & set(service.ALPHABET)
    assert service.CODE_LENGTH * 5 >= 60
    codes = {service.generate_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(CODE_RE.match(code) for code in codes)

    membership = make_membership(session, store)
    code = issue(session, membership)
    assert CODE_RE.match(code)
    row = code_row(session, membership)
    normalized = code.replace("-", "")
    assert row.code_hash == service.hash_code(normalized)
    assert normalized not in row.code_hash
    assert row.code_hash != __import__("hashlib").sha256(normalized.encode()).hexdigest()  # keyed, not a bare hash
    assert timedelta(days=29) < row.expires_at - utcnow() <= timedelta(days=30)
    assert row.used_at is None


def test_issuing_again_replaces_the_previous_code(session: Session, fake: FakeDiscord, store: Store) -> None:
    membership = make_membership(session, store)
    first = issue(session, membership)
    second = issue(session, membership)
    assert first != second
    assert len(session.exec(select(ClaimCode).where(ClaimCode.membership_id == membership.id)).all()) == 1
    user = fake.add_user(username="alice")
    assert claim(first, user, store).outcome == ClaimOutcome.UNKNOWN
    assert claim(second, user, store).ok


def test_no_code_for_an_ended_membership(session: Session, store: Store) -> None:
    membership = make_membership(session, store, status=MembershipStatus.REVOKED)
    with pytest.raises(ValueError, match="live membership"):
        service.issue_code(session, membership)


@pytest.mark.parametrize("typed", [
    lambda c: c.lower(),
    lambda c: c.replace("-", ""),
    lambda c: " " + c.replace("-", " ").lower() + " ",
    lambda c: c.replace("0", "o").replace("1", "l"),
])
def test_typing_variations_match(session: Session, fake: FakeDiscord, store: Store, typed: Any) -> None:
    membership = make_membership(session, store)
    code = issue(session, membership)
    assert claim(typed(code), fake.add_user(), store).ok


def test_normalize_rejects_what_cannot_be_a_code() -> None:
    assert service.normalize_code("abcd-efgh-jkm") is None  # too short
    assert service.normalize_code("ABCD-EFGH-JKMU") is None  # U is not in the alphabet
    assert service.normalize_code("abcd efgh jkmn") == "ABCDEFGHJKMN"


def test_valid_code_links_and_grants(session: Session, fake: FakeDiscord, store: Store) -> None:
    user = fake.add_user(username="alice")
    fake.add_member(store.guild_id, user)
    membership = make_membership(session, store)
    other = make_membership(session, store, order="2")  # the same customer's other purchase follows the link
    code = issue(session, membership)

    result = claim(code, user, store)
    assert result.ok
    assert result.reason == "linked"
    assert result.membership_id == membership.id
    assert result.message == "Linked! You'll get your role in a moment."
    assert code not in result.message

    session.expire_all()
    link = session.exec(select(CustomerLink)).one()
    assert (link.discord_user_id, link.customer_email, link.linked_via) == (user, "ashley@example.com",
                                                                            LinkMethod.CLAIM_SLASH)
    row = code_row(session, membership)
    assert row.used_at is not None
    assert row.used_by_discord_user_id == user
    assert session.exec(select(AuditEvent).where(AuditEvent.kind == "claim.redeemed")).one().membership_id \
        == membership.id

    assert membership.id is not None
    assert other.id is not None
    sync_membership.run(membership.id)
    sync_membership.run(other.id)
    assert fake.member_roles(store.guild_id, user) == {store.role_id}
    session.expire_all()
    assert session.get(Membership, membership.id).status == MembershipStatus.ACTIVE  # type: ignore[union-attr]


def test_claim_by_someone_not_in_the_server_needs_attention(session: Session, fake: FakeDiscord,
                                                            store: Store) -> None:
    user = fake.add_user(username="outsider")  # not a member: a claim link has no OAuth token to add them
    membership = make_membership(session, store)
    assert claim(issue(session, membership), user, store).ok
    assert membership.id is not None
    assert sync_membership.run(membership.id) == "needs attention"
    session.expire_all()
    refreshed = session.get(Membership, membership.id)
    assert refreshed is not None
    assert refreshed.status == MembershipStatus.NEEDS_ATTENTION
    assert refreshed.attention_reason == NOT_IN_SERVER_REASON
    assert fake.member_roles(store.guild_id, user) is None


def test_used_code_is_refused(session: Session, fake: FakeDiscord, store: Store) -> None:
    alice, bob = fake.add_user(username="alice"), fake.add_user(username="bob")
    code = issue(session, make_membership(session, store))
    assert claim(code, alice, store).ok
    again = claim(code, bob, store)
    assert not again.ok
    assert again.outcome == ClaimOutcome.USED
    assert "already been used" in again.message
    mine = claim(code, alice, store)
    assert mine.outcome == ClaimOutcome.USED
    assert mine.message == service.ALREADY_YOURS
    session.expire_all()
    assert session.exec(select(CustomerLink)).one().discord_user_id == alice


def test_expired_code_is_refused(session: Session, fake: FakeDiscord, store: Store) -> None:
    membership = make_membership(session, store)
    code = issue(session, membership, valid_for=timedelta(days=30))
    user = fake.add_user()
    with time_machine.travel(utcnow() + timedelta(days=30, minutes=1)):
        result = claim(code, user, store)
    assert result.outcome == ClaimOutcome.EXPIRED
    assert "expired" in result.message
    assert code_row(session, membership).used_at is None
    assert session.exec(select(CustomerLink)).first() is None


@pytest.mark.parametrize("typed", ["ZZZZ-ZZZZ-ZZZZ", "hello", "", "!!!!-????-####"])
def test_wrong_code_is_refused(session: Session, fake: FakeDiscord, store: Store, typed: str) -> None:
    issue(session, make_membership(session, store))
    result = claim(typed, fake.add_user(), store)
    assert result.outcome == ClaimOutcome.UNKNOWN
    assert "isn't valid" in result.message
    assert session.exec(select(CustomerLink)).first() is None


def test_another_stores_code_is_refused(session: Session, fake: FakeDiscord, store: Store) -> None:
    other = make_store(session, fake, "Other")
    code = issue(session, make_membership(session, other, email="bo@example.com"))
    result = claim(code, fake.add_user(), store)  # typed in the first store's server
    assert result.outcome == ClaimOutcome.OTHER_STORE
    assert "different Discord server" in result.message
    assert session.exec(select(CustomerLink)).first() is None


def test_code_for_a_rule_of_another_server_of_the_same_store_is_refused(session: Session, fake: FakeDiscord,
                                                                         store: Store) -> None:
    from saleor_discord_app.models import DiscordServer

    second_guild = fake.add_guild("Second")
    session.add(DiscordServer(installation_id=store.installation_id, guild_id=second_guild))
    session.commit()
    code = issue(session, make_membership(session, store))  # the rule grants a role in the first server
    with session_scope() as db:
        result = redeem(db, code=code, discord_user_id=fake.add_user(), discord_username="", guild_id=second_guild,
                        via=LinkMethod.CLAIM_SLASH)
    assert result.outcome == ClaimOutcome.OTHER_STORE


@pytest.mark.parametrize("status", [MembershipStatus.REVOKED, MembershipStatus.EXPIRED])
def test_code_of_an_ended_membership_is_refused(session: Session, fake: FakeDiscord, store: Store,
                                                status: MembershipStatus) -> None:
    membership = make_membership(session, store)
    code = issue(session, membership)
    membership.status = status
    session.add(membership)
    session.commit()
    result = claim(code, fake.add_user(), store)
    assert result.outcome == ClaimOutcome.NOT_LIVE
    assert "no longer active" in result.message
    assert code_row(session, membership).used_at is None


def test_repeated_failures_are_throttled(session: Session, fake: FakeDiscord, store: Store) -> None:
    user, other_user = fake.add_user(), fake.add_user()
    membership = make_membership(session, store)
    code = issue(session, membership)
    for _ in range(service.MAX_FAILURES):
        assert claim("ZZZZ-ZZZZ-ZZZZ", user, store).outcome == ClaimOutcome.UNKNOWN
    throttled = claim(code, user, store)  # even the right code is not looked at now
    assert throttled.outcome == ClaimOutcome.THROTTLED
    assert throttled.message == "Too many attempts, try again in 15 minutes."
    assert code_row(session, membership).used_at is None
    assert len(session.exec(select(ClaimAttempt).where(ClaimAttempt.discord_user_id == user)).all()) == 5
    # Someone else is not affected.
    assert claim("ZZZZ-ZZZZ-ZZZZ", other_user, store).outcome == ClaimOutcome.UNKNOWN

    with time_machine.travel(utcnow() + timedelta(minutes=10)):
        assert claim(code, user, store).message == "Too many attempts, try again in 5 minutes."
    with time_machine.travel(utcnow() + timedelta(minutes=15, seconds=5)):
        assert claim(code, user, store).ok


def test_same_code_redeemed_concurrently_succeeds_once(session: Session, fake: FakeDiscord, store: Store,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    membership = make_membership(session, store)
    code = issue(session, membership)
    users = [fake.add_user(username="alice"), fake.add_user(username="bob")]
    barrier = threading.Barrier(2, timeout=10)
    real_mark_used = repository.mark_used

    def mark_used_together(*args: Any, **kwargs: Any) -> bool:
        barrier.wait()  # both have seen the code unused; now both try to take it
        return real_mark_used(*args, **kwargs)

    monkeypatch.setattr(repository, "mark_used", mark_used_together)
    results: dict[str, service.RedeemResult] = {}
    errors: list[BaseException] = []

    def run(user: str) -> None:
        try:
            results[user] = claim(code, user, store)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    outcomes = sorted(result.outcome for result in results.values())
    assert outcomes == sorted([ClaimOutcome.LINKED, ClaimOutcome.USED])
    winner = next(user for user, result in results.items() if result.ok)
    session.expire_all()
    assert code_row(session, membership).used_by_discord_user_id == winner
    assert session.exec(select(CustomerLink)).one().discord_user_id == winner
    assert len(session.exec(select(ClaimAttempt).where(col(ClaimAttempt.succeeded).is_(True))).all()) == 1
