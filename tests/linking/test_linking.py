"""The customer's link page, the Connect-Discord button, and the OAuth2 callback against the fake Discord."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, col, select

from saleor_discord_app import signing
from saleor_discord_app.linking import service as linking
from saleor_discord_app.memberships import service
from saleor_discord_app.memberships.links import get_link
from saleor_discord_app.memberships.tasks import sync_membership
from saleor_discord_app.models import (
    CustomerLink,
    Installation,
    InstallationStatus,
    LinkMethod,
    Membership,
    MembershipStatus,
    OrderChargeState,
    UsedNonce,
)
from saleor_discord_app.sqltypes import utcnow
from tests.factories import make_installation, make_rule
from tests.fakes.discord import FakeDiscord
from tests.linking.conftest import (
    CALLBACK,
    authorize_on_discord,
    connect_discord,
    link_path,
    query,
    start_connect,
)

EMAIL = "ashley@example.com"
Queue = list[tuple[str, tuple[Any, ...]]]


@pytest.fixture
def store(session: Session) -> int:
    return make_installation(session, "http://shop.example.test/graphql/")


@pytest.fixture
def guild(discord: FakeDiscord) -> dict[str, str]:
    guild_id = discord.add_guild(name="Store", bot_role_position=10)
    return {
        "guild": guild_id,
        "vip": discord.add_role(guild_id, "VIP", position=2),
        "user": discord.add_user(username="ashley"),  # the last added user is who approves on /oauth2/authorize
    }


def paid(session: Session, store: int, order: str, *, product: str = "UHJvZHVjdDox",
         email: str = EMAIL) -> Membership:
    [membership] = service.order_paid(session, store, service.PaidOrder(
        order_id=order, number=order, customer_email=email, saleor_user_id=None,
        lines=[service.PaidLine(line_id=f"line-{order}", product_id=product, variant_id=None)],
    ), utcnow())
    session.commit()
    return membership


def run_syncs(queued: Queue) -> list[str]:
    """Run the Discord syncs the app queued (what the worker would do), in order."""
    jobs = [args for name, args in queued if name == "memberships.sync_membership"]
    queued.clear()
    return [sync_membership.run(*args) for args in jobs]


def vip_rule(session: Session, store: int, guild: dict[str, str], **fields: Any) -> int:
    rule = make_rule(session, store, guild_id=guild["guild"], role_ids=[guild["vip"]], **fields)
    assert rule.id is not None
    return rule.id


def the_link(session: Session, store: int) -> CustomerLink | None:
    session.expire_all()
    return get_link(session, store, EMAIL)


# ------------------------------------------------------------------ signed links


def test_link_urls_are_signed_per_customer_and_last_60_days(session: Session, store: int) -> None:
    url = linking.customer_link_url(store, "Ashley@Example.com")
    assert url.startswith("http://testserver/link/")
    token = url.rsplit("/", 1)[1]
    data = signing.unsign(linking.LINK_PURPOSE, token)
    assert (data["i"], data["e"], data["_nonce"]) == (store, EMAIL, None)  # reusable: no nonce
    assert abs(data["_exp"] - (utcnow() + timedelta(days=60)).timestamp()) < 5
    membership = Membership(installation_id=store, rule_id=1, order_id="o", order_line_id="l", customer_email=EMAIL)
    assert signing.unsign(linking.LINK_PURPOSE, linking.membership_link_url(membership).rsplit("/", 1)[1])["e"] == EMAIL
    # A link for another purpose (e.g. an OAuth state) is not a customer link.
    with pytest.raises(linking.LinkingError):
        linking.read_link(signing.sign(linking.STATE_PURPOSE, {"i": store, "e": EMAIL}, expires_in=timedelta(hours=1)))


# ------------------------------------------------------------------ the page


def test_link_page_lists_live_access_and_offers_connect(client: TestClient, session: Session, store: int,
                                                        guild: dict[str, str]) -> None:
    vip_rule(session, store, guild, name="VIP <Lounge>")
    make_rule(session, store, product_id="UHJvZHVjdDoy", guild_id=guild["guild"], role_ids=[guild["vip"]],
              name="Old plan")
    paid(session, store, "o1")
    paid(session, store, "o2", product="UHJvZHVjdDoy")
    service.order_ended(session, store, "o2", OrderChargeState.CANCELLED, utcnow())
    session.commit()
    url = linking.customer_link_url(store, EMAIL)

    response = client.get(link_path(url))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "VIP &lt;Lounge&gt;" in html
    assert "<Lounge>" not in html
    assert "Old plan" not in html  # revoked access is not shown
    assert "Waiting for you to connect Discord" in html
    assert "Until " in html
    assert f'action="{url}/connect"' in html
    assert "Connect Discord" in html
    assert "shop.example.test" in html
    assert EMAIL in html
    assert 'name="viewport"' in html
    assert "http" not in html.split("<body>")[0].replace(url, "")
    assert "x-frame-options" not in response.headers
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors" not in response.headers["content-security-policy"]


def test_link_page_of_a_linked_customer_shows_the_account_and_relink(client: TestClient, session: Session,
                                                                    store: int, guild: dict[str, str]) -> None:
    vip_rule(session, store, guild)
    paid(session, store, "o1")
    from saleor_discord_app.memberships.links import link_customer
    link_customer(session, store, customer_email=EMAIL, discord_user_id=guild["user"], discord_username="ashley_d",
                  via=LinkMethod.CLAIM_SLASH)
    session.commit()
    html = client.get(link_path(linking.customer_link_url(store, EMAIL))).text
    assert "ashley_d" in html
    assert "Use a different Discord account" in html
    assert "Being added to Discord" in html


@pytest.mark.parametrize("token", ["not-a-token", "eyJhbGciOiJIUzI1NiJ9.eyJwIjoiY3VzdG9tZXItbGluayJ9.forged"])
def test_forged_links_get_a_friendly_400(client: TestClient, store: int, token: str) -> None:
    for response in (client.get(f"/link/{token}"), client.post(f"/link/{token}/connect")):
        assert response.status_code == 400
        assert "This link is not valid" in response.text
        assert "<html" in response.text


def test_a_link_signed_with_another_key_is_refused(client: TestClient, store: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from saleor_discord_app.config import get_settings
    monkeypatch.setattr(get_settings(), "secret_key", SecretStr("an attacker's key"))
    url = linking.customer_link_url(store, EMAIL)
    monkeypatch.undo()
    assert client.get(link_path(url)).status_code == 400


def test_expired_link_is_refused_with_410(client: TestClient, store: int, discord: FakeDiscord) -> None:
    url = linking.customer_link_url(store, EMAIL)
    assert client.get(link_path(url)).status_code == 200
    with time_machine.travel(utcnow() + timedelta(days=59), tick=False):
        assert client.get(link_path(url)).status_code == 200
    with time_machine.travel(utcnow() + timedelta(days=61), tick=False):
        page = client.get(link_path(url))
        assert page.status_code == 410
        assert "This link has expired" in page.text
        assert client.post(f"{link_path(url)}/connect").status_code == 410


def test_uninstalled_store_shows_an_error(client: TestClient, session: Session, store: int,
                                          discord: FakeDiscord, guild: dict[str, str], queued: Queue) -> None:
    url = linking.customer_link_url(store, EMAIL)
    authorize = start_connect(client, url)  # started while the store was installed
    installation = session.get(Installation, store)
    assert installation is not None
    installation.status = InstallationStatus.UNINSTALLED
    session.add(installation)
    session.commit()
    assert client.get(link_path(url)).status_code == 410
    assert client.post(f"{link_path(url)}/connect").status_code == 410
    response = client.get(authorize_on_discord(discord, authorize))
    assert response.status_code == 410
    assert "no longer offers" in response.text
    assert the_link(session, store) is None
    assert queued == []


# ------------------------------------------------------------------ connect


def test_connect_redirects_to_discord_with_the_right_parameters(client: TestClient, store: int,
                                                                discord: FakeDiscord) -> None:
    url = linking.customer_link_url(store, EMAIL)
    assert client.get(f"{link_path(url)}/connect").status_code == 405  # a link scanner's GET does nothing
    location = start_connect(client, url)
    assert location.startswith("https://discord.test/oauth2/authorize?")
    assert "scope=identify%20guilds.join" in location
    params = query(location)
    assert params["response_type"] == "code"
    assert params["client_id"] == discord.client_id
    assert params["scope"] == "identify guilds.join"
    assert params["redirect_uri"] == CALLBACK
    assert params["prompt"] == "consent"
    state = signing.unsign(linking.STATE_PURPOSE, params["state"])
    assert (state["i"], state["e"]) == (store, EMAIL)
    assert state["_nonce"]
    assert abs(state["_exp"] - (utcnow() + timedelta(minutes=10)).timestamp()) < 5
    assert params["state"] != query(start_connect(client, url))["state"]  # fresh state every time


# ------------------------------------------------------------------ callback


def test_callback_links_and_the_sync_adds_the_member_with_the_role(client: TestClient, session: Session,
                                                                   store: int, discord: FakeDiscord,
                                                                   guild: dict[str, str], queued: Queue) -> None:
    vip_rule(session, store, guild)
    membership = paid(session, store, "o1")
    queued.clear()
    response = connect_discord(client, discord, linking.customer_link_url(store, EMAIL))
    assert response.status_code == 200, response.text
    assert "Connected as ashley." in response.text
    assert "Your roles are being added" in response.text
    link = the_link(session, store)
    assert link is not None
    assert link.discord_user_id == guild["user"]
    assert link.linked_via == LinkMethod.OAUTH
    assert link.discord_username == "ashley"
    assert link.access_token
    assert link.refresh_token
    assert link.token_expires_at is not None
    assert link.token_expires_at > utcnow() + timedelta(days=6)
    assert queued == [("memberships.sync_membership", (membership.id,))]

    assert run_syncs(queued) == ["added to the server with the role"]
    assert discord.member_roles(guild["guild"], guild["user"]) == {guild["vip"]}
    [add] = discord.calls("PUT /guilds/{guild_id}/members/{user_id}", method="PUT")
    assert add.status == 201
    assert add.route == "PUT /guilds/{guild_id}/members/{user_id}"
    session.expire_all()
    stored = session.get(Membership, membership.id)
    assert stored is not None
    assert stored.status == MembershipStatus.ACTIVE
    assert stored.discord_user_id == guild["user"]


def test_already_a_member_gets_the_role_added(client: TestClient, session: Session, store: int,
                                              discord: FakeDiscord, guild: dict[str, str], queued: Queue) -> None:
    vip_rule(session, store, guild)
    paid(session, store, "o1")
    discord.add_member(guild["guild"], guild["user"])
    assert connect_discord(client, discord, linking.customer_link_url(store, EMAIL)).status_code == 200
    assert run_syncs(queued) == ["gave 1 role(s)"]
    assert discord.member_roles(guild["guild"], guild["user"]) == {guild["vip"]}
    assert [c.status for c in discord.calls("/roles/{role_id}", method="PUT")] == [204]


def test_add_member_answering_204_gets_the_roles_added_separately(client: TestClient, session: Session,
                                                                  store: int, discord: FakeDiscord,
                                                                  guild: dict[str, str], queued: Queue) -> None:
    vip_rule(session, store, guild)
    paid(session, store, "o1")
    discord.add_member(guild["guild"], guild["user"])
    # The member lookup misses (they joined a moment later), so the app adds them: Discord answers 204.
    discord.inject("GET", rf"/members/{guild['user']}$", 404, json={"message": "Unknown Member", "code": 10007})
    assert connect_discord(client, discord, linking.customer_link_url(store, EMAIL)).status_code == 200
    assert run_syncs(queued) == ["gave 1 role(s)"]
    add = [c for c in discord.calls(method="PUT") if c.route == "PUT /guilds/{guild_id}/members/{user_id}"]
    assert [c.status for c in add] == [204]
    assert discord.member_roles(guild["guild"], guild["user"]) == {guild["vip"]}


def test_state_is_single_use(client: TestClient, session: Session, store: int, discord: FakeDiscord,
                             guild: dict[str, str], queued: Queue) -> None:
    callback = authorize_on_discord(discord, start_connect(client, linking.customer_link_url(store, EMAIL)))
    assert client.get(callback).status_code == 200
    first = the_link(session, store)
    assert first is not None
    # Replaying the same redirect, or a fresh code from another account with the spent state, changes nothing.
    replay = client.get(callback)
    assert replay.status_code == 400
    assert "cannot be used" in replay.text
    mallory = discord.add_user(username="mallory")
    code = discord.issue_user_code(mallory, redirect_uri=CALLBACK)
    response = client.get("/discord/oauth/callback", params={"code": code, "state": query(callback)["state"]})
    assert response.status_code == 400
    link = the_link(session, store)
    assert link is not None
    assert link.discord_user_id == guild["user"]


@pytest.mark.parametrize("forge", ["link-token-as-state", "garbage", "missing"])
def test_forged_state_is_refused_and_nothing_is_stored(client: TestClient, session: Session, store: int,
                                                       discord: FakeDiscord, guild: dict[str, str], queued: Queue,
                                                       forge: str) -> None:
    code = discord.issue_user_code(guild["user"], redirect_uri=CALLBACK)
    states = {
        "link-token-as-state": linking.customer_link_token(store, EMAIL),
        "garbage": "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
    }
    params = {"code": code, **({"state": states[forge]} if forge in states else {})}
    response = client.get("/discord/oauth/callback", params=params)
    assert response.status_code == 400
    assert "cannot be used" in response.text
    assert the_link(session, store) is None
    assert queued == []
    assert session.exec(select(UsedNonce)).all() == []
    assert not discord.calls("/oauth2/token")  # the code was never even exchanged


def test_expired_state_is_refused(client: TestClient, session: Session, store: int, discord: FakeDiscord,
                                  guild: dict[str, str]) -> None:
    authorize = start_connect(client, linking.customer_link_url(store, EMAIL))
    callback = authorize_on_discord(discord, authorize)
    with time_machine.travel(utcnow() + timedelta(minutes=11), tick=False):
        assert client.get(callback).status_code == 400
    assert the_link(session, store) is None


def test_cancel_on_discord_changes_nothing_and_spends_the_state(client: TestClient, session: Session, store: int,
                                                                discord: FakeDiscord, guild: dict[str, str]) -> None:
    state = query(start_connect(client, linking.customer_link_url(store, EMAIL)))["state"]
    response = client.get("/discord/oauth/callback", params={
        "error": "access_denied", "error_description": "The resource owner or authorization server denied the request",
        "state": state,
    })
    assert response.status_code == 200
    assert "not connected" in response.text
    assert 'href="http://testserver/link/' in response.text  # back to their page
    assert the_link(session, store) is None
    code = discord.issue_user_code(guild["user"], redirect_uri=CALLBACK)
    assert client.get("/discord/oauth/callback", params={"code": code, "state": state}).status_code == 400
    other = client.get("/discord/oauth/callback", params={"error": "server_error"})
    assert other.status_code == 400


def test_missing_guilds_join_scope_is_refused(client: TestClient, session: Session, store: int,
                                              discord: FakeDiscord, guild: dict[str, str], queued: Queue) -> None:
    authorize = start_connect(client, linking.customer_link_url(store, EMAIL))
    # The customer unticked "join servers for you" on the consent screen.
    narrowed = authorize.replace("scope=identify%20guilds.join", "scope=identify")
    response = client.get(authorize_on_discord(discord, narrowed))
    assert response.status_code == 400
    assert "permissions needed" in response.text
    assert the_link(session, store) is None
    assert queued == []
    assert len(discord.calls("/oauth2/token/revoke")) == 1  # the useless grant is given back


def test_bad_code_is_refused(client: TestClient, session: Session, store: int, discord: FakeDiscord) -> None:
    state = query(start_connect(client, linking.customer_link_url(store, EMAIL)))["state"]
    response = client.get("/discord/oauth/callback", params={"code": "not-a-code", "state": state})
    assert response.status_code == 400
    assert "did not accept" in response.text
    assert the_link(session, store) is None


def test_discord_down_during_the_callback_is_a_503(client: TestClient, session: Session, store: int,
                                                   discord: FakeDiscord, guild: dict[str, str]) -> None:
    callback = authorize_on_discord(discord, start_connect(client, linking.customer_link_url(store, EMAIL)))
    discord.inject("POST", r"/oauth2/token$", 503, json={"message": "upstream"}, times=10)
    response = client.get(callback)
    assert response.status_code == 503
    assert "not answering" in response.text
    assert the_link(session, store) is None


def test_relinking_another_account_moves_the_roles(client: TestClient, session: Session, store: int,
                                                   discord: FakeDiscord, guild: dict[str, str], queued: Queue) -> None:
    vip_rule(session, store, guild)
    membership = paid(session, store, "o1")
    url = linking.customer_link_url(store, EMAIL)
    connect_discord(client, discord, url)
    run_syncs(queued)
    assert discord.member_roles(guild["guild"], guild["user"]) == {guild["vip"]}

    bob = discord.add_user(username="bob")
    discord.authorizing_user_id = bob
    page = client.get(link_path(url)).text
    assert "ashley" in page
    assert "Use a different Discord account" in page
    response = connect_discord(client, discord, url)
    assert "Connected as bob." in response.text
    assert run_syncs(queued) == ["removed 1 role(s); added to the server with the role"]
    assert discord.member_roles(guild["guild"], guild["user"]) == set()  # old account keeps membership, not role
    assert discord.member_roles(guild["guild"], bob) == {guild["vip"]}
    session.expire_all()
    stored = session.get(Membership, membership.id)
    assert stored is not None
    assert stored.discord_user_id == bob
    link = the_link(session, store)
    assert link is not None
    assert link.discord_user_id == bob
    assert link.discord_username == "bob"


def test_an_expired_user_token_is_refreshed_before_adding_to_the_server(client: TestClient, session: Session,
                                                                         store: int, discord: FakeDiscord,
                                                                         guild: dict[str, str],
                                                                         queued: Queue) -> None:
    vip_rule(session, store, guild)
    connect_discord(client, discord, linking.customer_link_url(store, EMAIL))
    link = the_link(session, store)
    assert link is not None
    old_access, old_refresh = link.access_token, link.refresh_token
    # A week later: Discord no longer takes the access token, and the app knows it expired.
    discord.expire_user_tokens(guild["user"])
    link.token_expires_at = utcnow() - timedelta(minutes=1)
    session.add(link)
    session.commit()
    paid(session, store, "o1")
    assert run_syncs(queued) == ["added to the server with the role"]
    assert discord.member_roles(guild["guild"], guild["user"]) == {guild["vip"]}
    assert len([c for c in discord.calls("/oauth2/token") if c.body.get("grant_type") == "refresh_token"]) == 1
    link = the_link(session, store)
    assert link is not None
    assert link.access_token not in (None, old_access)
    assert link.refresh_token not in (None, old_refresh)  # the new refresh token is kept
    assert link.token_expires_at is not None
    assert link.token_expires_at > utcnow()


def test_tokens_are_encrypted_at_rest_and_never_logged(client: TestClient, session: Session, store: int,
                                                       discord: FakeDiscord, guild: dict[str, str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    response = connect_discord(client, discord, linking.customer_link_url(store, EMAIL))
    assert response.status_code == 200
    link = the_link(session, store)
    assert link is not None
    assert link.access_token
    assert link.refresh_token
    # The decrypted value is the real token Discord issued...
    with discord.client(headers={"Authorization": f"Bearer {link.access_token}"}) as http:
        assert http.get("/users/@me").json()["id"] == guild["user"]
    # ...but the column holds ciphertext.
    raw_access, raw_refresh = session.connection().execute(
        text("SELECT access_token, refresh_token FROM customerlink WHERE id = :id"), {"id": link.id}
    ).one()
    for raw, plain in ((raw_access, link.access_token), (raw_refresh, link.refresh_token)):
        assert raw
        assert plain not in raw
    captured = capsys.readouterr()
    assert "linking.oauth.connected" in captured.out + captured.err  # the logs were captured: the check means something
    for secret in (link.access_token, link.refresh_token):
        assert secret not in captured.out
        assert secret not in captured.err
    assert session.exec(select(CustomerLink).where(col(CustomerLink.access_token).is_not(None))).first() is not None
