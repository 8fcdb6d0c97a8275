"""The application commands the app answers over HTTP interactions, and their registration."""

from __future__ import annotations

from typing import Any

from saleor_discord_app.discord.client import DiscordClient

CHAT_INPUT = 1
STRING_OPTION = 3
GUILD_CONTEXT = 0
GUILD_INSTALL = 0

CLAIM_COMMAND: dict[str, Any] = {
    "name": "claim",
    "type": CHAT_INPUT,
    "description": "Link your purchase to your Discord account with the claim code from your order email",
    "options": [
        {
            "type": STRING_OPTION,
            "name": "code",
            "description": "Your claim code, like ABCD-EFGH-JKLM",
            "required": True,
            "min_length": 12,
            "max_length": 32,
        }
    ],
    # Only inside a server (the claim grants a role there); installed with the bot into servers.
    "contexts": [GUILD_CONTEXT],
    "integration_types": [GUILD_INSTALL],
}

COMMANDS: list[dict[str, Any]] = [CLAIM_COMMAND]


def register_commands(
    client: DiscordClient, application_id: str, guild_id: str | None = None
) -> list[dict[str, Any]]:
    """Bulk-overwrite the app's commands: global (may take a while to appear) or in one guild (instant)."""
    if not application_id:
        raise ValueError("the Discord application id is not set (SDA_DISCORD_CLIENT_ID)")
    return client.bulk_overwrite_commands(application_id, COMMANDS, guild_id=guild_id)
