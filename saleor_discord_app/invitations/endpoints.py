"""Staff "Send invitation" (F15/F16): queue a welcome email now, from the Dashboard's order widget."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel
from sqlmodel import Session

from saleor_discord_app.db import get_session
from saleor_discord_app.invitations import service
from saleor_discord_app.saleor.auth import DashboardUser, dashboard_user

router = APIRouter(prefix="/api/memberships", tags=["invitations"])
OrderStaff = Annotated[DashboardUser, Depends(dashboard_user("MANAGE_ORDERS"))]
SessionDep = Annotated[Session, Depends(get_session)]


class InvitationQueued(BaseModel):
    membership_id: int
    send_number: int
    status: str = "queued"


@router.post("/{membership_id}/send-invitation", response_model=InvitationQueued, status_code=202)
def send_invitation(membership_id: int, user: OrderStaff, session: SessionDep) -> InvitationQueued:
    """Queue an invitation email for the membership now (sent once the request's transaction commits)."""
    try:
        send_number = service.force_send(session, user.installation_id, membership_id,
                                         by=user.email or user.user_id or "staff")
    except service.InvitationRefused as exc:
        raise HTTPException(exc.status_code, exc.message) from exc
    return InvitationQueued(membership_id=membership_id, send_number=send_number)
