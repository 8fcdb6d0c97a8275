"""Membership rules: what a paid, cancelled, refunded or charged-back order means for access.

Saleor delivers events at least once and in any order. Every function here is idempotent, and an
``OrderRecord`` per order remembers the newest word on its payment state, so the end state is right
whatever order the events arrive in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog
from sqlmodel import Session

from saleor_discord_app import audit
from saleor_discord_app.memberships import repository
from saleor_discord_app.models import (
    LIVE_STATUSES,
    AccessRule,
    Membership,
    MembershipStatus,
    OrderChargeState,
    OrderRecord,
    PartialRefundPolicy,
)
from saleor_discord_app.sqltypes import utcnow

log = structlog.get_logger(__name__)

NO_WORD_YET = datetime(1970, 1, 1, tzinfo=UTC)
"""``state_issued_at`` of a record created by an event that says nothing about payment."""

TERMINAL_STATES = (OrderChargeState.CANCELLED, OrderChargeState.REFUNDED)
"""A cancelled or fully refunded order never grants access again, whatever arrives later."""


class EndReason:
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    PARTIAL_REFUND = "partial_refund"
    CHARGEBACK = "chargeback"
    CUSTOMER_DELETED = "customer_deleted"
    EXPIRED = "expired"
    STAFF = "revoked_by_staff"


STATE_END_REASON = {
    OrderChargeState.CANCELLED: EndReason.CANCELLED,
    OrderChargeState.REFUNDED: EndReason.REFUNDED,
    OrderChargeState.UNPAID: EndReason.CHARGEBACK,
}


@dataclass(frozen=True)
class PaidLine:
    line_id: str
    product_id: str | None
    variant_id: str | None
    quantity: int = 1


@dataclass(frozen=True)
class PaidOrder:
    order_id: str
    number: str
    customer_email: str
    saleor_user_id: str | None
    lines: Sequence[PaidLine]


@dataclass(frozen=True)
class OrderChange:
    """The payment state of an order as an order-changed event reports it."""

    order_id: str
    number: str
    status: str
    charge_status: str
    customer_email: str
    total: Decimal | None
    charged: Decimal
    refunded: Decimal
    refunded_line_ids: frozenset[str] = field(default_factory=frozenset)


def _changed(session: Session, membership: Membership) -> None:
    """Every status change lands here: stamp it, then queue the Discord sync and the welcome email (after commit)."""
    from saleor_discord_app.invitations.service import schedule_invitation
    from saleor_discord_app.memberships.discord_sync import schedule_sync

    membership.updated_at = utcnow()
    session.add(membership)
    session.flush()
    schedule_sync(session, membership)
    schedule_invitation(session, membership)


def _apply_order_state(
    session: Session,
    installation_id: int,
    order_id: str,
    state: OrderChargeState,
    issued_at: datetime,
    *,
    number: str = "",
    email: str = "",
) -> tuple[OrderRecord, bool]:
    """Record ``state`` for the order if it is the newest word on it; returns (record, applied)."""
    record = repository.get_order_record(session, installation_id, order_id)
    if record is None:
        record = OrderRecord(
            installation_id=installation_id,
            order_id=order_id,
            order_number=number,
            customer_email=email,
            state=state,
            state_issued_at=issued_at,
        )
        session.add(record)
        session.flush()
        return record, True
    record.order_number = record.order_number or number
    record.customer_email = record.customer_email or email
    if record.state in TERMINAL_STATES:
        applied = False
    elif state in TERMINAL_STATES:
        applied = True
    else:
        applied = issued_at >= record.state_issued_at
    if applied:
        record.state = state
        record.state_issued_at = issued_at
        record.updated_at = utcnow()
    session.add(record)
    return record, applied


def order_paid(
    session: Session, installation_id: int, order: PaidOrder, issued_at: datetime
) -> list[Membership]:
    """ORDER_FULLY_PAID: one membership per (line, matching rule); renewals extend from the current end."""
    record, applied = _apply_order_state(
        session,
        installation_id,
        order.order_id,
        OrderChargeState.PAID,
        issued_at,
        number=order.number,
        email=order.customer_email,
    )
    paid_at = min(issued_at, utcnow())
    touched: list[Membership] = []
    for line in order.lines:
        for rule in repository.rules_for_line(session, installation_id, line.product_id, line.variant_id):
            assert rule.id is not None
            membership = repository.get_membership(session, installation_id, line.line_id, rule.id)
            if membership is None:
                membership = _create(session, installation_id, order, line, rule, paid_at)
                if not applied:
                    _end(
                        session,
                        membership,
                        MembershipStatus.REVOKED,
                        STATE_END_REASON[record.state],
                        "The order had already ended when its payment arrived.",
                    )
                elif _refund_policy_revokes(rule, membership, record):
                    _end(
                        session,
                        membership,
                        MembershipStatus.REVOKED,
                        EndReason.PARTIAL_REFUND,
                        "A refund recorded earlier ends this access (partial-refund policy).",
                    )
            elif applied:
                _reinstate_after_chargeback(session, membership, "Order paid again after a chargeback.")
            touched.append(membership)
    return touched


def _reinstate_after_chargeback(session: Session, membership: Membership, message: str) -> bool:
    """A membership ended by a chargeback comes back when the order is fully paid again."""
    if membership.status != MembershipStatus.REVOKED or membership.end_reason != EndReason.CHARGEBACK:
        return False
    membership.status = MembershipStatus.PENDING
    membership.end_reason = None
    audit.record(
        session,
        "membership.reinstated",
        message,
        installation_id=membership.installation_id,
        membership_id=membership.id,
    )
    _changed(session, membership)
    return True


def _create(
    session: Session,
    installation_id: int,
    order: PaidOrder,
    line: PaidLine,
    rule: AccessRule,
    paid_at: datetime,
) -> Membership:
    assert rule.id is not None
    ends_at: datetime | None = None
    if rule.duration_days is not None and not repository.has_unending_live_membership(
        session, installation_id, order.customer_email, rule.id, excluding_order=order.order_id
    ):
        current_end = repository.latest_live_end(
            session, installation_id, order.customer_email, rule.id, excluding_order=order.order_id
        )
        start_from = max(paid_at, current_end) if current_end else paid_at
        ends_at = start_from + timedelta(days=rule.duration_days * max(line.quantity, 1))
    membership = Membership(
        installation_id=installation_id,
        rule_id=rule.id,
        order_id=order.order_id,
        order_number=order.number,
        order_line_id=line.line_id,
        customer_email=order.customer_email,
        saleor_user_id=order.saleor_user_id,
        status=MembershipStatus.PENDING,
        starts_at=paid_at,
        ends_at=ends_at,
        guild_id=rule.guild_id,
    )
    session.add(membership)
    session.flush()
    audit.record(
        session,
        "membership.created",
        f"Order #{order.number} paid: access to {rule.name or 'Discord'} "
        + (f"until {ends_at:%Y-%m-%d %H:%M} UTC" if ends_at else "with no end date"),
        installation_id=installation_id,
        membership_id=membership.id,
        order_id=order.order_id,
        rule_id=rule.id,
    )
    _changed(session, membership)
    return membership


def _end(
    session: Session, membership: Membership, status: MembershipStatus, reason: str, message: str
) -> bool:
    if membership.status not in LIVE_STATUSES:
        return False
    membership.status = status
    membership.end_reason = reason
    audit.record(
        session,
        f"membership.{status}",
        message,
        installation_id=membership.installation_id,
        membership_id=membership.id,
        reason=reason,
    )
    _changed(session, membership)
    return True


def order_ended(
    session: Session,
    installation_id: int,
    order_id: str,
    state: OrderChargeState,
    issued_at: datetime,
    *,
    number: str = "",
    email: str = "",
) -> list[Membership]:
    """Cancellation, full refund or chargeback: revoke every live membership of the order."""
    _, applied = _apply_order_state(
        session, installation_id, order_id, state, issued_at, number=number, email=email
    )
    if not applied:
        return []
    reason = STATE_END_REASON[state]
    messages = {
        EndReason.CANCELLED: "Order cancelled.",
        EndReason.REFUNDED: "Order fully refunded.",
        EndReason.CHARGEBACK: "Order no longer fully paid (chargeback).",
    }
    return [
        membership
        for membership in repository.memberships_of_order(session, installation_id, order_id)
        if _end(session, membership, MembershipStatus.REVOKED, reason, messages[reason])
    ]


def classify_change(change: OrderChange) -> OrderChargeState | None:
    """Judge an order's payment state from the payload, not the event name (Saleor's order is not fixed)."""
    if change.status == "CANCELED":
        return OrderChargeState.CANCELLED
    if change.total is not None and change.total > 0 and change.refunded >= change.total:
        return OrderChargeState.REFUNDED
    if change.charge_status in ("FULL", "OVERCHARGED"):
        return OrderChargeState.PAID
    if change.total is not None:
        if change.charged + change.refunded < change.total:
            return OrderChargeState.UNPAID
        return None  # the gap is covered by a partial refund: the refund policy decides
    # Without the total (older subscription queries) a refund explains a drop, otherwise it is a chargeback.
    if change.refunded > 0:
        return OrderChargeState.REFUNDED if change.charged == 0 else None
    return OrderChargeState.UNPAID


def order_updated(
    session: Session, installation_id: int, change: OrderChange, issued_at: datetime
) -> list[Membership]:
    """ORDER_UPDATED: revokes when the charge fell below the total (chargeback); restores when paid again."""
    state = classify_change(change)
    if state is None:
        return []
    if state == OrderChargeState.PAID:
        _, applied = _apply_order_state(session, installation_id, change.order_id, state, issued_at)
        if not applied:
            return []
        return [
            membership
            for membership in repository.memberships_of_order(session, installation_id, change.order_id)
            if _reinstate_after_chargeback(session, membership, "Order fully charged again.")
        ]
    return order_ended(
        session,
        installation_id,
        change.order_id,
        state,
        issued_at,
        number=change.number,
        email=change.customer_email,
    )


def order_refunded(
    session: Session, installation_id: int, change: OrderChange, issued_at: datetime
) -> list[Membership]:
    """ORDER_REFUNDED: a full refund revokes; a partial refund follows each rule's policy."""
    if change.total is not None and change.total > 0 and change.refunded >= change.total:
        return order_ended(
            session,
            installation_id,
            change.order_id,
            OrderChargeState.REFUNDED,
            issued_at,
            number=change.number,
            email=change.customer_email,
        )
    if change.refunded <= 0:
        return []
    record = repository.get_order_record(session, installation_id, change.order_id)
    if record is None:
        # A refund implies a payment: remember the refund for when the (late) paid event arrives.
        record = OrderRecord(
            installation_id=installation_id,
            order_id=change.order_id,
            order_number=change.number,
            customer_email=change.customer_email,
            state=OrderChargeState.PAID,
            state_issued_at=NO_WORD_YET,
        )
    record.partial_refund_at = issued_at
    record.refunded_line_ids = sorted(set(record.refunded_line_ids) | change.refunded_line_ids)
    session.add(record)
    ended = []
    for membership in repository.memberships_of_order(session, installation_id, change.order_id):
        rule = session.get(AccessRule, membership.rule_id)
        if (
            rule is not None
            and _refund_policy_revokes(rule, membership, record)
            and _end(
                session,
                membership,
                MembershipStatus.REVOKED,
                EndReason.PARTIAL_REFUND,
                f"Partial refund of order #{change.number or membership.order_number} "
                f"({rule.partial_refund_policy} policy).",
            )
        ):
            ended.append(membership)
    return ended


