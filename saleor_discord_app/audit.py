"""The timeline: every state change writes an AuditEvent in the same transaction."""

from __future__ import annotations

from typing import Any

import structlog
from sqlmodel import Session

from saleor_discord_app.models import AuditEvent

log = structlog.get_logger(__name__)


def record(
    session: Session,
    kind: str,
    message: str = "",
    *,
    installation_id: int | None = None,
    membership_id: int | None = None,
    **data: Any,
) -> AuditEvent:
    event = AuditEvent(
        kind=kind,
        message=message[:1000],
        installation_id=installation_id,
        membership_id=membership_id,
        data=data,
    )
    session.add(event)
    log.info(kind, installation_id=installation_id, membership_id=membership_id, **data)
    return event
