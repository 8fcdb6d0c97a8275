"""Celery tasks for memberships."""

from __future__ import annotations

from typing import Any

from celery import Task

from saleor_discord_app.db import session_scope
from saleor_discord_app.discord.errors import RetryLater
from saleor_discord_app.memberships import discord_sync, service
from saleor_discord_app.worker import celery_app


@celery_app.task(name="memberships.expire_due")
def expire_due() -> int:
    """Beat, every 5 minutes: expire memberships past their end plus grace."""
    with session_scope() as session:
        return len(service.expire_due(session))


@celery_app.task(
    name="memberships.sync_membership",
    bind=True,
    acks_late=True,
    max_retries=10,
)
def sync_membership(self: Task[Any, Any], membership_id: int) -> str:
    """Make Discord match one membership; transient Discord failures retry with backoff."""
    try:
        with session_scope() as session:
            return discord_sync.sync_membership(session, membership_id)
    except RetryLater as exc:
        final = self.request.retries >= (self.max_retries or 0)
        with session_scope() as session:
            discord_sync.record_retry(session, membership_id, str(exc), final=final)
        if final:
            return "gave up: needs attention"
        countdown = exc.retry_after if exc.retry_after is not None else min(600, 10 * 2**self.request.retries)
        raise self.retry(exc=exc, countdown=countdown) from exc
