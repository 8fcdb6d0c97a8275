"""Celery tasks of the subscription check: one per server, fanned out every 5 minutes by beat."""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task

from saleor_discord_app.db import session_scope
from saleor_discord_app.discord.errors import RetryLater
from saleor_discord_app.reconcile import repository, service
from saleor_discord_app.worker import celery_app

log = structlog.get_logger(__name__)

RECONCILE_INTERVAL_SECONDS = 300.0
"""Matches the beat entry "reconcile-servers"; a queued pass older than this is dropped (the next one covers it)."""


@celery_app.task(name="reconcile.reconcile_server", bind=True, acks_late=True, max_retries=5)
def reconcile_server(self: Task[Any, Any], server_id: int, dry_run: bool = False) -> dict[str, Any]:
    """One pass over one Discord server (ids only; idempotent). Transient Discord failures retry with backoff."""
    try:
        with session_scope() as session:
            result = service.reconcile_server(session, server_id, dry_run=dry_run)
    except RetryLater as exc:
        if self.request.retries >= (self.max_retries or 0):
            log.warning("reconcile.gave_up", server_id=server_id, error=str(exc))
            return {"server_id": server_id, "status": "gave up", "error": str(exc)}
        countdown = exc.retry_after if exc.retry_after is not None else min(300, 15 * 2**self.request.retries)
        raise self.retry(exc=exc, countdown=countdown) from exc
    summary = result.as_dict()
    summary.pop("actions")
    return summary


@celery_app.task(name="reconcile.reconcile_all")
def reconcile_all() -> int:
    """Beat, every 5 minutes: queue one pass per server of every active store."""
    with session_scope() as session:
        server_ids = repository.servers_to_reconcile(session)
    queued = 0
    for server_id in server_ids:
        try:
            reconcile_server.apply_async(args=(server_id,), retry=False, expires=RECONCILE_INTERVAL_SECONDS)
            queued += 1
        except Exception:  # broker down: the next beat tick tries again
            log.warning("reconcile.dispatch_failed", server_id=server_id)
    return queued
