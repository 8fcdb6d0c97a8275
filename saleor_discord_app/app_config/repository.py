"""Queries for access rules."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from saleor_discord_app.models import AccessRule


def list_rules(
    session: Session, installation_id: int, *, product_id: str | None = None, variant_id: str | None = None
) -> Sequence[AccessRule]:
    query = select(AccessRule).where(AccessRule.installation_id == installation_id)
    if product_id:
        query = query.where(AccessRule.product_id == product_id)
    if variant_id:
        query = query.where(AccessRule.variant_id == variant_id)
    return session.exec(query.order_by(col(AccessRule.id))).all()


def get_rule(session: Session, installation_id: int, rule_id: int) -> AccessRule | None:
    rule = session.get(AccessRule, rule_id)
    return rule if rule is not None and rule.installation_id == installation_id else None
