"""Discord servers of a store: health checks (F4), live role/channel pickers, settings, forgetting a server.

Discord is read with the bot token through ``discord.connect`` (so tests route it to the fake Discord).
``RetryLater`` (Discord unreachable, 5xx, rate limited for long) is raised to the caller: the API answers
503 and tasks retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from sqlmodel import Session

from saleor_discord_app import audit
from saleor_discord_app.app_config import repository
from saleor_discord_app.discord import connect, preflight
from saleor_discord_app.discord.errors import NeedsAttention
from saleor_discord_app.discord.preflight import GuildSnapshot
from saleor_discord_app.models import AccessRule, DiscordServer, Installation, InstallationStatus
from saleor_discord_app.sqltypes import utcnow

log = structlog.get_logger(__name__)

# Checks made while a staff member waits (saving a rule, opening a picker) give up on Discord sooner.
INLINE_MAX_RETRIES = 2

NOT_CONNECTED = (
    "This Discord server (id {guild_id}) is not connected to the store. On the app's page, use “Install bot” "
    "to add the bot to this server, then save again."
)
NOT_CHECKED = (
    "Discord could not be reached to check this setup; the app checks it again in a moment. Reload to see "
    "the result."
)


class ServerUnavailable(Exception):
    """Discord refused to show the server (bot removed, token rejected...); ``reason`` is for a store owner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServerInvalid(ValueError):
    pass


def read_server(guild_id: str, *, with_channels: bool = True, inline: bool = False) -> GuildSnapshot:
    """The server as the bot sees it. Raises ``ServerUnavailable`` (a reason) or ``RetryLater``."""
    try:
        with connect.bot_client() as client:
            if inline:
                client.max_retries = INLINE_MAX_RETRIES
            return preflight.fetch_snapshot(client, guild_id, with_channels=with_channels)
    except NeedsAttention as exc:
        raise ServerUnavailable(preflight.problem_from_error(exc)) from exc


# ---------------------------------------------------------------------- rules


def rule_problems(
    session: Session, rule: AccessRule, snapshot: GuildSnapshot | None = None, *, inline: bool = False
) -> list[str]:
    """Pre-flight problems of one rule (reads Discord unless ``snapshot`` is given; may raise RetryLater)."""
    if repository.get_server_by_guild(session, rule.installation_id, rule.guild_id) is None:
        return [NOT_CONNECTED.format(guild_id=rule.guild_id)]
    if snapshot is None:
        try:
            snapshot = read_server(rule.guild_id, with_channels=rule.channel_id is not None, inline=inline)
        except ServerUnavailable as exc:
            return [exc.reason]
    return preflight.evaluate(
        snapshot, role_ids=rule.role_ids, channel_id=rule.channel_id, alumni_role_id=_alumni(rule)
    )


def _alumni(rule: AccessRule) -> str | None:
    return rule.alumni_role_id if rule.on_end_action == "swap_to_alumni" else None


def set_rule_problems(session: Session, rule: AccessRule, problems: list[str]) -> None:
    if problems != list(rule.preflight_problems):
        audit.record(session, "rule.preflight", "; ".join(problems) or "All pre-flight checks pass.",
                     installation_id=rule.installation_id, rule_id=rule.id, problems=problems)
    rule.preflight_problems = problems
    session.add(rule)


# ---------------------------------------------------------------------- servers


