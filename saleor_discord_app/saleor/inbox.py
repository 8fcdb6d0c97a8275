"""Receiving deliveries: verify, record once, hand to the worker after commit."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from saleor_discord_app.crypto import sha256_hex
from saleor_discord_app.db import session_scope
from saleor_discord_app.models import WebhookEvent
from saleor_discord_app.saleor import repository, service
from saleor_discord_app.saleor.jws import SignatureError
from saleor_discord_app.saleor.webhooks import WEBHOOKS_BY_SLUG, WebhookDefinition
from saleor_discord_app.sqltypes import utcnow

log = structlog.get_logger(__name__)

TYPENAME_TO_EVENT = {
    "OrderFullyPaid": "ORDER_FULLY_PAID",
    "OrderCancelled": "ORDER_CANCELLED",
    "OrderFullyRefunded": "ORDER_FULLY_REFUNDED",
    "OrderRefunded": "ORDER_REFUNDED",
    "OrderUpdated": "ORDER_UPDATED",
    "CustomerDeleted": "CUSTOMER_DELETED",
    "AccountDeleted": "ACCOUNT_DELETED",
    "AppDeleted": "APP_DELETED",
}


@dataclass
class WebhookRejected(Exception):
    status_code: int
    message: str


@dataclass(frozen=True)
class Accepted:
    event_id: int
    duplicate: bool


def receive(slug: str, headers: Mapping[str, str], body: bytes) -> Accepted:
    """Verify one delivery and record it; raises ``WebhookRejected`` with the HTTP status to answer."""
    definition = WEBHOOKS_BY_SLUG.get(slug)
    if definition is None:
        raise WebhookRejected(404, f"no webhook at {slug!r}")
    api_url = headers.get("saleor-api-url")
    if not api_url:
        raise WebhookRejected(401, "missing Saleor-Api-Url header")
    with session_scope() as session:
        # The token is not needed to verify a delivery: skip decrypting it on the hot path.
        installation = repository.get_active_by_api_url(session, api_url, with_token=False)
    if installation is None:
        raise WebhookRejected(401, "unknown store")
    try:
        service.verify_webhook(installation, headers.get("saleor-signature"), body)
    except SignatureError as exc:
        log.warning("saleor.webhook.rejected", installation_id=installation.id, reason=str(exc))
        raise WebhookRejected(401, f"invalid signature: {exc}") from exc
    payload = _parse(body)
    event_type = _event_type(definition, headers, payload)
    assert installation.id is not None
    with session_scope() as session:
        return record_event(session, installation.id, event_type, payload, body)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookRejected(400, "body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "body is not a JSON object")
    return payload


def _event_type(definition: WebhookDefinition, headers: Mapping[str, str], payload: dict[str, Any]) -> str:
    header = (headers.get("saleor-event") or "").upper()
    event_type = header or TYPENAME_TO_EVENT.get(str(payload.get("__typename")), "")
    if event_type not in definition.events:
        raise WebhookRejected(400, f"event {event_type or '(none)'!r} is not handled at this URL")
    return event_type


def parse_issued_at(payload: dict[str, Any]) -> datetime | None:
    raw = payload.get("issuedAt")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def record_event(
    session: Session, installation_id: int, event_type: str, payload: dict[str, Any], body: bytes
) -> Accepted:
    """Insert the event unless the same delivery content was recorded before (a duplicate is a no-op)."""
    from saleor_discord_app.saleor.tasks import process_webhook_event
    from saleor_discord_app.worker import enqueue_after_commit

    dedupe_key = sha256_hex(event_type.encode() + b"\n" + body)
    now = utcnow()
    values = {
        "installation_id": installation_id,
        "event_type": event_type,
        "dedupe_key": dedupe_key,
        "payload": payload,
        "issued_at": parse_issued_at(payload),
        "received_at": now,
        "dispatched_at": now,
        "attempts": 0,
    }
    # One statement, no savepoint: the hot path of every delivery. Both PostgreSQL and SQLite (>= 3.35)
    # support ON CONFLICT DO NOTHING ... RETURNING.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(WebhookEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["installation_id", "dedupe_key"])
        .returning(col(WebhookEvent.id))
    )
    event_id = session.execute(statement).scalar()
    if event_id is None:
        existing = session.exec(
            select(WebhookEvent.id).where(
                WebhookEvent.installation_id == installation_id, WebhookEvent.dedupe_key == dedupe_key
            )
        ).one()
        assert existing is not None
        log.info("saleor.webhook.duplicate", event_id=existing, event_type=event_type)
        return Accepted(existing, duplicate=True)
    enqueue_after_commit(session, process_webhook_event, event_id, on_failure=lambda: mark_undispatched(event_id))
    return Accepted(event_id, duplicate=False)


def mark_undispatched(event_id: int | None) -> None:
    """The broker refused the event: clear ``dispatched_at`` so the sweep sends it again."""
    with session_scope() as session:
        row = session.get(WebhookEvent, event_id)
        if row is not None and row.processed_at is None:
            row.dispatched_at = None
            session.add(row)
