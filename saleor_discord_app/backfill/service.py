"""Pages through a store's paid orders (oldest first) and creates the memberships a new rule implies.

One page per transaction, with a pause between pages so Saleor is not hammered; the job row keeps the
cursor and the counts, so progress is visible and an interrupted job resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from sqlmodel import Session, func, select

from saleor_discord_app import audit
from saleor_discord_app.db import session_scope
from saleor_discord_app.memberships import service as memberships
from saleor_discord_app.models import AccessRule, BackfillJob, Installation, InstallationStatus, Membership
from saleor_discord_app.saleor import service as saleor_service
from saleor_discord_app.saleor.client import SaleorClient, SaleorError, SaleorUnauthorized
from saleor_discord_app.sqltypes import utcnow

log = structlog.get_logger(__name__)

ClientFactory = Callable[[str, str], SaleorClient]


class BackfillError(Exception):
    pass


def start(session: Session, installation_id: int, rule_id: int) -> BackfillJob:
    rule = session.get(AccessRule, rule_id)
    if rule is None or rule.installation_id != installation_id:
        raise BackfillError("No such rule in this store.")
    running = session.exec(
        select(BackfillJob).where(BackfillJob.rule_id == rule_id, BackfillJob.status.in_(("queued", "running")))  # type: ignore[attr-defined]
    ).first()
    if running is not None:
        return running
    job = BackfillJob(installation_id=installation_id, rule_id=rule_id)
    session.add(job)
    session.flush()
    audit.record(session, "backfill.started", f"Backfill of rule {rule.name or rule_id} started",
                 installation_id=installation_id, rule_id=rule_id, job_id=job.id)
    return job


def _matching_lines(rule: AccessRule, order: dict[str, Any]) -> list[memberships.PaidLine]:
    lines = []
    for line in order.get("lines") or []:
        variant = line.get("variant") or {}
        variant_id = variant.get("id") or line.get("productVariantId")
        product_id = (variant.get("product") or {}).get("id")
        if (rule.variant_id and rule.variant_id == variant_id) or (
            not rule.variant_id and rule.product_id and rule.product_id == product_id
        ):
            lines.append(memberships.PaidLine(str(line["id"]), product_id, variant_id, int(line.get("quantity") or 1)))
    return lines


def _count_memberships(session: Session, rule_id: int) -> int:
    return session.exec(select(func.count()).select_from(Membership).where(Membership.rule_id == rule_id)).one()


def run_page(session: Session, job: BackfillJob, client: SaleorClient, *, page_size: int) -> bool:
    """Process one page; returns True when more pages remain."""
    rule = session.get(AccessRule, job.rule_id)
    if rule is None:
        raise BackfillError("The rule was deleted.")
    data = client.execute("queries/paid_orders.graphql", {"first": page_size, "after": job.cursor})
    connection = data["orders"]
    before = _count_memberships(session, job.rule_id)
    for edge in connection["edges"]:
        order = edge["node"]
        job.orders_seen += 1
        if order.get("status") in ("CANCELED", "DRAFT", "EXPIRED"):
            continue
        lines = _matching_lines(rule, order)
        email = str(order.get("userEmail") or (order.get("user") or {}).get("email") or "").lower()
        if not lines or not email:
            continue
        job.orders_matched += 1
        paid_at = datetime.fromisoformat(order["created"]) if order.get("created") else utcnow()
        memberships.order_paid(session, job.installation_id, memberships.PaidOrder(
            order_id=str(order["id"]), number=str(order.get("number") or ""), customer_email=email,
            saleor_user_id=(order.get("user") or {}).get("id"), lines=lines,
        ), paid_at)
    # Old orders whose access already ran out end at once instead of waiting for the next beat.
    memberships.expire_due(session)
    job.memberships_created += _count_memberships(session, job.rule_id) - before
    job.pages += 1
    page_info = connection["pageInfo"]
    job.cursor = page_info.get("endCursor") or job.cursor
    session.add(job)
    return bool(page_info.get("hasNextPage"))


def run(job_id: int, *, client_factory: ClientFactory = SaleorClient, page_size: int = 50,
        pause_seconds: float = 0.5, on_progress: Callable[[BackfillJob], None] | None = None) -> BackfillJob:
    """Run (or resume) a backfill job to the end. Idempotent: memberships are unique per (line, rule)."""
    with session_scope() as session:
        job = session.get(BackfillJob, job_id, with_for_update=True)
        if job is None or job.status == "done":
            raise BackfillError("No such job, or it is already done.") if job is None else BackfillError("done")
        installation = session.get(Installation, job.installation_id)
        if installation is None or installation.status != InstallationStatus.ACTIVE or not installation.app_token:
            job.status, job.error = "failed", "The store uninstalled the app."
            return job
        job.status = "running"
        api_url, token, installation_id = installation.saleor_api_url, installation.app_token, installation.id
    client = client_factory(api_url, token)
    more = True
    while more:
        try:
            with session_scope() as session:
                job = session.get(BackfillJob, job_id, with_for_update=True)
                assert job is not None
                more = run_page(session, job, client, page_size=page_size)
                if not more:
                    job.status, job.finished_at = "done", utcnow()
                    audit.record(session, "backfill.finished",
                                 f"Backfill done: {job.orders_matched} orders, {job.memberships_created} memberships",
                                 installation_id=job.installation_id, rule_id=job.rule_id, job_id=job.id)
        except SaleorUnauthorized:
            with session_scope() as session:
                installation = session.get(Installation, installation_id)
                if installation is not None:
                    saleor_service.uninstall(session, installation, reason="Saleor answered 401 during backfill.")
                _fail(session, job_id, "Saleor rejected the app token: the app was uninstalled.")
            raise
        except (SaleorError, BackfillError) as exc:
            with session_scope() as session:
                _fail(session, job_id, str(exc))
            raise
        if on_progress is not None:
            on_progress(job)
        if more and pause_seconds:
            time.sleep(pause_seconds)
    return job


def _fail(session: Session, job_id: int, error: str) -> None:
    job = session.get(BackfillJob, job_id)
    if job is not None:
        job.status, job.error = "failed", error[:1000]
        session.add(job)
