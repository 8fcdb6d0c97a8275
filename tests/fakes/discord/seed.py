"""Demo data for the standalone server and browser demos."""

from __future__ import annotations

from dataclasses import dataclass

from .fake import FakeDiscord


@dataclass(frozen=True)
class DemoSeed:
    guild_id: str
    roles: dict[str, str]  # name -> id
    channel_id: str
    users: dict[str, str]  # username -> id


DEMO_GUILD_ID = "1200000000000000001"
DEMO_CHANNEL_ID = "1200000000000000101"


def seed_demo(fake: FakeDiscord, *, bot_installed: bool = False) -> DemoSeed:
    """One guild "Demo Store": roles Member(1) VIP(2) Supporter(3), bot role at 10, Admins(20) above it.

    Without `bot_installed` the bot joins through the bot-install OAuth flow (/oauth2/authorize).
    IDs are fixed so a demo configuration survives restarts.
    """
    guild_id = fake.add_guild("Demo Store", guild_id=DEMO_GUILD_ID, bot_in_guild=bot_installed, bot_role_position=10)
    roles = {
        "Member": fake.add_role(guild_id, "Member", 1, role_id="1200000000000000011"),
        "VIP": fake.add_role(guild_id, "VIP", 2, role_id="1200000000000000012"),
        "Supporter": fake.add_role(guild_id, "Supporter", 3, role_id="1200000000000000013"),
        "Admins": fake.add_role(guild_id, "Admins", 20, role_id="1200000000000000014"),
    }
    channel_id = fake.add_channel(guild_id, "verify", channel_id=DEMO_CHANNEL_ID)
    bob = fake.add_user("1300000000000000002", "bob")
    fake.add_member(guild_id, bob)
    # alice is added last, so she is the default user who "approves" OAuth consent screens.
    alice = fake.add_user("1300000000000000001", "alice")
    return DemoSeed(guild_id, roles, channel_id, {"alice": alice, "bob": bob})
