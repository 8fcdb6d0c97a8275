"""Synchronous Discord REST client for the bot token (Celery tasks are sync).

Every request goes through the token's shared ``RateLimiter``; 429s are waited out and retried up to
``max_retries`` times, 5xx and network errors are retried with exponential backoff, and everything else is
turned into the error classes of ``errors.py``. Changes send ``X-Audit-Log-Reason``. Tokens are never logged.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import quote

import httpx
import structlog

from saleor_discord_app.discord.errors import (
    BOT_TOKEN_REJECTED,
    INVALID_OAUTH_TOKEN,
    AlreadyDone,
    DiscordError,
    NeedsAttention,
    RetryLater,
    classify,
    error_body,
    parse_retry_after,
)
from saleor_discord_app.discord.ratelimit import RateLimiter, limiter_for

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL = "https://discord.com/api/v10"
DEFAULT_USER_AGENT = "DiscordBot (https://github.com/example/saleor-discord-app, 0.1.0)"
AUDIT_REASON_MAX = 512


def audit_reason(reason: str) -> str:
    """URL-encode ``reason`` for ``X-Audit-Log-Reason``, cut to 512 encoded characters without splitting."""
    out: list[str] = []
    size = 0
    for char in reason:
        encoded = quote(char, safe="")
        if size + len(encoded) > AUDIT_REASON_MAX:
            break
        out.append(encoded)
        size += len(encoded)
    return "".join(out)


class DiscordClient:
    """Bot-token REST client. Thread-safe; cheap to create (the rate limiter is shared per token)."""

    def __init__(
        self,
        bot_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        limiter: RateLimiter | None = None,
        max_retries: int = 5,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = 15.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.limiter = limiter if limiter is not None else limiter_for(bot_token)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout,
            headers={"Authorization": f"Bot {bot_token}", "User-Agent": user_agent},
        )

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ reads
    def get_guild(self, guild_id: str) -> dict[str, Any]:
        return self._json_obj("GET", f"/guilds/{guild_id}", operation="get_guild")

    def get_roles(self, guild_id: str) -> list[dict[str, Any]]:
        return self._json_list("GET", f"/guilds/{guild_id}/roles", operation="get_roles")

    def get_channels(self, guild_id: str) -> list[dict[str, Any]]:
        return self._json_list("GET", f"/guilds/{guild_id}/channels", operation="get_channels")

    def get_channel(self, channel_id: str) -> dict[str, Any]:
        return self._json_obj("GET", f"/channels/{channel_id}", operation="get_channel")

    def get_current_user(self) -> dict[str, Any]:
        return self._json_obj("GET", "/users/@me", operation="get_current_user")

    def get_member(self, guild_id: str, user_id: str) -> dict[str, Any] | None:
        """The member object, or None if the user is not in the guild (10007 Unknown Member)."""
        try:
            return self._json_obj("GET", f"/guilds/{guild_id}/members/{user_id}", operation="get_member")
        except NeedsAttention as exc:
            if exc.code == 10007:
                return None
            raise

    def iter_member_pages(self, guild_id: str, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Every member, a page at a time (needs the GUILD_MEMBERS intent), paging by the highest user id."""
        page_size = max(1, min(page_size, 1000))
        after = "0"
        while True:
            page = self._json_list(
                "GET",
                f"/guilds/{guild_id}/members",
                params={"limit": page_size, "after": after},
                operation="list_members",
            )
            if page:
                yield page
            if len(page) < page_size:
                return
            after = str(max(int(m["user"]["id"]) for m in page))

    def get_messages(self, channel_id: str, *, after: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if after is not None:
            params["after"] = after
        return self._json_list("GET", f"/channels/{channel_id}/messages", params=params, operation="get_messages")

    # ------------------------------------------------------------------ changes
    def add_member(
        self,
        guild_id: str,
        user_id: str,
        *,
        access_token: str,
        role_ids: Sequence[str],
        reason: str | None = None,
    ) -> bool:
        """Add the user to the guild with ``role_ids`` (their ``guilds.join`` token).

        True: the user was added, with the roles (201). False: they were already a member (204) and the roles
        were NOT applied, so the caller must ``add_role`` each one. A dead user token raises InvalidUserToken.
        """
        body: dict[str, Any] = {"access_token": access_token}
        if role_ids:
            body["roles"] = list(role_ids)
        response = self._request(
            "PUT", f"/guilds/{guild_id}/members/{user_id}", json=body, reason=reason, operation="add_member"
        )
        return response.status_code == 201

    def add_role(self, guild_id: str, user_id: str, role_id: str, *, reason: str) -> None:
        """Give a member a role. 10007 (not a member) raises NotAMember, a NeedsAttention."""
        self._request(
            "PUT",
            f"/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
            reason=reason,
            operation="add_role",
        )

    def remove_role(self, guild_id: str, user_id: str, role_id: str, *, reason: str) -> None:
        """Take a role away. Returns quietly if the user is no longer a member (10007): nothing to remove."""
        try:
            self._request(
                "DELETE",
                f"/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
                reason=reason,
                operation="remove_role",
            )
        except AlreadyDone:
            log.info("discord.remove_role.already_done", guild_id=guild_id, user_id=user_id, role_id=role_id)

    def kick(self, guild_id: str, user_id: str, *, reason: str) -> None:
        """Remove the member from the guild. Returns quietly if they already left (10007)."""
        try:
            self._request("DELETE", f"/guilds/{guild_id}/members/{user_id}", reason=reason, operation="kick")
        except AlreadyDone:
            log.info("discord.kick.already_done", guild_id=guild_id, user_id=user_id)

    def create_invite(
        self, channel_id: str, *, max_age: int, max_uses: int, unique: bool = True, reason: str | None = None
    ) -> dict[str, Any]:
        body = {"max_age": max_age, "max_uses": max_uses, "unique": unique}
        return self._json_obj(
            "POST", f"/channels/{channel_id}/invites", json=body, reason=reason, operation="create_invite"
        )

    def send_message(self, channel_id: str, content: str, *, reply_to: str | None = None) -> dict[str, Any]:
        """Post ``content`` with mentions disabled (user text can't ping @everyone)."""
        body: dict[str, Any] = {"content": content, "allowed_mentions": {"parse": []}}
        if reply_to is not None:
            body["message_reference"] = {"message_id": reply_to, "fail_if_not_exists": False}
        return self._json_obj("POST", f"/channels/{channel_id}/messages", json=body, operation="send_message")

    def bulk_overwrite_commands(
        self, application_id: str, commands: list[dict[str, Any]], *, guild_id: str | None = None
    ) -> list[dict[str, Any]]:
        path = f"/applications/{application_id}"
        path += f"/guilds/{guild_id}/commands" if guild_id else "/commands"
        return self._json_list("PUT", path, json=commands, operation="bulk_overwrite_commands")

    # ------------------------------------------------------------------ plumbing
    def _json_obj(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        data = self._request(method, path, **kwargs).json()
        if not isinstance(data, dict):
            raise DiscordError(f"expected a JSON object from {method} {path}", operation=kwargs["operation"])
        return cast(dict[str, Any], data)

    def _json_list(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        data = self._request(method, path, **kwargs).json()
        if not isinstance(data, list):
            raise DiscordError(f"expected a JSON array from {method} {path}", operation=kwargs["operation"])
        return cast(list[dict[str, Any]], data)

    def _backoff_delay(self, attempt: int) -> float:
        delay: float = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return delay * (0.75 + random.random() / 2)

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> httpx.Response:
        headers = {"X-Audit-Log-Reason": audit_reason(reason)} if reason else {}
        rate_limited = 0
        failures = 0
        while True:
            ticket = self.limiter.acquire(method, path)
            route = ticket.route.key
            try:
                response = self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                self.limiter.release(ticket)
                failures += 1
                log.warning("discord.request.network_error", route=route, error=type(exc).__name__, attempt=failures)
                if failures > self.max_retries:
                    raise RetryLater(
                        f"network error talking to Discord: {type(exc).__name__}", operation=operation
                    ) from exc
                self.limiter.backoff(self._backoff_delay(failures))
                continue
            except BaseException:
                self.limiter.release(ticket)
                raise
            self.limiter.complete(ticket, response)
            status = response.status_code
            log.debug(
                "discord.request",
                route=route,
                status=status,
                bucket=response.headers.get("X-RateLimit-Bucket"),
                remaining=response.headers.get("X-RateLimit-Remaining"),
            )
            if status < 400:
                return response
            if status == 401 and error_body(response).get("code") != INVALID_OAUTH_TOKEN:
                self.limiter.reject_token()
                log.error("discord.bot_token_rejected", route=route)
                raise NeedsAttention(BOT_TOKEN_REJECTED, status=401, operation=operation)
            if status == 429:
                rate_limited += 1
                if "retry_after" not in error_body(response):
                    raise RetryLater(
                        "Discord/Cloudflare refused the request (429 without a JSON body; possible IP ban)",
                        status=429,
                        operation=operation,
                        retry_after=max(parse_retry_after(response) or 0.0, self.limiter.cloudflare_ban_cooldown),
                    )
                if rate_limited > self.max_retries:
                    raise classify(response, operation=operation)
                continue  # the limiter now holds the bucket (or everything) until retry_after has passed
            if status >= 500:
                failures += 1
                log.warning("discord.request.server_error", route=route, status=status, attempt=failures)
                if failures > self.max_retries:
                    raise classify(response, operation=operation)
                self.limiter.backoff(self._backoff_delay(failures))
                continue
            error = classify(response, operation=operation)
            log.info(
                "discord.request.refused",
                route=route,
                status=status,
                code=error.code,
                error=type(error).__name__,
            )
            raise error
