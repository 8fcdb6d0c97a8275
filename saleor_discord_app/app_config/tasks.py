"""Celery tasks for Discord servers and rules: the periodic health check (F4) and deferred rule checks.

Tasks take ids and are idempotent: running one twice stores the same result.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task

from saleor_discord_app import worker
from saleor_discord_app.app_config import repository, servers, service
from saleor_discord_app.db import session_scope
from saleor_discord_app.discord.errors import RetryLater
from saleor_discord_app.worker import celery_app

log = structlog.get_logger(__name__)

CHECK_INTERVAL_SECONDS = 300.0


def _countdown(task: Task[Any, Any], exc: RetryLater) -> float:
    return exc.retry_after if exc.retry_after is not None else float(min(600, 15 * 2**task.request.retries))


@celery_app.task(name="discord.check_servers")
def check_servers() -> int:
    """Beat, every 5 minutes: queue a health check of every server of every installed store."""
    with session_scope() as session:
        server_ids = repository.active_server_ids(session)
    queued = 0
    for server_id in server_ids:
        try:
            worker.send_task_now(check_server, server_id)
            queued += 1
        except Exception:
            log.warning("discord.check_servers.dispatch_failed", server_id=server_id)
    return queued


@celery_app.task(name="discord.check_server", bind=True, acks_late=True, max_retries=3)
def check_server(self: Task[Any, Any], server_id: int) -> str:
    """Re-check one server and its rules; Discord unreachable → retry (the next beat round checks anyway)."""
    try:
        with session_scope() as session:
            return servers.check_server_health(session, server_id)
    except RetryLater as exc:
        raise self.retry(exc=exc, countdown=_countdown(self, exc)) from exc


@celery_app.task(name="discord.check_rule", bind=True, acks_late=True, max_retries=8)
def check_rule(self: Task[Any, Any], rule_id: int) -> str:
    """Check a rule saved while Discord was unreachable."""
    try:
        with session_scope() as session:
            return service.check_rule(session, rule_id)
    except RetryLater as exc:
        raise self.retry(exc=exc, countdown=_countdown(self, exc)) from exc
