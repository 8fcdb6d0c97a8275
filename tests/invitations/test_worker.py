"""A real Celery worker: a paid order in, the welcome email out over SMTP, the order's metadata written."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from saleor_discord_app.config import get_settings
from saleor_discord_app.models import Invitation, Membership, MembershipStatus
from saleor_discord_app.worker import celery_app
from tests.conftest import deliver
from tests.factories import paid_payload
from tests.fakes.saleor import FakeSaleor
from tests.invitations.conftest import Shop, SmtpSink


@pytest.fixture
def celery_worker() -> Iterator[None]:
    celery_app.control.purge() if get_settings().redis_url else None
    with start_worker(celery_app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=30):
        yield


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_paid_order_to_welcome_email_with_a_real_worker(client: TestClient, fake_saleor: FakeSaleor, shop: Shop,
                                                        smtp: SmtpSink, session: Session,
                                                        celery_worker: None) -> None:
    response = deliver(client, fake_saleor, "ORDER_FULLY_PAID", paid_payload(email="ashley@example.com"))
    assert response.status_code == 200
    wait_for(lambda: len(smtp.messages) == 1)
    wait_for(lambda: len(shop.metadata_calls) == 1)
    values = {item["key"]: item["value"] for item in shop.metadata_calls[0]["input"]}
    assert values["discord_access_status"] == "invited"
    session.expire_all()
    membership = session.exec(select(Membership)).one()
    assert membership.status == MembershipStatus.INVITED
    assert session.exec(select(Invitation)).one().sends == 1
    time.sleep(0.5)
    assert len(smtp.messages) == 1
