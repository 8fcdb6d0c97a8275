"""DiscordClient behaviour against small httpx.MockTransport handlers (exact header scenarios)."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import unquote

import httpx
import pytest

from saleor_discord_app.discord import (
    AlreadyDone,
    DiscordClient,
    DiscordOAuthClient,
    InvalidUserToken,
    NeedsAttention,
    NotAMember,
    RateLimiter,
    RetryLater,
    audit_reason,
    classify,
)
from tests.discord.support import FakeTime

Handler = Callable[[httpx.Request], httpx.Response]
BASE = "https://discord.test/api/v10"


class Recorder:
    """A handler that answers from a script (one response per call; the last one repeats)."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        return item


def err(status: int, code: int | None = None, message: str = "error", **extra: object) -> httpx.Response:
    body: dict[str, object] = {"message": message, **extra}
    if code is not None:
        body["code"] = code
    return httpx.Response(status, json=body)


@pytest.fixture
def ftime() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(ftime: FakeTime) -> Callable[..., tuple[DiscordClient, RateLimiter]]:
    def make(handler: Handler, **limiter_options: float) -> tuple[DiscordClient, RateLimiter]:
        limiter = RateLimiter(clock=ftime.clock, sleep=ftime.sleep, **limiter_options)  # type: ignore[arg-type]
        client = DiscordClient(
            "secret-bot-token", base_url=BASE, transport=httpx.MockTransport(handler), limiter=limiter, max_retries=3
        )
        return client, limiter

    return make


# ---------------------------------------------------------------- requests look right


