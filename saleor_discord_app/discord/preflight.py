"""Pre-flight checks (F4): can the bot do what a store's configuration asks of it in a Discord server?

``check_server`` answers with a list of problems written for a store owner (empty = all good). It reads the
server as the bot sees it (guild, roles, the bot's own member, channels) and applies Discord's rules
(discord-platform.md A3.1): the bot needs its permissions (Administrator counts as all of them), its highest
role must sit above every role it gives or takes, ``@everyone`` and managed roles cannot be given, and the
configured channel must exist and be visible to the bot.

Transient failures (``RetryLater``) are raised to the caller, who decides whether to retry later; every other
Discord refusal becomes a problem text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from saleor_discord_app.discord.client import DiscordClient
from saleor_discord_app.discord.errors import MISSING_ACCESS, UNKNOWN_GUILD, NeedsAttention

# Permission bits (developers/topics/permissions.mdx).
CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_ROLES = 1 << 28
ALL_PERMISSIONS = (1 << 53) - 1

REQUIRED_PERMISSIONS: dict[int, str] = {
    MANAGE_ROLES: "Manage Roles",
    CREATE_INSTANT_INVITE: "Create Invite",
    KICK_MEMBERS: "Kick Members",
    VIEW_CHANNEL: "View Channels",
    READ_MESSAGE_HISTORY: "Read Message History",
}
BOT_PERMISSIONS = sum(REQUIRED_PERMISSIONS)  # 268502019, what the bot install asks for
assert BOT_PERMISSIONS == 268502019
INSTALL_PERMISSIONS = BOT_PERMISSIONS | SEND_MESSAGES  # 268504067: also answer `!claim` in the channel

CATEGORY_CHANNEL = 4

RULE_CHANNEL_NEEDS = ((VIEW_CHANNEL, "View Channel"), (CREATE_INSTANT_INVITE, "Create Invite"))
VERIFICATION_CHANNEL_NEEDS = (
    (VIEW_CHANNEL, "View Channel"),
    (READ_MESSAGE_HISTORY, "Read Message History"),
    (SEND_MESSAGES, "Send Messages"),
)

BOT_NOT_IN_SERVER = (
    "The bot is not in this Discord server (it was removed, or the server was deleted). Install the bot into "
    "the server again from the app's page."
)


@dataclass(frozen=True)
class GuildSnapshot:
    """The server as the bot sees it, read once and checked many times (one read per server per check)."""

    guild_id: str
    name: str
    bot_user_id: str
    roles: dict[str, dict[str, Any]]
    bot_role_ids: frozenset[str]
    channels: dict[str, dict[str, Any]] | None  # None: not read

    @property
    def permissions(self) -> int:
        """The bot's server-wide permissions: @everyone's plus its roles'; Administrator means all."""
        perms = _perm(self.roles.get(self.guild_id, {}).get("permissions"))
        for role_id in self.bot_role_ids:
            perms |= _perm(self.roles.get(role_id, {}).get("permissions"))
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    @property
    def bot_top_role(self) -> dict[str, Any]:
        candidates = [self.roles[r] for r in self.bot_role_ids if r in self.roles]
        if self.guild_id in self.roles:
            candidates.append(self.roles[self.guild_id])
        if not candidates:
            return {"id": self.guild_id, "name": "@everyone", "position": 0}
        return max(candidates, key=role_sort_key)

    def is_above_bot(self, role: dict[str, Any]) -> bool:
        """True when the bot cannot give or take ``role``: it is not strictly below the bot's highest role."""
        return role_sort_key(role) >= role_sort_key(self.bot_top_role)

    def channel_permissions(self, channel: dict[str, Any]) -> int:
        """The bot's permissions in ``channel`` after its permission overwrites (Discord's algorithm)."""
        perms = self.permissions
        if perms & ADMINISTRATOR or perms == ALL_PERMISSIONS:
            return ALL_PERMISSIONS
        overwrites = {str(o.get("id")): o for o in channel.get("permission_overwrites") or []}
        everyone = overwrites.get(self.guild_id)
        if everyone is not None:
            perms = (perms & ~_perm(everyone.get("deny"))) | _perm(everyone.get("allow"))
        allow = deny = 0
        for role_id in self.bot_role_ids:
            overwrite = overwrites.get(role_id)
            if overwrite is not None and overwrite.get("type", 0) == 0:
                allow |= _perm(overwrite.get("allow"))
                deny |= _perm(overwrite.get("deny"))
        perms = (perms & ~deny) | allow
        member = overwrites.get(self.bot_user_id)
        if member is not None and member.get("type", 1) == 1:
            perms = (perms & ~_perm(member.get("deny"))) | _perm(member.get("allow"))
        return perms


