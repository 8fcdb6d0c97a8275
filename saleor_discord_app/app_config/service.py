"""Access rules: create and change what a product sells, with a pre-flight check of Discord on every save."""

from __future__ import annotations

from sqlmodel import Session

from saleor_discord_app import audit
from saleor_discord_app.app_config import servers
from saleor_discord_app.app_config.schemas import RuleCreate, RuleFields, RuleUpdate
from saleor_discord_app.discord.errors import RetryLater
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
    run_preflight(session, rule)
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
    run_preflight(session, rule)
    return rule


def run_preflight(session: Session, rule: AccessRule) -> None:
    """Check the rule against Discord now and store the problems (saving is never blocked by them).

    When Discord cannot be reached the rule says so, and a task checks it again after the commit.
    """
    try:
        problems = servers.rule_problems(session, rule, inline=True)
    except RetryLater:
        from saleor_discord_app.app_config.tasks import check_rule
        from saleor_discord_app.worker import enqueue_after_commit

        servers.set_rule_problems(session, rule, [servers.NOT_CHECKED])
        assert rule.id is not None
        enqueue_after_commit(session, check_rule, rule.id)
        return
    servers.set_rule_problems(session, rule, problems)


def check_rule(session: Session, rule_id: int) -> str:
    """Task body: re-check one rule (idempotent; RetryLater propagates so the task retries)."""
    rule = session.get(AccessRule, rule_id)
    if rule is None:
        return "gone"
    servers.set_rule_problems(session, rule, servers.rule_problems(session, rule))
    return "problems" if rule.preflight_problems else "ok"
