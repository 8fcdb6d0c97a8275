"""Test set-up: a fresh database (SQLite by default; PostgreSQL when SDA_TEST_DATABASE_URL is set), the
embedded broker or Redis (SDA_TEST_REDIS_URL), and a fake Saleor served over real HTTP."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

_tmp = Path(tempfile.mkdtemp(prefix="sda-tests-"))
_pg_base = os.environ.get("SDA_TEST_DATABASE_URL")
_redis = os.environ.get("SDA_TEST_REDIS_URL")
_pg_name = f"sda_test_{uuid.uuid4().hex[:10]}"

os.environ["SDA_ENVIRONMENT"] = "test"
os.environ["SDA_DATA_DIR"] = str(_tmp)
os.environ["SDA_SECRET_KEY"] = "test-secret-key-for-the-suite"
os.environ["SDA_PUBLIC_URL"] = "http://testserver"
os.environ["SDA_ALLOWED_SALEOR_URL_PATTERN"] = r"http://127\.0\.0\.1:\d+/graphql/"
os.environ.pop("SDA_REDIS_URL", None)
os.environ.pop("SDA_DATABASE_URL", None)
if _redis:
    os.environ["SDA_REDIS_URL"] = _redis
if _pg_base:
    from sqlalchemy.engine import make_url

    os.environ["SDA_DATABASE_URL"] = make_url(_pg_base).set(database=_pg_name).render_as_string(hide_password=False)

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlmodel import Session, SQLModel, select  # noqa: E402

from saleor_discord_app.db import get_engine, run_migrations, session_scope  # noqa: E402
from saleor_discord_app.logging import configure_logging  # noqa: E402
from saleor_discord_app.main import create_app  # noqa: E402
from saleor_discord_app.models import Installation, WebhookEvent  # noqa: E402
from saleor_discord_app.saleor.tasks import process_webhook_event  # noqa: E402
from tests.fakes.saleor import FakeSaleor  # noqa: E402

configure_logging()


def _admin_engine() -> Any:
    assert _pg_base
    return create_engine(_pg_base, isolation_level="AUTOCOMMIT")


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("SDA_TEST_REQUIRE_SERVICES") == "1" and not (_pg_base and _redis):
        raise pytest.UsageError("SDA_TEST_REQUIRE_SERVICES=1 needs SDA_TEST_DATABASE_URL and SDA_TEST_REDIS_URL")
    if _pg_base:
        with _admin_engine().connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{_pg_name}"'))
    if _redis:
        import redis

        redis.Redis.from_url(_redis).flushdb()
    run_migrations()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    get_engine().dispose()
    if _pg_base:
        with _admin_engine().connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{_pg_name}" WITH (FORCE)'))


def pytest_report_header() -> list[str]:
    return [
        f"database: {'PostgreSQL ' + _pg_name if _pg_base else 'SQLite (embedded default)'}",
        f"broker: {'Redis ' + (_redis or '') if _redis else 'filesystem (embedded default)'}",
    ]


@pytest.fixture(autouse=True)
def _clean_database() -> Iterator[None]:
    yield
    engine = get_engine()
    with engine.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def session() -> Iterator[Session]:
    with session_scope() as db_session:
        yield db_session


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(migrate=False), follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def fake_saleor() -> Iterator[FakeSaleor]:
    with FakeSaleor().serve() as fake:
        yield fake


def install(client: TestClient, fake: FakeSaleor) -> Installation:
    response = client.post(
        "/api/saleor/register",
        json={"auth_token": fake.app_token},
        headers={"Saleor-Api-Url": fake.api_url, "Saleor-Schema-Version": "3.23"},
    )
    assert response.status_code == 200, response.text
    with session_scope() as db_session:
        installation = db_session.exec(select(Installation).where(Installation.saleor_api_url == fake.api_url)).one()
    return installation


@pytest.fixture
def installation(client: TestClient, fake_saleor: FakeSaleor) -> Installation:
    return install(client, fake_saleor)


def deliver(
    client: TestClient,
    fake: FakeSaleor,
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    slug: str | None = None,
    signature: str | None = None,
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    slug = slug or SLUG_FOR_EVENT[event]
    return client.post(
        f"/api/saleor/webhooks/{slug}", content=body, headers=fake.webhook_headers(event, body, signature=signature)
    )


SLUG_FOR_EVENT = {
    "ORDER_FULLY_PAID": "order-fully-paid",
    "ORDER_CANCELLED": "order-changed",
    "ORDER_FULLY_REFUNDED": "order-changed",
    "ORDER_REFUNDED": "order-changed",
    "ORDER_UPDATED": "order-changed",
    "CUSTOMER_DELETED": "customer-deleted",
    "ACCOUNT_DELETED": "customer-deleted",
    "APP_DELETED": "app-deleted",
}


def process_pending_events() -> list[str]:
    """Run the worker's task body for every unprocessed event, in arrival order (no broker involved)."""
    with session_scope() as db_session:
        ids = db_session.exec(
            select(WebhookEvent.id).where(WebhookEvent.processed_at.is_(None)).order_by(WebhookEvent.id)  # type: ignore[union-attr]
        ).all()
    return [process_webhook_event.run(event_id) for event_id in ids if event_id is not None]


@contextmanager
def wired_fake_discord(monkeypatch: pytest.MonkeyPatch, **fake_options: Any) -> Iterator[Any]:
    """A fake Discord, in-process, that every Discord call of the app goes to (each request checked against
    Discord's OpenAPI spec); settings carry its bot token, client id/secret, URLs and public key."""
    from pydantic import SecretStr

    from saleor_discord_app.config import get_settings
    from saleor_discord_app.discord import connect
    from saleor_discord_app.discord.ratelimit import reset_registry
    from tests.fakes.discord import FakeDiscord

    fake = FakeDiscord(**fake_options)
    settings = get_settings()
    monkeypatch.setattr(settings, "discord_bot_token", SecretStr(fake.bot_token))
    monkeypatch.setattr(settings, "discord_client_id", fake.client_id)
    monkeypatch.setattr(settings, "discord_client_secret", SecretStr(fake.client_secret))
    monkeypatch.setattr(settings, "discord_api_base_url", fake.api_base_url)
    authorize_url = fake.api_base_url.split("/api/")[0] + "/oauth2/authorize"
    monkeypatch.setattr(settings, "discord_oauth_authorize_url", authorize_url)
    monkeypatch.setattr(settings, "discord_public_key", fake.public_key_hex)
    monkeypatch.setattr(settings, "discord_retry_backoff_seconds", 0.001)
    reset_registry()
    connect.use_transport(fake.transport)
    try:
        yield fake
    finally:
        connect.use_transport(None)
        reset_registry()
    fake.assert_no_violations()


@pytest.fixture
def fake_discord(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with wired_fake_discord(monkeypatch) as fake:
        yield fake


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """Tasks the app dispatched after commit, captured instead of sent to the broker (no worker here)."""
    from saleor_discord_app import worker

    sent: list[tuple[str, tuple[Any, ...]]] = []

    def capture(task: Any, *args: Any) -> None:
        sent.append((task.name, args))

    monkeypatch.setattr(worker, "send_task_now", capture)
    return sent