def _perm(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def role_sort_key(role: dict[str, Any]) -> tuple[int, int]:
    """Higher position is higher; on a tie the older role (smaller id) is higher."""
    return (int(role.get("position") or 0), -int(role.get("id") or 0))


def fetch_snapshot(client: DiscordClient, guild_id: str, *, with_channels: bool = True) -> GuildSnapshot:
    """Read the server. Raises ``NeedsAttention`` (code 10004) when the bot is not in it, ``RetryLater``."""
    bot_user_id = str(client.get_current_user()["id"])
    guild = client.get_guild(guild_id)
    roles = {str(r["id"]): r for r in client.get_roles(guild_id)}
    member = client.get_member(guild_id, bot_user_id)
    if member is None:
        raise NeedsAttention(BOT_NOT_IN_SERVER, status=404, code=UNKNOWN_GUILD, operation="get_member")
    channels = {str(c["id"]): c for c in client.get_channels(guild_id)} if with_channels else None
    return GuildSnapshot(
        guild_id=guild_id,
        name=str(guild.get("name") or ""),
        bot_user_id=bot_user_id,
        roles=roles,
        bot_role_ids=frozenset(str(r) for r in member.get("roles") or []),
        channels=channels,
    )


def problem_from_error(exc: NeedsAttention) -> str:
    """The problem text for a refusal met while reading a server."""
    if exc.code in (UNKNOWN_GUILD, MISSING_ACCESS):
        return BOT_NOT_IN_SERVER
    return exc.reason


def check_server(
    client: DiscordClient,
    guild_id: str,
    *,
    role_ids: Sequence[str] = (),
    channel_id: str | None = None,
    alumni_role_id: str | None = None,
) -> list[str]:
    """Problems that stop the bot from serving this configuration, in words a store owner understands.

    Raises ``RetryLater`` when Discord cannot be reached; the caller checks again later.
    """
    try:
        snapshot = fetch_snapshot(client, guild_id, with_channels=channel_id is not None)
    except NeedsAttention as exc:
        return [problem_from_error(exc)]
    return evaluate(snapshot, role_ids=role_ids, channel_id=channel_id, alumni_role_id=alumni_role_id)


def evaluate(
    snapshot: GuildSnapshot,
    *,
    role_ids: Iterable[str] = (),
    channel_id: str | None = None,
    alumni_role_id: str | None = None,
    channel_label: str = "channel",
    channel_needs: Sequence[tuple[int, str]] = RULE_CHANNEL_NEEDS,
) -> list[str]:
    """Check a configuration against an already read server (no Discord calls)."""
    problems: list[str] = []
    bot_role = snapshot.bot_top_role
    bot_role_name = str(bot_role.get("name") or "the bot's role")
    missing = [name for bit, name in REQUIRED_PERMISSIONS.items() if not snapshot.permissions & bit]
    if missing:
        listed = _join(missing)
        plural = "permissions" if len(missing) > 1 else "permission"
        problems.append(
            f"The bot's role “{bot_role_name}” is missing the {listed} {plural}. In Discord, open Server "
            f"Settings → Roles → “{bot_role_name}” and turn on {listed} (or install the bot again from the "
            "app's page, which asks for exactly these)."
        )
    checked: set[tuple[str, str]] = set()
    for label, role_id in [("role", r) for r in role_ids] + [("alumni role", alumni_role_id)]:
        if not role_id or (label, role_id) in checked:
            continue
        checked.add((label, role_id))
        problem = _role_problem(snapshot, role_id, label, bot_role_name)
        if problem:
            problems.append(problem)
    if channel_id:
        problem = _channel_problem(snapshot, channel_id, channel_label, channel_needs, bot_role_name)
        if problem:
            problems.append(problem)
    return problems


def _role_problem(snapshot: GuildSnapshot, role_id: str, label: str, bot_role_name: str) -> str | None:
    if role_id == snapshot.guild_id:
        return (
            f"The {label} is “@everyone”, which every member already has and which cannot be given or taken. "
            "Pick another role."
        )
    role = snapshot.roles.get(role_id)
    if role is None:
        return (
            f"The {label} (id {role_id}) no longer exists in the Discord server “{snapshot.name}”: it was "
            "deleted. Pick an existing role."
        )
    name = str(role.get("name") or role_id)
    if role.get("managed"):
        return (
            f"The {label} “{name}” is managed by an integration (a bot, server boosts or a subscription), so "
            "Discord does not let the bot give it to anyone. Pick another role."
        )
    if snapshot.is_above_bot(role):
        return (
            f"The {label} “{name}” is not below the bot's role “{bot_role_name}”, so the bot cannot give or take "
            f"it. In Discord, open Server Settings → Roles and drag “{bot_role_name}” above “{name}”."
        )
    return None


def _channel_problem(
    snapshot: GuildSnapshot, channel_id: str, label: str, needs: Sequence[tuple[int, str]], bot_role_name: str
) -> str | None:
    if snapshot.channels is None:
        return None
    channel = snapshot.channels.get(channel_id)
    if channel is None or channel.get("type") == CATEGORY_CHANNEL:
        return (
            f"The {label} (id {channel_id}) does not exist in the Discord server “{snapshot.name}”: it was "
            "deleted or belongs to another server. Pick an existing channel."
        )
    name = f"#{channel.get('name') or channel_id}"
    guild_perms = snapshot.permissions
    perms = snapshot.channel_permissions(channel)
    # Server-wide gaps are already reported once; here only what the channel's own settings take away.
    lost = [title for bit, title in needs if guild_perms & bit and not perms & bit]
    if lost:
        listed = _join(lost)
        return (
            f"The bot cannot use the {label} “{name}”: the channel's settings take away {listed}. In Discord, open "
            f"the channel's settings → Permissions and allow {listed} for “{bot_role_name}”."
        )
    return None


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def assignable_roles(snapshot: GuildSnapshot) -> list[dict[str, Any]]:
    """Roles a product can sell, highest first: without @everyone and managed roles; ``above_bot`` marked."""
    roles = [
        r for r in snapshot.roles.values() if str(r.get("id")) != snapshot.guild_id and not r.get("managed")
    ]
    roles.sort(key=role_sort_key, reverse=True)
    return [
        {
            "id": str(r["id"]),
            "name": str(r.get("name") or ""),
            "position": int(r.get("position") or 0),
            "color": int(r.get("color") or 0),
            "above_bot": snapshot.is_above_bot(r),
        }
        for r in roles
    ]
