"""The fake Discord wired into the app, in-process, for the servers / bot-install / pre-flight tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import Session

from saleor_discord_app import worker
from saleor_discord_app.config import get_settings
from saleor_discord_app.discord import connect
from saleor_discord_app.discord.ratelimit import reset_registry
from saleor_discord_app.models import DiscordServer, Installation
from tests.fakes.discord import FakeDiscord
from tests.fakes.saleor import FakeSaleor

CALLBACK = "http://testserver/discord/bot/callback"


@pytest.fixture
def discord_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    """Every Discord call of the app goes to the fake (each request checked against Discord's OpenAPI spec)."""
    fake = FakeDiscord(redirect_uris=[CALLBACK])
    settings = get_settings()
    monkeypatch.setattr(settings, "discord_bot_token", SecretStr(fake.bot_token))
    monkeypatch.setattr(settings, "discord_client_id", fake.client_id)
    monkeypatch.setattr(settings, "discord_client_secret", SecretStr(fake.client_secret))
    monkeypatch.setattr(settings, "discord_api_base_url", fake.api_base_url)
    authorize_url = fake.api_base_url.split("/api/")[0] + "/oauth2/authorize"
    monkeypatch.setattr(settings, "discord_oauth_authorize_url", authorize_url)
    if hasattr(settings, "discord_retry_backoff_seconds"):
        monkeypatch.setattr(settings, "discord_retry_backoff_seconds", 0.001)
    reset_registry()
    connect.use_transport(fake.transport)
    try:
        yield fake
    finally:
        connect.use_transport(None)
        reset_registry()
    fake.assert_no_violations()


@dataclass
class Dispatched:
    calls: list[tuple[str, tuple[Any, ...]]]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> Dispatched:
    """Records tasks handed to the broker instead of sending them."""
    record = Dispatched([])
    monkeypatch.setattr(worker, "send_task_now", lambda task, *args: record.calls.append((task.name, args)))
    return record


def headers(fake: FakeSaleor, *permissions: str) -> dict[str, str]:
    token = fake.dashboard_token(permissions=list(permissions or ("MANAGE_PRODUCTS",)))
    return {"authorization-bearer": token, "saleor-api-url": fake.api_url}


def connect_server(session: Session, installation: Installation, guild_id: str, name: str = "Store") -> DiscordServer:
    """A server row as a finished bot install leaves it (for tests that are not about the install)."""
    assert installation.id is not None
    server = DiscordServer(installation_id=installation.id, guild_id=guild_id, name=name, bot_permissions=268502019)
    session.add(server)
    session.commit()
    return server



