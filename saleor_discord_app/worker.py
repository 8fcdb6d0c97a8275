"""The Celery app, its beat schedule, and how work is handed to it.

Broker: Redis when ``SDA_REDIS_URL`` is set (production); otherwise kombu's ``filesystem://`` transport in
``data_dir/broker`` (the embedded default: no external service, works across the api/worker/beat
processes of one machine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from celery import Celery, Task
from sqlalchemy.orm import Session as OrmSession

from saleor_discord_app.config import Settings, get_settings
from saleor_discord_app.db import after_commit

log = structlog.get_logger(__name__)

TASK_MODULES = [
    "saleor_discord_app.saleor.tasks",
    "saleor_discord_app.memberships.tasks",
    "saleor_discord_app.reconcile.tasks",
    "saleor_discord_app.app_config.tasks",
    "saleor_discord_app.backfill.tasks",
    "saleor_discord_app.claims.tasks",
    "saleor_discord_app.invitations.tasks",
]


def broker_options(settings: Settings) -> dict[str, Any]:
    if settings.redis_url:
        return {"socket_connect_timeout": 2, "socket_timeout": 5}
    folder = (settings.data_dir / "broker").resolve()
    for sub in ("out", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "out"),
        "data_folder_out": str(folder / "out"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    expiry = float(settings.expiry_interval_seconds)
    sweep = float(settings.webhook_redispatch_after_seconds)
    return {
        "check-discord-servers": {"task": "discord.check_servers", "schedule": 300.0, "options": {"expires": 300.0}},
        "expire-memberships": {
            "task": "memberships.expire_due",
            "schedule": expiry,
            "options": {"expires": expiry},
        },
        "reconcile-servers": {"task": "reconcile.reconcile_all", "schedule": 300.0, "options": {"expires": 300.0}},
        "redispatch-webhook-events": {
            "task": "saleor.redispatch_webhook_events",
            "schedule": sweep,
            "options": {"expires": sweep},
        },
        "scan-claim-messages": {
            "task": "claims.scan_messages",
            "schedule": 300.0,
            "options": {"expires": 300.0},
        },
        "resend-invitations": {
            "task": "invitations.resend_due",
            "schedule": 300.0,
            "options": {"expires": 300.0},
        },
    }


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("saleor_discord_app", broker=settings.celery_broker_url, include=TASK_MODULES)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=broker_options(settings),
        # The embedded broker: kombu's filesystem transport, with atomic writes (see fs_broker).
        broker_transport=None if settings.redis_url else "saleor_discord_app.fs_broker:Transport",
        broker_connection_retry_on_startup=True,
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename=str((settings.data_dir / "celerybeat-schedule").resolve()),
        timezone="UTC",
    )
    return app


celery_app = create_celery()


def send_task_now(task: Task[Any, Any], *args: Any) -> None:
    """Publish without Celery's connection retries, so a dead broker fails fast (the sweep retries)."""
    task.apply_async(args=args, retry=False)


def enqueue_after_commit(
    session: OrmSession, task: Task[Any, Any], *args: Any, on_failure: Callable[[], None] | None = None
) -> None:
    """Dispatch ``task(*args)`` once the session commits; nothing is sent if it rolls back."""

    def _send() -> None:
        try:
            send_task_now(task, *args)
        except Exception:
            log.warning("worker.dispatch.failed", task=task.name, args=args)
            if on_failure is not None:
                on_failure()

    after_commit(session, _send)
