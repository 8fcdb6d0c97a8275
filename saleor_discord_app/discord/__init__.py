"""Discord REST access: the bot client, the OAuth2 client, rate limiting and error classes."""

from saleor_discord_app.discord.client import DiscordClient, audit_reason
from saleor_discord_app.discord.errors import (
    AlreadyDone,
    DiscordError,
    InvalidUserToken,
    NeedsAttention,
    NotAMember,
    RetryLater,
    classify,
)
from saleor_discord_app.discord.oauth_client import DiscordOAuthClient, TokenResponse
from saleor_discord_app.discord.ratelimit import RateLimiter, RateLimitStats, limiter_for

__all__ = [
    "AlreadyDone",
    "DiscordClient",
    "DiscordError",
    "DiscordOAuthClient",
    "InvalidUserToken",
    "NeedsAttention",
    "NotAMember",
    "RateLimitStats",
    "RateLimiter",
    "RetryLater",
    "TokenResponse",
    "audit_reason",
    "classify",
    "limiter_for",
]
