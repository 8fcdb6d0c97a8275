"""RateLimiter unit tests (fake clock / MockTransport) and the acceptance test against the fake Discord."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from saleor_discord_app.discord import DiscordClient, RateLimiter, limiter_for
from saleor_discord_app.discord.ratelimit import reset_registry, route_for
from tests.discord.support import FakeTime


def limited(remaining: int, reset_after: float, bucket: str = "abc", limit: int = 5) -> httpx.Response:
    return httpx.Response(
        204,
        headers={
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        },
    )


def test_route_keys_keep_major_params_and_hide_minor_ids() -> None:
    route = route_for("put", "/guilds/123456789/members/987654321/roles/555555555")
    assert route.template == "PUT /guilds/{guild_id}/members/{id}/roles/{id}"
    assert route.major == "123456789"
    assert route.key == "PUT /guilds/123456789/members/{id}/roles/{id}"
    assert route_for("GET", "/channels/4444444/messages?after=5555555").key == "GET /channels/4444444/messages"
    assert route_for("GET", "/users/@me").major == ""
    cmd = route_for("PUT", "/applications/7777777/guilds/8888888/commands")
    assert (cmd.template, cmd.major) == ("PUT /applications/{id}/guilds/{guild_id}/commands", "8888888")
    hook = route_for("POST", "/webhooks/7777777/tok-en")
    assert hook.major == "7777777/tok-en"


def test_waits_for_reset_when_bucket_is_empty() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep, safety_margin=0.0)
    path = "/guilds/1111111/members/2222222/roles/3333333"
    ticket = limiter.acquire("PUT", path)
    limiter.complete(ticket, limited(remaining=1, reset_after=2.0))
    t.now += 0.5
    limiter.complete(limiter.acquire("PUT", path), limited(remaining=0, reset_after=1.5))
    assert t.sleeps == []
    limiter.acquire("PUT", path)  # bucket empty → waits until reset
    assert t.sleeps == [pytest.approx(1.5)]
    assert limiter.stats.waited_seconds == pytest.approx(1.5)


def test_local_reservations_stop_concurrent_overspend() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep, safety_margin=0.0)
    path = "/guilds/1111111/members/2222222/roles/3333333"
    limiter.complete(limiter.acquire("PUT", path), limited(remaining=2, reset_after=1.0))
    first = limiter.acquire("PUT", path)
    second = limiter.acquire("PUT", path)  # both reserved before any response came back
    assert t.sleeps == []
    third = threading.Thread(target=limiter.acquire, args=("PUT", path))
    third.start()  # must wait for the window although no header said 0 yet ...
    time.sleep(0.05)
    assert t.sleeps == [pytest.approx(1.0)]
    assert third.is_alive()  # ... and then for the in-flight requests of the old window to report back
    limiter.complete(first, limited(remaining=1, reset_after=0.0))
    limiter.complete(second, limited(remaining=0, reset_after=0.0))
    third.join(timeout=2)
    assert not third.is_alive()
    assert limiter.stats.requests_sent == 4


def test_buckets_are_per_major_param_but_learned_per_route() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    limiter.complete(limiter.acquire("PUT", "/guilds/1111111/members/2/roles/3"), limited(0, 5.0, "hash1"))
    # Same route in another guild: a separate bucket, not empty.
    limiter.complete(limiter.acquire("PUT", "/guilds/9999999/members/2/roles/3"), limited(4, 5.0, "hash1"))
    assert t.sleeps == []
    # Another route sharing the bucket hash in guild 1 learns the shared bucket from its response only.
    limiter.acquire("PUT", "/guilds/1111111/members/2/roles/3")
    assert t.sleeps == [pytest.approx(5.0 + limiter.safety_margin)]


def test_global_limit_is_proactive() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep, global_limit=3, global_period=1.0, safety_margin=0.0)
    for i in range(7):
        limiter.complete(limiter.acquire("GET", f"/channels/{1000000 + i}"), httpx.Response(200))
    # 7 requests at 3/s: two full waits of 1 s.
    assert t.now - 1000.0 == pytest.approx(2.0)
    assert limiter.stats.requests_sent == 7


def test_global_429_pauses_every_route() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep, safety_margin=0.0)
    ticket = limiter.acquire("PUT", "/guilds/1111111/members/2/roles/3")
    limiter.complete(
        ticket,
        httpx.Response(
            429,
            json={"message": "global", "retry_after": 2.5, "global": True},
            headers={"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"},
        ),
    )
    limiter.acquire("GET", "/channels/4444444")  # unrelated route still waits
    assert t.sleeps == [pytest.approx(2.5)]
    assert limiter.stats.rate_limited == {"global": 1}


def test_unknown_bucket_allows_one_request_in_flight() -> None:
    limiter = RateLimiter()
    events: list[tuple[str, int]] = []
    lock = threading.Lock()
    counter = iter(range(100))

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            n = next(counter)
            events.append(("start", n))
        time.sleep(0.03 if n == 0 else 0.001)
        with lock:
            events.append(("end", n))
        return limited(remaining=10, reset_after=5.0, limit=10)

    client = DiscordClient(
        "t", base_url="https://d.test/api/v10", transport=httpx.MockTransport(handler), limiter=limiter
    )
    threads = [
        threading.Thread(target=client.add_role, args=("1111111", str(2000000 + i), "3"), kwargs={"reason": "x"})
        for i in range(5)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(events) == 10
    assert events[:2] == [("start", 0), ("end", 0)]  # the burst waited for the first response


def test_unknown_bucket_learns_then_bursts_to_remaining() -> None:
    limiter = RateLimiter(global_limit=1000)
    lock = threading.Lock()
    state = {"remaining": 3, "in_flight": 0, "peak": 0, "sent": 0, "over": 0}
    window_start = [time.monotonic()]

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            now = time.monotonic()
            if now - window_start[0] >= 0.1:
                window_start[0], state["remaining"] = now, 3
            state["in_flight"] += 1
            state["peak"] = max(state["peak"], state["in_flight"])
            state["sent"] += 1
            if state["remaining"] <= 0:
                state["over"] += 1
            state["remaining"] -= 1
            headers = {
                "X-RateLimit-Limit": "3",
                "X-RateLimit-Remaining": str(max(0, state["remaining"])),
                "X-RateLimit-Reset-After": f"{0.1 - (now - window_start[0]):.3f}",
                "X-RateLimit-Bucket": "b1",
            }
        time.sleep(0.005)
        with lock:
            state["in_flight"] -= 1
        return httpx.Response(204, headers=headers)

    client = DiscordClient(
        "t", base_url="https://d.test/api/v10", transport=httpx.MockTransport(handler), limiter=limiter
    )
    threads = [
        threading.Thread(target=client.add_role, args=("1111111", str(2000000 + i), "3"), kwargs={"reason": "x"})
        for i in range(12)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert state["sent"] == 12
    assert state["over"] == 0  # never sent while the bucket was empty
    assert state["peak"] <= 3


def test_limiter_registry_is_per_token() -> None:
    reset_registry()
    try:
        assert limiter_for("token-a") is limiter_for("token-a")
        assert limiter_for("token-a") is not limiter_for("token-b")
        assert DiscordClient("token-a").limiter is limiter_for("token-a")
    finally:
        reset_registry()


# ---------------------------------------------------------------- acceptance against the fake Discord


def _fake_available() -> bool:
    try:
        import tests.fakes.discord as fake_pkg

        return hasattr(fake_pkg, "FakeDiscord")
    except ImportError:
        return False


@pytest.mark.skipif(not _fake_available(), reason="tests.fakes.discord.FakeDiscord not available yet")
def test_acceptance_500_grants_with_tight_limits_and_injected_errors() -> None:
    from tests.fakes.discord import FakeDiscord

    fake = FakeDiscord(bot_token="test-bot-token")
    guilds = [fake.add_guild(name=f"Guild {i}") for i in range(2)]
    roles = {g: [fake.add_role(g, name=f"Tier {j}", position=1) for j in range(5)] for g in guilds}
    users = [fake.add_user(username=f"user{i}") for i in range(50)]
    for g in guilds:
        for u in users:
            fake.add_member(g, u)
    # Tight limits: 5 role grants per 0.1 s per guild (2 guilds → 100/s), and 80 requests/s globally.
    fake.set_rate_limit("PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}", 5, 0.1)
    fake.global_limit = 80
    role_route = r"/guilds/\d+/members/\d+/roles/\d+$"
    user_429 = {"message": "You are being rate limited.", "retry_after": 0.05, "global": False}
    global_429 = {"message": "You are being rate limited.", "retry_after": 0.1, "global": True}
    fake.inject("PUT", role_route, 429, json=user_429, headers={"X-RateLimit-Scope": "user"}, times=2)
    fake.inject("PUT", role_route, 429, json=global_429, times=1)
    fake.inject("PUT", role_route, 500, times=2)
    injected_failures = 5

    limiter = RateLimiter(global_limit=80)
    # Interleaved so that worker threads keep both guilds busy.
    grants = [(g, u, r) for u in users for j in range(5) for g in guilds for r in [roles[g][j]]]
    assert len(set(grants)) == 500
    errors: list[BaseException] = []

    def work(chunk: list[tuple[str, str, str]]) -> None:
        client = DiscordClient(
            "test-bot-token", base_url=fake.api_base_url, transport=fake.transport, limiter=limiter, max_retries=5
        )
        client.backoff_base = 0.01
        try:
            for g, u, r in chunk:
                client.add_role(g, u, r, reason="acceptance")
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(grants[i::8],)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - started
    assert errors == []

    for g, u, r in grants:
        assert r in (fake.member_roles(g, u) or set())
    puts = fake.calls(method="PUT")
    applied = Counter((c.params["guild_id"], c.params["user_id"], c.params["role_id"]) for c in puts if c.status == 204)
    assert set(applied) == set(grants)
    assert set(applied.values()) == {1}  # every grant applied exactly once
    assert len(puts) == len(grants) + injected_failures  # no extra attempts beyond the injected failures
    stats = fake.stats
    ours = limiter.stats
    print(
        f"\nacceptance: {len(grants)} grants in {elapsed:.2f}s ({len(puts) / elapsed:.1f} req/s); "
        f"429s received: {ours.rate_limited_total} {ours.rate_limited} (injected: 3); "
        f"fake 429s: {dict(stats.rate_limited)}; violations: {stats.violations}/{stats.global_violations}; "
        f"waited {ours.waited_seconds:.1f}s across threads"
    )
    assert stats["violations"] == 0
    assert stats["global_violations"] == 0
    assert ours.rate_limited == {"user": 2, "global": 1}  # exactly the injected ones: no organic 429s
    assert sum(stats.rate_limited.values()) == 3
    assert elapsed < 15
