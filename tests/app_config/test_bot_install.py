"""Bot install (F2): authorize URL → Discord (the fake) → callback stores the server of the token response."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from saleor_discord_app import signing
from saleor_discord_app.models import AuditEvent, DiscordServer, Installation, UsedNonce
from saleor_discord_app.sqltypes import utcnow
from tests.app_config.conftest import CALLBACK, headers
from tests.conftest import install
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.models import DEFAULT_BOT_PERMISSIONS, MANAGE_ROLES
from tests.fakes.saleor import FakeSaleor


def authorize(client: TestClient, fake_saleor: FakeSaleor, guild_id: str | None = None) -> str:
    params = {"guild_id": guild_id} if guild_id else {}
    response = client.get("/api/discord/bot-install", params=params, headers=headers(fake_saleor))
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url


def owner_approves(discord_fake: FakeDiscord, url: str) -> dict[str, str]:
    """The guild owner clicks "Authorize" on Discord's page: Discord redirects back with code and state."""
    with httpx.Client(transport=discord_fake.transport) as browser:
        response = browser.get(url)
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def servers(session: Session) -> list[DiscordServer]:
    session.expire_all()
    return list(session.exec(select(DiscordServer).order_by(DiscordServer.id)))  # type: ignore[arg-type]


def test_authorize_url_asks_for_least_privilege_and_binds_the_store(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, discord_fake: FakeDiscord
) -> None:
    url = urlsplit(authorize(client, fake_saleor, guild_id="900000000000000001"))
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://discord.test/oauth2/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    state = query.pop("state")
    assert query == {
        "client_id": discord_fake.client_id,
        "scope": "bot applications.commands",
        "permissions": "268504067",
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "integration_type": "0",
        "guild_id": "900000000000000001",
        "disable_guild_select": "true",
    }
    data = signing.unsign("bot-install", state)
    assert data["i"] == installation.id
    assert data["_nonce"]
    assert data["_exp"] - utcnow().timestamp() <= 15 * 60
    assert "guild_id" not in parse_qs(urlsplit(authorize(client, fake_saleor)).query)
    assert client.get("/api/discord/bot-install", headers=headers(fake_saleor, "MANAGE_ORDERS")).status_code == 403
    assert client.get("/api/discord/bot-install").status_code == 401


def test_round_trip_stores_the_guild_of_the_token_response(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, discord_fake: FakeDiscord,
    session: Session,
) -> None:
    guild = discord_fake.add_guild("Pro Traders", bot_in_guild=False)
    decoy = discord_fake.add_guild("Someone Else's Server", bot_in_guild=False)
    callback = owner_approves(discord_fake, authorize(client, fake_saleor, guild_id=guild))
    assert callback["guild_id"] == guild
    assert callback["permissions"] == "268504067"
    assert servers(session) == []

    lied = {**callback, "guild_id": decoy}  # the query string is only a hint and can be edited
    response = client.get("/discord/bot/callback", params=lied)
    assert response.status_code == 200, response.text
    assert "The bot was added to <strong>Pro Traders</strong>. You can close this tab." in response.text
    assert response.headers["cache-control"] == "no-store"
    [server] = servers(session)
    assert (server.installation_id, server.guild_id, server.name) == (installation.id, guild, "Pro Traders")
    assert server.bot_permissions == DEFAULT_BOT_PERMISSIONS == 268502019
    assert server.health_problems == []
    assert server.last_checked_at is not None
    assert session.exec(select(AuditEvent).where(AuditEvent.kind == "discord.bot_installed")).one()
    assert [r.path for r in discord_fake.calls("/oauth2/token")] == ["/api/v10/oauth2/token"]

    # The same state again (a replayed or double-submitted redirect) is refused.
    again = client.get("/discord/bot/callback", params=callback)
    assert again.status_code == 400
    assert "already used" in again.text
    assert len(servers(session)) == 1

    listed = client.get("/api/discord/servers", headers=headers(fake_saleor)).json()
    assert [(s["guild_id"], s["name"], s["health_problems"]) for s in listed] == [(guild, "Pro Traders", [])]
    assert listed[0]["last_checked_at"] is not None


def test_several_servers_per_store_and_reinstall_updates(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, discord_fake: FakeDiscord,
    session: Session,
) -> None:
    first = discord_fake.add_guild("One", bot_in_guild=False)
    second = discord_fake.add_guild("Two", bot_in_guild=False)
    for guild in (first, second, first):
        response = client.get("/discord/bot/callback", params=owner_approves(discord_fake, authorize(
            client, fake_saleor, guild_id=guild)))
        assert response.status_code == 200, response.text
    assert sorted(s.guild_id for s in servers(session)) == sorted([first, second])


