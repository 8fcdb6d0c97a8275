"""Pre-flight checks (F4) against the fake Discord: one readable problem per failure."""

from __future__ import annotations

from typing import Any

import pytest

from saleor_discord_app.discord import connect, preflight
from saleor_discord_app.discord.preflight import GuildSnapshot, check_server, evaluate
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.models import ADMINISTRATOR, DEFAULT_BOT_PERMISSIONS, KICK_MEMBERS, MANAGE_ROLES

MISSING_CHANNEL = "1234567890123456789"


@pytest.fixture
def guild(discord_fake: FakeDiscord) -> dict[str, str]:
    """Bot role at 10; Member(1) and VIP(5) below it, Admins(20) above it; one channel."""
    gid = discord_fake.add_guild("Traders", bot_role_position=10)
    return {
        "guild": gid,
        "member": discord_fake.add_role(gid, "Member", 1),
        "vip": discord_fake.add_role(gid, "VIP", 5),
        "admins": discord_fake.add_role(gid, "Admins", 20),
        "channel": discord_fake.add_channel(gid, "welcome"),
    }


def check(guild_id: str, **kwargs: object) -> list[str]:
    with connect.bot_client() as client:
        return check_server(client, guild_id, **kwargs)  # type: ignore[arg-type]


def test_a_good_setup_has_no_problems(discord_fake: FakeDiscord, guild: dict[str, str]) -> None:
    assert check(guild["guild"], role_ids=[guild["member"], guild["vip"]], channel_id=guild["channel"],
                 alumni_role_id=guild["member"]) == []
    assert check(guild["guild"]) == []


def test_role_above_the_bot(discord_fake: FakeDiscord, guild: dict[str, str]) -> None:
    [problem] = check(guild["guild"], role_ids=[guild["member"], guild["admins"]])
    assert "“Admins” is not below the bot's role “Store Bot”" in problem
    assert "drag “Store Bot” above “Admins”" in problem
    discord_fake.set_role_position(guild["guild"], guild["vip"], 10)  # same position as the bot: still not below
    bot_role = discord_fake.bot_role(guild["guild"])
    assert bot_role is not None
    # On equal positions the older role (smaller id) is the higher one (A3.1).
    bot_is_older = int(bot_role.id) < int(guild["vip"])
    assert (check(guild["guild"], role_ids=[guild["vip"]]) == []) is bot_is_older
    older = discord_fake.add_role(guild["guild"], "Founders", 10, role_id=str(int(bot_role.id) - 1))
    [problem] = check(guild["guild"], role_ids=[older])
    assert "“Founders” is not below the bot's role" in problem
    discord_fake.set_role_position(guild["guild"], guild["admins"], 2)  # the owner fixed the order
    assert check(guild["guild"], role_ids=[guild["admins"]]) == []


def test_alumni_role_above_the_bot(discord_fake: FakeDiscord, guild: dict[str, str]) -> None:
    [problem] = check(guild["guild"], role_ids=[guild["member"]], alumni_role_id=guild["admins"])
    assert problem.startswith("The alumni role “Admins” is not below")


def test_missing_permissions(discord_fake: FakeDiscord) -> None:
    gid = discord_fake.add_guild("No Roles Perm", bot_permissions=DEFAULT_BOT_PERMISSIONS & ~MANAGE_ROLES)
    [problem] = check(gid)
    assert "missing the Manage Roles permission" in problem
    assert "Server Settings → Roles → “Store Bot”" in problem
    gid = discord_fake.add_guild("Two missing", bot_permissions=DEFAULT_BOT_PERMISSIONS & ~MANAGE_ROLES & ~KICK_MEMBERS)
    discord_fake.set_role_permissions(gid, gid, 0)  # @everyone grants nothing either
    [problem] = check(gid)
    assert "missing the Manage Roles and Kick Members permissions" in problem


def test_administrator_counts_as_every_permission(discord_fake: FakeDiscord) -> None:
    gid = discord_fake.add_guild("Admin bot", bot_permissions=ADMINISTRATOR)
    discord_fake.set_role_permissions(gid, gid, 0)
    assert check(gid) == []


def test_everyone_and_managed_roles_cannot_be_sold(discord_fake: FakeDiscord, guild: dict[str, str]) -> None:
    booster = discord_fake.add_role(guild["guild"], "Server Booster", 2, managed=True)
    problems = check(guild["guild"], role_ids=[guild["guild"], booster])
    assert len(problems) == 2
    assert "“@everyone”, which every member already has" in problems[0]
    assert "“Server Booster” is managed by an integration" in problems[1]


def test_deleted_role(discord_fake: FakeDiscord, guild: dict[str, str]) -> None:
    discord_fake.delete_role(guild["guild"], guild["vip"])
    [problem] = check(guild["guild"], role_ids=[guild["vip"]])
    assert f"The role (id {guild['vip']}) no longer exists in the Discord server “Traders”" in problem


def test_missing_channel(discord_fake: FakeDiscord, guild: dict[str, str]) -> None:
    other_guild = discord_fake.add_guild("Elsewhere")
    elsewhere = discord_fake.add_channel(other_guild, "general")
    for channel_id in (MISSING_CHANNEL, elsewhere):
        [problem] = check(guild["guild"], role_ids=[guild["member"]], channel_id=channel_id)
        assert f"The channel (id {channel_id}) does not exist in the Discord server “Traders”" in problem


def test_bot_removed_or_server_gone(discord_fake: FakeDiscord, guild: dict[str, str]) -> None:
    discord_fake.remove_bot(guild["guild"])
    assert check(guild["guild"], role_ids=[guild["member"]]) == [preflight.BOT_NOT_IN_SERVER]
    assert check("1999999999999999999") == [preflight.BOT_NOT_IN_SERVER]
    assert "Install the bot into the server again" in preflight.BOT_NOT_IN_SERVER


def test_channel_overwrites_that_hide_the_channel() -> None:
    """Pure: the channel's own permission settings can take View Channel away from the bot."""
    guild_id, bot_role, bot_user = "100000000000000001", "100000000000000002", "100000000000000003"
    roles = {
        guild_id: {"id": guild_id, "name": "@everyone", "position": 0, "permissions": "0"},
        bot_role: {"id": bot_role, "name": "Bot", "position": 5, "permissions": str(DEFAULT_BOT_PERMISSIONS),
                   "managed": True},
    }
    hidden: dict[str, Any] = {"id": "100000000000000010", "name": "vip-lounge", "type": 0, "permission_overwrites": [
        {"id": guild_id, "type": 0, "allow": "0", "deny": "1024"},
        {"id": bot_role, "type": 0, "allow": "0", "deny": "1"},
    ]}
    allowed: dict[str, Any] = {**hidden, "id": "100000000000000011", "name": "open", "permission_overwrites": [
        {"id": guild_id, "type": 0, "allow": "0", "deny": "1024"},
        {"id": bot_user, "type": 1, "allow": "1024", "deny": "0"},
    ]}
    snapshot = GuildSnapshot(guild_id, "G", bot_user, roles, frozenset({bot_role}),
                             {hidden["id"]: hidden, allowed["id"]: allowed})
    [problem] = evaluate(snapshot, channel_id=hidden["id"])
    assert "cannot use the channel “#vip-lounge”" in problem
    assert "View Channel and Create Invite" in problem
    assert evaluate(snapshot, channel_id=allowed["id"]) == []
    assert snapshot.permissions == DEFAULT_BOT_PERMISSIONS
