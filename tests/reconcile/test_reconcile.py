"""The subscription check (F14) against the in-process fake Discord: drift both ways, members who left and
rejoined, hand-given roles (managed vs not), dry run, F11, refusals, and the Discord call budget
(list pages + one per real difference)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select
from typer.testing import CliRunner

from saleor_discord_app.cli import cli
from saleor_discord_app.config import get_settings
from saleor_discord_app.db import session_scope
from saleor_discord_app.memberships.discord_sync import NOT_IN_SERVER_REASON
from saleor_discord_app.memberships.tasks import sync_membership
from saleor_discord_app.models import (
    AccessRule,
    AuditEvent,
    CustomerLink,
    DiscordServer,
    Installation,
    InstallationStatus,
    LinkMethod,
    Membership,
    MembershipStatus,
    OnEndAction,
)
from saleor_discord_app.reconcile import service, tasks
from saleor_discord_app.reconcile.service import LEFT_SERVER_REASON
from saleor_discord_app.sqltypes import utcnow
from saleor_discord_app.worker import beat_schedule
from tests.factories import make_installation, make_rule
from tests.fakes.saleor import FakeSaleor

LIST = "GET /guilds/{guild_id}/members"
ADD = "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
REMOVE = "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}"


# ---------------------------------------------------------------------------------------------- set-up helpers
@pytest.fixture
def store(session: Session) -> int:
    return make_installation(session)


@pytest.fixture
def guild(fake_discord: Any) -> dict[str, str]:
    guild_id = fake_discord.add_guild(name="Store", bot_role_position=10)
    return {
        "guild": guild_id,
        "vip": fake_discord.add_role(guild_id, "VIP", position=2),
        "alumni": fake_discord.add_role(guild_id, "Alumni", position=1),
        "mods": fake_discord.add_role(guild_id, "Mods", position=3),  # not sold: never touched
        "admins": fake_discord.add_role(guild_id, "Admins", position=20),  # above the bot
    }


def server_of(session: Session, store: int, guild_id: str) -> int:
    server = session.exec(
        select(DiscordServer).where(DiscordServer.installation_id == store, DiscordServer.guild_id == guild_id)
    ).first() or DiscordServer(installation_id=store, guild_id=guild_id, name="Store")
    session.add(server)
    session.commit()
    assert server.id is not None
    return server.id


def customer(session: Session, fake: Any, store: int, name: str, *, in_guild: str | None = None,
             roles: tuple[str, ...] = (), linked: bool = True, token: bool = False) -> str:
    """A Discord user (optionally a member with ``roles``) linked to ``name@example.com``."""
    user = fake.add_user(username=name)
    if in_guild:
        fake.add_member(in_guild, user, roles=roles)
    if linked:
        link = CustomerLink(installation_id=store, customer_email=f"{name}@example.com", discord_user_id=user,
                            linked_via=LinkMethod.OAUTH if token else LinkMethod.CLAIM_SLASH)
        if token:
            link.access_token = fake.issue_user_token(user)
            link.token_expires_at = utcnow() + timedelta(days=6)
        session.add(link)
        session.commit()
    return str(user)


def buy(session: Session, store: int, rule: AccessRule, name: str, *,
        status: MembershipStatus = MembershipStatus.ACTIVE, granted_to: str | None = None,
        order: str | None = None) -> int:
    assert rule.id is not None
    order = order or f"{name}-{rule.id}"
    membership = Membership(installation_id=store, rule_id=rule.id, order_id=order, order_number=order,
                            order_line_id=f"line-{order}", customer_email=f"{name}@example.com", status=status,
                            discord_user_id=granted_to, guild_id=rule.guild_id)
    session.add(membership)
    session.commit()
    assert membership.id is not None
    return membership.id


def calls(fake: Any) -> Counter[str]:
    return Counter(str(call.route) for call in fake.calls())


def writes(fake: Any) -> list[Any]:
    return [call for call in fake.calls() if call.method != "GET"]


def reconcile(session: Session, server_id: int, **kwargs: Any) -> service.ServerResult:
    result = service.reconcile_server(session, server_id, **kwargs)
    session.expire_all()
    return result


def audits(session: Session, kind: str) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).where(AuditEvent.kind == kind).order_by(col(AuditEvent.id))))


def drifted_store(session: Session, fake: Any, store: int, guild: dict[str, str]) -> dict[str, Any]:
    """ashley pays but lacks VIP; bob's membership ended but he kept VIP; carol is in order; dave (no purchase)
    holds the unsold Mods role; erin (no purchase) was given VIP by hand."""
    g = guild["guild"]
    rule = make_rule(session, store, guild_id=g, role_ids=[guild["vip"]], on_end_action=OnEndAction.SWAP_TO_ALUMNI,
                     alumni_role_id=guild["alumni"])
    people = {
        "ashley": customer(session, fake, store, "ashley", in_guild=g),
        "bob": customer(session, fake, store, "bob", in_guild=g, roles=(guild["vip"], guild["alumni"])),
        "carol": customer(session, fake, store, "carol", in_guild=g, roles=(guild["vip"], guild["mods"])),
        "dave": customer(session, fake, store, "dave", in_guild=g, roles=(guild["mods"],), linked=False),
        "erin": customer(session, fake, store, "erin", in_guild=g, roles=(guild["vip"],), linked=False),
    }
    memberships = {
        "ashley": buy(session, store, rule, "ashley", status=MembershipStatus.NEEDS_ATTENTION),
        "bob": buy(session, store, rule, "bob", status=MembershipStatus.EXPIRED, granted_to=people["bob"]),
        "carol": buy(session, store, rule, "carol", granted_to=people["carol"]),
    }
    return {"rule": rule, "users": people, "memberships": memberships, "server": server_of(session, store, g)}


# ---------------------------------------------------------------------------------------------- drift
def test_drift_in_both_directions_is_repaired_touching_only_managed_roles(
        session: Session, store: int, guild: dict[str, str], fake_discord: Any) -> None:
    world = drifted_store(session, fake_discord, store, guild)
    users, g = world["users"], guild["guild"]

    result = reconcile(session, world["server"])

    assert result.status == "ok"
    assert result.differences == 3
    assert fake_discord.member_roles(g, users["ashley"]) == {guild["vip"]}  # missing role added
    assert fake_discord.member_roles(g, users["bob"]) == {guild["alumni"]}  # ended: VIP gone, alumni kept
    assert fake_discord.member_roles(g, users["carol"]) == {guild["vip"], guild["mods"]}  # untouched
    assert fake_discord.member_roles(g, users["dave"]) == {guild["mods"]}  # unmanaged role: never touched
    assert fake_discord.member_roles(g, users["erin"]) == set()  # managed role given by hand: removed
    # Discord calls: one list page + one per real difference, nothing else.
    assert calls(fake_discord) == Counter({LIST: 1, ADD: 1, REMOVE: 2})
    assert result.discord_calls == 4
    assert (result.list_calls, result.write_calls) == (1, 3)
    # Timeline and statuses.
    added, removed = audits(session, "reconcile.role_added"), audits(session, "reconcile.role_removed")
    assert [(a.membership_id, a.data["discord_user_id"]) for a in added] == [(world["memberships"]["ashley"],
                                                                              users["ashley"])]
    assert sorted((a.data["discord_user_id"], a.membership_id) for a in removed) == sorted(
        [(users["bob"], world["memberships"]["bob"]), (users["erin"], None)])
    ashley = session.get(Membership, world["memberships"]["ashley"])
    assert ashley is not None
    assert ashley.status == MembershipStatus.ACTIVE
    assert ashley.attention_reason is None
    assert ashley.discord_user_id == users["ashley"]
    assert ashley.last_synced_at is not None
    carol = session.get(Membership, world["memberships"]["carol"])
    assert carol is not None
    assert carol.last_synced_at is not None
    bob = session.get(Membership, world["memberships"]["bob"])
    assert bob is not None
    assert bob.status == MembershipStatus.EXPIRED
    server = session.get(DiscordServer, world["server"])
    assert server is not None
    assert server.last_reconciled_at is not None
    assert server.health_problems == []
    # Reason header on the repairs.
    assert all("subscription check" in unquote(c.headers.get("x-audit-log-reason") or "") for c in writes(fake_discord))

    # A second pass finds nothing to do: the list page only.
    fake_discord.requests.clear()
    again = reconcile(session, world["server"])
    assert again.differences == 0
    assert calls(fake_discord) == Counter({LIST: 1})


def test_dry_run_prints_the_plan_and_changes_nothing(session: Session, store: int, guild: dict[str, str],
                                                     fake_discord: Any) -> None:
    world = drifted_store(session, fake_discord, store, guild)
    g = guild["guild"]
    roles_before = {name: fake_discord.member_roles(g, user) for name, user in world["users"].items()}

    def db_snapshot() -> Any:
        session.expire_all()
        memberships = [(m.id, m.status, m.attention_reason, m.last_synced_at, m.discord_user_id, m.updated_at)
                       for m in session.exec(select(Membership).order_by(col(Membership.id)))]
        servers = [(s.id, s.last_reconciled_at, s.health_problems) for s in session.exec(select(DiscordServer))]
        return memberships, servers, session.exec(select(func.count()).select_from(AuditEvent)).one()

    before = db_snapshot()
    plan = reconcile(session, world["server"], dry_run=True)
    assert sorted((a.kind, a.user_id, a.role_id) for a in plan.actions) == sorted([
        (service.ActionKind.ADD_ROLE, world["users"]["ashley"], guild["vip"]),
        (service.ActionKind.REMOVE_ROLE, world["users"]["bob"], guild["vip"]),
        (service.ActionKind.REMOVE_ROLE, world["users"]["erin"], guild["vip"]),
    ])
    assert not any(action.done for action in plan.actions)
    assert writes(fake_discord) == []  # zero Discord writes
    assert calls(fake_discord) == Counter({LIST: 1})
    assert {name: fake_discord.member_roles(g, user) for name, user in world["users"].items()} == roles_before
    assert db_snapshot() == before  # zero database changes

    # The CLI prints the same plan and still changes nothing.
    printed = CliRunner().invoke(cli, ["reconcile", "--dry-run", "--store", "http://127.0.0.1:1/graphql/"])
    assert printed.exit_code == 0, printed.output
    assert "dry run" in printed.output
    assert f"give role {guild['vip']} to Discord user {world['users']['ashley']}" \
        in printed.output
    assert printed.output.count("take role") == 2
    assert writes(fake_discord) == []
    assert db_snapshot() == before


def test_hand_given_role_on_a_non_buyer_is_removed_only_when_the_app_manages_it(
        session: Session, store: int, guild: dict[str, str], fake_discord: Any) -> None:
    g = guild["guild"]
    make_rule(session, store, guild_id=g, role_ids=[guild["vip"]], on_end_action=OnEndAction.SWAP_TO_ALUMNI,
              alumni_role_id=guild["alumni"])
    stranger = customer(session, fake_discord, store, "zed", in_guild=g, linked=False,
                        roles=(guild["vip"], guild["mods"], guild["alumni"]))
    helper = customer(session, fake_discord, store, "yan", in_guild=g, linked=False, roles=(guild["mods"],))
    server_id = server_of(session, store, g)

    result = reconcile(session, server_id)

    assert fake_discord.member_roles(g, stranger) == {guild["mods"], guild["alumni"]}
    assert fake_discord.member_roles(g, helper) == {guild["mods"]}
    assert [(c.params["user_id"], c.params["role_id"]) for c in writes(fake_discord)] == [(stranger, guild["vip"])]
    assert result.counts == Counter({"remove_role": 1})


# ---------------------------------------------------------------------------------------------- left and rejoined
def test_member_who_left_and_rejoined_gets_the_role_back(session: Session, store: int, guild: dict[str, str],
                                                         fake_discord: Any) -> None:
    g = guild["guild"]
    rule = make_rule(session, store, guild_id=g, role_ids=[guild["vip"]])
    ashley = customer(session, fake_discord, store, "ashley", in_guild=g, roles=(guild["vip"],))
    membership_id = buy(session, store, rule, "ashley", granted_to=ashley)
    server_id = server_of(session, store, g)
    assert reconcile(session, server_id).differences == 0

    fake_discord.remove_member(g, ashley)  # she leaves: her choice, the app does not pull her back
    left = reconcile(session, server_id)
    assert left.counts == Counter({"not_in_server": 1})
    assert writes(fake_discord) == []
    stored = session.get(Membership, membership_id)
    assert stored is not None
    assert stored.status == MembershipStatus.NEEDS_ATTENTION
    assert stored.attention_reason == LEFT_SERVER_REASON
    reconcile(session, server_id)  # still gone: no second timeline entry
    assert len(audits(session, "discord.needs_attention")) == 1

    fake_discord.add_member(g, ashley)  # she rejoins, without roles
    back = reconcile(session, server_id)
    assert back.counts == Counter({"add_role": 1})
    assert fake_discord.member_roles(g, ashley) == {guild["vip"]}
    stored = session.get(Membership, membership_id)
    assert stored is not None
    assert stored.status == MembershipStatus.ACTIVE
    assert stored.attention_reason is None
    assert len(audits(session, "reconcile.activated")) == 1


def test_absent_customer_with_a_discord_authorization_is_added_back_by_the_sync(
        session: Session, store: int, guild: dict[str, str], fake_discord: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import saleor_discord_app.worker as worker

    sent: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(worker, "send_task_now", lambda task, *args: sent.append((task.name, args)))
    g = guild["guild"]
    rule = make_rule(session, store, guild_id=g, role_ids=[guild["vip"]])
    ashley = customer(session, fake_discord, store, "ashley", token=True)  # linked by OAuth, never joined
    membership_id = buy(session, store, rule, "ashley", status=MembershipStatus.PENDING)
    server_id = server_of(session, store, g)

    dry = reconcile(session, server_id, dry_run=True)
    assert dry.counts == Counter({"resync": 1})
    assert sent == []
    result = reconcile(session, server_id)
    assert result.counts == Counter({"resync": 1})
    assert sent == [("memberships.sync_membership", (membership_id,))]
    assert writes(fake_discord) == []  # the sync does the adding, not the check
    sync_membership.run(membership_id)
    assert fake_discord.member_roles(g, ashley) == {guild["vip"]}


def test_customer_who_left_is_not_pulled_back_even_with_a_discord_authorization(
        session: Session, store: int, guild: dict[str, str], fake_discord: Any, queued: list[Any]) -> None:
    g = guild["guild"]
    rule = make_rule(session, store, guild_id=g, role_ids=[guild["vip"]])
    ashley = customer(session, fake_discord, store, "ashley", in_guild=g, roles=(guild["vip"],), token=True)
    membership_id = buy(session, store, rule, "ashley", granted_to=ashley)
    server_id = server_of(session, store, g)
    fake_discord.remove_member(g, ashley)
    result = reconcile(session, server_id)
    assert result.counts == Counter({"not_in_server": 1})
    assert queued == [] and writes(fake_discord) == []
    stored = session.get(Membership, membership_id)
    assert stored is not None and stored.attention_reason == LEFT_SERVER_REASON


def test_claim_linked_customer_who_never_joined_needs_to_join(session: Session, store: int,
                                                              guild: dict[str, str], fake_discord: Any) -> None:
    g = guild["guild"]
    rule = make_rule(session, store, guild_id=g, role_ids=[guild["vip"]])
    customer(session, fake_discord, store, "ashley")  # linked by claim code, not in the server
    membership_id = buy(session, store, rule, "ashley", status=MembershipStatus.PENDING)
    result = reconcile(session, server_of(session, store, g))
    assert result.counts == Counter({"not_in_server": 1})
    stored = session.get(Membership, membership_id)
    assert stored is not None and stored.attention_reason == NOT_IN_SERVER_REASON


# ---------------------------------------------------------------------------------------------- F11
def test_role_granted_by_two_purchases_stays_when_one_ends(session: Session, store: int, guild: dict[str, str],
                                                           fake_discord: Any) -> None:
    g = guild["guild"]
    monthly = make_rule(session, store, guild_id=g, role_ids=[guild["vip"]])
    yearly = make_rule(session, store, product_id="UHJvZHVjdDoy", guild_id=g, role_ids=[guild["vip"]])
    ashley = customer(session, fake_discord, store, "ashley", in_guild=g, roles=(guild["vip"],))
    buy(session, store, monthly, "ashley", status=MembershipStatus.REVOKED, granted_to=ashley)
    second = buy(session, store, yearly, "ashley", granted_to=ashley)
    server_id = server_of(session, store, g)

    result = reconcile(session, server_id)
    assert result.differences == 0
    assert writes(fake_discord) == []
    assert fake_discord.member_roles(g, ashley) == {guild["vip"]}

    stored = session.get(Membership, second)
    assert stored is not None
    stored.status = MembershipStatus.EXPIRED
    session.add(stored)
    session.commit()
    assert reconcile(session, server_id).counts == Counter({"remove_role": 1})
    assert fake_discord.member_roles(g, ashley) == set()


def test_two_customer_emails_linked_to_one_discord_account_share_the_grant(
        session: Session, store: int, guild: dict[str, str], fake_discord: Any) -> None:
    g = guild["guild"]
    rule = make_rule(session, store, guild_id=g, role_ids=[guild["vip"]])
    user = customer(session, fake_discord, store, "ashley", in_guild=g, roles=(guild["vip"],))
    session.add(CustomerLink(installation_id=store, customer_email="work@example.com", discord_user_id=user))
    session.commit()
    buy(session, store, rule, "ashley", status=MembershipStatus.EXPIRED, granted_to=user)
    buy(session, store, rule, "work")
    assert reconcile(session, server_of(session, store, g)).differences == 0
    assert fake_discord.member_roles(g, user) == {guild["vip"]}


# ---------------------------------------------------------------------------------------------- call budget
def test_discord_calls_are_list_pages_plus_differences(session: Session, store: int, guild: dict[str, str],
                                                        fake_discord: Any) -> None:
    g = guild["guild"]
    rule = make_rule(session, store, guild_id=g, role_ids=[guild["vip"]])
    buyers = [customer(session, fake_discord, store, f"buyer{i}", in_guild=g, roles=(guild["vip"],) if i % 3 else ())
              for i in range(12)]
    for i in range(12):
        buy(session, store, rule, f"buyer{i}", granted_to=buyers[i])
    hand_given = [customer(session, fake_discord, store, f"hand{i}", in_guild=g, roles=(guild["vip"],), linked=False)
                  for i in range(2)]
    # Fill the server to exactly 2000 members: two full pages, then one request that comes back empty.
    for i in range(2000 - 2 - len(buyers) - len(hand_given)):  # owner and bot are members too
        fake_discord.add_member(g, fake_discord.add_user(username=f"filler{i}"))
    server_id = server_of(session, store, g)

    result = reconcile(session, server_id)

    expected_differences = 4 + 2  # buyers 0, 3, 6, 9 lack VIP; two hand-given VIPs
    list_pages = 3
    assert result.members_seen == 2000
    assert result.differences == expected_differences
    assert calls(fake_discord) == Counter({LIST: list_pages, ADD: 4, REMOVE: 2})
    assert len(fake_discord.calls()) == result.discord_calls == list_pages + expected_differences
    assert [c.query["limit"] for c in fake_discord.calls() if c.route == LIST] == ["1000"] * 3


# ---------------------------------------------------------------------------------------------- failures
def test_role_discord_refuses_is_tried_once_then_needs_attention(session: Session, store: int,
                                                                 guild: dict[str, str], fake_discord: Any) -> None:
    g = guild["guild"]
    rule = make_rule(session, store, guild_id=g, role_ids=[guild["admins"]])  # above the bot's role
    ids = []
    for name in ("ashley", "bob", "carol"):
        customer(session, fake_discord, store, name, in_guild=g)
        ids.append(buy(session, store, rule, name))
    server_id = server_of(session, store, g)

    result = reconcile(session, server_id)

    assert len(writes(fake_discord)) == 1  # one refusal, then the role is skipped for the pass
    assert result.counts == Counter({"skipped": 3})
    for membership_id in ids:
        stored = session.get(Membership, membership_id)
        assert stored is not None
        assert stored.status == MembershipStatus.NEEDS_ATTENTION
        assert "drag the bot's role above" in (stored.attention_reason or "")
    server = session.get(DiscordServer, server_id)
    assert server is not None
    assert any(guild["admins"] in p for p in server.health_problems)


def test_missing_members_intent_falls_back_to_known_customers_and_says_so(
        session: Session, store: int, guild: dict[str, str], fake_discord: Any) -> None:
    world = drifted_store(session, fake_discord, store, guild)
    fake_discord.members_intent = False
    server = session.get(DiscordServer, world["server"])
    assert server is not None
    server.health_problems = ["The bot lacks Kick Members."]  # another check's problem: kept
    session.add(server)
    session.commit()

    result = reconcile(session, world["server"])

    assert result.strategy == "members"
    assert result.status == "ok"
    # Known customers (ashley, bob, carol) are read one by one and repaired; erin's hand-given VIP is not seen.
    assert calls(fake_discord) == Counter({LIST: 1, "GET /guilds/{guild_id}/members/{user_id}": 3, ADD: 1,
                                           REMOVE: 1})
    assert fake_discord.member_roles(guild["guild"], world["users"]["ashley"]) == {guild["vip"]}
    assert fake_discord.member_roles(guild["guild"], world["users"]["erin"]) == {guild["vip"]}
    session.expire_all()
    server = session.get(DiscordServer, world["server"])
    assert server is not None
    assert server.health_problems[0] == "The bot lacks Kick Members."
    assert "Server Members Intent" in server.health_problems[1]
    assert len(server.health_problems) == 2

    # With too many customers to read one by one, the pass stops and the problem is all it reports.
    fake_discord.requests.clear()
    service_limit = service.PER_MEMBER_LIMIT
    try:
        service.PER_MEMBER_LIMIT = 1
        stopped = reconcile(session, world["server"])
    finally:
        service.PER_MEMBER_LIMIT = service_limit
    assert stopped.status == "problem"
    assert writes(fake_discord) == []
    # Intent back on: the problem clears.
    fake_discord.members_intent = True
    assert reconcile(session, world["server"]).status == "ok"
    server = session.get(DiscordServer, world["server"])
    assert server is not None
    assert server.health_problems == ["The bot lacks Kick Members."]


def test_discord_errors_retry_the_task(session: Session, store: int, guild: dict[str, str],
                                       fake_discord: Any) -> None:
    from celery.exceptions import Retry

    world = drifted_store(session, fake_discord, store, guild)
    fake_discord.inject("GET", r"/members$", 502, times=50)
    with pytest.raises(Retry):
        tasks.reconcile_server.apply(args=(world["server"],), throw=True)
    assert writes(fake_discord) == []


def test_bot_removed_from_the_server_is_a_health_problem(session: Session, store: int, guild: dict[str, str],
                                                         fake_discord: Any) -> None:
    world = drifted_store(session, fake_discord, store, guild)
    fake_discord.remove_bot(guild["guild"])
    result = tasks.reconcile_server.run(world["server"])
    assert result["status"] == "problem"
    session.expire_all()
    server = session.get(DiscordServer, world["server"])
    assert server is not None
    assert server.last_reconciled_at is None
    assert any("no longer in this Discord server" in p for p in server.health_problems)


# ---------------------------------------------------------------------------------------------- entry points
def test_beat_fans_out_one_task_per_server_of_active_stores(session: Session, store: int, guild: dict[str, str],
                                                            fake_discord: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert beat_schedule(get_settings())["reconcile-servers"] == {
        "task": "reconcile.reconcile_all", "schedule": 300.0, "options": {"expires": 300.0}}
    first = server_of(session, store, guild["guild"])
    gone = Installation(saleor_api_url="http://127.0.0.1:2/graphql/", app_id="QXBwOjI=",
                        status=InstallationStatus.UNINSTALLED)
    session.add(gone)
    session.commit()
    assert gone.id is not None
    server_of(session, gone.id, guild["guild"])
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.reconcile_server, "apply_async", lambda **kw: sent.append(kw))
    assert tasks.reconcile_all.run() == 1
    assert sent == [{"args": (first,), "retry": False, "expires": 300.0}]


def test_api_queues_or_previews_the_check(client: TestClient, fake_saleor: FakeSaleor, installation: Installation,
                                          session: Session, guild: dict[str, str], fake_discord: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from saleor_discord_app.reconcile import endpoints

    assert installation.id is not None
    world = drifted_store(session, fake_discord, installation.id, guild)
    sent: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(endpoints, "send_task_now", lambda task, *args: sent.append((task.name, args)))

    def headers(permissions: list[str]) -> dict[str, str]:
        return {"authorization-bearer": fake_saleor.dashboard_token(permissions=permissions),
                "saleor-api-url": fake_saleor.api_url}

    staff = headers(["MANAGE_ORDERS"])
    assert client.post("/api/discord/reconcile", headers=headers(["MANAGE_PRODUCTS"])).status_code == 403
    assert client.post("/api/discord/reconcile", json={"server_id": world["server"] + 99},
                       headers=staff).status_code == 404

    preview = client.post("/api/discord/reconcile", json={"dry_run": True}, headers=staff)
    assert preview.status_code == 200, preview.text
    [plan] = preview.json()["servers"]
    assert plan["dry_run"] is True
    assert plan["differences"] == 3
    assert plan["counts"] == {"add_role": 1, "remove_role": 2}
    assert writes(fake_discord) == []
    assert sent == []

    queued = client.post("/api/discord/reconcile", headers=staff)
    assert queued.status_code == 202
    assert queued.json() == {"dry_run": False, "queued": [world["server"]]}
    assert sent == [("reconcile.reconcile_server", (world["server"],))]


def test_a_membership_that_ends_during_the_pass_is_not_undone(session: Session, store: int, guild: dict[str, str],
                                                              fake_discord: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    g = guild["guild"]
    rule = make_rule(session, store, guild_id=g, role_ids=[guild["vip"]])
    ashley = customer(session, fake_discord, store, "ashley", in_guild=g)  # role missing: looks like drift
    membership_id = buy(session, store, rule, "ashley")
    server_id = server_of(session, store, g)
    original = service._Pass.desired

    def desired_then_refund(self: Any) -> dict[int, frozenset[str]]:
        snapshot = original(self)  # read before the refund lands
        with session_scope() as other:
            refunded = other.get(Membership, membership_id)
            assert refunded is not None
            refunded.status = MembershipStatus.REVOKED
            other.add(refunded)
        return snapshot

    monkeypatch.setattr(service._Pass, "desired", desired_then_refund)
    result = reconcile(session, server_id)
    assert writes(fake_discord) == []
    assert result.differences == 0
    assert fake_discord.member_roles(g, ashley) == set()