def check_server_health(session: Session, server_id: int) -> str:
    """Re-check one server and every rule that sells its roles; idempotent. May raise RetryLater."""
    server = repository.lock_server(session, server_id)
    if server is None:
        return "gone"
    installation = session.get(Installation, server.installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return "uninstalled"
    rules = repository.rules_for_guild(session, server.installation_id, server.guild_id)
    needs_channels = server.verification_channel_id is not None or any(r.channel_id for r in rules)
    try:
        snapshot = read_server(server.guild_id, with_channels=needs_channels)
    except ServerUnavailable as exc:
        _set_health(session, server, [exc.reason])
        for rule in rules:
            set_rule_problems(session, rule, [exc.reason])
        return "problems"
    if snapshot.name:
        server.name = snapshot.name[:200]
    # Only the bits the app asks for: the column is a 32-bit integer on PostgreSQL.
    server.bot_permissions = snapshot.permissions & preflight.BOT_PERMISSIONS
    problems = preflight.evaluate(
        snapshot,
        channel_id=server.verification_channel_id,
        channel_label="verification channel",
        channel_needs=preflight.VERIFICATION_CHANNEL_NEEDS,
    )
    _set_health(session, server, problems)
    for rule in rules:
        set_rule_problems(session, rule, rule_problems(session, rule, snapshot))
    return "problems" if problems else "ok"


OTHER_CHECKS_PREFIXES = ("Claim messages: ", "Subscription check: ")
"""Entries the `!claim` scan and the subscription check keep in health_problems; the pre-flight leaves them."""


def _set_health(session: Session, server: DiscordServer, problems: list[str]) -> None:
    scan_hints = [p for p in server.health_problems if p.startswith(OTHER_CHECKS_PREFIXES)]
    problems = [*problems, *(hint for hint in scan_hints if hint not in problems)]
    if problems != list(server.health_problems):
        audit.record(session, "discord.server.health", "; ".join(problems) or "The Discord server is healthy.",
                     installation_id=server.installation_id, server_id=server.id, guild_id=server.guild_id,
                     problems=problems)
    server.health_problems = problems
    server.last_checked_at = utcnow()
    session.add(server)


def live_roles(server: DiscordServer) -> list[dict[str, Any]]:
    """Roles a product can sell (for the product widget's picker). Raises ServerUnavailable / RetryLater."""
    return preflight.assignable_roles(read_server(server.guild_id, with_channels=False, inline=True))


def live_channels(server: DiscordServer) -> list[dict[str, Any]]:
    """Channels of the server (no categories), in Discord's order."""
    snapshot = read_server(server.guild_id, inline=True)
    return _channel_options(snapshot)


def _channel_options(snapshot: GuildSnapshot) -> list[dict[str, Any]]:
    channels = [c for c in (snapshot.channels or {}).values() if c.get("type") != preflight.CATEGORY_CHANNEL]
    channels.sort(key=lambda c: (int(c.get("position") or 0), int(c["id"])))
    return [
        {
            "id": str(c["id"]),
            "name": str(c.get("name") or ""),
            "type": int(c.get("type") or 0),
            "position": int(c.get("position") or 0),
            "parent_id": str(c["parent_id"]) if c.get("parent_id") else None,
        }
        for c in channels
    ]


def update_server(session: Session, server: DiscordServer, changes: dict[str, Any], *, by: str) -> DiscordServer:
    """Change a server's settings. A channel that is not in the server is refused (``ServerInvalid``)."""
    channel_id = changes.get("verification_channel_id")
    if "verification_channel_id" in changes and channel_id is not None:
        try:
            snapshot = read_server(server.guild_id, inline=True)
        except ServerUnavailable as exc:
            raise ServerInvalid(exc.reason) from exc
        if channel_id not in {c["id"] for c in _channel_options(snapshot)}:
            raise ServerInvalid(f"The channel {channel_id} is not a channel of the Discord server “{server.name}”.")
    if "verification_channel_id" in changes and channel_id != server.verification_channel_id:
        server.last_claim_message_id = None  # message ids of the old channel mean nothing in the new one
    for key, value in changes.items():
        setattr(server, key, value)
    session.add(server)
    audit.record(session, "discord.server.updated", f"Discord server settings changed by {by}",
                 installation_id=server.installation_id, server_id=server.id, changes=sorted(changes))
    return server


def forget_server(session: Session, server: DiscordServer, *, by: str) -> Sequence[AccessRule]:
    """Stop using a server for this store (the bot stays in Discord until the owner kicks it)."""
    rules = repository.rules_for_guild(session, server.installation_id, server.guild_id)
    audit.record(session, "discord.server.forgotten", f"Discord server “{server.name}” removed by {by}",
                 installation_id=server.installation_id, guild_id=server.guild_id, rules=[r.id for r in rules])
    session.delete(server)
    session.flush()
    for rule in rules:
        set_rule_problems(session, rule, [NOT_CONNECTED.format(guild_id=rule.guild_id)])
    return rules
