"""Celery tasks for invitations: send one numbered email, refresh an order's metadata, and the resend scan."""

from __future__ import annotations

from typing import Any

from celery import Task

from saleor_discord_app.db import session_scope
from saleor_discord_app.invitations import service
from saleor_discord_app.invitations.email import EmailError
from saleor_discord_app.saleor.client import SaleorError
from saleor_discord_app.worker import celery_app

SEND_MAX_RETRIES = 6
METADATA_MAX_RETRIES = 6


def backoff(retries: int) -> int:
    """30 s, 60 s, 120 s ... capped at 15 minutes."""
    return int(min(900, 30 * 2**retries))


@celery_app.task(name="invitations.send_invitation", bind=True, acks_late=True, max_retries=SEND_MAX_RETRIES)
def send_invitation(self: Task[Any, Any], membership_id: int, send_number: int = 1, forced: bool = False) -> str:
    """Send email number ``send_number`` of a membership's invitation, at most once; SMTP failures retry."""
    try:
        return service.send_invitation(membership_id, send_number, forced=forced)
    except EmailError as exc:
        final = not exc.retryable or self.request.retries >= (self.max_retries or 0)
        service.record_failure(membership_id, send_number, str(exc), final=final, retryable=exc.retryable)
        if final:
            return "failed"
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@celery_app.task(name="invitations.update_order_metadata", bind=True, acks_late=True,
                 max_retries=METADATA_MAX_RETRIES)
def update_order_metadata(self: Task[Any, Any], membership_id: int) -> str:
    """Write the order's public Discord metadata (storefront link and status)."""
    try:
        return service.update_order_metadata(membership_id)
    except SaleorError as exc:
        if self.request.retries >= (self.max_retries or 0):
            return "failed"
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@celery_app.task(name="invitations.resend_due")
def resend_due() -> int:
    """Beat, every 5 minutes: queue the reminders (and lost sends) that are due."""
    with session_scope() as session:
        return len(service.resend_due(session).queued)
