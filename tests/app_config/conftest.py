"""The fake Discord wired into the app, in-process, for the servers / bot-install / pre-flight tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import Session

from saleor_discord_app import worker
from saleor_discord_app.models import DiscordServer, Installation
from tests.conftest import wired_fake_discord
from tests.fakes.discord import FakeDiscord
from tests.fakes.saleor import FakeSaleor

CALLBACK = "http://testserver/discord/bot/callback"


@pytest.fixture
def discord_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    """The fake Discord, accepting only the bot-install callback URL."""
    with wired_fake_discord(monkeypatch, redirect_uris=[CALLBACK]) as fake:
        yield fake


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



