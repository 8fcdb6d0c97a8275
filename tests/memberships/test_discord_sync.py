"""Discord follows memberships: grants, F11 (another purchase keeps the role), on-end actions, and
failures that need a person (hierarchy, permissions) ending in needs_attention without endless retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlmodel import Session, select

from saleor_discord_app.memberships import links, service
from saleor_discord_app.memberships.tasks import expire_due, sync_membership
from saleor_discord_app.models import (
    AuditEvent,
    LinkMethod,
    Membership,
    MembershipStatus,
    OnEndAction,
)
from saleor_discord_app.sqltypes import utcnow
from tests.factories import make_installation, make_rule

EMAIL = "ashley@example.com"


@pytest.fixture
def store(session: Session) -> int:
    return make_installation(session)


@pytest.fixture
def guild(fake_discord: Any) -> dict[str, str]:
    guild_id = fake_discord.add_guild(name="Store", bot_role_position=10)
    return {
        "guild": guild_id,
        "vip": fake_discord.add_role(guild_id, "VIP", position=2),
        "alumni": fake_discord.add_role(guild_id, "Alumni", position=1),
        "admins": fake_discord.add_role(guild_id, "Admins", position=20),
        "user": fake_discord.add_user(username="ashley"),
    }


def paid(session: Session, store: int, order: str, *, product: str = "UHJvZHVjdDox", email: str = EMAIL) -> Membership:
    [membership] = service.order_paid(
        session,
        store,
        service.PaidOrder(
            order_id=order,
            number=order,
            customer_email=email,
            saleor_user_id=None,
            lines=[service.PaidLine(line_id=f"line-{order}", product_id=product, variant_id=None)],
        ),
        utcnow(),
    )
    session.commit()
    return membership


def link(session: Session, store: int, discord_user_id: str) -> None:
    links.link_customer(
        session, store, customer_email=EMAIL, discord_user_id=discord_user_id, via=LinkMethod.CLAIM_SLASH
    )
    session.commit()


def sync(session: Session, membership: Membership) -> str:
    assert membership.id is not None
    result = sync_membership.run(membership.id)
    session.expire_all()
    return result


def test_linked_member_gets_the_role_and_status_active(
    session: Session, store: int, guild: dict[str, str], fake_discord: Any
) -> None:
    make_rule(session, store, guild_id=guild["guild"], role_ids=[guild["vip"]])
    fake_discord.add_member(guild["guild"], guild["user"])
    membership = paid(session, store, "o1")
    assert sync(session, membership) == "not linked"
    link(session, store, guild["user"])
    assert "gave 1 role" in sync(session, membership)
    assert fake_discord.member_roles(guild["guild"], guild["user"]) == {guild["vip"]}
    stored = session.get(Membership, membership.id)
    assert stored is not None and stored.status == MembershipStatus.ACTIVE
    assert stored.discord_user_id == guild["user"]
    assert sync(session, membership) == "roles already present"  # idempotent: no second PUT
    puts = [c for c in fake_discord.calls(method="PUT") if "/roles/" in c.path]
    assert len(puts) == 1
    reason = puts[0].headers.get("x-audit-log-reason", "")
    assert "o1" in reason and "paid" in reason


def test_second_purchase_keeps_the_role_when_the_first_is_refunded(
    session: Session, store: int, guild: dict[str, str], fake_discord: Any
) -> None:
    make_rule(session, store, guild_id=guild["guild"], role_ids=[guild["vip"]])
    make_rule(session, store, product_id="UHJvZHVjdDoy", guild_id=guild["guild"], role_ids=[guild["vip"]])
    fake_discord.add_member(guild["guild"], guild["user"])
    link(session, store, guild["user"])
    first = paid(session, store, "o1")
    second = paid(session, store, "o2", product="UHJvZHVjdDoy")
    sync(session, first)
    sync(session, second)
    service.order_ended(session, store, "o1", service.OrderChargeState.REFUNDED, utcnow())
    session.commit()
    assert "kept 1 still granted" in sync(session, first)
    assert fake_discord.member_roles(guild["guild"], guild["user"]) == {guild["vip"]}
    service.order_ended(session, store, "o2", service.OrderChargeState.CANCELLED, utcnow())
    session.commit()
    sync(session, second)
    assert fake_discord.member_roles(guild["guild"], guild["user"]) == set()


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (OnEndAction.REMOVE_ROLE, "removed"),
        (OnEndAction.KICK, "kicked"),
        (OnEndAction.SWAP_TO_ALUMNI, "alumni"),
    ],
)
def test_on_end_actions_after_expiry_and_grace(
    session: Session, store: int, guild: dict[str, str], fake_discord: Any, action: OnEndAction, expected: str
) -> None:
    paid_at = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    make_rule(
        session,
        store,
        guild_id=guild["guild"],
        role_ids=[guild["vip"]],
        duration_days=1,
        grace_days=2,
        on_end_action=action,
        alumni_role_id=guild["alumni"],
    )
    fake_discord.add_member(guild["guild"], guild["user"])
    link(session, store, guild["user"])
    with time_machine.travel(paid_at, tick=False):
        membership = paid(session, store, "o1")
        sync(session, membership)
    assert fake_discord.member_roles(guild["guild"], guild["user"]) == {guild["vip"]}
    with time_machine.travel(paid_at + timedelta(days=2, hours=23), tick=False):  # ended, still in grace
        assert expire_due.run() == 0
    with time_machine.travel(paid_at + timedelta(days=3, minutes=1), tick=False):
        assert expire_due.run() == 1
        assert expected in sync(session, membership)
    roles = fake_discord.member_roles(guild["guild"], guild["user"])
    if action == OnEndAction.KICK:
        assert roles is None
    elif action == OnEndAction.SWAP_TO_ALUMNI:
        assert roles == {guild["alumni"]}
    else:
        assert roles == set()
    assert session.get(Membership, membership.id).status == MembershipStatus.EXPIRED  # type: ignore[union-attr]


def test_role_above_the_bot_needs_attention_and_is_not_retried(
    session: Session, store: int, guild: dict[str, str], fake_discord: Any
) -> None:
    make_rule(session, store, guild_id=guild["guild"], role_ids=[guild["admins"]])
    fake_discord.add_member(guild["guild"], guild["user"])
    link(session, store, guild["user"])
    membership = paid(session, store, "o1")
    assert sync(session, membership) == "needs attention"
    stored = session.get(Membership, membership.id)
    assert stored is not None and stored.status == MembershipStatus.NEEDS_ATTENTION
    assert stored.attention_reason and "drag the bot's role above" in stored.attention_reason
    role_puts = [c for c in fake_discord.calls(method="PUT") if "/roles/" in c.path]
    assert len(role_puts) == 1  # one refusal, no retry loop
    assert session.exec(select(AuditEvent).where(AuditEvent.kind == "discord.needs_attention")).first()
    # Once the owner fixes the hierarchy, the next sync succeeds.
    fake_discord.set_role_position(guild["guild"], guild["admins"], 5)
    assert "gave 1 role" in sync(session, membership)
    assert session.get(Membership, membership.id).status == MembershipStatus.ACTIVE  # type: ignore[union-attr]


def test_missing_manage_roles_needs_attention(session: Session, store: int, fake_discord: Any) -> None:
    guild_id = fake_discord.add_guild(name="Store", bot_permissions=1024 | 1)  # View Channel + Invite only
    role = fake_discord.add_role(guild_id, "VIP", position=1)
    user = fake_discord.add_user(username="ashley")
    fake_discord.add_member(guild_id, user)
    make_rule(session, store, guild_id=guild_id, role_ids=[role])
    link(session, store, user)
    membership = paid(session, store, "o1")
    assert sync(session, membership) == "needs attention"
    stored = session.get(Membership, membership.id)
    assert stored is not None and "Manage Roles" in (stored.attention_reason or "")


def test_claim_linked_customer_not_in_the_server_needs_attention(
    session: Session, store: int, guild: dict[str, str], fake_discord: Any
) -> None:
    make_rule(session, store, guild_id=guild["guild"], role_ids=[guild["vip"]])
    link(session, store, guild["user"])
    membership = paid(session, store, "o1")
    assert sync(session, membership) == "needs attention"
    stored = session.get(Membership, membership.id)
    assert stored is not None and "must join the server" in (stored.attention_reason or "")


def test_discord_5xx_is_retried_not_marked(
    session: Session, store: int, guild: dict[str, str], fake_discord: Any
) -> None:
    from celery.exceptions import Retry

    make_rule(session, store, guild_id=guild["guild"], role_ids=[guild["vip"]])
    fake_discord.add_member(guild["guild"], guild["user"])
    link(session, store, guild["user"])
    membership = paid(session, store, "o1")
    fake_discord.inject("GET", r"/members/", 502, times=50)
    with pytest.raises((Retry, Exception)) as raised:
        sync_membership.apply(args=[membership.id], throw=True)
    assert "Retry" in type(raised.value).__name__ or "RetryLater" in repr(raised.value)
    session.expire_all()
    stored = session.get(Membership, membership.id)
    assert stored is not None and stored.status == MembershipStatus.PENDING
    assert "retrying" in (stored.last_error or "")


def test_a_server_the_store_did_not_connect_is_never_touched(session: Session, store: int, guild: dict[str, str],
                                                             fake_discord: Any) -> None:
    """One bot serves every store: store A must not sell roles in store B's server."""
    make_rule(session, store, guild_id=guild["guild"], role_ids=[guild["vip"]], connect_server=False)
    fake_discord.add_member(guild["guild"], guild["user"])
    link(session, store, guild["user"])
    membership = paid(session, store, "o1")
    assert sync(session, membership) == "needs attention"
    assert fake_discord.member_roles(guild["guild"], guild["user"]) == set()
    assert not [c for c in fake_discord.calls(method="PUT")]
    stored = session.get(Membership, membership.id)
    assert stored is not None and "not connected to the store" in (stored.attention_reason or "")