def test_forged_expired_and_foreign_states_are_refused(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, discord_fake: FakeDiscord,
    session: Session,
) -> None:
    guild = discord_fake.add_guild("Target", bot_in_guild=False)
    code = discord_fake.issue_bot_install_code(guild, redirect_uri=CALLBACK)
    good = signing.sign("bot-install", {"i": installation.id}, expires_in=timedelta(minutes=15), single_use=True)
    header, payload, signature = good.split(".")
    forged_signature = f"{header}.{payload}.{signature[:-4]}AAAA"
    other_purpose = signing.sign("customer-link", {"i": installation.id}, expires_in=timedelta(minutes=5),
                                 single_use=True)
    expired = signing.sign("bot-install", {"i": installation.id}, expires_in=timedelta(seconds=-5), single_use=True)
    reusable = signing.sign("bot-install", {"i": installation.id}, expires_in=timedelta(minutes=5))
    cases = {
        "no state": None,
        "garbage": "not-a-token",
        "bad signature": forged_signature,
        "another purpose": other_purpose,
        "expired": expired,
        "not single-use": reusable,
    }
    for name, state in cases.items():
        params = {"code": code, "guild_id": guild, **({"state": state} if state else {})}
        response = client.get("/discord/bot/callback", params=params)
        assert response.status_code == 400, name
        assert "The bot was not added" in response.text, name
        assert "Start again" in response.text, name
    assert "expired" in client.get("/discord/bot/callback", params={"code": code, "state": expired}).text
    assert servers(session) == []
    assert discord_fake.calls("/oauth2/token") == []  # a bad state never reaches Discord


def test_a_store_cannot_use_another_stores_state(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, discord_fake: FakeDiscord,
    session: Session,
) -> None:
    guild = discord_fake.add_guild("Shop A's server", bot_in_guild=False)
    with FakeSaleor(app_id="QXBwOjc=").serve() as other:
        other_installation = install(client, other)
        # Rewriting the store id inside A's state breaks its signature.
        state = parse_qs(urlsplit(authorize(client, fake_saleor, guild_id=guild)).query)["state"][0]
        import base64
        import json

        header, payload, signature = state.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["d"]["i"] = other_installation.id
        swapped_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        code = discord_fake.issue_bot_install_code(guild, redirect_uri=CALLBACK)
        swapped = client.get("/discord/bot/callback", params={"code": code, "state": f"{header}.{swapped_payload}."
                                                                                      f"{signature}"})
        assert swapped.status_code == 400
        assert servers(session) == []
        # B's own install lands in B's store only; A does not see it.
        response = client.get("/discord/bot/callback", params=owner_approves(
            discord_fake, authorize(client, other, guild_id=guild)))
        assert response.status_code == 200
        assert [(s.installation_id, s.guild_id) for s in servers(session)] == [(other_installation.id, guild)]
        assert client.get("/api/discord/servers", headers=headers(fake_saleor)).json() == []
        assert len(client.get("/api/discord/servers", headers=headers(other)).json()) == 1


def test_discord_errors_store_nothing(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, discord_fake: FakeDiscord,
    session: Session,
) -> None:
    guild = discord_fake.add_guild("Target", bot_in_guild=False)
    callback = owner_approves(discord_fake, authorize(client, fake_saleor, guild_id=guild))
    bad_code = client.get("/discord/bot/callback", params={**callback, "code": "invalid-code"})
    assert bad_code.status_code == 400
    assert "expired or was already used" in bad_code.text
    # The owner pressed "Cancel" on Discord's page.
    state = parse_qs(urlsplit(authorize(client, fake_saleor)).query)["state"][0]
    cancelled = client.get("/discord/bot/callback", params={"error": "access_denied", "state": state})
    assert cancelled.status_code == 400
    assert "access_denied" in cancelled.text
    # Discord down during the exchange.
    state = parse_qs(urlsplit(authorize(client, fake_saleor)).query)["state"][0]
    code = discord_fake.issue_bot_install_code(guild, redirect_uri=CALLBACK)
    discord_fake.inject("POST", r"/oauth2/token", "connect_error", times=10)
    down = client.get("/discord/bot/callback", params={"code": code, "state": state})
    assert down.status_code == 400
    assert "could not be reached" in down.text
    assert servers(session) == []
    assert session.exec(select(UsedNonce)).all()  # each state was used up even though the install failed


def test_callback_lists_problems_found_by_the_preflight(
    client: TestClient, fake_saleor: FakeSaleor, installation: Installation, discord_fake: FakeDiscord,
    session: Session,
) -> None:
    guild = discord_fake.add_guild("Weak Bot", bot_in_guild=False)
    url = authorize(client, fake_saleor, guild_id=guild).replace("268504067", str(268504067 & ~MANAGE_ROLES))
    response = client.get("/discord/bot/callback", params=owner_approves(discord_fake, url))
    assert response.status_code == 200
    assert "The bot was added to <strong>Weak Bot</strong>" in response.text
    assert "<ul class='problems'><li>" in response.text
    assert "Manage Roles" in response.text
    [server] = servers(session)
    assert len(server.health_problems) == 1
    assert "Manage Roles" in server.health_problems[0]
    assert not server.bot_permissions & MANAGE_ROLES
