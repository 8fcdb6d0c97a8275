"""Issue 3, acceptance 1: signed Saleor webhooks in, a real Celery worker, the fake Discord in-process.

ORDER_FULLY_PAID → the customer opens their link → OAuth on Discord → added to the server with the role;
ORDER_CANCELLED → role removed; a second purchase keeps the role when the first is refunded; relinking another
Discord account moves the role.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from saleor_discord_app.linking.service import customer_link_url
from saleor_discord_app.models import AuditEvent, Installation, Membership, MembershipStatus
from saleor_discord_app.worker import celery_app
from tests.conftest import deliver
from tests.factories import changed_payload, make_rule, paid_payload
from tests.fakes.discord import FakeDiscord
from tests.fakes.saleor import FakeSaleor
from tests.linking.conftest import connect_discord, link_path

EMAIL = "ashley@example.com"
ORDER_1, ORDER_2, ORDER_3 = "T3JkZXI6MQ==", "T3JkZXI6Mg==", "T3JkZXI6Mw=="
PRODUCT_1, PRODUCT_2 = "UHJvZHVjdDox", "UHJvZHVjdDoy"


@pytest.fixture
def celery_worker(discord: FakeDiscord) -> Iterator[None]:
    celery_app.control.purge()  # syncs other tests queued without a worker must not run against this test's rows
    with start_worker(celery_app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=30):
        yield


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {what}")


def statuses(session: Session) -> dict[str, str]:
    session.expire_all()
    return {m.order_id: str(m.status) for m in session.exec(select(Membership).order_by(col(Membership.id)))}


def test_paid_link_oauth_cancel_refund_relink(client: TestClient, fake_saleor: FakeSaleor,
                                              installation: Installation, session: Session,
                                              discord: FakeDiscord, celery_worker: None) -> None:
    assert installation.id is not None
    guild = discord.add_guild(name="Store")
    vip = discord.add_role(guild, "VIP", position=2)
    ashley = discord.add_user(username="ashley")
    make_rule(session, installation.id, product_id=PRODUCT_1, guild_id=guild, role_ids=[vip], name="VIP monthly",
              duration_days=None)
    make_rule(session, installation.id, product_id=PRODUCT_2, guild_id=guild, role_ids=[vip], name="VIP yearly",
              duration_days=None)

    def roles(user: str) -> set[str] | None:
        return discord.member_roles(guild, user)

    # 1. Paid: a membership waits for the customer to link.
    assert deliver(client, fake_saleor, "ORDER_FULLY_PAID", paid_payload(ORDER_1, email=EMAIL)).status_code == 200
    wait_for(lambda: statuses(session) == {ORDER_1: MembershipStatus.PENDING}, "membership pending")
    assert roles(ashley) is None

    # 2. The customer opens their link, presses Connect Discord, approves on Discord.
    url = customer_link_url(installation.id, EMAIL)
    page = client.get(link_path(url))
    assert page.status_code == 200
    assert "VIP monthly" in page.text
    assert "Connect Discord" in page.text
    response = connect_discord(client, discord, url)
    assert response.status_code == 200
    assert "Connected as ashley." in response.text
    wait_for(lambda: roles(ashley) == {vip}, "ashley added to the server with the role")
    wait_for(lambda: statuses(session) == {ORDER_1: MembershipStatus.ACTIVE}, "membership active")
    adds = [c for c in discord.calls(method="PUT") if c.route == "PUT /guilds/{guild_id}/members/{user_id}"]
    assert [c.status for c in adds] == [201]

    # 3. Cancelled: the role goes.
    cancel = changed_payload("OrderCancelled", ORDER_1, status="CANCELED", email=EMAIL)
    assert deliver(client, fake_saleor, "ORDER_CANCELLED", cancel).status_code == 200
    wait_for(lambda: roles(ashley) == set(), "role removed after cancel")
    assert statuses(session) == {ORDER_1: MembershipStatus.REVOKED}

    # 4. Two more purchases granting the same role; refunding the first keeps the role (the second grants it).
    second = paid_payload(ORDER_2, number="2", email=EMAIL,
                          lines=[("T3JkZXJMaW5lOjI=", PRODUCT_1, "UHJvZHVjdFZhcmlhbnQ6MQ==")])
    third = paid_payload(ORDER_3, number="3", email=EMAIL,
                         lines=[("T3JkZXJMaW5lOjM=", PRODUCT_2, "UHJvZHVjdFZhcmlhbnQ6Mg==")])
    assert deliver(client, fake_saleor, "ORDER_FULLY_PAID", second).status_code == 200
    assert deliver(client, fake_saleor, "ORDER_FULLY_PAID", third).status_code == 200
    wait_for(lambda: statuses(session).get(ORDER_2) == statuses(session).get(ORDER_3) == MembershipStatus.ACTIVE,
             "both new memberships active")
    assert roles(ashley) == {vip}
    refund = changed_payload("OrderFullyRefunded", ORDER_2, charge_status="NONE", charged=0, refunded=10,
                             email=EMAIL)
    assert deliver(client, fake_saleor, "ORDER_FULLY_REFUNDED", refund).status_code == 200
    wait_for(lambda: statuses(session).get(ORDER_2) == MembershipStatus.REVOKED, "refunded membership revoked")
    wait_for(lambda: _synced_after_revoke(session, ORDER_2), "the revoke was synced to Discord")
    assert roles(ashley) == {vip}  # order 3 still grants it
    removals = [c for c in discord.calls(method="DELETE") if "/roles/" in c.path]
    assert len(removals) == 1  # only the cancel of order 1 removed the role

    # 5. Relink another Discord account: the role moves.
    bob = discord.add_user(username="bob")
    discord.authorizing_user_id = bob
    page = client.get(link_path(url))
    assert "Use a different Discord account" in page.text
    assert "ashley" in page.text
    response = connect_discord(client, discord, url)
    assert response.status_code == 200
    assert "Connected as bob." in response.text
    wait_for(lambda: roles(bob) == {vip}, "bob added with the role")
    wait_for(lambda: roles(ashley) == set(), "ashley lost the role")
    # Discord changes before the sync's transaction commits: wait for the row too.
    wait_for(lambda: _membership(session, ORDER_3).discord_user_id == bob, "membership moved to bob")
    assert _membership(session, ORDER_3).status == MembershipStatus.ACTIVE
    discord.assert_no_violations()


def _membership(session: Session, order_id: str) -> Membership:
    session.expire_all()
    return session.exec(select(Membership).where(Membership.order_id == order_id)).one()


def _synced_after_revoke(session: Session, order_id: str) -> bool:
    """The worker ran the Discord sync of the revoked membership (its timeline says so)."""
    membership = _membership(session, order_id)
    events = session.exec(select(AuditEvent).where(AuditEvent.membership_id == membership.id,
                                                   AuditEvent.kind == "discord.synced")).all()
    return any(event.data.get("status") == MembershipStatus.REVOKED for event in events)
