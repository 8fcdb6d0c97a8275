"""Celery tasks for Saleor events: process one recorded event; re-dispatch what never reached the broker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from celery import Task
from sqlmodel import col, select

from saleor_discord_app.config import get_settings
from saleor_discord_app.db import session_scope
from saleor_discord_app.models import Installation, InstallationStatus, WebhookEvent
from saleor_discord_app.saleor.handlers import MalformedPayload, handle_event
from saleor_discord_app.sqltypes import utcnow
from saleor_discord_app.worker import celery_app, send_task_now

log = structlog.get_logger(__name__)

STUCK_AFTER = timedelta(minutes=15)
"""A dispatched event still unprocessed after this long is dispatched again (lost by a dying worker)."""


@celery_app.task(
    name="saleor.process_webhook_event",
    bind=True,
    acks_late=True,
    max_retries=8,
    retry_backoff=5,
    retry_backoff_max=600,
)
def process_webhook_event(self: Task[Any, Any], event_id: int) -> str:
    """Apply one recorded event. Idempotent: a processed event is left alone."""
    try:
        with session_scope() as session:
            event = session.get(WebhookEvent, event_id, with_for_update=True)
            if event is None:
                return "missing"
            if event.processed_at is not None:
                return "already-processed"
            installation = session.get(Installation, event.installation_id)
            event.attempts += 1
            if installation is None or installation.status != InstallationStatus.ACTIVE:
                event.processed_at = utcnow()
                event.error = "store uninstalled: event ignored"
                session.add(event)
                return "ignored"
            try:
                with session.begin_nested():
                    handle_event(session, installation, event)
            except MalformedPayload as exc:
                event.error = f"malformed payload: {exc}"
                log.warning("saleor.event.malformed", event_id=event_id, error=str(exc))
            event.processed_at = utcnow()
            session.add(event)
            return "processed"
    except Exception as exc:
        _record_failure(event_id, exc)
        raise self.retry(exc=exc) from exc


def _record_failure(event_id: int, exc: Exception) -> None:
    log.exception("saleor.event.failed", event_id=event_id)
    with session_scope() as session:
        event = session.get(WebhookEvent, event_id)
        if event is not None:
            event.error = f"{exc.__class__.__name__}: {exc}"[:1000]
            session.add(event)


@celery_app.task(name="saleor.redispatch_webhook_events")
def redispatch_webhook_events(limit: int = 500) -> int:
    """Send again every recorded event the broker never got (or a worker lost): nothing is lost."""
    now = utcnow()
    grace = timedelta(seconds=get_settings().webhook_redispatch_after_seconds)
    with session_scope() as session:
        rows = session.exec(
            select(WebhookEvent)
            .where(col(WebhookEvent.processed_at).is_(None))
            .where(
                (col(WebhookEvent.dispatched_at).is_(None) & (col(WebhookEvent.received_at) < now - grace))
                | (col(WebhookEvent.dispatched_at) < now - STUCK_AFTER)
            )
            .order_by(col(WebhookEvent.id))
            .limit(limit)
        ).all()
        ids = [row.id for row in rows if row.id is not None]
    sent = 0
    for event_id in ids:
        try:
            send_task_now(process_webhook_event, event_id)
        except Exception:
            log.warning("saleor.redispatch.broker_down", pending=len(ids) - sent)
            break
        with session_scope() as session:
            row = session.get(WebhookEvent, event_id)
            if row is not None:
                row.dispatched_at = utcnow()
                session.add(row)
        sent += 1
    if ids:
        log.info("saleor.redispatch.done", sent=sent, pending=len(ids))
    return sent
