"""Servers API, pre-flight on rule save, and the periodic health check (against the fake Discord)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from saleor_discord_app import worker
from saleor_discord_app.app_config import servers as servers_service
from saleor_discord_app.app_config.tasks import check_rule, check_server, check_servers
from saleor_discord_app.config import get_settings
from saleor_discord_app.discord import preflight
from saleor_discord_app.models import AccessRule, DiscordServer, Installation
from tests.app_config.conftest import Dispatched, connect_server, headers
from tests.conftest import install
from tests.fakes.discord import FakeDiscord
from tests.fakes.saleor import FakeSaleor


@pytest.fixture
def guild(discord_fake: FakeDiscord) -> dict[str, str]:
    gid = discord_fake.add_guild("Traders", bot_role_position=10)
    return {
        "guild": gid,
        "member": discord_fake.add_role(gid, "Member", 1),
        "vip": discord_fake.add_role(gid, "VIP", 5),
        "admins": discord_fake.add_role(gid, "Admins", 20),
        "booster": discord_fake.add_role(gid, "Server Booster", 3, managed=True),
        "channel": discord_fake.add_channel(gid, "welcome"),
        "verify": discord_fake.add_channel(gid, "verify"),
    }


@pytest.fixture
def server(session: Session, installation: Installation, guild: dict[str, str]) -> DiscordServer:
    return connect_server(session, installation, guild["guild"], "Traders")


def rule_body(guild: dict[str, str], *roles: str, **extra: object) -> dict[str, object]:
    return {"product_id": "UHJvZHVjdDox", "guild_id": guild["guild"], "role_ids": list(roles),
            "channel_id": guild["channel"], **extra}


def test_rule_save_shows_problems_without_blocking(
    client: TestClient, fake_saleor: FakeSaleor, server: DiscordServer, guild: dict[str, str]
) -> None:
    auth = headers(fake_saleor)
    created = client.post("/api/rules", json=rule_body(guild, guild["member"], guild["admins"]), headers=auth)
    assert created.status_code == 201, created.text
    rule = created.json()
    [problem] = rule["preflight_problems"]
    assert "“Admins” is not below the bot's role" in problem
    assert client.get(f"/api/rules/{rule['id']}", headers=auth).json()["preflight_problems"] == [problem]
    fixed = client.patch(f"/api/rules/{rule['id']}", json={"role_ids": [guild["member"]]}, headers=auth)
    assert fixed.status_code == 200
    assert fixed.json()["preflight_problems"] == []
    swap = client.patch(f"/api/rules/{rule['id']}", json={"on_end_action": "swap_to_alumni",
                                                          "alumni_role_id": guild["booster"]}, headers=auth)
    assert [p[:40] for p in swap.json()["preflight_problems"]] == ["The alumni role “Server Booster” is mana"]


def test_rule_for_a_server_not_connected_to_the_store(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, discord_fake: FakeDiscord,
    guild: dict[str, str],
) -> None:
    created = client.post("/api/rules", json=rule_body(guild, guild["member"]), headers=headers(fake_saleor))
    assert created.status_code == 201
    [problem] = created.json()["preflight_problems"]
    assert "is not connected to the store" in problem
    assert "Install bot" in problem
    assert discord_fake.requests == []  # another store's server is not even looked at


def test_rule_saved_while_discord_is_down_is_checked_later(
    client: TestClient, fake_saleor: FakeSaleor, server: DiscordServer, guild: dict[str, str],
    discord_fake: FakeDiscord, dispatched: Dispatched, session: Session,
) -> None:
    discord_fake.inject("*", r"/api/v10/", "connect_error", times=50)
    created = client.post("/api/rules", json=rule_body(guild, guild["admins"]), headers=headers(fake_saleor))
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["preflight_problems"] == [servers_service.NOT_CHECKED]
    assert dispatched.calls == [("discord.check_rule", (rule["id"],))]
    discord_fake._injections.clear()
    assert check_rule.run(rule["id"]) == "problems"
    stored = session.get(AccessRule, rule["id"])
    assert stored is not None
    session.refresh(stored)
    assert len(stored.preflight_problems) == 1
    assert "Admins" in stored.preflight_problems[0]
    assert check_rule.run(rule["id"]) == "problems"  # idempotent


def test_periodic_check_updates_health_and_rules(
    client: TestClient, fake_saleor: FakeSaleor, server: DiscordServer, guild: dict[str, str],
    discord_fake: FakeDiscord, session: Session, monkeypatch: pytest.MonkeyPatch, installation: Installation,
) -> None:
    assert "check-discord-servers" in worker.beat_schedule(get_settings())
    assert worker.beat_schedule(get_settings())["check-discord-servers"]["task"] == check_servers.name
    assert "saleor_discord_app.app_config.tasks" in worker.TASK_MODULES
    rule_id = client.post("/api/rules", json=rule_body(guild, guild["vip"]), headers=headers(fake_saleor)).json()["id"]
    monkeypatch.setattr(worker, "send_task_now", lambda task, *args: task.run(*args))

    def state() -> tuple[list[str], list[str]]:
        session.expire_all()
        db_server, db_rule = session.get(DiscordServer, server.id), session.get(AccessRule, rule_id)
        assert db_server is not None
        assert db_rule is not None
        return db_server.health_problems, db_rule.preflight_problems

    assert check_servers.run() == 1
    assert state() == ([], [])
    checked_at = session.get(DiscordServer, server.id).last_checked_at  # type: ignore[union-attr]
    assert checked_at is not None

    discord_fake.set_role_position(guild["guild"], guild["vip"], 30)  # someone reordered the roles
    discord_fake.delete_role(guild["guild"], guild["member"])
    check_servers.run()
    health, problems = state()
    assert health == []
    assert len(problems) == 1
    assert "“VIP” is not below" in problems[0]

    discord_fake.remove_bot(guild["guild"])
    check_servers.run()
    assert state() == ([preflight.BOT_NOT_IN_SERVER], [preflight.BOT_NOT_IN_SERVER])
    listed = client.get("/api/discord/servers", headers=headers(fake_saleor)).json()
    assert listed[0]["health_problems"] == [preflight.BOT_NOT_IN_SERVER]
    assert listed[0]["last_checked_at"] > checked_at.isoformat()[:19]

    discord_fake.install_bot(guild["guild"])
    discord_fake.set_role_position(guild["guild"], guild["vip"], 5)
    assert check_server.run(server.id) == "ok"
    assert state() == ([], [])
    assert check_server.run(999999) == "gone"


def test_discord_down_during_the_periodic_check_retries(
    server: DiscordServer, discord_fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celery.exceptions import Retry

    discord_fake.inject("*", r"/api/v10/", "connect_error", times=50)
    monkeypatch.setattr(check_server, "retry", lambda exc, countdown: Retry(exc=exc, when=countdown))
    with pytest.raises(Retry):
        check_server.run(server.id)


def test_live_roles_and_channels_for_the_pickers(
    client: TestClient, fake_saleor: FakeSaleor, server: DiscordServer, guild: dict[str, str],
    discord_fake: FakeDiscord,
) -> None:
    auth = headers(fake_saleor)
    roles = client.get(f"/api/discord/servers/{server.id}/roles", headers=auth)
    assert roles.status_code == 200, roles.text
    assert [(r["name"], r["above_bot"]) for r in roles.json()] == [("Admins", True), ("VIP", False),
                                                                   ("Member", False)]
    channels = client.get(f"/api/discord/servers/{server.id}/channels", headers=auth).json()
    assert [(c["id"], c["name"]) for c in channels] == [(guild["channel"], "welcome"), (guild["verify"], "verify")]
    discord_fake.remove_bot(guild["guild"])
    gone = client.get(f"/api/discord/servers/{server.id}/roles", headers=auth)
    assert gone.status_code == 409
    assert gone.json()["detail"] == preflight.BOT_NOT_IN_SERVER
    discord_fake.inject("*", r"/roles", 503, json={"message": "down", "code": 0}, times=20)
    discord_fake.install_bot(guild["guild"])
    assert client.get(f"/api/discord/servers/{server.id}/roles", headers=auth).status_code == 503


def test_change_and_forget_a_server(
    client: TestClient, fake_saleor: FakeSaleor, server: DiscordServer, guild: dict[str, str], session: Session,
) -> None:
    auth = headers(fake_saleor)
    rule_id = client.post("/api/rules", json=rule_body(guild, guild["vip"]), headers=auth).json()["id"]
    changed = client.patch(f"/api/discord/servers/{server.id}", json={"verification_channel_id": guild["verify"]},
                           headers=auth)
    assert changed.status_code == 200
    assert changed.json()["verification_channel_id"] == guild["verify"]
    unknown = client.patch(f"/api/discord/servers/{server.id}",
                           json={"verification_channel_id": "1234567890123456789"}, headers=auth)
    assert unknown.status_code == 422
    assert "not a channel of the Discord server" in unknown.text
    assert client.patch(f"/api/discord/servers/{server.id}", json={"verification_channel_id": "x"},
                        headers=auth).status_code == 422
    cleared = client.patch(f"/api/discord/servers/{server.id}", json={"verification_channel_id": None}, headers=auth)
    assert cleared.json()["verification_channel_id"] is None

    assert client.delete(f"/api/discord/servers/{server.id}", headers=auth).status_code == 204
    assert client.get("/api/discord/servers", headers=auth).json() == []
    assert client.delete(f"/api/discord/servers/{server.id}", headers=auth).status_code == 404
    rule = client.get(f"/api/rules/{rule_id}", headers=auth).json()
    assert "is not connected to the store" in rule["preflight_problems"][0]
    assert session.exec(select(DiscordServer)).all() == []


def test_servers_are_scoped_to_their_store(
    client: TestClient, fake_saleor: FakeSaleor, server: DiscordServer, guild: dict[str, str],
) -> None:
    with FakeSaleor(app_id="QXBwOjc=").serve() as other:
        install(client, other)
        auth = headers(other)
        assert client.get("/api/discord/servers", headers=auth).json() == []
        for method, path in (("GET", ""), ("GET", "/roles"), ("GET", "/channels"), ("DELETE", "")):
            response = client.request(method, f"/api/discord/servers/{server.id}{path}", headers=auth)
            assert response.status_code == 404, (method, path)
        assert client.patch(f"/api/discord/servers/{server.id}", json={}, headers=auth).status_code == 404
        # The other store's rule on this guild is not connected to it.
        created = client.post("/api/rules", json=rule_body(guild, guild["vip"]), headers=auth).json()
        assert "is not connected to the store" in created["preflight_problems"][0]
    assert client.get("/api/discord/servers", headers=headers(fake_saleor, "MANAGE_ORDERS")).status_code == 403
    assert len(client.get("/api/discord/servers", headers=headers(fake_saleor)).json()) == 1
