"""Tests of the fake Discord itself: it must behave like the real API where our app depends on it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from tests.fakes.discord import DiscordOpenAPIValidator, FakeDiscord, ManualClock, OpenAPIViolation

UA = "DiscordBot (https://store.test, 1.0)"
REDIRECT = "https://store.test/discord/callback"
ROLE_ROUTE = "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> FakeDiscord:
    return FakeDiscord(clock=clock)


@pytest.fixture
def bot(fake: FakeDiscord) -> Iterator[httpx.Client]:
    with fake.client() as client:
        yield client


@pytest.fixture
def anon(fake: FakeDiscord) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.api_base_url, transport=fake.transport, headers={"User-Agent": UA}) as client:
        yield client


@pytest.fixture
def guild(fake: FakeDiscord) -> str:
    return fake.add_guild("Store", bot_role_position=10)


def exchange(anon: httpx.Client, fake: FakeDiscord, code: str, redirect_uri: str = REDIRECT) -> httpx.Response:
    return anon.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
        auth=(fake.client_id, fake.client_secret),
    )


def user_token(fake: FakeDiscord, anon: httpx.Client, user_id: str) -> str:
    response = exchange(anon, fake, fake.issue_user_code(user_id))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# ---------------------------------------------------------------- members and roles


def test_add_member_returns_201_with_roles_then_204_without_applying_roles(
    fake: FakeDiscord, bot: httpx.Client, anon: httpx.Client, guild: str
) -> None:
    vip = fake.add_role(guild, "VIP", 5)
    extra = fake.add_role(guild, "Extra", 4)
    user = fake.add_user(username="alice")
    token = user_token(fake, anon, user)

    first = bot.put(f"/guilds/{guild}/members/{user}", json={"access_token": token, "roles": [vip]})
    assert first.status_code == 201
    assert first.json()["roles"] == [vip]
    assert first.json()["user"]["id"] == user

    second = bot.put(f"/guilds/{guild}/members/{user}", json={"access_token": token, "roles": [extra]})
    assert second.status_code == 204
    assert second.content == b""
    assert fake.member_roles(guild, user) == {vip}


def test_add_member_rejects_token_of_other_user_or_without_guilds_join(
    fake: FakeDiscord, bot: httpx.Client, anon: httpx.Client, guild: str
) -> None:
    alice, bob = fake.add_user(username="alice"), fake.add_user(username="bob")
    alice_token = user_token(fake, anon, alice)
    identify_only = exchange(anon, fake, fake.issue_user_code(bob, scopes=("identify",))).json()["access_token"]

    for user, token in [(bob, alice_token), (bob, identify_only)]:
        response = bot.put(f"/guilds/{guild}/members/{user}", json={"access_token": token})
        assert response.status_code == 403
        assert response.json() == {"message": "Invalid OAuth2 access token", "code": 50025}

    fake.expire_user_tokens(alice)
    response = bot.put(f"/guilds/{guild}/members/{alice}", json={"access_token": alice_token})
    assert response.json()["code"] == 50025
    assert fake.member_roles(guild, alice) is None


def test_role_errors_follow_discord_codes(fake: FakeDiscord, bot: httpx.Client, guild: str) -> None:
    below = fake.add_role(guild, "Member", 5)
    above = fake.add_role(guild, "Admins", 20)
    tie_newer = fake.add_role(guild, "Same position, newer id", 10)
    managed = fake.add_role(guild, "Booster", 2, managed=True)
    user = fake.add_user()
    fake.add_member(guild, user)

    def put(role: str, member: str = user) -> httpx.Response:
        return bot.put(f"/guilds/{guild}/members/{member}/roles/{role}")

    assert put(below).status_code == 204
    assert fake.member_roles(guild, user) == {below}
    assert put(below).status_code == 204  # idempotent

    assert put(tie_newer).status_code == 204  # equal positions: the older id (the bot's role) ranks higher
    for role in (above, managed):
        response = put(role)
        assert (response.status_code, response.json()) == (403, {"message": "Missing Permissions", "code": 50013})
    for role in (guild, "999999999999999999"):  # @everyone has the guild's id
        response = put(role)
        assert (response.status_code, response.json()) == (404, {"message": "Unknown Role", "code": 10011})

    stranger = fake.add_user(username="stranger")
    assert put(below, stranger).json() == {"message": "Unknown Member", "code": 10007}
    assert bot.delete(f"/guilds/{guild}/members/{stranger}/roles/{below}").json()["code"] == 10007

    assert bot.delete(f"/guilds/{guild}/members/{user}/roles/{below}").status_code == 204
    assert fake.member_roles(guild, user) == {tie_newer}

    fake.set_role_position(guild, above, 3)  # admin drags the role below the bot's
    assert put(above).status_code == 204


def test_missing_manage_roles_and_bot_not_in_guild(fake: FakeDiscord, bot: httpx.Client) -> None:
    no_perms = fake.add_guild("No perms", bot_permissions=0)
    role = fake.add_role(no_perms, "Member", 1)
    user = fake.add_user()
    fake.add_member(no_perms, user)
    assert bot.put(f"/guilds/{no_perms}/members/{user}/roles/{role}").json()["code"] == 50013

    fake.remove_bot(no_perms)
    response = bot.put(f"/guilds/{no_perms}/members/{user}/roles/{role}")
    assert (response.status_code, response.json()["code"]) == (404, 10004)
    assert bot.get(f"/guilds/{no_perms}").json() == {"message": "Unknown Guild", "code": 10004}


def test_kick_respects_hierarchy(fake: FakeDiscord, bot: httpx.Client, guild: str) -> None:
    admin_role = fake.add_role(guild, "Admins", 20)
    plain, admin = fake.add_user(username="plain"), fake.add_user(username="admin")
    fake.add_member(guild, plain)
    fake.add_member(guild, admin, roles=[admin_role])

    assert bot.delete(f"/guilds/{guild}/members/{admin}").json()["code"] == 50013
    assert (
        bot.delete(f"/guilds/{guild}/members/{plain}", headers={"X-Audit-Log-Reason": "order%20expired"}).status_code
        == 204
    )
    assert fake.member_roles(guild, plain) is None
    assert fake.audit_log[-1]["reason"] == "order expired"
    assert bot.delete(f"/guilds/{guild}/members/{plain}").json()["code"] == 10007


def test_get_and_list_members_paging(fake: FakeDiscord, bot: httpx.Client, guild: str) -> None:
    users = [fake.add_user(username=f"u{i}") for i in range(5)]
    for user in users:
        fake.add_member(guild, user)
    assert bot.get(f"/guilds/{guild}/members/{users[0]}").json()["user"]["username"] == "u0"
    assert bot.get(f"/guilds/{guild}/members/{fake.add_user()}").json()["code"] == 10007

    everyone = sorted(fake.guilds[guild].members, key=int)  # includes the owner and the bot, as on Discord
    assert [m["user"]["id"] for m in bot.get(f"/guilds/{guild}/members").json()] == everyone[:1]  # default 1
    seen: list[str] = []
    after = "0"
    while page := bot.get(f"/guilds/{guild}/members", params={"limit": 3, "after": after}).json():
        seen += [m["user"]["id"] for m in page]
        after = page[-1]["user"]["id"]
    assert seen == everyone

    fake.members_intent = False
    assert bot.get(f"/guilds/{guild}/members").json()["code"] == 50001


def test_roles_include_bot_managed_role_with_tags(fake: FakeDiscord, bot: httpx.Client, guild: str) -> None:
    roles = bot.get(f"/guilds/{guild}/roles").json()
    everyone = next(r for r in roles if r["id"] == guild)
    bot_role = next(r for r in roles if r.get("tags", {}).get("bot_id") == fake.application_id)
    assert everyone["position"] == 0
    assert (bot_role["position"], bot_role["managed"], bot_role["permissions"]) == (10, True, "268502019")
    assert bot.get("/users/@me").json()["id"] == fake.application_id


# ---------------------------------------------------------------- auth


def test_bad_bot_token_and_missing_user_agent(fake: FakeDiscord, guild: str) -> None:
    with httpx.Client(base_url=fake.api_base_url, transport=fake.transport) as client:
        wrong = client.get(f"/guilds/{guild}", headers={"Authorization": "Bot nope", "User-Agent": UA})
        assert (wrong.status_code, wrong.json()) == (401, {"message": "401: Unauthorized", "code": 0})
        missing = client.get(f"/guilds/{guild}", headers={"User-Agent": UA})
        assert missing.status_code == 401
        no_ua = client.get(f"/guilds/{guild}", headers={"Authorization": f"Bot {fake.bot_token}", "User-Agent": "x"})
        assert (no_ua.status_code, no_ua.json()["code"]) == (403, 40333)


# ---------------------------------------------------------------- OAuth2


def test_code_exchange_is_single_use_and_bound_to_redirect_uri(fake: FakeDiscord, anon: httpx.Client) -> None:
    user = fake.add_user(username="alice", email="alice@example.test")
    code = fake.issue_user_code(user, scopes=("identify", "email", "guilds.join"))
    assert exchange(anon, fake, code, "https://evil.test/cb").json()["error"] == "invalid_grant"

    code = fake.issue_user_code(user, scopes=("identify", "email", "guilds.join"))
    ok = exchange(anon, fake, code)
    body = ok.json()
    assert ok.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 604800
    assert set(body["scope"].split()) == {"identify", "email", "guilds.join"}
    assert "guild" not in body

    again = exchange(anon, fake, code)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")

    me = anon.get("/users/@me", headers={"Authorization": f"Bearer {body['access_token']}"}).json()
    assert (me["id"], me["email"]) == (user, "alice@example.test")
    info = anon.get("/oauth2/@me", headers={"Authorization": f"Bearer {body['access_token']}"}).json()
    assert info["user"]["id"] == user
    assert set(info["scopes"]) == {"identify", "email", "guilds.join"}


def test_token_endpoint_client_auth_and_form_encoding(fake: FakeDiscord, anon: httpx.Client) -> None:
    user = fake.add_user()
    via_form = anon.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": fake.issue_user_code(user),
            "redirect_uri": REDIRECT,
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
        },
    )
    assert via_form.status_code == 200
    bad_secret = anon.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": fake.issue_user_code(user), "redirect_uri": REDIRECT},
        auth=(fake.client_id, "wrong"),
    )
    assert (bad_secret.status_code, bad_secret.json()) == (401, {"error": "invalid_client"})
    with pytest.raises(OpenAPIViolation, match="JSON is not permitted"):
        anon.post("/oauth2/token", json={"grant_type": "authorization_code", "code": "x"})


def test_refresh_rotates_and_revoke_kills_the_grant(fake: FakeDiscord, anon: httpx.Client, clock: ManualClock) -> None:
    user = fake.add_user()
    first = exchange(anon, fake, fake.issue_user_code(user)).json()
    auth = (fake.client_id, fake.client_secret)

    def refresh(token: str) -> httpx.Response:
        return anon.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": token}, auth=auth)

    second = refresh(first["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert refresh(first["refresh_token"]).json()["error"] == "invalid_grant"

    new_access = second.json()["access_token"]
    assert anon.get("/users/@me", headers={"Authorization": f"Bearer {new_access}"}).status_code == 200
    clock.advance(604800)
    assert anon.get("/users/@me", headers={"Authorization": f"Bearer {new_access}"}).status_code == 401

    third = refresh(second.json()["refresh_token"]).json()
    assert anon.post("/oauth2/token/revoke", data={"token": third["access_token"]}, auth=auth).status_code == 200
    assert anon.get("/users/@me", headers={"Authorization": f"Bearer {third['access_token']}"}).status_code == 401
    assert refresh(third["refresh_token"]).json()["error"] == "invalid_grant"


def test_expired_user_token_gets_401(fake: FakeDiscord, anon: httpx.Client) -> None:
    user = fake.add_user()
    token = user_token(fake, anon, user)
    fake.expire_user_tokens(user)
    response = anon.get("/users/@me", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()) == (401, {"message": "401: Unauthorized", "code": 0})


def test_bot_install_code_returns_guild_and_adds_bot(fake: FakeDiscord, anon: httpx.Client) -> None:
    guild = fake.add_guild("Fresh", bot_in_guild=False, bot_role_position=7)
    assert fake.member_roles(guild, fake.bot_user_id) is None
    code = fake.issue_bot_install_code(guild, redirect_uri="https://store.test/discord/bot-callback")
    body = exchange(anon, fake, code, "https://store.test/discord/bot-callback").json()
    assert body["guild"]["id"] == guild
    assert body["guild"]["name"] == "Fresh"
    assert set(body["scope"].split()) == {"bot", "applications.commands"}
    bot_role = fake.bot_role(guild)
    assert bot_role is not None
    assert bot_role.position == 7
    assert fake.member_roles(guild, fake.bot_user_id) == {bot_role.id}


def test_authorize_redirects_with_code_and_state(fake: FakeDiscord, anon: httpx.Client) -> None:
    guild = fake.add_guild("Fresh", bot_in_guild=False)
    user = fake.add_user(username="alice")
    with httpx.Client(transport=fake.transport) as browser:
        response = browser.get(
            "https://discord.test/oauth2/authorize",
            params={
                "client_id": fake.client_id,
                "response_type": "code",
                "scope": "identify guilds.join",
                "redirect_uri": REDIRECT,
                "state": "csrf123",
            },
        )
        assert response.status_code == 302
        query = parse_qs(urlsplit(response.headers["Location"]).query)
        assert query["state"] == ["csrf123"]
        token = exchange(anon, fake, query["code"][0]).json()["access_token"]
        assert anon.get("/users/@me", headers={"Authorization": f"Bearer {token}"}).json()["id"] == user

        install = browser.get(
            "https://discord.test/oauth2/authorize",
            params={
                "client_id": fake.client_id,
                "response_type": "code",
                "scope": "bot applications.commands",
                "permissions": "268502019",
                "redirect_uri": "https://store.test/bot-callback",
                "state": "s2",
            },
        )
        query = parse_qs(urlsplit(install.headers["Location"]).query)
        assert query["guild_id"] == [guild]
        assert fake.member_roles(guild, fake.bot_user_id)
        assert exchange(anon, fake, query["code"][0], "https://store.test/bot-callback").json()["guild"]["id"] == guild


# ---------------------------------------------------------------- rate limits and injected faults


def test_per_route_bucket_429_headers_and_major_parameter(
    fake: FakeDiscord, bot: httpx.Client, clock: ManualClock
) -> None:
    guild_a, guild_b = fake.add_guild("A"), fake.add_guild("B")
    user = fake.add_user()
    roles = {}
    for g in (guild_a, guild_b):
        roles[g] = fake.add_role(g, "Member", 1)
        fake.add_member(g, user)
    fake.set_rate_limit(ROLE_ROUTE, 2, 5.0)

    ok = [bot.put(f"/guilds/{guild_a}/members/{user}/roles/{roles[guild_a]}") for _ in range(2)]
    assert [r.status_code for r in ok] == [204, 204]
    assert ok[0].headers["X-RateLimit-Limit"] == "2"
    assert [r.headers["X-RateLimit-Remaining"] for r in ok] == ["1", "0"]
    assert float(ok[1].headers["X-RateLimit-Reset-After"]) == pytest.approx(5.0)
    assert float(ok[1].headers["X-RateLimit-Reset"]) == pytest.approx(clock.time() + 5.0)

    limited = bot.put(f"/guilds/{guild_a}/members/{user}/roles/{roles[guild_a]}")
    assert limited.status_code == 429
    assert limited.json() == {"message": "You are being rate limited.", "retry_after": 5.0, "global": False}
    assert limited.headers["Retry-After"] == "5"
    assert limited.headers["X-RateLimit-Scope"] == "user"
    assert limited.headers["X-RateLimit-Bucket"] == ok[0].headers["X-RateLimit-Bucket"]
    assert "X-RateLimit-Global" not in limited.headers

    other_guild = bot.put(f"/guilds/{guild_b}/members/{user}/roles/{roles[guild_b]}")
    assert other_guild.status_code == 204  # separate bucket per guild_id
    assert other_guild.headers["X-RateLimit-Bucket"] == ok[0].headers["X-RateLimit-Bucket"]

    clock.advance(5.0)
    assert bot.put(f"/guilds/{guild_a}/members/{user}/roles/{roles[guild_a]}").status_code == 204
    assert fake.stats.rate_limited["user"] == 1
    assert fake.stats.violations == 1
    assert fake.stats.by_status[429] == 1


def test_global_limit_429(fake: FakeDiscord, bot: httpx.Client, guild: str, clock: ManualClock) -> None:
    fake.global_limit = 3
    statuses = [bot.get(f"/guilds/{guild}/roles" if i % 2 else f"/guilds/{guild}").status_code for i in range(3)]
    assert statuses == [200, 200, 200]
    limited = bot.get(f"/guilds/{guild}/channels")
    assert limited.status_code == 429
    assert limited.json()["global"] is True
    assert limited.headers["X-RateLimit-Global"] == "true"
    assert limited.headers["X-RateLimit-Scope"] == "global"
    assert 0 < limited.json()["retry_after"] <= 1.0
    assert bot.get(f"/guilds/{guild}/channels").status_code == 429
    assert fake.stats.rate_limited["global"] == 2
    assert fake.stats.global_violations == 1
    clock.advance(1.0)
    assert bot.get(f"/guilds/{guild}/channels").status_code == 200


def test_inject_overrides_response_then_recovers(fake: FakeDiscord, bot: httpx.Client, guild: str) -> None:
    fake.inject("GET", r"/roles$", 500, times=2)
    fake.inject("GET", r"/channels$", 429, json={"retry_after": 2.5})
    fake.inject("*", rf"/guilds/{guild}$", "connect_error")

    assert [bot.get(f"/guilds/{guild}/roles").status_code for _ in range(3)] == [500, 500, 200]
    limited = bot.get(f"/guilds/{guild}/channels")
    assert (limited.status_code, limited.json()["retry_after"], limited.headers["Retry-After"]) == (429, 2.5, "3")
    with pytest.raises(httpx.ConnectError):
        bot.get(f"/guilds/{guild}")
    assert bot.get(f"/guilds/{guild}").status_code == 200
    assert fake.stats.injected == 4


# ---------------------------------------------------------------- OpenAPI validation


def test_openapi_rejects_unknown_path_and_bad_body(fake: FakeDiscord, bot: httpx.Client, guild: str) -> None:
    user = fake.add_user()
    with pytest.raises(OpenAPIViolation, match="no path template"):
        bot.get(f"/guilds/{guild}/members/{user}/rolez")
    with pytest.raises(OpenAPIViolation, match="access_token"):
        bot.put(f"/guilds/{guild}/members/{user}", json={"roles": ["1"]})
    with pytest.raises(OpenAPIViolation, match="not under /api/v10"):
        bot.get("https://discord.test/api/v9/users/@me")
    with pytest.raises(OpenAPIViolation, match="unknown query parameter"):
        bot.get(f"/guilds/{guild}/members", params={"limt": 5})
    with pytest.raises(OpenAPIViolation, match="path parameter"):
        bot.get("/guilds/not-a-snowflake")
    assert len(fake.violations) == 5
    with pytest.raises(AssertionError):
        fake.assert_no_violations()


def test_openapi_violation_without_raising_returns_discord_error(guild: str, fake: FakeDiscord) -> None:
    fake.raise_on_violation = False
    with fake.client() as client:
        assert client.get("/nope").json() == {"message": "404: Not Found", "code": 0}
        assert client.post(f"/guilds/{guild}/members/1").status_code == 405
        assert client.post("/channels/1/invites").json()["code"] == 50035  # body is required
    assert [v.kind for v in fake.violations] == ["unknown_path", "method_not_allowed", "bad_body"]


def test_validator_is_fast_enough_for_benchmarks() -> None:
    validator = DiscordOpenAPIValidator.shared()
    requests = [
        httpx.Request("PUT", "https://discord.test/api/v10/guilds/1/members/2/roles/3"),
        httpx.Request(
            "PUT", "https://discord.test/api/v10/guilds/1/members/2", json={"access_token": "t", "roles": ["3"]}
        ),
        httpx.Request("GET", "https://discord.test/api/v10/channels/1/messages?after=5&limit=50"),
    ]
    started = time.perf_counter()
    for _ in range(1000):
        for request in requests:
            validator.validate(request)
    assert time.perf_counter() - started < 3.0


# ---------------------------------------------------------------- messages, invites, DMs, commands


def test_messages_newest_first_and_after_returns_oldest_page(fake: FakeDiscord, bot: httpx.Client, guild: str) -> None:
    channel = fake.add_channel(guild, "verify")
    user = fake.add_user(username="buyer")
    fake.add_member(guild, user)
    ids = [fake.post_message(channel, user, f"!claim CODE{i}") for i in range(5)]

    newest = bot.get(f"/channels/{channel}/messages", params={"limit": 2}).json()
    assert [m["id"] for m in newest] == [ids[4], ids[3]]
    after = bot.get(f"/channels/{channel}/messages", params={"after": ids[1], "limit": 2}).json()
    assert [m["id"] for m in after] == [ids[3], ids[2]]  # the 2 right after the anchor, newest first
    assert after[0]["content"] == "!claim CODE3"
    assert after[0]["author"]["id"] == user

    sent = bot.post(f"/channels/{channel}/messages", json={"content": "Claimed!", "allowed_mentions": {"parse": []}})
    assert sent.status_code == 200
    assert fake.channel_messages(channel)[-1]["content"] == "Claimed!"
    assert bot.post(f"/channels/{channel}/messages", json={"content": ""}).json()["code"] == 50006

    fake.message_content_intent = False
    redacted = bot.get(f"/channels/{channel}/messages", params={"limit": 2}).json()
    assert [m["content"] for m in redacted] == ["Claimed!", ""]  # own messages stay visible


def test_invite_and_dm(fake: FakeDiscord, bot: httpx.Client, guild: str) -> None:
    channel = fake.add_channel(guild, "welcome")
    invite = bot.post(f"/channels/{channel}/invites", json={"max_age": 3600, "max_uses": 1, "unique": True})
    assert invite.status_code == 200
    assert invite.json()["max_uses"] == 1
    assert bot.post("/channels/123/invites", json={}).json()["code"] == 10003

    user = fake.add_user()
    dm = bot.post("/users/@me/channels", json={"recipient_id": user}).json()
    assert dm["type"] == 1
    assert bot.post(f"/channels/{dm['id']}/messages", json={"content": "hi"}).json()["code"] == 50007  # no mutual guild
    fake.add_member(guild, user)
    assert bot.post(f"/channels/{dm['id']}/messages", json={"content": "hi"}).status_code == 200
    assert bot.post("/users/@me/channels", json={"recipient_id": user}).json()["id"] == dm["id"]


def test_bulk_overwrite_commands(fake: FakeDiscord, bot: httpx.Client, guild: str) -> None:
    command = {
        "name": "claim",
        "type": 1,
        "description": "Claim your purchase",
        "options": [{"type": 3, "name": "code", "description": "Claim code", "required": True}],
    }
    first = bot.put(f"/applications/{fake.application_id}/guilds/{guild}/commands", json=[command])
    assert first.status_code == 200
    second = bot.put(f"/applications/{fake.application_id}/guilds/{guild}/commands", json=[command])
    assert second.json()[0]["id"] == first.json()[0]["id"]
    assert bot.get(f"/applications/{fake.application_id}/guilds/{guild}/commands").json()[0]["name"] == "claim"


# ---------------------------------------------------------------- interactions


def test_interaction_signature_verifies_with_pynacl(fake: FakeDiscord, guild: str) -> None:
    user = fake.add_user()
    fake.add_member(guild, user)
    body, headers = fake.build_interaction(guild, user, "claim", {"code": "ABC-123"})
    verify_key = VerifyKey(bytes.fromhex(fake.public_key_hex))
    timestamp = headers["X-Signature-Timestamp"]
    verify_key.verify(timestamp.encode() + body, bytes.fromhex(headers["X-Signature-Ed25519"]))
    with pytest.raises(BadSignatureError):
        verify_key.verify(timestamp.encode() + body + b" ", bytes.fromhex(headers["X-Signature-Ed25519"]))

    signed = fake.sign_interaction(b'{"type":1}', timestamp="1700000000")
    assert signed["X-Signature-Timestamp"] == "1700000000"
    verify_key.verify(b'1700000000{"type":1}', bytes.fromhex(signed["X-Signature-Ed25519"]))


# ---------------------------------------------------------------- transports and real HTTP


def test_async_transport_works_with_async_client(fake: FakeDiscord, guild: str) -> None:
    async def fetch() -> int:
        headers = {"Authorization": f"Bot {fake.bot_token}", "User-Agent": UA}
        async with httpx.AsyncClient(base_url=fake.api_base_url, transport=fake.async_transport, headers=headers) as c:
            return (await c.get(f"/guilds/{guild}/roles")).status_code

    assert asyncio.run(fetch()) == 200


def test_standalone_server_over_real_http(fake: FakeDiscord, guild: str) -> None:
    user = fake.add_user()
    fake.add_member(guild, user)
    with fake.serve() as url:
        headers = {"Authorization": f"Bot {fake.bot_token}", "User-Agent": UA}
        with httpx.Client(base_url=f"{url}/api/v10", headers=headers) as client:
            member = client.get(f"/guilds/{guild}/members/{user}")
            assert member.status_code == 200
            assert member.headers["X-RateLimit-Bucket"]
            assert client.get("/definitely/not/discord").json() == {"message": "404: Not Found", "code": 0}
            fake.inject("GET", "/roles$", "connect_error")
            with pytest.raises(httpx.RemoteProtocolError):
                client.get(f"/guilds/{guild}/roles")
            authorize = client.get(
                f"{url}/oauth2/authorize",
                params={
                    "client_id": fake.client_id,
                    "response_type": "code",
                    "scope": "identify",
                    "redirect_uri": REDIRECT,
                    "state": "xyz",
                },
            )
            assert authorize.status_code == 302
            assert authorize.headers["Location"].startswith(REDIRECT + "?code=")
    assert fake.violations
    assert fake.violations[0].kind == "unknown_path"


def test_interaction_callback_and_followups(fake: FakeDiscord, guild: str) -> None:
    user = fake.add_user()
    fake.add_member(guild, user)
    body, _ = fake.build_interaction(guild, user, "claim", {"code": "ABC"})
    payload = json.loads(body)
    assert payload["data"]["options"] == [{"name": "code", "type": 3, "value": "ABC"}]
    assert payload["member"]["user"]["id"] == user
    with httpx.Client(base_url=fake.api_base_url, transport=fake.transport, headers={"User-Agent": UA}) as client:
        callback = f"/interactions/{payload['id']}/{payload['token']}/callback"
        assert client.post(callback, json={"type": 5, "data": {"flags": 64}}).status_code == 204
        assert client.post(callback, json={"type": 5, "data": {"flags": 64}}).json()["code"] == 40060
        original = f"/webhooks/{fake.application_id}/{payload['token']}/messages/@original"
        assert client.patch(original, json={"content": "Role granted"}).status_code == 200
    kinds = [r["kind"] for r in fake.interactions[payload["id"]]["responses"]]
    assert kinds == ["callback", "patch_original"]
