"""Access rules: create and change what a product sells."""

from __future__ import annotations

from sqlmodel import Session

from saleor_discord_app import audit
from saleor_discord_app.app_config.schemas import RuleCreate, RuleFields, RuleUpdate
from saleor_discord_app.models import AccessRule, OnEndAction
from saleor_discord_app.sqltypes import utcnow


class RuleInvalid(ValueError):
    pass


def create_rule(session: Session, installation_id: int, data: RuleCreate, *, by: str) -> AccessRule:
    rule = AccessRule(installation_id=installation_id, **data.model_dump())
    session.add(rule)
    session.flush()
    audit.record(session, "rule.created", f"Access rule created by {by}", installation_id=installation_id,
                 rule_id=rule.id, product_id=rule.product_id, variant_id=rule.variant_id)
    return rule


def update_rule(session: Session, rule: AccessRule, data: RuleUpdate, *, by: str) -> AccessRule:
    changes = data.model_dump(exclude_unset=True)
    merged = {**RuleFields.model_validate(rule, from_attributes=True).model_dump(), **changes}
    try:
        RuleFields.model_validate(merged)
    except ValueError as exc:
        raise RuleInvalid(str(exc)) from exc
    for key, value in changes.items():
        setattr(rule, key, value)
    if rule.on_end_action != OnEndAction.SWAP_TO_ALUMNI and "on_end_action" in changes:
        rule.alumni_role_id = changes.get("alumni_role_id", rule.alumni_role_id)
    rule.updated_at = utcnow()
    session.add(rule)
    audit.record(session, "rule.updated", f"Access rule changed by {by}", installation_id=rule.installation_id,
                 rule_id=rule.id, changes=sorted(changes))
    return rule
