"""Queries for memberships, access rules and order records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import Session, col, select

from saleor_discord_app.models import (
    LIVE_STATUSES,
    AccessRule,
    Membership,
    OrderRecord,
)


def rules_for_line(
    session: Session, installation_id: int, product_id: str | None, variant_id: str | None
) -> Sequence[AccessRule]:
    """Active rules matching an order line: a rule on the variant, or a rule on the whole product."""
    conditions: list[ColumnElement[bool]] = []
    if variant_id:
        conditions.append(col(AccessRule.variant_id) == variant_id)
    if product_id:
        conditions.append(and_(col(AccessRule.product_id) == product_id, col(AccessRule.variant_id).is_(None)))
    if not conditions:
        return []
    return session.exec(
        select(AccessRule)
        .where(AccessRule.installation_id == installation_id, col(AccessRule.is_active).is_(True))
        .where(or_(*conditions))
        .order_by(col(AccessRule.id))
    ).all()


def get_order_record(session: Session, installation_id: int, order_id: str) -> OrderRecord | None:
    return session.exec(
        select(OrderRecord)
        .where(OrderRecord.installation_id == installation_id, OrderRecord.order_id == order_id)
        .with_for_update()
    ).first()


def memberships_of_order(session: Session, installation_id: int, order_id: str) -> Sequence[Membership]:
    return session.exec(
        select(Membership)
        .where(Membership.installation_id == installation_id, Membership.order_id == order_id)
        .order_by(col(Membership.id))
        .with_for_update()
    ).all()


def get_membership(
    session: Session, installation_id: int, order_line_id: str, rule_id: int
) -> Membership | None:
    return session.exec(
        select(Membership).where(
            Membership.installation_id == installation_id,
            Membership.order_line_id == order_line_id,
            Membership.rule_id == rule_id,
        )
    ).first()


def latest_live_end(
    session: Session, installation_id: int, customer_email: str, rule_id: int, *, excluding_order: str
) -> datetime | None:
    """The latest end of this customer's live memberships of the same plan (renewals extend from it)."""
    ends = session.exec(
        select(Membership.ends_at).where(
            Membership.installation_id == installation_id,
            Membership.customer_email == customer_email,
            Membership.rule_id == rule_id,
            Membership.order_id != excluding_order,
            col(Membership.status).in_(LIVE_STATUSES),
            col(Membership.ends_at).is_not(None),
        )
    ).all()
    return max((end for end in ends if end is not None), default=None)


def has_unending_live_membership(
    session: Session, installation_id: int, customer_email: str, rule_id: int, *, excluding_order: str
) -> bool:
    count = session.exec(
        select(func.count()).where(
            Membership.installation_id == installation_id,
            Membership.customer_email == customer_email,
            Membership.rule_id == rule_id,
            Membership.order_id != excluding_order,
            col(Membership.status).in_(LIVE_STATUSES),
            col(Membership.ends_at).is_(None),
        )
    ).one()
    return bool(count)


def live_memberships_of_customer(
    session: Session, installation_id: int, *, saleor_user_id: str | None, email: str | None
) -> Sequence[Membership]:
    conditions: list[ColumnElement[bool]] = []
    if saleor_user_id:
        conditions.append(col(Membership.saleor_user_id) == saleor_user_id)
    if email:
        conditions.append(col(Membership.customer_email) == email)
    if not conditions:
        return []
    return session.exec(
        select(Membership)
        .where(Membership.installation_id == installation_id, col(Membership.status).in_(LIVE_STATUSES))
        .where(or_(*conditions))
        .with_for_update()
    ).all()


def distinct_grace_days(session: Session) -> Sequence[int]:
    return session.exec(select(AccessRule.grace_days).distinct()).all()


def due_for_expiry(session: Session, now: datetime, grace_days: int, *, limit: int) -> Sequence[Membership]:
    """Live memberships of rules with this grace whose end plus grace has passed, oldest first."""
    return session.exec(
        select(Membership)
        .join(AccessRule, col(AccessRule.id) == Membership.rule_id)
        .where(AccessRule.grace_days == grace_days)
        .where(col(Membership.status).in_(LIVE_STATUSES), col(Membership.ends_at).is_not(None))
        .where(col(Membership.ends_at) < now - timedelta(days=grace_days))
        .order_by(col(Membership.ends_at), col(Membership.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
