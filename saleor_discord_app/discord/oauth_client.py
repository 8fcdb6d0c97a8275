"""OAuth2 HTTP calls for linking a customer's Discord account: code exchange, refresh, identity, revoke.

Only the HTTP calls; the web endpoints (authorize redirect, callback, state checks) live elsewhere.
Token endpoints take ``application/x-www-form-urlencoded`` bodies with HTTP Basic client auth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, cast

import httpx
import structlog
from pydantic import BaseModel, ConfigDict

from saleor_discord_app.discord.client import DEFAULT_BASE_URL, DEFAULT_USER_AGENT
from saleor_discord_app.discord.errors import DiscordError, RetryLater, classify

log = structlog.get_logger(__name__)

# Don't hold a web request or a task longer than this for a 429 on the OAuth endpoints.
MAX_INLINE_WAIT = 5.0


class TokenResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str | None = None
    scope: str = ""
    guild: dict[str, Any] | None = None  # present after a bot install with response_type=code

    @property
    def scopes(self) -> set[str]:
        return set(self.scope.split())


class DiscordOAuthClient:
    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        max_retries: int = 2,
        timeout: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_retries = max_retries
        self._sleep = sleep
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), transport=transport, timeout=timeout, headers={"User-Agent": user_agent}
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def exchange_code(self, code: str, redirect_uri: str) -> TokenResponse:
        """Authorization code → tokens. An invalid/used code raises InvalidUserToken."""
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        return TokenResponse.model_validate(self._token_call("/oauth2/token", data, "exchange_code").json())

    def refresh(self, refresh_token: str) -> TokenResponse:
        """New tokens; store the returned refresh_token. A revoked grant raises InvalidUserToken (reconnect)."""
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return TokenResponse.model_validate(self._token_call("/oauth2/token", data, "refresh_token").json())

    def get_user(self, access_token: str) -> dict[str, Any]:
        """GET /users/@me with the customer's bearer token (id, username, global_name, email with scope)."""
        response = self._send("GET", "/users/@me", "get_user", headers={"Authorization": f"Bearer {access_token}"})
        data = response.json()
        if not isinstance(data, dict):
            raise DiscordError("expected a JSON object from /users/@me", operation="get_user")
        return cast(dict[str, Any], data)

    def revoke(self, token: str) -> None:
        """Revoke the authorization the token belongs to (every token of that grant)."""
        self._token_call("/oauth2/token/revoke", {"token": token}, "revoke")

    def _token_call(self, path: str, data: dict[str, str], operation: str) -> httpx.Response:
        return self._send("POST", path, operation, data=data, auth=self._auth)

    def _send(self, method: str, path: str, operation: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt > self.max_retries:
                    raise RetryLater(
                        f"network error talking to Discord: {type(exc).__name__}", operation=operation
                    ) from exc
                self._sleep(0.5 * 2 ** (attempt - 1))
                continue
            log.debug("discord.oauth.request", operation=operation, status=response.status_code)
            if response.status_code < 400:
                return response
            error = classify(response, operation=operation, user_token=True)
            retryable = response.status_code == 429 or response.status_code >= 500
            if not retryable or attempt > self.max_retries:
                raise error
            delay = getattr(error, "retry_after", None) or 0.5 * 2 ** (attempt - 1)
            if delay > MAX_INLINE_WAIT:
                raise error
            self._sleep(delay)
