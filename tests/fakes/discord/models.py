"""In-memory Discord objects and small helpers (clock, snowflakes, permission bits)."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

DISCORD_EPOCH_MS = 1420070400000

# Permission bits (developers/topics/permissions.mdx).
CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_ROLES = 1 << 28
DEFAULT_BOT_PERMISSIONS = 268502019  # Manage Roles + Invite + Kick + View Channel + Read History
EVERYONE_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | CREATE_INSTANT_INVITE

# Channel types.
GUILD_TEXT = 0
DM = 1


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class ManualClock:
    """A clock tests move by hand; `time()` (wall clock) and `monotonic()` advance together."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class SnowflakeFactory:
    """Time-based, strictly increasing snowflakes, so id order equals creation order."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            candidate = (int(self._clock.time() * 1000) - DISCORD_EPOCH_MS) << 22
            self._last = max(candidate, self._last + 1)
            return str(self._last)


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat()


@dataclass
class User:
    id: str
    username: str
    bot: bool = False
    email: str | None = None
    global_name: str | None = None
    dms_open: bool = True
    at_guild_cap: bool = False

    def to_json(self, *, with_email: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
        }
        if self.bot:
            data["bot"] = True
        if with_email:
            data["email"] = self.email
            data["verified"] = True
        return data


@dataclass
class Role:
    id: str
    guild_id: str
    name: str
    position: int
    permissions: int = 0
    managed: bool = False
    bot_id: str | None = None
    color: int = 0
    hoist: bool = False
    mentionable: bool = False

    def sort_key(self) -> tuple[int, int]:
        # Higher position wins; on ties the older (smaller) id is higher.
        return (self.position, -int(self.id))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": None,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": self.hoist,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": self.bot_id}
        return data


@dataclass
class Member:
    user_id: str
    roles: set[str] = field(default_factory=set)
    joined_at: float = 0.0
    nick: str | None = None
    pending: bool = False


@dataclass
class Channel:
    id: str
    name: str | None
    type: int = GUILD_TEXT
    guild_id: str | None = None
    recipient_id: str | None = None
    position: int = 0
    last_message_id: str | None = None

    def to_json(self, users: dict[str, User]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "last_message_id": self.last_message_id,
            "flags": 0,
        }
        if self.type == DM:
            recipient = users.get(self.recipient_id or "")
            data["recipients"] = [recipient.to_json()] if recipient else []
        else:
            data.update(
                guild_id=self.guild_id,
                name=self.name,
                position=self.position,
                permission_overwrites=[],
                parent_id=None,
                topic=None,
                nsfw=False,
                rate_limit_per_user=0,
            )
        return data


@dataclass
class Message:
    id: str
    channel_id: str
    author_id: str
    content: str
    timestamp: float
    guild_id: str | None = None
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    flags: int = 0


@dataclass
class Guild:
    id: str
    name: str
    owner_id: str
    bot_role_position: int
    roles: dict[str, Role] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    channel_ids: list[str] = field(default_factory=list)
    bans: set[str] = field(default_factory=set)

    def highest_role(self, member: Member) -> Role:
        candidates = [self.roles[r] for r in member.roles if r in self.roles]
        candidates.append(self.roles[self.id])
        return max(candidates, key=Role.sort_key)

    def permissions_of(self, member: Member) -> int:
        perms = self.roles[self.id].permissions
        for role_id in member.roles:
            role = self.roles.get(role_id)
            if role is not None:
                perms |= role.permissions
        if perms & ADMINISTRATOR or member.user_id == self.owner_id:
            return (1 << 53) - 1
        return perms

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "icon": None,
            "description": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "owner_id": self.owner_id,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.to_json() for r in sorted(self.roles.values(), key=Role.sort_key)],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "region": "deprecated",
        }


@dataclass
class Invite:
    code: str
    guild_id: str
    channel_id: str
    inviter_id: str
    max_age: int
    max_uses: int
    temporary: bool
    created_at: float
    role_ids: list[str] = field(default_factory=list)
    uses: int = 0


@dataclass
class OAuthCode:
    code: str
    user_id: str
    scopes: tuple[str, ...]
    redirect_uri: str | None
    expires_at: float
    guild_id: str | None = None
    permissions: int | None = None


@dataclass
class OAuthGrant:
    """One user authorization; every token minted from it is revoked together."""

    id: int
    user_id: str
    scopes: tuple[str, ...]
    revoked: bool = False


@dataclass
class AccessToken:
    token: str
    grant: OAuthGrant
    expires_at: float
    force_expired: bool = False


@dataclass
class RefreshToken:
    token: str
    grant: OAuthGrant
    used: bool = False


grant_ids = itertools.count(1)
