"""`FakeDiscord`: an in-memory Discord with a `handle(httpx.Request) -> httpx.Response` core."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import httpx
from nacl.signing import SigningKey

from . import models as m
from .errors import DiscordError, OAuthError, form_error, method_not_allowed, not_found, unauthorized
from .openapi import DiscordOpenAPIValidator, OpenAPIViolation, api_relative_path, template_regex
from .ratelimit import RateLimiter

API_BASE_URL = "https://discord.test/api/v10"
USER_TOKEN_TTL = 604800
CODE_TTL = 600
BOT_SCOPES = ("bot", "applications.commands")
MENTION_RE = re.compile(r"<@!?(\d+)>")

Handler = Callable[["RequestContext"], httpx.Response]


class InjectedConnectError(Exception):
    """Tells the HTTP server to drop the connection; the in-process transport raises httpx errors."""


@dataclass
class Injection:
    method: str
    path_regex: re.Pattern[str]
    status: int | str
    json: Any
    headers: dict[str, str]
    times: int


@dataclass
class RecordedRequest:
    method: str
    path: str
    route: str | None  # "PUT /guilds/{guild_id}/members/{user_id}" once matched
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    headers: httpx.Headers
    at: float
    request: httpx.Request
    status: int | None = None

    @property
    def url(self) -> httpx.URL:
        return self.request.url


@dataclass
class FakeStats:
    total: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)  # X-RateLimit-Scope -> count
    violations: int = 0  # sent to a route bucket the fake had already reported as empty
    global_violations: int = 0  # sent while a global 429's retry_after was still running
    invalid_requests: int = 0  # 401/403/429: what Cloudflare counts towards its 10,000/10 min ban
    injected: int = 0
    openapi_violations: int = 0

    def __getitem__(self, name: str) -> Any:
        """`stats["violations"]` works as well as `stats.violations`."""
        return getattr(self, name)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class Auth:
    kind: str  # "bot" | "bearer" | "none"
    identity: str
    token: m.AccessToken | None = None


@dataclass
class RequestContext:
    request: httpx.Request
    params: dict[str, str]
    auth: Auth

    @property
    def query(self) -> httpx.QueryParams:
        return self.request.url.params

    def json(self) -> Any:
        if not self.request.content:
            return None
        try:
            return json.loads(self.request.content)
        except ValueError as exc:
            raise DiscordError(400, 50109, "The request body contains invalid JSON.") from exc

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.request.content.decode("utf-8", "replace"), keep_blank_values=True))

    def audit_reason(self) -> str | None:
        reason = self.request.headers.get("X-Audit-Log-Reason")
        return unquote(reason) if reason else None


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    auth: str  # "bot" | "bearer" | "bot_or_bearer" | "none"
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.regex = template_regex(self.template)

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


class FakeDiscord:
    """A faithful-enough Discord REST API for tests and demos. See README-style notes in `__init__`."""

    def __init__(
        self,
        bot_token: str = "test-bot-token",
        client_id: str = "1100000000000000001",
        client_secret: str = "test-secret",
        application_id: str | None = None,
        *,
        application_name: str = "Store Bot",
        clock: m.Clock | None = None,
        validate_requests: bool = True,
        raise_on_violation: bool = True,
        require_user_agent: bool = True,
        redirect_uris: Iterable[str] | None = None,
        record_requests: bool = True,
    ) -> None:
        self.bot_token = bot_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.application_id = application_id or client_id
        self.application_name = application_name
        self.api_base_url = API_BASE_URL
        self.clock: m.Clock = clock or m.SystemClock()
        self.validate_requests = validate_requests
        self.raise_on_violation = raise_on_violation
        self.require_user_agent = require_user_agent
        self.redirect_uris: set[str] | None = set(redirect_uris) if redirect_uris is not None else None
        # Long benchmarks can switch this off so `requests` does not grow without bound.
        self.record_requests = record_requests
        # Privileged intents toggled in the developer portal; both also gate REST responses.
        self.members_intent = True
        self.message_content_intent = True
        # The user who "clicks Authorize" on /oauth2/authorize; default: last user from add_user().
        self.authorizing_user_id: str | None = None

        self._lock = threading.RLock()
        self._snowflake = m.SnowflakeFactory(self.clock)
        self._validator = DiscordOpenAPIValidator.shared() if validate_requests else None
        self._ratelimiter = RateLimiter(self.clock)
        self.interaction_keypair = SigningKey(
            hashlib.sha256(f"fake-discord-interactions:{self.application_id}".encode()).digest()
        )

        self.users: dict[str, m.User] = {}
        self.guilds: dict[str, m.Guild] = {}
        self.channels: dict[str, m.Channel] = {}
        self.messages: dict[str, list[m.Message]] = {}
        self.invites: dict[str, m.Invite] = {}
        self.commands: dict[str | None, list[dict[str, Any]]] = {}  # guild_id (None = global) -> commands
        self.audit_log: list[dict[str, Any]] = []
        self.interactions: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.violations: list[OpenAPIViolation] = []
        self.stats = FakeStats()
        self._codes: dict[str, m.OAuthCode] = {}
        self._access_tokens: dict[str, m.AccessToken] = {}
        self._refresh_tokens: dict[str, m.RefreshToken] = {}
        self._dm_channels: dict[str, str] = {}
        self._injections: list[Injection] = []
        self._added_users: list[str] = []

        self.users[self.application_id] = m.User(self.application_id, application_name, bot=True)
        self._routes = self._build_routes()

    # ------------------------------------------------------------------ transports / server

    @property
    def bot_user_id(self) -> str:
        return self.application_id

    @property
    def public_key_hex(self) -> str:
        return bytes(self.interaction_keypair.verify_key).hex()

    @property
    def global_limit(self) -> int | None:
        return self._ratelimiter.global_limit

    @global_limit.setter
    def global_limit(self, value: int | None) -> None:
        self._ratelimiter.global_limit = value

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._transport_handler)

    @property
    def async_transport(self) -> httpx.MockTransport:
        # MockTransport calls a sync handler from handle_async_request too.
        return httpx.MockTransport(self._transport_handler)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A bot-authenticated client wired to the fake (handy in tests)."""
        headers = {
            "Authorization": f"Bot {self.bot_token}",
            "User-Agent": "DiscordBot (https://example.test, 1.0)",
            **kwargs.pop("headers", {}),
        }
        return httpx.Client(base_url=self.api_base_url, transport=self.transport, headers=headers, **kwargs)

    def _transport_handler(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.handle(request, raise_violations=self.raise_on_violation)
        except InjectedConnectError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    @contextlib.contextmanager
    def serve(self, port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
        """Run a real HTTP server in a thread; yields its root URL (API under `/api/v10`)."""
        from .server import start_server

        server, thread = start_server(self, host, port)
        try:
            yield f"http://{host}:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    # ------------------------------------------------------------------ state API

    def new_id(self) -> str:
        return self._snowflake()

    def add_user(self, user_id: str | None = None, username: str = "alice", *, email: str | None = None) -> str:
        with self._lock:
            uid = user_id or self.new_id()
            self.users[uid] = m.User(uid, username, email=email or f"{username}@example.test")
            self._added_users.append(uid)
            return uid

    def add_guild(
        self,
        name: str = "Store",
        guild_id: str | None = None,
        bot_in_guild: bool = True,
        bot_permissions: int = m.DEFAULT_BOT_PERMISSIONS,
        bot_role_position: int = 10,
    ) -> str:
        """Creates @everyone, an owner member and (if `bot_in_guild`) the bot with its managed role."""
        with self._lock:
            gid = guild_id or self.new_id()
            owner_id = self.new_id()
            self.users[owner_id] = m.User(owner_id, f"{name.lower().replace(' ', '_')}_owner")
            guild = m.Guild(gid, name, owner_id=owner_id, bot_role_position=bot_role_position)
            guild.roles[gid] = m.Role(gid, gid, "@everyone", 0, permissions=m.EVERYONE_PERMISSIONS)
            guild.members[owner_id] = m.Member(owner_id, joined_at=self.clock.time())
            self.guilds[gid] = guild
            if bot_in_guild:
                self.install_bot(gid, bot_permissions)
            return gid

    def install_bot(self, guild_id: str, permissions: int = m.DEFAULT_BOT_PERMISSIONS) -> None:
        """What authorizing `scope=bot` does: bot joins with a managed role holding `permissions`."""
        with self._lock:
            guild = self._guild(guild_id)
            bot_role = self.bot_role(guild_id)
            if bot_role is None:
                bot_role = m.Role(
                    self.new_id(),
                    guild_id,
                    self.application_name,
                    guild.bot_role_position,
                    permissions=permissions,
                    managed=True,
                    bot_id=self.application_id,
                )
                guild.roles[bot_role.id] = bot_role
            bot_role.permissions = permissions
            member = guild.members.setdefault(self.bot_user_id, m.Member(self.bot_user_id, joined_at=self.clock.time()))
            member.roles.add(bot_role.id)

    def remove_bot(self, guild_id: str) -> None:
        """The bot is kicked: its managed role disappears with it, as on Discord."""
        with self._lock:
            guild = self._guild(guild_id)
            guild.members.pop(self.bot_user_id, None)
            role = self.bot_role(guild_id)
            if role is not None:
                del guild.roles[role.id]

    def bot_role(self, guild_id: str) -> m.Role | None:
        guild = self._guild(guild_id)
        return next((r for r in guild.roles.values() if r.bot_id == self.application_id), None)

    def add_role(
        self,
        guild_id: str,
        name: str,
        position: int,
        managed: bool = False,
        role_id: str | None = None,
        permissions: int = 0,
    ) -> str:
        with self._lock:
            rid = role_id or self.new_id()
            self._guild(guild_id).roles[rid] = m.Role(
                rid, guild_id, name, position, permissions=permissions, managed=managed
            )
            return rid

    def set_role_position(self, guild_id: str, role_id: str, position: int) -> None:
        with self._lock:
            self._guild(guild_id).roles[role_id].position = position

    def set_role_permissions(self, guild_id: str, role_id: str, permissions: int) -> None:
        """E.g. strip CREATE_INSTANT_INVITE from @everyone (role id == guild id)."""
        with self._lock:
            self._guild(guild_id).roles[role_id].permissions = permissions

    def delete_role(self, guild_id: str, role_id: str) -> None:
        with self._lock:
            guild = self._guild(guild_id)
            del guild.roles[role_id]
            for member in guild.members.values():
                member.roles.discard(role_id)

    def add_channel(self, guild_id: str, name: str = "verify", channel_id: str | None = None) -> str:
        with self._lock:
            guild = self._guild(guild_id)
            cid = channel_id or self.new_id()
            self.channels[cid] = m.Channel(cid, name, guild_id=guild_id, position=len(guild.channel_ids))
            guild.channel_ids.append(cid)
            self.messages[cid] = []
            return cid

    def add_member(self, guild_id: str, user_id: str, roles: Iterable[str] = ()) -> None:
        with self._lock:
            if user_id not in self.users:
                raise KeyError(f"unknown user {user_id}; call add_user() first")
            guild = self._guild(guild_id)
            member = guild.members.setdefault(user_id, m.Member(user_id, joined_at=self.clock.time()))
            member.roles.update(roles)

    def remove_member(self, guild_id: str, user_id: str) -> None:
        with self._lock:
            self._guild(guild_id).members.pop(user_id, None)

    def ban(self, guild_id: str, user_id: str) -> None:
        with self._lock:
            guild = self._guild(guild_id)
            guild.members.pop(user_id, None)
            guild.bans.add(user_id)

    def member_roles(self, guild_id: str, user_id: str) -> set[str] | None:
        with self._lock:
            member = self._guild(guild_id).members.get(user_id)
            return set(member.roles) if member else None

    def set_dms_open(self, user_id: str, open_: bool) -> None:
        self.users[user_id].dms_open = open_

    def set_at_guild_cap(self, user_id: str, at_cap: bool = True) -> None:
        self.users[user_id].at_guild_cap = at_cap

    def post_message(self, channel_id: str, author_id: str, content: str) -> str:
        """A user typing in a channel."""
        with self._lock:
            if author_id not in self.users:
                raise KeyError(f"unknown user {author_id}")
            return self._store_message(channel_id, author_id, content).id

    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """All messages, oldest first, content always visible (the test's view, not the bot's)."""
        with self._lock:
            return [self._message_json(msg, redact=False) for msg in self.messages.get(channel_id, [])]

    def dm_channel_of(self, user_id: str) -> str | None:
        return self._dm_channels.get(user_id)

    def accept_invite(self, code: str, user_id: str) -> None:
        """A user clicks the invite: joins (if not banned) and receives the invite's `role_ids`."""
        with self._lock:
            invite = self.invites[code]
            guild = self._guild(invite.guild_id)
            if user_id in guild.bans:
                raise PermissionError("user is banned")
            invite.uses += 1
            member = guild.members.setdefault(user_id, m.Member(user_id, joined_at=self.clock.time()))
            member.roles.update(r for r in invite.role_ids if r in guild.roles)
            if invite.max_uses and invite.uses >= invite.max_uses:
                del self.invites[code]

    # ------------------------------------------------------------------ OAuth helpers

    def issue_user_code(
        self,
        user_id: str,
        scopes: Iterable[str] = ("identify", "guilds.join"),
        redirect_uri: str | None = "https://store.test/discord/callback",
    ) -> str:
        """An authorization code as if `user_id` approved the consent screen."""
        with self._lock:
            if user_id not in self.users:
                raise KeyError(f"unknown user {user_id}")
            code = secrets.token_urlsafe(20)
            self._codes[code] = m.OAuthCode(code, user_id, tuple(scopes), redirect_uri, self.clock.time() + CODE_TTL)
            return code

    def issue_bot_install_code(
        self,
        guild_id: str,
        permissions: int = m.DEFAULT_BOT_PERMISSIONS,
        redirect_uri: str | None = "https://store.test/discord/bot-callback",
        scopes: Iterable[str] = BOT_SCOPES,
    ) -> str:
        """The guild owner approved the bot: the bot joins now, the code carries the guild."""
        with self._lock:
            guild = self._guild(guild_id)
            self.install_bot(guild_id, permissions)
            code = secrets.token_urlsafe(20)
            self._codes[code] = m.OAuthCode(
                code,
                guild.owner_id,
                tuple(scopes),
                redirect_uri,
                self.clock.time() + CODE_TTL,
                guild_id=guild_id,
                permissions=permissions,
            )
            return code

    def issue_user_token(self, user_id: str, scopes: Iterable[str] = ("identify", "guilds.join")) -> str:
        """Skip the code exchange: a valid bearer access token for `user_id`."""
        with self._lock:
            grant = m.OAuthGrant(next(m.grant_ids), user_id, tuple(scopes))
            return str(self._mint_tokens(grant)["access_token"])

    def expire_user_tokens(self, user_id: str) -> None:
        with self._lock:
            for tok in self._access_tokens.values():
                if tok.grant.user_id == user_id:
                    tok.force_expired = True

    def revoke_user_tokens(self, user_id: str) -> None:
        """The user deauthorized the app in their settings."""
        with self._lock:
            for tok in self._access_tokens.values():
                if tok.grant.user_id == user_id:
                    tok.grant.revoked = True

    # ------------------------------------------------------------------ interactions

    def sign_interaction(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        ts = timestamp if timestamp is not None else str(int(self.clock.time()))
        signature = self.interaction_keypair.sign(ts.encode() + body).signature
        return {"X-Signature-Ed25519": signature.hex(), "X-Signature-Timestamp": ts}

    def build_interaction(
        self,
        guild_id: str | None,
        user_id: str,
        command: str = "claim",
        options: dict[str, Any] | None = None,
        channel_id: str | None = None,
        interaction_type: int = 2,
    ) -> tuple[bytes, dict[str, str]]:
        """A signed APPLICATION_COMMAND (or PING with type=1) as Discord would POST it to the app."""
        with self._lock:
            interaction_id = self.new_id()
            token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)
            user = self.users[user_id].to_json()
            payload: dict[str, Any] = {
                "id": interaction_id,
                "application_id": self.application_id,
                "type": interaction_type,
                "token": token,
                "version": 1,
                "locale": "en-US",
                "entitlements": [],
                "authorizing_integration_owners": {"0": guild_id} if guild_id else {"1": user_id},
                "context": 0 if guild_id else 1,
            }
            if interaction_type != 1:
                payload["data"] = {
                    "id": self.new_id(),
                    "name": command,
                    "type": 1,
                    "options": [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()],
                }
                if guild_id:
                    guild = self._guild(guild_id)
                    member = guild.members.get(user_id)
                    bot = guild.members.get(self.bot_user_id)
                    payload["guild_id"] = guild_id
                    payload["guild"] = {"id": guild_id, "locale": "en-US", "features": []}
                    payload["member"] = {
                        "user": user,
                        "roles": sorted(member.roles) if member else [],
                        "joined_at": m.iso(member.joined_at) if member else None,
                        "nick": None,
                        "deaf": False,
                        "mute": False,
                        "pending": False,
                        "permissions": str(guild.permissions_of(member)) if member else "0",
                        "flags": 0,
                    }
                    payload["app_permissions"] = str(guild.permissions_of(bot)) if bot else "0"
                    payload["channel_id"] = channel_id or (guild.channel_ids[0] if guild.channel_ids else None)
                else:
                    payload["user"] = user
                    payload["channel_id"] = channel_id
            self.interactions[interaction_id] = {
                "token": token,
                "expires_at": self.clock.time() + 900,
                "acknowledged": False,
                "responses": [],
                "payload": payload,
            }
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", **self.sign_interaction(body)}
            return body, headers

    # ------------------------------------------------------------------ rate limits / faults

    def set_rate_limit(self, route: str, limit: int, window_seconds: float) -> None:
        """`route`: a route key like "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}" or a regex."""
        with self._lock:
            self._ratelimiter.set_limit(route, limit, window_seconds)

    def inject(
        self,
        method: str,
        path_regex: str,
        status: int | str,
        json: Any = None,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Next `times` matching requests get this response; status "connect_error" drops the connection.

        `path_regex` is searched in the URL path (e.g. r"/roles/"); method "*" matches any.
        """
        with self._lock:
            self._injections.append(
                Injection(method.upper(), re.compile(path_regex), status, json, dict(headers or {}), times)
            )

    def assert_no_violations(self) -> None:
        if self.violations:
            raise AssertionError("OpenAPI violations:\n" + "\n".join(str(v) for v in self.violations))

    def calls(self, route: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, filtered by route template substring and/or method."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and (route is None or route in (r.route or r.path))
        ]

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: httpx.Request, *, raise_violations: bool = False) -> httpx.Response:
        with self._lock:
            request.read()
            record = RecordedRequest(
                method=request.method,
                path=request.url.path,
                route=None,
                params={},
                query=dict(request.url.params),
                body=_parse_body(request),
                headers=request.headers,
                at=self.clock.time(),
                request=request,
            )
            if self.record_requests:
                self.requests.append(record)
            self.stats.total += 1
            try:
                response = self._dispatch(request, record, raise_violations)
            except InjectedConnectError:
                self.stats.injected += 1
                raise
            record.status = response.status_code
            self.stats.by_status[response.status_code] += 1
            if response.status_code in (401, 403) or (
                response.status_code == 429 and response.headers.get("X-RateLimit-Scope") != "shared"
            ):
                self.stats.invalid_requests += 1
            return response

    def _dispatch(self, request: httpx.Request, record: RecordedRequest, raise_violations: bool) -> httpx.Response:
        if self._validator is not None:
            try:
                self._validator.validate(request)
            except OpenAPIViolation as violation:
                self.violations.append(violation)
                self.stats.openapi_violations += 1
                if raise_violations:
                    raise
                if violation.kind == "unknown_path":
                    return not_found().to_response()
                if violation.kind == "method_not_allowed":
                    return method_not_allowed().to_response()
                return DiscordError(400, 50035, errors={"_errors": [{"message": str(violation)}]}).to_response()

        injected = self._take_injection(request)
        if injected is not None:
            self.stats.injected += 1
            if injected.status_code == 429:
                self.stats.rate_limited[injected.headers.get("X-RateLimit-Scope", "user")] += 1
            return injected

        path = request.url.path
        api_path = api_relative_path(path)
        if api_path is None or api_path == "/oauth2/authorize":
            if request.method == "GET" and path.rstrip("/").endswith("/oauth2/authorize"):
                return self._authorize(request)
            return not_found().to_response()

        if self.require_user_agent and not request.headers.get("User-Agent", "").startswith("DiscordBot"):
            # Discord's Cloudflare edge blocks clients without a library-style User-Agent.
            return DiscordError(403, 40333).to_response()

        route, params, allowed_methods = self._match(request.method, api_path)
        if route is None:
            return (method_not_allowed() if allowed_methods else not_found()).to_response()
        record.route, record.params = route.key, params
        self.stats.by_route[route.key] += 1

        try:
            auth = self._authenticate(request, route)
        except DiscordError as err:
            return err.to_response()

        exempt_global = route.template.startswith(("/interactions/", "/webhooks/"))
        limit_before = self._ratelimiter.global_limit
        if exempt_global:
            self._ratelimiter.global_limit = None
        try:
            decision = self._ratelimiter.check(auth.identity, route.key, params)
        finally:
            self._ratelimiter.global_limit = limit_before
        if not decision.allowed:
            assert decision.scope is not None
            self.stats.rate_limited[decision.scope] += 1
            if decision.scope == "global":
                self.stats.global_violations += int(decision.violation)
            else:
                self.stats.violations += int(decision.violation)
            body = {
                "message": "You are being rate limited.",
                "retry_after": round(decision.retry_after, 3),
                "global": decision.scope == "global",
            }
            return httpx.Response(429, json=body, headers=decision.headers)

        ctx = RequestContext(request, params, auth)
        try:
            response = route.handler(ctx)
        except (DiscordError, OAuthError) as err:
            response = err.to_response()
        for name, value in decision.headers.items():
            response.headers[name] = value
        return response

    def _take_injection(self, request: httpx.Request) -> httpx.Response | None:
        for injection in self._injections:
            if injection.method not in ("*", request.method) or not injection.path_regex.search(request.url.path):
                continue
            injection.times -= 1
            if injection.times <= 0:
                self._injections.remove(injection)
            if injection.status == "connect_error":
                raise InjectedConnectError(f"injected connection failure for {request.method} {request.url}")
            status = int(injection.status)
            body = injection.json
            headers = dict(injection.headers)
            if status == 429:
                body = {"message": "You are being rate limited.", "retry_after": 1.0, "global": False, **(body or {})}
                retry_after = float(body["retry_after"])
                headers.setdefault("Retry-After", str(max(1, int(retry_after + 0.999))))
                headers.setdefault("X-RateLimit-Scope", "global" if body.get("global") else "user")
                if body.get("global"):
                    headers.setdefault("X-RateLimit-Global", "true")
            elif body is None and status >= 500:
                body = {"message": f"{status}: Internal Server Error", "code": 0}
            if body is None:
                return httpx.Response(status, headers=headers)
            return httpx.Response(status, json=body, headers=headers)
        return None

    def _match(self, method: str, api_path: str) -> tuple[Route | None, dict[str, str], bool]:
        allowed = False
        for route in self._routes:
            found = route.regex.match(api_path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict(), True
            allowed = True
        return None, {}, allowed

    def _authenticate(self, request: httpx.Request, route: Route) -> Auth:
        header = request.headers.get("Authorization", "")
        if route.auth == "none":
            return Auth("none", f"anon:{route.template}")
        if header.startswith("Bot ") and route.auth in ("bot", "bot_or_bearer"):
            if header[4:] != self.bot_token:
                raise unauthorized()
            return Auth("bot", f"bot:{self.bot_token}")
        if header.startswith("Bearer ") and route.auth in ("bearer", "bot_or_bearer"):
            token = self._valid_access_token(header[7:])
            if token is None:
                raise unauthorized()
            return Auth("bearer", f"bearer:{token.token}", token)
        raise unauthorized()

    def _valid_access_token(self, raw: str) -> m.AccessToken | None:
        token = self._access_tokens.get(raw)
        if token is None or token.grant.revoked or token.force_expired or self.clock.time() >= token.expires_at:
            return None
        return token

    # ------------------------------------------------------------------ internal helpers

    def _guild(self, guild_id: str) -> m.Guild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise KeyError(f"unknown guild {guild_id}") from None

    def _bot_guild(self, guild_id: str) -> tuple[m.Guild, m.Member]:
        """The guild as the bot sees it; 10004 if it does not exist or the bot is not in it."""
        guild = self.guilds.get(guild_id)
        bot = guild.members.get(self.bot_user_id) if guild else None
        if guild is None or bot is None:
            raise DiscordError(404, 10004)
        return guild, bot

    def _require(self, guild: m.Guild, bot: m.Member, permission: int) -> None:
        if not guild.permissions_of(bot) & permission:
            raise DiscordError(403, 50013)

    def _check_assignable(self, guild: m.Guild, bot: m.Member, role_id: str) -> m.Role:
        role = guild.roles.get(role_id)
        if role is None or role_id == guild.id:
            raise DiscordError(404, 10011)
        self._require(guild, bot, m.MANAGE_ROLES)
        if role.managed or guild.highest_role(bot).sort_key() <= role.sort_key():
            raise DiscordError(403, 50013)
        return role

    def _member_json(self, guild: m.Guild, member: m.Member) -> dict[str, Any]:
        return {
            "user": self.users[member.user_id].to_json(),
            "nick": member.nick,
            "avatar": None,
            "banner": None,
            "roles": sorted(member.roles, key=int),
            "joined_at": m.iso(member.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": member.pending,
            "communication_disabled_until": None,
        }

    def _store_message(
        self, channel_id: str, author_id: str, content: str, extra: dict[str, Any] | None = None
    ) -> m.Message:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise KeyError(f"unknown channel {channel_id}")
        extra = extra or {}
        msg = m.Message(
            id=self.new_id(),
            channel_id=channel_id,
            author_id=author_id,
            content=content,
            timestamp=self.clock.time(),
            guild_id=channel.guild_id,
            embeds=list(extra.get("embeds") or []),
            components=list(extra.get("components") or []),
            allowed_mentions=extra.get("allowed_mentions"),
            flags=int(extra.get("flags") or 0),
        )
        self.messages.setdefault(channel_id, []).append(msg)
        channel.last_message_id = msg.id
        return msg

    def _message_json(self, msg: m.Message, *, redact: bool) -> dict[str, Any]:
        mentions = [uid for uid in MENTION_RE.findall(msg.content) if uid in self.users]
        channel = self.channels[msg.channel_id]
        hidden = (
            redact
            and not self.message_content_intent
            and msg.author_id != self.bot_user_id
            and channel.type != m.DM
            and self.bot_user_id not in mentions
        )
        data: dict[str, Any] = {
            "id": msg.id,
            "type": 0,
            "channel_id": msg.channel_id,
            "author": self.users[msg.author_id].to_json(),
            "content": "" if hidden else msg.content,
            "timestamp": m.iso(msg.timestamp),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [self.users[uid].to_json() for uid in dict.fromkeys(mentions)],
            "mention_roles": [],
            "attachments": [],
            "embeds": [] if hidden else msg.embeds,
            "components": [] if hidden else msg.components,
            "pinned": False,
            "flags": msg.flags,
        }
        if msg.guild_id:
            data["guild_id"] = msg.guild_id
        return data

    def _mint_tokens(self, grant: m.OAuthGrant) -> dict[str, Any]:
        access = m.AccessToken(secrets.token_urlsafe(22), grant, self.clock.time() + USER_TOKEN_TTL)
        refresh = m.RefreshToken(secrets.token_urlsafe(22), grant)
        self._access_tokens[access.token] = access
        self._refresh_tokens[refresh.token] = refresh
        return {
            "access_token": access.token,
            "token_type": "Bearer",
            "expires_in": USER_TOKEN_TTL,
            "refresh_token": refresh.token,
            "scope": " ".join(grant.scopes),
        }

    def _application_json(self) -> dict[str, Any]:
        return {
            "id": self.application_id,
            "name": self.application_name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": self.public_key_hex,
            "flags": 0,
        }

    # ------------------------------------------------------------------ OAuth2 endpoints

    def _authorize(self, request: httpx.Request) -> httpx.Response:
        q = request.url.params
        if q.get("client_id") != self.client_id:
            return httpx.Response(400, text="Invalid OAuth2 application (unknown client_id)")
        redirect_uri = q.get("redirect_uri")
        if redirect_uri and self.redirect_uris is not None and redirect_uri not in self.redirect_uris:
            return httpx.Response(400, text="Invalid OAuth2 redirect_uri")
        scopes = tuple(q.get("scope", "").split())
        if not scopes:
            return httpx.Response(400, text="No scopes were provided.")
        response_type = q.get("response_type")
        if "bot" in scopes:
            guild_id = q.get("guild_id") or next(iter(self.guilds), None)
            if guild_id is None or guild_id not in self.guilds:
                return httpx.Response(400, text="No server to add the bot to (seed a guild first)")
            permissions = int(q.get("permissions", "0") or 0)
            if response_type != "code" or not redirect_uri:
                self.install_bot(guild_id, permissions)
                return httpx.Response(200, text=f"Authorized: {self.application_name} was added to the server.")
            code = self.issue_bot_install_code(guild_id, permissions, redirect_uri, scopes)
            extra = {"guild_id": guild_id, "permissions": str(permissions)}
        else:
            if response_type != "code" or not redirect_uri:
                return httpx.Response(400, text="Only response_type=code with a redirect_uri is supported")
            user_id = self.authorizing_user_id or (self._added_users[-1] if self._added_users else None)
            if user_id is None:
                user_id = self.add_user(username="demo_user")
            code = self.issue_user_code(user_id, scopes, redirect_uri)
            extra = {}
        params = {"code": code, **({"state": q["state"]} if "state" in q else {}), **extra}
        separator = "&" if "?" in redirect_uri else "?"
        return httpx.Response(302, headers={"Location": f"{redirect_uri}{separator}{urlencode(params)}"})

    def _client_authenticated(self, request: httpx.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == self.client_id and secrets.compare_digest(secret, self.client_secret)

    def _oauth_token(self, ctx: RequestContext) -> httpx.Response:
        form = ctx.form() if _content_type(ctx.request) == "application/x-www-form-urlencoded" else {}
        if not self._client_authenticated(ctx.request, form):
            raise OAuthError(401, "invalid_client")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)
            if code is None or self.clock.time() >= code.expires_at:
                raise OAuthError(400, "invalid_grant", 'Invalid "code" in request.')
            if code.redirect_uri is not None and form.get("redirect_uri") != code.redirect_uri:
                raise OAuthError(400, "invalid_grant", 'Invalid "redirect_uri" in request.')
            body = self._mint_tokens(m.OAuthGrant(next(m.grant_ids), code.user_id, code.scopes))
            if code.guild_id is not None:
                body["guild"] = self.guilds[code.guild_id].to_json()
            return httpx.Response(200, json=body)
        if grant_type == "refresh_token":
            refresh = self._refresh_tokens.get(form.get("refresh_token", ""))
            if refresh is None or refresh.used or refresh.grant.revoked:
                raise OAuthError(400, "invalid_grant")
            refresh.used = True
            return httpx.Response(200, json=self._mint_tokens(refresh.grant))
        raise OAuthError(400, "unsupported_grant_type")

    def _oauth_revoke(self, ctx: RequestContext) -> httpx.Response:
        form = ctx.form()
        if not self._client_authenticated(ctx.request, form):
            raise OAuthError(401, "invalid_client")
        raw = form.get("token", "")
        token: m.AccessToken | m.RefreshToken | None = self._access_tokens.get(raw) or self._refresh_tokens.get(raw)
        if token is not None:
            token.grant.revoked = True
        return httpx.Response(200, json={})

    def _oauth_me(self, ctx: RequestContext) -> httpx.Response:
        token = ctx.auth.token
        if token is None:
            raise unauthorized()
        body: dict[str, Any] = {
            "application": self._application_json(),
            "scopes": list(token.grant.scopes),
            "expires": m.iso(token.expires_at),
        }
        if "identify" in token.grant.scopes:
            body["user"] = self.users[token.grant.user_id].to_json()
        return httpx.Response(200, json=body)

    # ------------------------------------------------------------------ users

    def _users_me(self, ctx: RequestContext) -> httpx.Response:
        if ctx.auth.kind == "bot":
            return httpx.Response(200, json=self.users[self.bot_user_id].to_json())
        token = ctx.auth.token
        assert token is not None
        if "identify" not in token.grant.scopes:
            raise unauthorized()
        user = self.users[token.grant.user_id]
        return httpx.Response(200, json=user.to_json(with_email="email" in token.grant.scopes))

    def _get_user(self, ctx: RequestContext) -> httpx.Response:
        user = self.users.get(ctx.params["user_id"])
        if user is None:
            raise DiscordError(404, 10013)
        return httpx.Response(200, json=user.to_json())

    def _my_guilds(self, ctx: RequestContext) -> httpx.Response:
        if ctx.auth.kind == "bot":
            user_id = self.bot_user_id
        else:
            assert ctx.auth.token is not None
            if "guilds" not in ctx.auth.token.grant.scopes:
                raise unauthorized()
            user_id = ctx.auth.token.grant.user_id
        guilds: list[dict[str, Any]] = [
            {
                "id": g.id,
                "name": g.name,
                "icon": None,
                "owner": g.owner_id == user_id,
                "permissions": str(g.permissions_of(g.members[user_id])),
                "features": [],
            }
            for g in sorted(self.guilds.values(), key=lambda g: int(g.id))
            if user_id in g.members
        ]
        return httpx.Response(200, json=guilds)

    def _my_guild_member(self, ctx: RequestContext) -> httpx.Response:
        token = ctx.auth.token
        assert token is not None
        if "guilds.members.read" not in token.grant.scopes:
            raise unauthorized()
        guild = self.guilds.get(ctx.params["guild_id"])
        member = guild.members.get(token.grant.user_id) if guild else None
        if guild is None or member is None:
            raise DiscordError(404, 10004)
        return httpx.Response(200, json=self._member_json(guild, member))

    def _create_dm(self, ctx: RequestContext) -> httpx.Response:
        body = ctx.json() or {}
        recipient_id = str(body.get("recipient_id", ""))
        if recipient_id not in self.users:
            raise DiscordError(
                400,
                50035,
                errors={
                    "recipient_id": {
                        "_errors": [
                            {"code": "NUMBER_TYPE_COERCE", "message": f'Value "{recipient_id}" is not snowflake.'}
                        ]
                    }
                },
            )
        channel_id = self._dm_channels.get(recipient_id)
        if channel_id is None:
            channel_id = self.new_id()
            self.channels[channel_id] = m.Channel(channel_id, None, type=m.DM, recipient_id=recipient_id)
            self.messages[channel_id] = []
            self._dm_channels[recipient_id] = channel_id
        return httpx.Response(200, json=self.channels[channel_id].to_json(self.users))

    # ------------------------------------------------------------------ guilds, roles, members

    def _get_guild(self, ctx: RequestContext) -> httpx.Response:
        guild, _ = self._bot_guild(ctx.params["guild_id"])
        body = guild.to_json()
        if ctx.query.get("with_counts") == "true":
            body["approximate_member_count"] = len(guild.members)
            body["approximate_presence_count"] = 0
        return httpx.Response(200, json=body)

    def _get_roles(self, ctx: RequestContext) -> httpx.Response:
        guild, _ = self._bot_guild(ctx.params["guild_id"])
        return httpx.Response(200, json=[r.to_json() for r in sorted(guild.roles.values(), key=m.Role.sort_key)])

    def _get_role(self, ctx: RequestContext) -> httpx.Response:
        guild, _ = self._bot_guild(ctx.params["guild_id"])
        role = guild.roles.get(ctx.params["role_id"])
        if role is None:
            raise DiscordError(404, 10011)
        return httpx.Response(200, json=role.to_json())

    def _get_guild_channels(self, ctx: RequestContext) -> httpx.Response:
        guild, _ = self._bot_guild(ctx.params["guild_id"])
        return httpx.Response(200, json=[self.channels[c].to_json(self.users) for c in guild.channel_ids])

    def _get_member(self, ctx: RequestContext) -> httpx.Response:
        guild, _ = self._bot_guild(ctx.params["guild_id"])
        member = guild.members.get(ctx.params["user_id"])
        if member is None:
            raise DiscordError(404, 10007)
        return httpx.Response(200, json=self._member_json(guild, member))

    def _list_members(self, ctx: RequestContext) -> httpx.Response:
        guild, _ = self._bot_guild(ctx.params["guild_id"])
        if not self.members_intent:
            raise DiscordError(403, 50001)
        limit = _int_param(ctx, "limit", 1, 1, 1000)
        after = _int_param(ctx, "after", 0, 0, None)
        members = sorted(
            (mb for mb in guild.members.values() if int(mb.user_id) > after), key=lambda mb: int(mb.user_id)
        )
        return httpx.Response(200, json=[self._member_json(guild, mb) for mb in members[:limit]])

    def _search_members(self, ctx: RequestContext) -> httpx.Response:
        guild, _ = self._bot_guild(ctx.params["guild_id"])
        if not self.members_intent:
            raise DiscordError(403, 50001)
        query = ctx.query.get("query")
        if query is None:
            raise form_error("query", "BASE_TYPE_REQUIRED", "This field is required")
        limit = _int_param(ctx, "limit", 1, 1, 1000)
        found = [
            mb
            for mb in sorted(guild.members.values(), key=lambda mb: int(mb.user_id))
            if self.users[mb.user_id].username.lower().startswith(query.lower())
            or (mb.nick or "").lower().startswith(query.lower())
        ]
        return httpx.Response(200, json=[self._member_json(guild, mb) for mb in found[:limit]])

    def _add_member(self, ctx: RequestContext) -> httpx.Response:
        guild, bot = self._bot_guild(ctx.params["guild_id"])
        user_id = ctx.params["user_id"]
        body = ctx.json() or {}
        self._require(guild, bot, m.CREATE_INSTANT_INVITE)
        token = self._valid_access_token(str(body.get("access_token", "")))
        if token is None or token.grant.user_id != user_id or "guilds.join" not in token.grant.scopes:
            raise DiscordError(403, 50025)
        if user_id in guild.members:
            return httpx.Response(204)
        if user_id in guild.bans:
            raise DiscordError(403, 40007)
        if self.users[user_id].at_guild_cap:
            raise DiscordError(400, 30001)
        roles = [str(r) for r in body.get("roles") or []]
        for role_id in roles:
            self._check_assignable(guild, bot, role_id)
        member = m.Member(user_id, set(roles), joined_at=self.clock.time(), nick=body.get("nick"))
        guild.members[user_id] = member
        self.audit_log.append({"action": "member_add", "guild_id": guild.id, "user_id": user_id, "roles": roles})
        return httpx.Response(201, json=self._member_json(guild, member))

    def _modify_member(self, ctx: RequestContext) -> httpx.Response:
        guild, bot = self._bot_guild(ctx.params["guild_id"])
        member = guild.members.get(ctx.params["user_id"])
        if member is None:
            raise DiscordError(404, 10007)
        body = ctx.json() or {}
        if "roles" in body and body["roles"] is not None:
            wanted = {str(r) for r in body["roles"]}
            for role_id in wanted ^ member.roles:
                self._check_assignable(guild, bot, role_id)
            member.roles = wanted
        if "nick" in body:
            member.nick = body["nick"]
        self.audit_log.append(
            {"action": "member_update", "guild_id": guild.id, "user_id": member.user_id, "reason": ctx.audit_reason()}
        )
        return httpx.Response(200, json=self._member_json(guild, member))

    def _kick_member(self, ctx: RequestContext) -> httpx.Response:
        guild, bot = self._bot_guild(ctx.params["guild_id"])
        member = guild.members.get(ctx.params["user_id"])
        if member is None:
            raise DiscordError(404, 10007)
        self._require(guild, bot, m.KICK_MEMBERS)
        if member.user_id == guild.owner_id or (
            guild.highest_role(member).sort_key() >= guild.highest_role(bot).sort_key()
        ):
            raise DiscordError(403, 50013)
        del guild.members[member.user_id]
        self.audit_log.append(
            {"action": "member_kick", "guild_id": guild.id, "user_id": member.user_id, "reason": ctx.audit_reason()}
        )
        return httpx.Response(204)

    def _member_role(self, ctx: RequestContext) -> httpx.Response:
        guild, bot = self._bot_guild(ctx.params["guild_id"])
        member = guild.members.get(ctx.params["user_id"])
        if member is None:
            raise DiscordError(404, 10007)
        role = self._check_assignable(guild, bot, ctx.params["role_id"])
        adding = ctx.request.method == "PUT"
        if adding:
            member.roles.add(role.id)
        else:
            member.roles.discard(role.id)
        self.audit_log.append(
            {
                "action": "member_role_add" if adding else "member_role_remove",
                "guild_id": guild.id,
                "user_id": member.user_id,
                "role_id": role.id,
                "reason": ctx.audit_reason(),
            }
        )
        return httpx.Response(204)

    # ------------------------------------------------------------------ channels, messages, invites

    def _visible_channel(self, channel_id: str) -> m.Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise DiscordError(404, 10003)
        if channel.guild_id is not None:
            guild = self.guilds[channel.guild_id]
            bot = guild.members.get(self.bot_user_id)
            if bot is None or not guild.permissions_of(bot) & m.VIEW_CHANNEL:
                raise DiscordError(403, 50001)
        return channel

    def _get_channel(self, ctx: RequestContext) -> httpx.Response:
        return httpx.Response(200, json=self._visible_channel(ctx.params["channel_id"]).to_json(self.users))

    def _list_messages(self, ctx: RequestContext) -> httpx.Response:
        channel = self._visible_channel(ctx.params["channel_id"])
        if channel.guild_id is not None:
            guild = self.guilds[channel.guild_id]
            if not guild.permissions_of(guild.members[self.bot_user_id]) & m.READ_MESSAGE_HISTORY:
                return httpx.Response(200, json=[])
        limit = _int_param(ctx, "limit", 50, 1, 100)
        anchors = [name for name in ("before", "after", "around") if name in ctx.query]
        if len(anchors) > 1:
            raise form_error("_errors", "TOO_MANY_ANCHORS", "before, after and around are mutually exclusive")
        ordered = self.messages.get(channel.id, [])  # oldest first
        if "after" in ctx.query:
            after = int(ctx.query["after"])
            # Discord returns the `limit` messages right after the anchor, newest of them first.
            picked = [msg for msg in ordered if int(msg.id) > after][:limit]
        elif "before" in ctx.query:
            before = int(ctx.query["before"])
            picked = [msg for msg in ordered if int(msg.id) < before][-limit:]
        elif "around" in ctx.query:
            around = int(ctx.query["around"])
            older = [msg for msg in ordered if int(msg.id) < around][-(limit // 2) :] if limit > 1 else []
            newer = [msg for msg in ordered if int(msg.id) >= around][: limit - len(older)]
            picked = older + newer
        else:
            picked = ordered[-limit:]
        return httpx.Response(200, json=[self._message_json(msg, redact=True) for msg in reversed(picked)])

    def _create_message(self, ctx: RequestContext) -> httpx.Response:
        channel = self._visible_channel(ctx.params["channel_id"])
        body = ctx.json() or {}
        if channel.type == m.DM:
            recipient = self.users[channel.recipient_id or ""]
            shares_guild = any(
                recipient.id in g.members and self.bot_user_id in g.members for g in self.guilds.values()
            )
            if not recipient.dms_open or not shares_guild:
                raise DiscordError(403, 50007)
        else:
            guild = self.guilds[channel.guild_id or ""]
            self._require(guild, guild.members[self.bot_user_id], m.SEND_MESSAGES)
        content = str(body.get("content") or "")
        if not content and not body.get("embeds") and not body.get("components") and not body.get("sticker_ids"):
            raise DiscordError(400, 50006)
        if len(content) > 2000:
            raise form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        msg = self._store_message(channel.id, self.bot_user_id, content, body)
        return httpx.Response(200, json=self._message_json(msg, redact=False))

    def _create_invite(self, ctx: RequestContext) -> httpx.Response:
        channel = self._visible_channel(ctx.params["channel_id"])
        if channel.guild_id is None:
            raise DiscordError(403, 50013)
        guild = self.guilds[channel.guild_id]
        bot = guild.members[self.bot_user_id]
        self._require(guild, bot, m.CREATE_INSTANT_INVITE)
        body = ctx.json()
        if body is None:
            raise form_error("_errors", "BASE_TYPE_REQUIRED", "A JSON body is required (send {})")
        max_age = int(body.get("max_age", 86400))
        max_uses = int(body.get("max_uses", 0))
        if not 0 <= max_age <= 604800:
            raise form_error("max_age", "NUMBER_TYPE_MAX", "int value should be less than or equal to 604800.")
        if not 0 <= max_uses <= 100:
            raise form_error("max_uses", "NUMBER_TYPE_MAX", "int value should be less than or equal to 100.")
        role_ids = [str(r) for r in body.get("role_ids") or []]
        for role_id in role_ids:
            self._check_assignable(guild, bot, role_id)
        reusable = next(
            (
                i
                for i in self.invites.values()
                if not body.get("unique")
                and i.channel_id == channel.id
                and i.max_age == max_age
                and i.max_uses == max_uses
                and not i.role_ids
                and not role_ids
            ),
            None,
        )
        invite = reusable or m.Invite(
            code=secrets.token_urlsafe(6)[:8],
            guild_id=guild.id,
            channel_id=channel.id,
            inviter_id=self.bot_user_id,
            max_age=max_age,
            max_uses=max_uses,
            temporary=bool(body.get("temporary", False)),
            created_at=self.clock.time(),
            role_ids=role_ids,
        )
        self.invites[invite.code] = invite
        return httpx.Response(200, json=self._invite_json(invite))

    def _invite_json(self, invite: m.Invite) -> dict[str, Any]:
        guild = self.guilds[invite.guild_id]
        channel = self.channels[invite.channel_id]
        return {
            "type": 0,
            "code": invite.code,
            "guild": {"id": guild.id, "name": guild.name, "icon": None, "features": []},
            "channel": {"id": channel.id, "type": channel.type, "name": channel.name},
            "inviter": self.users[invite.inviter_id].to_json(),
            "uses": invite.uses,
            "max_uses": invite.max_uses,
            "max_age": invite.max_age,
            "temporary": invite.temporary,
            "created_at": m.iso(invite.created_at),
            "expires_at": m.iso(invite.created_at + invite.max_age) if invite.max_age else None,
            "roles": [self.guilds[invite.guild_id].roles[r].to_json() for r in invite.role_ids],
        }

    def _get_invite(self, ctx: RequestContext) -> httpx.Response:
        invite = self.invites.get(ctx.params["code"])
        if invite is None:
            raise DiscordError(404, 10006)
        return httpx.Response(200, json=self._invite_json(invite))

    # ------------------------------------------------------------------ application commands

    def _commands_scope(self, ctx: RequestContext) -> str | None:
        if ctx.params["application_id"] != self.application_id:
            raise DiscordError(403, 50001)
        guild_id = ctx.params.get("guild_id")
        if guild_id is not None:
            self._bot_guild(guild_id)
        return guild_id

    def _command_json(
        self, guild_id: str | None, body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        command = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            **body,
            "id": existing["id"] if existing else self.new_id(),
            "application_id": self.application_id,
            "version": self.new_id(),
        }
        if guild_id is not None:
            command["guild_id"] = guild_id
        return command

    def _list_commands(self, ctx: RequestContext) -> httpx.Response:
        return httpx.Response(200, json=self.commands.get(self._commands_scope(ctx), []))

    def _overwrite_commands(self, ctx: RequestContext) -> httpx.Response:
        scope = self._commands_scope(ctx)
        previous = {c["name"]: c for c in self.commands.get(scope, [])}
        self.commands[scope] = [self._command_json(scope, c, previous.get(c["name"])) for c in ctx.json() or []]
        return httpx.Response(200, json=self.commands[scope])

    def _create_command(self, ctx: RequestContext) -> httpx.Response:
        scope = self._commands_scope(ctx)
        body = ctx.json() or {}
        current = self.commands.setdefault(scope, [])
        existing = next((c for c in current if c["name"] == body.get("name")), None)
        command = self._command_json(scope, body, existing)
        if existing is not None:
            current[current.index(existing)] = command
            return httpx.Response(200, json=command)
        current.append(command)
        return httpx.Response(201, json=command)

    # ------------------------------------------------------------------ interaction responses

    def _interaction(self, interaction_id: str, token: str) -> dict[str, Any]:
        found = self.interactions.get(interaction_id)
        if found is None or found["token"] != token or self.clock.time() >= found["expires_at"]:
            raise DiscordError(404, 10062)
        return found

    def _interaction_by_token(self, application_id: str, token: str) -> dict[str, Any]:
        if application_id != self.application_id:
            raise DiscordError(404, 10015, "Unknown Webhook")
        for interaction_id, found in self.interactions.items():
            if found["token"] == token:
                return self._interaction(interaction_id, token)
        raise DiscordError(404, 10015, "Unknown Webhook")

    def _interaction_callback(self, ctx: RequestContext) -> httpx.Response:
        found = self._interaction(ctx.params["interaction_id"], ctx.params["interaction_token"])
        if found["acknowledged"]:
            raise DiscordError(400, 40060)
        found["acknowledged"] = True
        found["responses"].append({"kind": "callback", "body": ctx.json()})
        return httpx.Response(204)

    def _webhook_original(self, ctx: RequestContext) -> httpx.Response:
        found = self._interaction_by_token(ctx.params["webhook_id"], ctx.params["webhook_token"])
        body = ctx.json() or {}
        found["responses"].append({"kind": f"{ctx.request.method.lower()}_original", "body": body})
        if ctx.request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(
            200, json={"id": self.new_id(), "content": body.get("content", ""), "flags": body.get("flags", 0)}
        )

    def _webhook_followup(self, ctx: RequestContext) -> httpx.Response:
        found = self._interaction_by_token(ctx.params["webhook_id"], ctx.params["webhook_token"])
        body = ctx.json() or {}
        found["responses"].append({"kind": "followup", "body": body})
        return httpx.Response(
            200, json={"id": self.new_id(), "content": body.get("content", ""), "flags": body.get("flags", 0)}
        )

    # ------------------------------------------------------------------ routing table

    def _build_routes(self) -> list[Route]:
        r = Route
        return [
            r("POST", "/oauth2/token", self._oauth_token, "none"),
            r("POST", "/oauth2/token/revoke", self._oauth_revoke, "none"),
            r("GET", "/oauth2/@me", self._oauth_me, "bearer"),
            r("GET", "/users/@me", self._users_me, "bot_or_bearer"),
            r("GET", "/users/@me/guilds", self._my_guilds, "bot_or_bearer"),
            r("GET", "/users/@me/guilds/{guild_id}/member", self._my_guild_member, "bearer"),
            r("POST", "/users/@me/channels", self._create_dm, "bot"),
            r("GET", "/users/{user_id}", self._get_user, "bot"),
            r("GET", "/guilds/{guild_id}", self._get_guild, "bot"),
            r("GET", "/guilds/{guild_id}/roles", self._get_roles, "bot"),
            r("GET", "/guilds/{guild_id}/roles/{role_id}", self._get_role, "bot"),
            r("GET", "/guilds/{guild_id}/channels", self._get_guild_channels, "bot"),
            r("GET", "/guilds/{guild_id}/members", self._list_members, "bot"),
            r("GET", "/guilds/{guild_id}/members/search", self._search_members, "bot"),
            r("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member, "bot"),
            r("PUT", "/guilds/{guild_id}/members/{user_id}", self._add_member, "bot"),
            r("PATCH", "/guilds/{guild_id}/members/{user_id}", self._modify_member, "bot"),
            r("DELETE", "/guilds/{guild_id}/members/{user_id}", self._kick_member, "bot"),
            r("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self._member_role, "bot"),
            r("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self._member_role, "bot"),
            r("GET", "/channels/{channel_id}", self._get_channel, "bot"),
            r("GET", "/channels/{channel_id}/messages", self._list_messages, "bot"),
            r("POST", "/channels/{channel_id}/messages", self._create_message, "bot"),
            r("POST", "/channels/{channel_id}/invites", self._create_invite, "bot"),
            r("GET", "/invites/{code}", self._get_invite, "none"),
            r("GET", "/applications/{application_id}/commands", self._list_commands, "bot"),
            r("PUT", "/applications/{application_id}/commands", self._overwrite_commands, "bot"),
            r("POST", "/applications/{application_id}/commands", self._create_command, "bot"),
            r("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self._list_commands, "bot"),
            r("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self._overwrite_commands, "bot"),
            r("POST", "/applications/{application_id}/guilds/{guild_id}/commands", self._create_command, "bot"),
            r(
                "POST",
                "/interactions/{interaction_id}/{interaction_token}/callback",
                self._interaction_callback,
                "none",
            ),
            r("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", self._webhook_original, "none"),
            r("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", self._webhook_original, "none"),
            r("POST", "/webhooks/{webhook_id}/{webhook_token}", self._webhook_followup, "none"),
        ]


def _content_type(request: httpx.Request) -> str:
    return str(request.headers.get("content-type", "")).split(";")[0].strip().lower()


def _parse_body(request: httpx.Request) -> Any:
    if not request.content:
        return None
    kind = _content_type(request)
    if kind == "application/json":
        try:
            return json.loads(request.content)
        except ValueError:
            return request.content
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(request.content.decode("utf-8", "replace"), keep_blank_values=True))
    return request.content


def _int_param(ctx: RequestContext, name: str, default: int, low: int, high: int | None) -> int:
    raw = ctx.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise form_error(name, "NUMBER_TYPE_COERCE", f'Value "{raw}" is not int.') from None
    if value < low or (high is not None and value > high):
        raise form_error(
            name,
            "NUMBER_TYPE_MAX" if high and value > high else "NUMBER_TYPE_MIN",
            f"int value should be between {low} and {high}.",
        )
    return value
