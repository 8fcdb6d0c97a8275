"""Invitation tests: a real SMTP server (aiosmtpd) on 127.0.0.1, a store with a Discord server and a rule, a
fake Saleor that records order-metadata mutations, and the tasks the app dispatched (captured, not sent)."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlmodel import Session

from saleor_discord_app.config import get_settings
from saleor_discord_app.models import DiscordServer, Installation
from tests.factories import make_rule
from tests.fakes.saleor import FakeSaleor


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpSink:
    """aiosmtpd handler: keeps every accepted message; can refuse the next N with a temporary error."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    fail_next: int = 0
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.attempts += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return "451 4.3.0 Mail server temporarily unavailable"
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self.messages.append(parsed)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    settings = get_settings()
    monkeypatch.setattr(settings, "smtp_host", "127.0.0.1")
    monkeypatch.setattr(settings, "smtp_port", sink.port)
    monkeypatch.setattr(settings, "smtp_start_tls", False)
    monkeypatch.setattr(settings, "smtp_use_tls", False)
    monkeypatch.setattr(settings, "email_from", "Store <shop@example.com>")
    try:
        yield sink
    finally:
        controller.stop()



@dataclass
class Shop:
    installation_id: int
    guild_id: str
    role_id: str
    channel_id: str
    verify_channel_id: str
    rule_id: int
    metadata_calls: list[dict[str, Any]]


@pytest.fixture
def shop(client: TestClient, fake_saleor: FakeSaleor, installation: Installation, fake_discord: Any,
         session: Session) -> Shop:
    """An installed store with a Discord server (verification channel), a rule with a channel, and a fake
    Saleor that answers updateMetadata and records its variables."""
    calls: list[dict[str, Any]] = []

    def graphql(name: str, variables: dict[str, Any], _token: str | None) -> dict[str, Any]:
        if name == "UpdateOrderMetadata":
            calls.append(variables)
            return {"data": {"updateMetadata": {"errors": [], "item": {"id": variables["id"]}}}}
        return {"errors": [{"message": f"unexpected {name}"}]}

    fake_saleor.graphql_handler = graphql
    guild_id = fake_discord.add_guild(name="Cool Club", bot_role_position=10)
    role_id = fake_discord.add_role(guild_id, "VIP", position=2)
    verify_channel = fake_discord.add_channel(guild_id, "verify")
    channel = fake_discord.add_channel(guild_id, "vip-lounge")
    assert installation.id is not None
    session.add(DiscordServer(installation_id=installation.id, guild_id=guild_id, name="Cool Club",
                              verification_channel_id=verify_channel))
    session.commit()
    rule = make_rule(session, installation.id, guild_id=guild_id, role_ids=[role_id], channel_id=channel,
                     name="VIP Lounge")
    assert rule.id is not None
    return Shop(installation.id, guild_id, role_id, channel, verify_channel, rule.id, calls)


def parts(message: EmailMessage) -> tuple[str, str]:
    """(plain text, html) of a multipart/alternative email."""
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())
