"""Expiry with grace periods, with a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlmodel import Session, select

from saleor_discord_app.memberships import service
from saleor_discord_app.memberships.tasks import expire_due
from saleor_discord_app.models import Installation, Membership, MembershipStatus
from saleor_discord_app.sqltypes import utcnow
from tests.factories import make_rule

PAID = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _paid(session: Session, installation_id: int, order: str, email: str = "a@example.com") -> None:
    service.order_paid(
        session,
        installation_id,
        service.PaidOrder(
            order_id=order,
            number=order,
            customer_email=email,
            saleor_user_id=None,
            lines=[service.PaidLine(line_id=f"line-{order}", product_id="UHJvZHVjdDox", variant_id=None)],
        ),
        PAID,
    )
    session.commit()


def _status(session: Session) -> list[str]:
    session.expire_all()
    return [m.status for m in session.exec(select(Membership).order_by(Membership.id))]  # type: ignore[arg-type]


def _installation(session: Session) -> int:
    installation = Installation(saleor_api_url="http://127.0.0.1:1/graphql/", app_id="QXBwOjE=")
    session.add(installation)
    session.commit()
    assert installation.id is not None
    return installation.id


def test_expires_after_end_plus_grace(session: Session) -> None:
    installation_id = _installation(session)
    make_rule(session, installation_id, duration_days=30, grace_days=3)
    with time_machine.travel(PAID, tick=False):
        _paid(session, installation_id, "o1")
    end = PAID + timedelta(days=30)
    with time_machine.travel(end + timedelta(days=2, hours=23), tick=False):
        assert expire_due.run() == 0
    assert _status(session) == ["pending"]
    with time_machine.travel(end + timedelta(days=3, minutes=1), tick=False):
        assert expire_due.run() == 1
        assert expire_due.run() == 0  # idempotent
    assert _status(session) == ["expired"]
    membership = session.exec(select(Membership)).one()
    assert membership.end_reason == "expired"


def test_rules_without_grace_and_without_end(session: Session) -> None:
    installation_id = _installation(session)
    make_rule(session, installation_id, duration_days=7, grace_days=0)
    make_rule(session, installation_id, product_id="UHJvZHVjdDox", duration_days=None, name="forever")
    with time_machine.travel(PAID, tick=False):
        _paid(session, installation_id, "o1")
    with time_machine.travel(PAID + timedelta(days=7, seconds=1), tick=False):
        assert service.expire_due(session, now=utcnow()) != []
        session.commit()
    with time_machine.travel(PAID + timedelta(days=3650), tick=False):
        assert service.expire_due(session, now=utcnow()) == []
    assert sorted(_status(session)) == ["expired", "pending"]


def test_revoked_memberships_do_not_expire(session: Session) -> None:
    installation_id = _installation(session)
    make_rule(session, installation_id, duration_days=1)
    with time_machine.travel(PAID, tick=False):
        _paid(session, installation_id, "o1")
        membership = session.exec(select(Membership)).one()
        assert service.revoke_by_staff(session, membership, by="staff@example.com")
        session.commit()
    with time_machine.travel(PAID + timedelta(days=5), tick=False):
        assert expire_due.run() == 0
    assert _status(session) == [MembershipStatus.REVOKED]
