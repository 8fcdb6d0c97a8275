"""Access-rule API for the Dashboard extension (authenticated with the Dashboard's JWT).

``router`` is everything ``app_config`` serves: the rules API below plus the Discord servers API and the bot
install flow of ``server_endpoints``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlmodel import Session

from saleor_discord_app.app_config import repository, service
from saleor_discord_app.app_config.schemas import RuleCreate, RuleRead, RuleUpdate
from saleor_discord_app.app_config.server_endpoints import router as servers_router
from saleor_discord_app.db import get_session
from saleor_discord_app.saleor.auth import DashboardUser, dashboard_user

rules_router = APIRouter(prefix="/api/rules", tags=["rules"])
ProductStaff = Annotated[DashboardUser, Depends(dashboard_user("MANAGE_PRODUCTS"))]
SessionDep = Annotated[Session, Depends(get_session)]


@rules_router.get("", response_model=list[RuleRead])
def list_rules(
    user: ProductStaff,
    session: SessionDep,
    product_id: str | None = Query(None),
    variant_id: str | None = Query(None),
) -> list[RuleRead]:
    rules = repository.list_rules(session, user.installation_id, product_id=product_id, variant_id=variant_id)
    return [RuleRead.model_validate(rule) for rule in rules]


@rules_router.post("", response_model=RuleRead, status_code=201)
def create_rule(body: RuleCreate, user: ProductStaff, session: SessionDep) -> RuleRead:
    rule = service.create_rule(session, user.installation_id, body, by=user.email or user.user_id)
    return RuleRead.model_validate(rule)


@rules_router.get("/{rule_id}", response_model=RuleRead)
def get_rule(rule_id: int, user: ProductStaff, session: SessionDep) -> RuleRead:
    rule = repository.get_rule(session, user.installation_id, rule_id)
    if rule is None:
        raise HTTPException(404, "No such rule in this store.")
    return RuleRead.model_validate(rule)


@rules_router.patch("/{rule_id}", response_model=RuleRead)
def update_rule(rule_id: int, body: RuleUpdate, user: ProductStaff, session: SessionDep) -> RuleRead:
    rule = repository.get_rule(session, user.installation_id, rule_id)
    if rule is None:
        raise HTTPException(404, "No such rule in this store.")
    try:
        service.update_rule(session, rule, body, by=user.email or user.user_id)
    except service.RuleInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    return RuleRead.model_validate(rule)


router = APIRouter()
router.include_router(rules_router)
router.include_router(servers_router)
