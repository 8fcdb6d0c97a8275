"""Celery tasks for memberships."""

from __future__ import annotations

from saleor_discord_app.db import session_scope
from saleor_discord_app.memberships import service
from saleor_discord_app.worker import celery_app


@celery_app.task(name="memberships.expire_due")
def expire_due() -> int:
    """Beat, every 5 minutes: expire memberships past their end plus grace."""
    with session_scope() as session:
        return len(service.expire_due(session))
