"""Registering ``/claim`` with Discord, directly and with ``sda register-commands``."""

from __future__ import annotations

from typer.testing import CliRunner

from saleor_discord_app.claims.commands import CLAIM_COMMAND, register_commands
from saleor_discord_app.cli import cli
from saleor_discord_app.discord.connect import bot_client
from tests.fakes.discord import FakeDiscord


def test_register_globally(fake: FakeDiscord) -> None:
    with bot_client() as client:
        registered = register_commands(client, fake.application_id)
    assert [c["name"] for c in registered] == ["claim"]
    (command,) = fake.commands[None]
    option = command["options"][0]
    assert (option["name"], option["type"], option["required"]) == ("code", 3, True)
    assert command["contexts"] == [0]


def test_register_again_overwrites(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    with bot_client() as client:
        first = register_commands(client, fake.application_id, guild_id=guild)
        second = register_commands(client, fake.application_id, guild_id=guild)
    assert len(fake.commands[guild]) == 1
    assert first[0]["id"] == second[0]["id"]


def test_cli_register_commands_in_a_guild(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    result = CliRunner().invoke(cli, ["register-commands", "--guild", guild])
    assert result.exit_code == 0, result.output
    assert f"in server {guild}" in result.output
    assert fake.commands[guild][0]["description"] == CLAIM_COMMAND["description"]
