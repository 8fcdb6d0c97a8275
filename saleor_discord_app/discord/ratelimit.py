"""Client-side Discord rate limiting: per-route buckets, the global limit, and the invalid-request breaker.

One ``RateLimiter`` per bot token per process (``limiter_for(token)``), shared by every ``DiscordClient`` and
thread using that token. The contract with the client is::

    ticket = limiter.acquire(method, path)      # blocks until sending is allowed; may raise
    response = send(...)
    limiter.complete(ticket, response)          # or limiter.release(ticket) if nothing came back

Per-route buckets follow Discord's headers (never hard-coded numbers): a route template
(``PUT /guilds/{guild_id}/members/{id}/roles/{id}``) maps to the ``X-RateLimit-Bucket`` hash once learned,
and bucket state is kept per (hash, major parameter). A bucket whose state is unknown (never seen, or its
reset time passed) lets one request through at a time until a response tells us the new state; a bucket
known to be empty is never sent to before its reset. Reservations are counted locally, so concurrent
threads never spend more than ``remaining``.

The global limit is proactive: at most ``global_limit`` requests in any ``global_period`` (a sliding log,
stricter than a token bucket). A 429 with ``global: true`` pauses every request for ``retry_after``.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from saleor_discord_app.discord.errors import (
    BOT_TOKEN_REJECTED,
    NeedsAttention,
    RetryLater,
    error_body,
    parse_retry_after,
)

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], None]

_MAJOR_RESOURCES = ("guilds", "channels", "webhooks")
_ID = re.compile(r"^\d{5,}$")
# Requests with no rate-limit headers (and no 429) mark a route "unlimited"; recheck after this long.
_UNLIMITED_TTL = 60.0
# Responses whose reset time differs by less than this belong to the same window.
_SAME_WINDOW = 0.02


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # major parameter as a placeholder: "PUT /guilds/{guild_id}/members/{id}/roles/{id}"
    major: str  # major parameter value ("" if none)

    @property
    def key(self) -> str:
        """The route key used in logs: the template with the major parameter value kept."""
        return (
            self.template.replace("{guild_id}", self.major, 1)
            .replace("{channel_id}", self.major, 1)
            .replace("{webhook_id}", self.major, 1)
        )


def route_for(method: str, path: str) -> Route:
    """Split a request path into its route template and major parameter (guild, channel or webhook id)."""
    segments = path.split("?", 1)[0].strip("/").split("/")
    out: list[str] = []
    major = ""
    i = 0
    while i < len(segments):
        seg = segments[i]
        out.append(seg)
        if not major and seg in _MAJOR_RESOURCES and i + 1 < len(segments) and _ID.match(segments[i + 1]):
            major = segments[i + 1]
            out.append("{" + seg[:-1] + "_id}")
            i += 2
            if seg == "webhooks" and i < len(segments):  # webhook token is part of the major parameter
                major += "/" + segments[i]
                out.append("{token}")
                i += 1
            continue
        if _ID.match(seg):
            out[-1] = "{id}"
        i += 1
    return Route(method.upper(), f"{method.upper()} /" + "/".join(out), major)


@dataclass
class _Bucket:
    key: str
    limit: int | None = None
    remaining: int | None = None  # None = unknown: one request at a time until a response tells us
    reset_at: float = 0.0
    inflight: int = 0
    unlimited_until: float = 0.0


@dataclass(frozen=True)
class Ticket:
    route: Route
    bucket: _Bucket
    sent_at: float


@dataclass
class RateLimitStats:
    requests_sent: int = 0
    rate_limited: dict[str, int] = field(default_factory=dict)  # 429s by scope: user / global / shared / ...
    waited_seconds: float = 0.0
    invalid_requests_in_window: int = 0
    breaker_open: bool = False

    @property
    def rate_limited_total(self) -> int:
        return sum(self.rate_limited.values())


class RateLimiter:
    def __init__(
        self,
        *,
        global_limit: int = 50,
        global_period: float = 1.0,
        invalid_request_threshold: int = 1000,
        invalid_request_window: float = 600.0,
        cloudflare_ban_cooldown: float = 600.0,
        safety_margin: float = 0.02,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.global_limit = global_limit
        self.global_period = global_period
        self.invalid_request_threshold = invalid_request_threshold
        self.invalid_request_window = invalid_request_window
        self.cloudflare_ban_cooldown = cloudflare_ban_cooldown
        self.safety_margin = safety_margin
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition(threading.Lock())
        self._route_hash: dict[str, str] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._global_log: deque[float] = deque()
        self._global_paused_until = 0.0
        self._invalid: deque[float] = deque()
        self._blocked_until = 0.0
        self._token_rejected = False
        self._sent = 0
        self._rate_limited: dict[str, int] = {}
        self._waited = 0.0

    # ------------------------------------------------------------------ sending
    def acquire(self, method: str, path: str) -> Ticket:
        """Block until a request may be sent, reserve its slot, and return the ticket to complete/release."""
        route = route_for(method, path)
        waited = 0.0
        with self._cond:
            while True:
                now = self._clock()
                self._check_breaker(now)
                bucket = self._bucket(route)
                wait = max(0.0, self._global_paused_until - now)
                if bucket.remaining is None and bucket.unlimited_until <= now:
                    if bucket.inflight > 0:
                        # Learning this bucket: one request at a time until its headers arrive.
                        self._cond.wait(timeout=0.05)
                        continue
                elif bucket.remaining is not None:
                    if now >= bucket.reset_at:
                        bucket.remaining = None  # window over: learn the new state from one request
                        continue
                    if bucket.remaining <= 0:
                        wait = max(wait, bucket.reset_at - now)
                if len(self._global_log) >= self.global_limit:
                    wait = max(wait, self._global_log[0] + self.global_period + self.safety_margin - now)
                if wait > 0:
                    self._cond.release()
                    try:
                        self._sleep(wait)
                    finally:
                        self._cond.acquire()
                    waited += wait
                    self._waited += wait
                    continue
                bucket.inflight += 1
                if bucket.remaining is not None:
                    bucket.remaining -= 1
                self._global_log.append(now)
                while len(self._global_log) > self.global_limit:
                    self._global_log.popleft()
                self._sent += 1
                if waited:
                    log.debug("discord.ratelimit.waited", route=route.key, bucket=bucket.key, waited=waited)
                return Ticket(route, bucket, now)

    def release(self, ticket: Ticket) -> None:
        """Give the reservation back when no response arrived (network error)."""
        with self._cond:
            ticket.bucket.inflight = max(0, ticket.bucket.inflight - 1)
            self._cond.notify_all()

    def complete(self, ticket: Ticket, response: httpx.Response) -> None:
        """Learn from a response's headers; book 429s and invalid requests."""
        with self._cond:
            now = self._clock()
            ticket.bucket.inflight = max(0, ticket.bucket.inflight - 1)
            try:
                self._learn(ticket, response, now)
            finally:
                self._cond.notify_all()

    def backoff(self, seconds: float) -> None:
        """Sleep (with the injected sleep) and count it as waiting time."""
        if seconds <= 0:
            return
        self._sleep(seconds)
        with self._cond:
            self._waited += seconds

    # ------------------------------------------------------------------ state
    @property
    def stats(self) -> RateLimitStats:
        with self._cond:
            now = self._clock()
            self._prune_invalid(now)
            return RateLimitStats(
                requests_sent=self._sent,
                rate_limited=dict(self._rate_limited),
                waited_seconds=self._waited,
                invalid_requests_in_window=len(self._invalid),
                breaker_open=self._token_rejected
                or now < self._blocked_until
                or len(self._invalid) >= self.invalid_request_threshold,
            )

    def pause_global(self, seconds: float) -> None:
        with self._cond:
            self._global_paused_until = max(self._global_paused_until, self._clock() + seconds)

    def trip(self, seconds: float) -> None:
        """Refuse all requests for ``seconds`` (e.g. after a Cloudflare ban)."""
        with self._cond:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def reject_token(self) -> None:
        with self._cond:
            self._token_rejected = True

    # ------------------------------------------------------------------ internals
    def _bucket(self, route: Route) -> _Bucket:
        bucket_hash = self._route_hash.get(route.template)
        key = (bucket_hash, route.major) if bucket_hash else ("route:" + route.template, route.major)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(key=f"{key[0]}:{key[1]}")
        return bucket

    def _check_breaker(self, now: float) -> None:
        if self._token_rejected:
            raise NeedsAttention(BOT_TOKEN_REJECTED, status=401)
        if now < self._blocked_until:
            raise RetryLater(
                "Discord requests are paused (circuit breaker open)", retry_after=self._blocked_until - now
            )
        self._prune_invalid(now)
        if len(self._invalid) >= self.invalid_request_threshold:
            retry_after = self._invalid[0] + self.invalid_request_window - now
            raise RetryLater(
                f"too many invalid Discord requests ({len(self._invalid)} in {self.invalid_request_window:.0f}s); "
                "pausing to avoid a Cloudflare ban",
                retry_after=retry_after,
            )

    def _prune_invalid(self, now: float) -> None:
        while self._invalid and self._invalid[0] <= now - self.invalid_request_window:
            self._invalid.popleft()

    def _learn(self, ticket: Ticket, response: httpx.Response, now: float) -> None:
        headers = response.headers
        status = response.status_code
        route = ticket.route
        scope = headers.get("X-RateLimit-Scope", "").lower()
        if status in (401, 403) or (status == 429 and scope != "shared"):
            self._invalid.append(now)

        bucket_hash = headers.get("X-RateLimit-Bucket")
        bucket = ticket.bucket
        if bucket_hash:
            known = self._route_hash.get(route.template)
            if known != bucket_hash:
                if known is not None:
                    log.info("discord.ratelimit.bucket_changed", route=route.key, old=known, new=bucket_hash)
                self._route_hash[route.template] = bucket_hash
            bucket = self._bucket(route)

        remaining = _to_int(headers.get("X-RateLimit-Remaining"))
        reset_after = _to_float(headers.get("X-RateLimit-Reset-After"))
        limit = _to_int(headers.get("X-RateLimit-Limit"))
        if remaining is not None and reset_after is not None:
            reset_at = now + reset_after + self.safety_margin
            estimate = max(0, remaining - bucket.inflight)  # requests still in flight will spend some more
            if limit is not None:
                bucket.limit = limit
            if reset_at <= now:
                pass
            elif bucket.remaining is None or reset_at > bucket.reset_at + _SAME_WINDOW:
                bucket.remaining, bucket.reset_at = estimate, reset_at  # a newer window
            elif reset_at >= bucket.reset_at - _SAME_WINDOW:
                bucket.remaining = min(bucket.remaining, estimate)  # same window: trust the lower count
        elif status < 400 and not bucket_hash and bucket.remaining is None:
            bucket.unlimited_until = now + _UNLIMITED_TTL

        if status != 429:
            return
        body = error_body(response)
        retry_after = parse_retry_after(response)
        is_global = bool(body.get("global")) or headers.get("X-RateLimit-Global", "").lower() == "true"
        if "retry_after" not in body:
            scope = "cloudflare"
        elif not scope:
            scope = "global" if is_global else "user"
        self._rate_limited[scope] = self._rate_limited.get(scope, 0) + 1
        wait = retry_after if retry_after is not None else 1.0
        log.warning(
            "discord.ratelimit.429",
            route=route.key,
            bucket=bucket.key,
            scope=scope,
            retry_after=wait,
            global_=is_global,
        )
        if scope == "cloudflare":
            self._blocked_until = max(self._blocked_until, now + max(wait, self.cloudflare_ban_cooldown))
        elif is_global:
            self._global_paused_until = max(self._global_paused_until, now + wait + self.safety_margin)
        else:
            bucket.unlimited_until = 0.0
            bucket.remaining = 0
            bucket.reset_at = max(bucket.reset_at, now + wait + self.safety_margin)


def _to_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _to_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


_registry: dict[str, RateLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(token: str, **options: Any) -> RateLimiter:
    """The process-wide limiter for a token (created with ``options`` on first use; keyed by a hash)."""
    key = hashlib.sha256(token.encode()).hexdigest()
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = RateLimiter(**options)
        return limiter


def reset_registry() -> None:
    """Forget every limiter (tests)."""
    with _registry_lock:
        _registry.clear()
