"""Builds the Discord clients from settings. Tests and demos can route them to the fake Discord."""

from __future__ import annotations

import httpx

from saleor_discord_app.config import get_settings
from saleor_discord_app.discord.client import DiscordClient
from saleor_discord_app.discord.errors import NeedsAttention
from saleor_discord_app.discord.oauth_client import DiscordOAuthClient

_transport: httpx.BaseTransport | None = None


def use_transport(transport: httpx.BaseTransport | None) -> None:
    """Send every Discord request through ``transport`` (the in-process fake Discord); None undoes it."""
    global _transport
    _transport = transport


def bot_client() -> DiscordClient:
    settings = get_settings()
    token = settings.discord_bot_token.get_secret_value()
    if not token:
        raise NeedsAttention("The app has no Discord bot token: set SDA_DISCORD_BOT_TOKEN (see README).")
    return DiscordClient(
        token,
        base_url=settings.discord_api_base_url,
        transport=_transport,
        backoff_base=settings.discord_retry_backoff_seconds,
    )


def oauth_client() -> DiscordOAuthClient:
    settings = get_settings()
    return DiscordOAuthClient(
        settings.discord_client_id,
        settings.discord_client_secret.get_secret_value(),
        base_url=settings.discord_api_base_url,
        transport=_transport,
    )
