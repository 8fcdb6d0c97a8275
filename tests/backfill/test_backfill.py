"""Backfill against recorded Saleor answers (tests/data/saleor/paid_orders.json), whose shape is checked
against Saleor 3.23.28's schema by executing the app's own query document over them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from graphql import execute, parse
from sqlmodel import Session, select

from saleor_discord_app.backfill import service
from saleor_discord_app.models import BackfillJob, Installation, Membership, MembershipStatus
from saleor_discord_app.saleor.webhooks import load_graphql
from tests.factories import make_rule
from tests.fakes.saleor import FakeSaleor
from tests.saleor.test_graphql_documents import saleor_schema

PAGES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "saleor" / "paid_orders.json").read_text()
)["pages"]
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("page", range(len(PAGES)))
def test_recorded_pages_match_the_query_and_the_schema(page: int) -> None:
    document = parse(load_graphql("queries/paid_orders.graphql"))
    recorded = PAGES[page]["data"]
    result = execute(saleor_schema(), document, root_value=recorded, variable_values={"first": 50})
    assert result.errors is None
    assert result.data == recorded


def replay_pages(fake: FakeSaleor) -> list[dict[str, Any]]:
    cursors = [None] + [page["data"]["orders"]["pageInfo"]["endCursor"] for page in PAGES[:-1]]

    def handler(name: str, variables: dict[str, Any], token: str | None) -> dict[str, Any]:
        assert name == "PaidOrders"
        return PAGES[cursors.index(variables.get("after"))]

    fake.graphql_handler = handler
    return fake.graphql_requests


def test_backfill_creates_memberships_for_past_paid_orders(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    assert installation.id is not None
    rule = make_rule(session, installation.id, product_id="UHJvZHVjdDoxNjU=", duration_days=30)
    assert rule.id is not None
    requests = replay_pages(fake_saleor)
    job = service.start(session, installation.id, rule.id)
    session.commit()
    assert job.id is not None
    progress: list[int] = []
    with time_machine.travel(NOW, tick=False):
        finished = service.run(job.id, page_size=3, pause_seconds=0, on_progress=lambda j: progress.append(j.pages))
    assert progress == [1, 2]
    assert finished.status == "done"
    assert [r["variables"]["after"] for r in requests[-2:]] == [
        None,
        PAGES[0]["data"]["orders"]["pageInfo"]["endCursor"],
    ]
    session.expire_all()
    rows = {m.order_number: m for m in session.exec(select(Membership))}
    # Order 22 is another product; 23 was cancelled.
    assert set(rows) == {"20", "21", "24"}
    assert rows["20"].status == MembershipStatus.EXPIRED  # Sept order: 30 days ran out long ago
    assert rows["21"].status == MembershipStatus.PENDING and rows["24"].status == MembershipStatus.PENDING
    stored = session.get(BackfillJob, job.id)
    assert stored is not None
    assert (stored.orders_seen, stored.orders_matched, stored.memberships_created) == (5, 3, 3)

    # Running it again (a retried task, or a second click) creates nothing new.
    again = service.start(session, installation.id, rule.id)
    session.commit()
    assert again.id is not None and again.id != job.id
    with time_machine.travel(NOW, tick=False):
        service.run(again.id, page_size=3, pause_seconds=0)
    assert len(session.exec(select(Membership)).all()) == 3


def test_backfill_api_starts_a_job_and_shows_progress(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    assert installation.id is not None
    rule = make_rule(session, installation.id, product_id="UHJvZHVjdDoxNjU=")
    auth = {
        "authorization-bearer": fake_saleor.dashboard_token(permissions=["MANAGE_PRODUCTS"]),
        "saleor-api-url": fake_saleor.api_url,
    }
    started = client.post("/api/backfill", json={"rule_id": rule.id}, headers=auth)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    assert started.json()["status"] == "queued"
    replay_pages(fake_saleor)
    service.run(job_id, pause_seconds=0)
    shown = client.get(f"/api/backfill/{job_id}", headers=auth).json()
    assert shown["status"] == "done" and shown["memberships_created"] == 3
    assert client.post("/api/backfill", json={"rule_id": 999}, headers=auth).status_code == 404
    orders_staff = {**auth, "authorization-bearer": fake_saleor.dashboard_token(permissions=["MANAGE_ORDERS"])}
    assert client.get(f"/api/backfill/{job_id}", headers=orders_staff).status_code == 403


def test_backfill_stops_and_uninstalls_on_401(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session
) -> None:
    from saleor_discord_app.saleor.client import SaleorUnauthorized

    assert installation.id is not None
    rule = make_rule(session, installation.id, product_id="UHJvZHVjdDoxNjU=")
    assert rule.id is not None
    job = service.start(session, installation.id, rule.id)
    session.commit()
    fake_saleor.app_token = "rotated-by-uninstall"  # Saleor no longer accepts the stored token
    assert job.id is not None
    with pytest.raises(SaleorUnauthorized):
        service.run(job.id, pause_seconds=0)
    session.expire_all()
    assert session.get(Installation, installation.id).status == "uninstalled"  # type: ignore[union-attr]
    assert session.get(BackfillJob, job.id).status == "failed"  # type: ignore[union-attr]
