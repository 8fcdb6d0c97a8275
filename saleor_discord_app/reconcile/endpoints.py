"""``POST /api/discord/reconcile``: staff run the subscription check now (queued), or preview it (dry run)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session

from saleor_discord_app.db import get_session
from saleor_discord_app.discord.errors import RetryLater
from saleor_discord_app.reconcile import repository, service
from saleor_discord_app.reconcile.tasks import reconcile_server
from saleor_discord_app.saleor.auth import DashboardUser, dashboard_user
from saleor_discord_app.worker import send_task_now

router = APIRouter(prefix="/api/discord", tags=["reconcile"])
OrderStaff = Annotated[DashboardUser, Depends(dashboard_user("MANAGE_ORDERS"))]
SessionDep = Annotated[Session, Depends(get_session)]


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = False
    server_id: int | None = None


@router.post("/reconcile", response_model=None)
def reconcile(user: OrderStaff, session: SessionDep, body: ReconcileRequest | None = None) -> JSONResponse:
    """Queue a pass per server of the store (or one server); ``dry_run`` computes the plan now and returns it."""
    request = body or ReconcileRequest()
    server_ids = repository.servers_to_reconcile(session, user.installation.saleor_api_url)
    if request.server_id is not None:
        if request.server_id not in server_ids:
            raise HTTPException(404, "No such Discord server in this store.")
        server_ids = [request.server_id]
    if request.dry_run:
        try:
            results = service.reconcile_servers(session, server_ids, dry_run=True)
        except RetryLater as exc:
            retry = str(int(exc.retry_after or 30) + 1)
            raise HTTPException(503, "Discord is busy; try again shortly.", headers={"Retry-After": retry}) from exc
        content: dict[str, Any] = {"dry_run": True, "servers": [result.as_dict() for result in results]}
        return JSONResponse(content)
    try:
        for server_id in server_ids:
            send_task_now(reconcile_server, server_id)
    except Exception as exc:
        raise HTTPException(503, "The task queue is unavailable; try again shortly.") from exc
    return JSONResponse({"dry_run": False, "queued": server_ids}, status_code=202)
