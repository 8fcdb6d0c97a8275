"""Celery task for backfills."""

from __future__ import annotations

from typing import Any

from celery import Task

from saleor_discord_app.backfill import service
from saleor_discord_app.saleor.client import SaleorError
from saleor_discord_app.worker import celery_app


@celery_app.task(name="backfill.run", bind=True, acks_late=True, max_retries=5)
def run_backfill(self: Task[Any, Any], job_id: int) -> str:
    """Run or resume one backfill job; a Saleor outage retries from the saved cursor."""
    try:
        job = service.run(job_id)
    except service.BackfillError as exc:
        return str(exc)
    except SaleorError as exc:
        raise self.retry(exc=exc, countdown=min(600, 30 * 2**self.request.retries)) from exc
    return f"{job.status}: {job.memberships_created} memberships"
