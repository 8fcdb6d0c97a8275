"""Discord API errors, sorted by what the caller should do about them.

- ``RetryLater``: transient (429 after local retries, 5xx, network, local circuit breaker). Retry the task later.
- ``NeedsAttention``: a person must act (store owner fixes permissions/roles, customer rejoins...). ``reason`` is
  a sentence a store owner understands. Do not retry until something changed.
- ``AlreadyDone``: the change the caller asked for is already true (e.g. removing a role from someone who left).
- ``InvalidUserToken``: the customer's OAuth token is dead; the customer must reconnect Discord.
"""

from __future__ import annotations

from typing import Any

import httpx

# JSON error codes, https://discord.com/developers/docs/topics/opcodes-and-status-codes#json
UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_ROLE = 10011
UNKNOWN_USER = 10013
MAX_GUILDS = 30001
MAX_ROLES = 30005
MAX_INVITES = 30016
BANNED = 40007
CLOUDFLARE_BLOCKED = 40333
MISSING_ACCESS = 50001
CANNOT_DM_USER = 50007
MISSING_PERMISSIONS = 50013
INVALID_OAUTH_TOKEN = 50025
INVALID_ROLE = 50028
INVALID_FORM_BODY = 50035

# Operations whose goal is "this member should not have X": Unknown Member means it is already so.
REMOVAL_OPERATIONS = frozenset({"remove_role", "kick"})


class DiscordError(Exception):
    """Base class. ``status`` is the HTTP status (0 for network/local errors), ``code`` Discord's JSON code."""

    def __init__(self, message: str, *, status: int = 0, code: int | None = None, operation: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.operation = operation

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code}, message={self.message!r})"


class RetryLater(DiscordError):
    """Transient failure; try again after ``retry_after`` seconds (None = use your own backoff)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: int | None = None,
        operation: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, operation=operation)
        self.retry_after = retry_after


class NeedsAttention(DiscordError):
    """Discord refused for a reason a person must fix. ``reason`` is written for a store owner."""

    def __init__(
        self, reason: str, *, status: int = 0, code: int | None = None, operation: str = "", message: str = ""
    ) -> None:
        super().__init__(message or reason, status=status, code=code, operation=operation)
        self.reason = reason


class NotAMember(NeedsAttention):
    """10007 Unknown Member on an operation that needs the member (e.g. add_role): they must (re)join first."""


class AlreadyDone(DiscordError):
    """The requested end state already holds (10007 Unknown Member on a role removal or kick)."""


class InvalidUserToken(DiscordError):
    """The customer's OAuth2 token was rejected (50025, 401 on a bearer call, invalid_grant): reconnect."""


_REASONS: dict[int, str] = {
    MISSING_PERMISSIONS: (
        "The bot is not allowed to do this. Usually the bot's role is below the role it must give: in Discord "
        "Server Settings → Roles, drag the bot's role above every role sold in the store, and make sure the "
        "bot's role has the Manage Roles (and, for kicks, Kick Members; for invitations, Create Invite) "
        "permission."
    ),
    MISSING_ACCESS: (
        "The bot cannot see this Discord server or channel. Check that the bot is still in the server and "
        "has the View Channel permission on the channel (Server Settings → Roles, or the channel's "
        "Permissions tab); listing members also needs the Server Members Intent in the Developer Portal."
    ),
    UNKNOWN_ROLE: (
        "The Discord role configured for this product no longer exists (or is @everyone, which cannot be "
        "given). Pick an existing role in the product's Discord settings."
    ),
    UNKNOWN_GUILD: (
        "The bot is no longer in this Discord server (it was removed, or the server was deleted). Install "
        "the bot into the server again from the app's page."
    ),
    UNKNOWN_CHANNEL: (
        "The Discord channel configured for this product no longer exists. Pick another channel in the "
        "product's Discord settings."
    ),
    UNKNOWN_MEMBER: (
        "The customer is not (or no longer) a member of the Discord server. They need to join again, "
        "e.g. by reconnecting Discord from their order page or using a new invitation."
    ),
    UNKNOWN_USER: "Discord does not know this user; the linked Discord account may have been deleted.",
    BANNED: (
        "The customer is banned from this Discord server. If they should have access, unban them in "
        "Server Settings → Bans, then resync the membership."
    ),
    MAX_GUILDS: (
        "The customer has joined the maximum number of Discord servers and cannot be added to another. "
        "They must leave a server first, then resync."
    ),
    MAX_ROLES: "The Discord server has reached the maximum number of roles.",
    MAX_INVITES: (
        "The Discord server has reached the maximum number of invitations; delete unused invitations in "
        "Server Settings → Invites."
    ),
    CANNOT_DM_USER: "Discord does not let the bot send this user a direct message (their DMs are closed).",
    INVALID_ROLE: "Discord rejected the role; it may be managed by an integration and cannot be assigned.",
    CLOUDFLARE_BLOCKED: "Discord's Cloudflare blocked the request; check the app's User-Agent and egress IP.",
}

BOT_TOKEN_REJECTED = (
    "Discord rejected the bot token (401). Reset the bot token in the Discord Developer Portal and update the "
    "app's configuration; the app stopped calling Discord with the old token."
)


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON error body, or {} if the response is not JSON (e.g. a Cloudflare HTML page)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def parse_retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait after a 429: JSON ``retry_after`` first, then the ``Retry-After`` header."""
    value = error_body(response).get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(float(value), 0.0)
    header = response.headers.get("Retry-After")
    if header is not None:
        try:
            return max(float(header), 0.0)
        except ValueError:
            return None
    return None


def classify(response: httpx.Response, *, operation: str, user_token: bool = False) -> DiscordError:
    """Map a failed response to the error class that says what to do.

    ``operation`` is the client method name (``"add_role"``, ``"remove_role"``, ``"kick"`` ...): it decides
    whether 10007 Unknown Member means "already done" (removals) or "must rejoin" (everything else).
    ``user_token`` says the request was authenticated with a customer's bearer token, so a 401 means the
    customer must reconnect rather than that the bot token is bad.
    """
    status = response.status_code
    body = error_body(response)
    raw_code = body.get("code")
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    message = str(body.get("message") or body.get("error_description") or body.get("error") or "")
    message = message or response.reason_phrase or f"HTTP {status}"
    common: dict[str, Any] = {"status": status, "code": code, "operation": operation}

    if status == 429:
        return RetryLater(f"rate limited: {message}", retry_after=parse_retry_after(response), **common)
    if status >= 500:
        return RetryLater(f"Discord server error: {message}", **common)
    if code == INVALID_OAUTH_TOKEN or (status == 401 and user_token) or body.get("error") == "invalid_grant":
        return InvalidUserToken(
            "The customer's Discord authorization is no longer valid; they must reconnect Discord.", **common
        )
    if status == 401:
        return NeedsAttention(BOT_TOKEN_REJECTED, message=message, **common)
    if code == UNKNOWN_MEMBER:
        if operation in REMOVAL_OPERATIONS:
            return AlreadyDone(message, **common)
        return NotAMember(_REASONS[UNKNOWN_MEMBER], message=message, **common)
    if code is not None and code in _REASONS:
        return NeedsAttention(_REASONS[code], message=message, **common)
    if status >= 400:
        detail = f" (Discord code {code})" if code is not None else ""
        return NeedsAttention(
            f"Discord refused to {operation.replace('_', ' ') or 'do this'}: {message}{detail}.",
            message=message,
            **common,
        )
    return DiscordError(f"unexpected response {status}: {message}", **common)