def test_headers_and_audit_reason(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    rec = Recorder(httpx.Response(204))
    client, _ = make_client(rec)
    client.add_role("111111", "222222", "333333", reason="store: order #1234 paid ✓")
    request = rec.requests[0]
    assert request.method == "PUT"
    assert request.url == f"{BASE}/guilds/111111/members/222222/roles/333333"
    assert request.headers["Authorization"] == "Bot secret-bot-token"
    assert request.headers["User-Agent"].startswith("DiscordBot (")
    assert request.headers["X-Audit-Log-Reason"] == "store%3A%20order%20%231234%20paid%20%E2%9C%93"
    assert unquote(request.headers["X-Audit-Log-Reason"]) == "store: order #1234 paid ✓"


def test_audit_reason_is_capped_at_512_encoded_chars_without_splitting_escapes() -> None:
    encoded = audit_reason("é" * 400)  # each é is %C3%A9 = 6 chars
    assert len(encoded) <= 512
    assert len(encoded) == 510
    assert unquote(encoded) == "é" * 85
    assert len(audit_reason("a" * 600)) == 512


def test_every_change_sends_an_audit_reason(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    rec = Recorder(httpx.Response(204))
    client, _ = make_client(rec)
    client.remove_role("111111", "222222", "333333", reason="expired")
    client.kick("111111", "222222", reason="expired")
    rec.responses = [httpx.Response(200, json={"code": "abc"})]
    client.create_invite("444444", max_age=3600, max_uses=1, reason="invite for order 7")
    rec.responses = [httpx.Response(201, json={"user": {"id": "222222"}})]
    client.add_member("111111", "222222", access_token="user-token", role_ids=["333333"], reason="paid")
    assert [r.headers.get("X-Audit-Log-Reason") for r in rec.requests] == [
        "expired",
        "expired",
        "invite%20for%20order%207",
        "paid",
    ]
    assert json.loads(rec.requests[2].content) == {"max_age": 3600, "max_uses": 1, "unique": True}


def test_add_member_201_vs_204(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    rec = Recorder(httpx.Response(201, json={"user": {"id": "222222"}, "roles": ["333333"]}), httpx.Response(204))
    client, _ = make_client(rec)
    assert client.add_member("111111", "222222", access_token="tok", role_ids=["333333"]) is True
    assert client.add_member("111111", "222222", access_token="tok", role_ids=["333333"]) is False
    assert json.loads(rec.requests[0].content) == {"access_token": "tok", "roles": ["333333"]}


def test_add_member_with_dead_user_token(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    client, limiter = make_client(Recorder(err(403, 50025, "Invalid OAuth2 access token")))
    with pytest.raises(InvalidUserToken):
        client.add_member("111111", "222222", access_token="dead", role_ids=[])
    assert not limiter.stats.breaker_open  # the bot token is fine


def test_send_message_disables_mentions(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    rec = Recorder(httpx.Response(200, json={"id": "9"}))
    client, _ = make_client(rec)
    client.send_message("444444", "hi @everyone", reply_to="555555")
    assert json.loads(rec.requests[0].content) == {
        "content": "hi @everyone",
        "allowed_mentions": {"parse": []},
        "message_reference": {"message_id": "555555", "fail_if_not_exists": False},
    }


def test_get_member_none_on_unknown_member(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    client, _ = make_client(Recorder(err(404, 10007, "Unknown Member")))
    assert client.get_member("111111", "222222") is None


def test_iter_member_pages_pages_by_highest_id(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    members = [{"user": {"id": str(100000 + i)}} for i in range(5)]

    def handler(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params["after"])
        limit = int(request.url.params["limit"])
        page = [m for m in members if int(m["user"]["id"]) > after][:limit]
        return httpx.Response(200, json=list(reversed(page)))  # order must not matter

    client, _ = make_client(handler)
    pages = list(client.iter_member_pages("111111", page_size=2))
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(m["user"]["id"] for p in pages for m in p) == [m["user"]["id"] for m in members]


def test_bulk_overwrite_commands_paths(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    rec = Recorder(httpx.Response(200, json=[{"name": "claim"}]))
    client, _ = make_client(rec)
    client.bulk_overwrite_commands("777777", [{"name": "claim"}])
    client.bulk_overwrite_commands("777777", [{"name": "claim"}], guild_id="111111")
    assert [r.url.path for r in rec.requests] == [
        "/api/v10/applications/777777/commands",
        "/api/v10/applications/777777/guilds/111111/commands",
    ]


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize("code", [50013, 10011, 10004, 10003, 50001, 40007, 30001])
def test_config_errors_need_attention_and_are_not_retried(
    make_client: Callable[..., tuple[DiscordClient, RateLimiter]], code: int
) -> None:
    status = 403 if code in (50013, 50001, 40007) else (400 if code == 30001 else 404)
    rec = Recorder(err(status, code))
    client, _ = make_client(rec)
    with pytest.raises(NeedsAttention) as info:
        client.add_role("111111", "222222", "333333", reason="paid")
    assert len(rec.requests) == 1
    assert info.value.code == code
    assert info.value.status == status
    assert "Discord" in info.value.reason
    assert len(info.value.reason) > 40


def test_missing_permissions_reason_explains_role_hierarchy(
    make_client: Callable[..., tuple[DiscordClient, RateLimiter]],
) -> None:
    rec = Recorder(err(403, 50013, "Missing Permissions"))
    client, _ = make_client(rec)
    with pytest.raises(NeedsAttention) as info:
        client.add_role("111111", "222222", "333333", reason="paid")
    assert "Roles" in info.value.reason
    assert "drag the bot's role above" in info.value.reason
    assert len(rec.requests) == 1


def test_unknown_member_on_removal_is_quiet(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    rec = Recorder(err(404, 10007, "Unknown Member"))
    client, _ = make_client(rec)
    client.remove_role("111111", "222222", "333333", reason="expired")
    client.kick("111111", "222222", reason="expired")
    assert len(rec.requests) == 2
    with pytest.raises(NotAMember):  # but adding a role to a non-member needs a rejoin
        client.add_role("111111", "222222", "333333", reason="paid")


def test_classify_directly() -> None:
    assert isinstance(classify(err(404, 10007), operation="kick"), AlreadyDone)
    assert isinstance(classify(err(404, 10007), operation="add_role"), NotAMember)
    assert isinstance(
        classify(err(401, 0, "401: Unauthorized"), operation="get_user", user_token=True), InvalidUserToken
    )
    assert isinstance(classify(err(400, None, error="invalid_grant"), operation="refresh_token"), InvalidUserToken)
    limited = classify(err(429, None, "slow down", retry_after=1.5, **{"global": False}), operation="add_role")
    assert isinstance(limited, RetryLater)
    assert limited.retry_after == 1.5
    assert isinstance(classify(httpx.Response(502, text="<html>"), operation="add_role"), RetryLater)
    generic = classify(err(400, 50035, "Invalid Form Body"), operation="create_invite")
    assert isinstance(generic, NeedsAttention)
    assert "create invite" in generic.reason


# ---------------------------------------------------------------- retries


def test_5xx_three_times_then_success_after_backoff(
    make_client: Callable[..., tuple[DiscordClient, RateLimiter]], ftime: FakeTime
) -> None:
    rec = Recorder(err(500), httpx.Response(502, text="bad gateway"), err(503), httpx.Response(204))
    client, limiter = make_client(rec)
    client.add_role("111111", "222222", "333333", reason="paid")
    assert len(rec.requests) == 4
    assert len(ftime.sleeps) == 3
    assert ftime.sleeps[0] < ftime.sleeps[1] < ftime.sleeps[2]  # exponential
    assert limiter.stats.waited_seconds == pytest.approx(sum(ftime.sleeps))


def test_5xx_forever_raises_retry_later(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    rec = Recorder(err(500))
    client, _ = make_client(rec)
    with pytest.raises(RetryLater) as info:
        client.add_role("111111", "222222", "333333", reason="paid")
    assert info.value.status == 500
    assert len(rec.requests) == 4  # 1 + max_retries


def test_network_error_raises_retry_later(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    rec = Recorder(httpx.ConnectError("boom"))
    client, limiter = make_client(rec)
    with pytest.raises(RetryLater):
        client.get_guild("111111")
    assert len(rec.requests) == 4
    # released reservations: the next request is not stuck behind an "in-flight" probe
    rec.responses = [httpx.Response(200, json={"id": "111111"})]
    assert client.get_guild("111111") == {"id": "111111"}
    assert limiter.stats.requests_sent == 5


def test_429_waits_retry_after_from_json_body(
    make_client: Callable[..., tuple[DiscordClient, RateLimiter]], ftime: FakeTime
) -> None:
    limited = httpx.Response(
        429,
        json={"message": "You are being rate limited.", "retry_after": 0.75, "global": False},
        headers={"Retry-After": "1", "X-RateLimit-Scope": "user"},
    )
    rec = Recorder(limited, httpx.Response(204))
    client, limiter = make_client(rec)
    client.add_role("111111", "222222", "333333", reason="paid")
    assert len(rec.requests) == 2
    assert ftime.sleeps == [pytest.approx(0.75 + limiter.safety_margin)]
    assert limiter.stats.rate_limited == {"user": 1}


def test_429_forever_raises_retry_later(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    rec = Recorder(httpx.Response(429, json={"message": "slow", "retry_after": 2.0, "global": False}))
    client, _ = make_client(rec)
    with pytest.raises(RetryLater) as info:
        client.add_role("111111", "222222", "333333", reason="paid")
    assert info.value.retry_after == 2.0
    assert len(rec.requests) == 4


def test_cloudflare_429_without_json_trips_the_breaker(
    make_client: Callable[..., tuple[DiscordClient, RateLimiter]], ftime: FakeTime
) -> None:
    rec = Recorder(httpx.Response(429, text="<html>banned</html>", headers={"Retry-After": "3600"}))
    client, limiter = make_client(rec)
    with pytest.raises(RetryLater) as info:
        client.get_guild("111111")
    assert info.value.retry_after is not None
    assert info.value.retry_after >= 3600
    assert len(rec.requests) == 1
    with pytest.raises(RetryLater):  # nothing is sent while banned
        client.get_guild("111111")
    assert len(rec.requests) == 1
    assert limiter.stats.breaker_open
    assert limiter.stats.rate_limited == {"cloudflare": 1}
    ftime.now += 3601
    rec.responses = [httpx.Response(200, json={"id": "111111"})]
    assert client.get_guild("111111") == {"id": "111111"}


def test_401_stops_every_client_of_the_token(make_client: Callable[..., tuple[DiscordClient, RateLimiter]]) -> None:
    rec = Recorder(err(401, 0, "401: Unauthorized"))
    client, limiter = make_client(rec)
    with pytest.raises(NeedsAttention) as info:
        client.get_guild("111111")
    assert "bot token" in info.value.reason
    other = DiscordClient("secret-bot-token", base_url=BASE, transport=httpx.MockTransport(rec), limiter=limiter)
    rec.responses = [httpx.Response(200, json={})]
    with pytest.raises(NeedsAttention):
        other.get_roles("111111")
    assert len(rec.requests) == 1


def test_invalid_request_breaker_trips_and_clears(
    make_client: Callable[..., tuple[DiscordClient, RateLimiter]], ftime: FakeTime
) -> None:
    rec = Recorder(err(403, 50013, "Missing Permissions"))
    client, limiter = make_client(rec, invalid_request_threshold=5, invalid_request_window=60.0)
    for _ in range(5):
        with pytest.raises(NeedsAttention):
            client.add_role("111111", "222222", "333333", reason="paid")
        ftime.now += 1
    with pytest.raises(RetryLater) as info:
        client.add_role("111111", "222222", "333333", reason="paid")
    assert len(rec.requests) == 5
    assert info.value.retry_after == pytest.approx(55.0)
    assert limiter.stats.breaker_open
    ftime.now += 56
    with pytest.raises(NeedsAttention):  # window cleared: sends again
        client.add_role("111111", "222222", "333333", reason="paid")
    assert len(rec.requests) == 6


def test_shared_scope_429s_do_not_count_as_invalid(
    make_client: Callable[..., tuple[DiscordClient, RateLimiter]],
) -> None:
    shared = httpx.Response(
        429, json={"message": "shared", "retry_after": 0.1, "global": False}, headers={"X-RateLimit-Scope": "shared"}
    )
    rec = Recorder(shared, shared, httpx.Response(204))
    client, limiter = make_client(rec, invalid_request_threshold=2)
    client.add_role("111111", "222222", "333333", reason="paid")
    assert limiter.stats.invalid_requests_in_window == 0
    assert limiter.stats.rate_limited == {"shared": 2}


def test_tokens_are_not_logged(
    make_client: Callable[..., tuple[DiscordClient, RateLimiter]], capsys: pytest.CaptureFixture[str]
) -> None:
    rec = Recorder(err(500), err(403, 50025, "Invalid OAuth2 access token"))
    client, _ = make_client(rec)
    with pytest.raises(InvalidUserToken):
        client.add_member("111111", "222222", access_token="user-secret-token", role_ids=[])
    out = capsys.readouterr()
    assert "secret-bot-token" not in out.out + out.err
    assert "user-secret-token" not in out.out + out.err


# ---------------------------------------------------------------- OAuth client


def test_oauth_exchange_refresh_user_revoke() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/oauth2/token"):
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            if form.get("code") == "bad" or form.get("refresh_token") == "revoked":
                return httpx.Response(400, json={"error": "invalid_grant", "error_description": "Invalid code"})
            return httpx.Response(
                200,
                json={
                    "access_token": "at",
                    "token_type": "Bearer",
                    "expires_in": 604800,
                    "refresh_token": "rt",
                    "scope": "identify guilds.join",
                },
            )
        if request.url.path.endswith("/oauth2/token/revoke"):
            return httpx.Response(200, json={})
        if request.headers.get("Authorization") == "Bearer at":
            return httpx.Response(200, json={"id": "222222", "username": "alice"})
        return httpx.Response(401, json={"message": "401: Unauthorized", "code": 0})

    oauth = DiscordOAuthClient("cid", "csecret", base_url=BASE, transport=httpx.MockTransport(handler))
    token = oauth.exchange_code("good", "https://app.example/cb")
    assert token.access_token == "at"
    assert token.scopes == {"identify", "guilds.join"}
    assert seen[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen[0].headers["Authorization"].startswith("Basic ")
    assert oauth.refresh("rt").refresh_token == "rt"
    assert oauth.get_user("at")["id"] == "222222"
    oauth.revoke("at")
    with pytest.raises(InvalidUserToken):
        oauth.exchange_code("bad", "https://app.example/cb")
    with pytest.raises(InvalidUserToken):
        oauth.refresh("revoked")
    with pytest.raises(InvalidUserToken):
        oauth.get_user("expired")