def _refund_policy_revokes(rule: AccessRule, membership: Membership, record: OrderRecord) -> bool:
    if record.partial_refund_at is None:
        return False
    if rule.partial_refund_policy == PartialRefundPolicy.REVOKE:
        return True
    if rule.partial_refund_policy == PartialRefundPolicy.REVOKE_REFUNDED_LINES:
        return membership.order_line_id in record.refunded_line_ids
    return False


def customer_deleted(
    session: Session, installation_id: int, *, saleor_user_id: str | None, email: str | None
) -> list[Membership]:
    """The customer's account was deleted in Saleor: revoke their access."""
    email = email.lower() if email else None
    return [
        membership
        for membership in repository.live_memberships_of_customer(
            session, installation_id, saleor_user_id=saleor_user_id, email=email
        )
        if _end(
            session,
            membership,
            MembershipStatus.REVOKED,
            EndReason.CUSTOMER_DELETED,
            "The customer's Saleor account was deleted.",
        )
    ]


def expire_due(session: Session, *, now: datetime | None = None, batch_size: int = 500) -> list[int]:
    """Move live memberships past their end plus the rule's grace period to ``expired``."""
    now = now or utcnow()
    expired: list[int] = []
    for grace_days in repository.distinct_grace_days(session):
        for membership in repository.due_for_expiry(session, now, grace_days, limit=batch_size):
            if _end(
                session,
                membership,
                MembershipStatus.EXPIRED,
                EndReason.EXPIRED,
                f"Access ended on {membership.ends_at:%Y-%m-%d %H:%M} UTC"
                + (f" (plus {grace_days} days grace)." if grace_days else "."),
            ):
                assert membership.id is not None
                expired.append(membership.id)
    return expired


def revoke_by_staff(session: Session, membership: Membership, *, by: str) -> bool:
    return _end(session, membership, MembershipStatus.REVOKED, EndReason.STAFF, f"Revoked by {by}.")
