"""Per-route buckets and the global per-token limit, with Discord's headers.

Discord does not publish per-route numbers ("rate limits should not be hard coded"); the defaults
below are plausible values so that clients are forced to read the headers. Buckets are fixed windows
that start with the first request after a reset.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field

from .models import Clock

DEFAULT_ROUTE_LIMIT = (10, 1.0)
DEFAULT_ROUTE_LIMITS: dict[str, tuple[int, float]] = {
    "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}": (10, 10.0),
    "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}": (10, 10.0),
    "PUT /guilds/{guild_id}/members/{user_id}": (10, 10.0),
    "DELETE /guilds/{guild_id}/members/{user_id}": (5, 5.0),
    "POST /channels/{channel_id}/messages": (5, 5.0),
    "GET /channels/{channel_id}/messages": (5, 5.0),
    "POST /channels/{channel_id}/invites": (5, 5.0),
    "POST /users/@me/channels": (5, 5.0),
}
MAJOR_PARAMS = ("guild_id", "channel_id", "webhook_id", "webhook_token")


def bucket_hash(route_key: str) -> str:
    return hashlib.sha1(route_key.encode(), usedforsecurity=False).hexdigest()[:32]


@dataclass
class _Window:
    limit: int
    window: float
    started: float | None = None
    used: int = 0

    def refresh(self, now: float) -> None:
        if self.started is not None and now >= self.started + self.window:
            self.started, self.used = None, 0

    def reset_after(self, now: float) -> float:
        return self.window if self.started is None else max(0.0, self.started + self.window - now)


@dataclass
class Decision:
    allowed: bool
    headers: dict[str, str]
    retry_after: float = 0.0
    scope: str | None = None  # "user" | "global" when rejected
    violation: bool = False  # sent although earlier responses said the bucket was empty


@dataclass
class RateLimiter:
    clock: Clock
    global_limit: int | None = 50
    _overrides: list[tuple[re.Pattern[str], int, float]] = field(default_factory=list)
    _buckets: dict[tuple[str, str, str], _Window] = field(default_factory=dict)
    _globals: dict[str, _Window] = field(default_factory=dict)
    _global_blocked_until: dict[str, float] = field(default_factory=dict)

    def set_limit(self, route: str, limit: int, window_seconds: float) -> None:
        """`route` is a route key ("PUT /guilds/{guild_id}/...") or a regex searched in route keys."""
        pattern = re.compile(re.escape(route) + "$" if route in DEFAULT_ROUTE_LIMITS else route)
        self._overrides.insert(0, (pattern, limit, window_seconds))
        for key in [k for k in self._buckets if pattern.search(k[1])]:
            del self._buckets[key]

    def limits_for(self, route_key: str) -> tuple[int, float]:
        for pattern, limit, window in self._overrides:
            if pattern.search(route_key):
                return limit, window
        return DEFAULT_ROUTE_LIMITS.get(route_key, DEFAULT_ROUTE_LIMIT)

    def check(self, identity: str, route_key: str, params: dict[str, str]) -> Decision:
        now = self.clock.monotonic()
        wall = self.clock.time()
        if self.global_limit:
            glob = self._globals.setdefault(identity, _Window(self.global_limit, 1.0))
            glob.limit = self.global_limit
            glob.refresh(now)
            if glob.used >= glob.limit:
                retry = glob.reset_after(now)
                violation = now < self._global_blocked_until.get(identity, 0.0)
                self._global_blocked_until[identity] = now + retry
                return Decision(
                    False,
                    {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global", **_retry_headers(retry)},
                    retry_after=retry,
                    scope="global",
                    violation=violation,
                )

        limit, window = self.limits_for(route_key)
        major = ":".join(params[p] for p in MAJOR_PARAMS if p in params)
        bucket = self._buckets.setdefault((identity, route_key, major), _Window(limit, window))
        bucket.refresh(now)
        bucket_id = bucket_hash(route_key)
        if bucket.used >= bucket.limit:
            retry = bucket.reset_after(now)
            headers = _bucket_headers(bucket, bucket_id, now, wall)
            headers.update({"X-RateLimit-Scope": "user", **_retry_headers(retry)})
            # Every response since exhaustion carried Remaining: 0, so the client knew.
            return Decision(False, headers, retry_after=retry, scope="user", violation=True)

        if bucket.started is None:
            bucket.started = now
        bucket.used += 1
        if self.global_limit:
            glob = self._globals[identity]
            if glob.started is None:
                glob.started = now
            glob.used += 1
        return Decision(True, _bucket_headers(bucket, bucket_id, now, wall))


def _bucket_headers(bucket: _Window, bucket_id: str, now: float, wall: float) -> dict[str, str]:
    reset_after = bucket.reset_after(now)
    return {
        "X-RateLimit-Limit": str(bucket.limit),
        "X-RateLimit-Remaining": str(max(0, bucket.limit - bucket.used)),
        "X-RateLimit-Reset": f"{wall + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket_id,
    }


def _retry_headers(retry_after: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(retry_after)))}
