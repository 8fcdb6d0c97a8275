"""Claim tests: the fake Discord in-process, settings pointing at it, one store with a server and a rule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlmodel import Session

from saleor_discord_app.models import (
    AccessRule,
    DiscordServer,
    Installation,
    Membership,
    MembershipStatus,
)
from tests.conftest import wired_fake_discord
from tests.fakes.discord import FakeDiscord


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    with wired_fake_discord(monkeypatch) as fake_discord:
        yield fake_discord


@dataclass
class Store:
    installation_id: int
    server_id: int
    guild_id: str
    channel_id: str
    role_id: str
    rule_id: int


def make_store(session: Session, fake: FakeDiscord, name: str = "Store") -> Store:
    guild_id = fake.add_guild(name)
    role_id = fake.add_role(guild_id, "VIP", position=1)
    channel_id = fake.add_channel(guild_id, "verify")
    installation = Installation(saleor_api_url=f"https://{name.lower()}.example/graphql/", app_id="app")
    session.add(installation)
    session.flush()
    assert installation.id is not None
    server = DiscordServer(installation_id=installation.id, guild_id=guild_id, name=name,
                           verification_channel_id=channel_id)
    rule = AccessRule(installation_id=installation.id, product_id="UHJvZHVjdDox", guild_id=guild_id,
                      role_ids=[role_id], name="VIP", duration_days=30)
    session.add(server)
    session.add(rule)
    session.commit()
    assert server.id is not None
    assert rule.id is not None
    return Store(installation.id, server.id, guild_id, channel_id, role_id, rule.id)


def make_membership(session: Session, store: Store, *, email: str = "ashley@example.com", order: str = "1",
                    status: MembershipStatus = MembershipStatus.PENDING) -> Membership:
    membership = Membership(installation_id=store.installation_id, rule_id=store.rule_id, order_id=f"order-{order}",
                            order_number=order, order_line_id=f"line-{order}", customer_email=email,
                            guild_id=store.guild_id, status=status)
    session.add(membership)
    session.commit()
    return membership


@pytest.fixture
def store(session: Session, fake: FakeDiscord) -> Store:
    return make_store(session, fake)
