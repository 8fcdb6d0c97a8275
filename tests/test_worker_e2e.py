"""A real Celery worker (embedded filesystem broker, or Redis when SDA_TEST_REDIS_URL is set) end to end:
a signed webhook in, a membership row out; and an event the broker never got is not lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from saleor_discord_app import worker
from saleor_discord_app.models import Installation, Membership, WebhookEvent
from saleor_discord_app.saleor.tasks import redispatch_webhook_events
from saleor_discord_app.sqltypes import utcnow
from saleor_discord_app.worker import celery_app
from tests.conftest import deliver
from tests.factories import changed_payload, make_rule, paid_payload
from tests.fakes.saleor import FakeSaleor


@pytest.fixture
def celery_worker() -> Iterator[None]:
    # Earlier tests published tasks nobody consumed; their ids may now name other rows.
    celery_app.control.purge()
    with start_worker(
        celery_app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ):
        yield


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def membership_statuses(session: Session) -> list[str]:
    session.expire_all()
    return [m.status for m in session.exec(select(Membership))]


def test_webhook_in_membership_out(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, session: Session, celery_worker: None
) -> None:
    assert installation.id is not None
    make_rule(session, installation.id)
    response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", paid_payload())
    assert response.status_code == 200
    wait_for(lambda: membership_statuses(session) == ["pending"])
    deliver(client, fake_saleor, "ORDER_CANCELLED", changed_payload("OrderCancelled", status="CANCELED"))
    wait_for(lambda: membership_statuses(session) == ["revoked"])
    events = session.exec(select(WebhookEvent)).all()
    assert all(event.processed_at is not None and event.attempts == 1 for event in events)


def test_event_the_broker_refused_is_dispatched_by_the_sweep(
    client: TestClient,
    fake_saleor: FakeSaleor,
    installation: Installation,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert installation.id is not None
    make_rule(session, installation.id)

    def broker_down(*_args: object) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(worker, "send_task_now", broker_down)
    response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", paid_payload())
    assert response.status_code == 200  # recorded: Saleor must not retry, the event is ours now
    event = session.exec(select(WebhookEvent)).one()
    assert event.dispatched_at is None and event.processed_at is None
    monkeypatch.undo()

    assert redispatch_webhook_events.run() == 0  # too fresh: the normal path may still deliver it
    with time_machine.travel(utcnow() + timedelta(minutes=2), tick=True):
        with start_worker(celery_app, pool="threads", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
            assert redispatch_webhook_events.run() == 1
            wait_for(lambda: membership_statuses(session) == ["pending"])
        assert redispatch_webhook_events.run() == 0
