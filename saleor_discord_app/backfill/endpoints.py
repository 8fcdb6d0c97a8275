"""Backfill API for the Dashboard: start a job for a rule and watch its progress."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session

from saleor_discord_app.backfill import service
from saleor_discord_app.backfill.tasks import run_backfill
from saleor_discord_app.db import get_session
from saleor_discord_app.models import BackfillJob
from saleor_discord_app.saleor.auth import DashboardUser, dashboard_user
from saleor_discord_app.worker import enqueue_after_commit

router = APIRouter(prefix="/api/backfill", tags=["backfill"])
ProductStaff = Annotated[DashboardUser, Depends(dashboard_user("MANAGE_PRODUCTS"))]
SessionDep = Annotated[Session, Depends(get_session)]


class BackfillStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule_id: int


class BackfillRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    rule_id: int
    status: str
    pages: int
    orders_seen: int
    orders_matched: int
    memberships_created: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None


@router.post("", response_model=BackfillRead, status_code=202)
def start_backfill(body: BackfillStart, user: ProductStaff, session: SessionDep) -> BackfillRead:
    try:
        job = service.start(session, user.installation_id, body.rule_id)
    except service.BackfillError as exc:
        raise HTTPException(404, str(exc)) from exc
    assert job.id is not None
    enqueue_after_commit(session, run_backfill, job.id)
    return BackfillRead.model_validate(job)


@router.get("/{job_id}", response_model=BackfillRead)
def get_backfill(job_id: int, user: ProductStaff, session: SessionDep) -> BackfillRead:
    job = session.get(BackfillJob, job_id)
    if job is None or job.installation_id != user.installation_id:
        raise HTTPException(404, "No such backfill in this store.")
    return BackfillRead.model_validate(job)
