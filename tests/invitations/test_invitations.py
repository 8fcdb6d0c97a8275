"""Welcome email (F7), storefront metadata, reminders (F15) and staff "Send invitation", against a real SMTP
server, the fake Discord and the fake Saleor."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from saleor_discord_app.invitations import service
from saleor_discord_app.invitations.tasks import send_invitation, update_order_metadata
from saleor_discord_app.linking.service import read_link
from saleor_discord_app.memberships import links
from saleor_discord_app.memberships.tasks import sync_membership
from saleor_discord_app.models import (
    AuditEvent,
    Installation,
    InstallationStatus,
    Invitation,
    LinkMethod,
    Membership,
    MembershipStatus,
)
from saleor_discord_app.sqltypes import utcnow
from tests.conftest import deliver, process_pending_events
from tests.factories import paid_payload
from tests.fakes.saleor import FakeSaleor
from tests.invitations.conftest import Shop, SmtpSink, parts

EMAIL = "ashley@example.com"
CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")
Queued = list[tuple[str, tuple[Any, ...]]]


def pay(client: TestClient, fake_saleor: FakeSaleor, order_id: str = "T3JkZXI6MQ==", number: str = "1") -> int:
    response = deliver(client, fake_saleor, "ORDER_FULLY_PAID",
                       paid_payload(order_id, number=number, email=EMAIL,
                                    lines=[(f"line-{order_id}", "UHJvZHVjdDox", f"variant-{order_id}")]))
    assert response.status_code == 200, response.text
    process_pending_events()
    from saleor_discord_app.db import session_scope

    with session_scope() as db:
        membership = db.exec(select(Membership).where(Membership.order_id == order_id)).one()
        assert membership.id is not None
        return membership.id


def take(queued: Queued, name: str) -> list[tuple[Any, ...]]:
    found = [args for task, args in queued if task == name]
    queued[:] = [(task, args) for task, args in queued if task != name]
    return found


def run_sends(queued: Queued) -> list[str]:
    return [send_invitation.apply(args=args).get() for args in take(queued, "invitations.send_invitation")]


def invitation(session: Session, membership_id: int) -> Invitation:
    session.expire_all()
    row = session.exec(select(Invitation).where(Invitation.membership_id == membership_id)).one()
    return row


def test_welcome_email_link_and_claim_code_lead_to_the_role(
    client: TestClient, fake_saleor: FakeSaleor, fake_discord: Any, shop: Shop, smtp: SmtpSink, queued: Queued,
    session: Session,
) -> None:
    membership_id = pay(client, fake_saleor)
    assert take(queued, "invitations.send_invitation") == [(membership_id, 1, False)]
    assert send_invitation.apply(args=(membership_id, 1, False)).get() == "sent #1"

    [message] = smtp.messages
    assert smtp.envelopes == [("shop@example.com", [EMAIL])]
    assert message["To"] == EMAIL
    assert message["From"] == "Store <shop@example.com>"
    assert message["Message-ID"] == f"<invitation.{shop.installation_id}.{membership_id}.1@testserver>"
    assert "order #1" in message["Subject"]
    text, html = parts(message)
    # The Connect-Discord link, the claim code with both ways to use it, and the invite, in both parts.
    link_url = re.search(r"http://testserver/link/\S+", text)
    assert link_url is not None
    [code] = set(CODE.findall(text))
    invite = re.search(r"https://discord\.gg/(\S+)", text)
    assert invite is not None
    verify_url = f"https://discord.com/channels/{shop.guild_id}/{shop.verify_channel_id}"
    for body in (text, html):
        assert link_url.group(0) in body
        assert f"/claim {code}" in body
        assert f"!claim {code}" in body
        assert invite.group(0) in body
        assert verify_url in body
    assert "<script" not in html
    assert 'href="http://testserver/link/' in html

    session.expire_all()
    membership = session.get(Membership, membership_id)
    assert membership is not None
    assert membership.status == MembershipStatus.INVITED
    sent = session.exec(select(AuditEvent).where(AuditEvent.kind == "invitation.sent")).one()
    assert sent.data["send_number"] == 1
    assert sent.membership_id == membership_id
    row = invitation(session, membership_id)
    assert row.sends == 1
    assert row.invite_code == invite.group(1)
    assert row.next_send_at is not None
    assert row.next_send_at > utcnow() + timedelta(hours=47)
    [create] = [c for c in fake_discord.calls(method="POST") if c.path.endswith(f"/channels/{shop.channel_id}/invites")]
    assert create.body["max_age"] == 7 * 24 * 3600
    assert 0 < create.body["max_uses"] <= 5

    # The storefront metadata: the link and the status, written with the app token.
    [(metadata_membership,)] = take(queued, "invitations.update_order_metadata")
    assert update_order_metadata.apply(args=(metadata_membership,)).get() == "invited"
    [call] = shop.metadata_calls
    values = {item["key"]: item["value"] for item in call["input"]}
    assert call["id"] == "T3JkZXI6MQ=="
    assert set(values) == {"discord_access_url", "discord_access_status", "discord_access_updated_at"}
    assert values["discord_access_status"] == "invited"
    # The same customer's Connect-Discord page as in the email (tokens differ only by their signing time).
    stored_url = values["discord_access_url"]
    assert stored_url.startswith("http://testserver/link/")
    assert read_link(stored_url.rsplit("/", 1)[1]) == read_link(link_url.group(0).rsplit("/", 1)[1])
    assert read_link(stored_url.rsplit("/", 1)[1]).email == EMAIL
    assert datetime.fromisoformat(values["discord_access_updated_at"]) > utcnow() - timedelta(minutes=1)
    assert "updateMetadata" in fake_saleor.graphql_requests[-1]["query"]
    assert fake_saleor.graphql_requests[-1]["token"] == fake_saleor.app_token

    # The customer follows the link: their Connect-Discord page opens.
    page = client.get(urlsplit(link_url.group(0)).path)
    assert page.status_code == 200
    assert "VIP Lounge" in page.text

    # They join with the invite from the email, then type /claim CODE: linked, and the sync grants the role.
    user = fake_discord.add_user(username="ashley")
    fake_discord.accept_invite(invite.group(1), user)
    body, headers = fake_discord.build_interaction(shop.guild_id, user, "claim", {"code": code},
                                                   channel_id=shop.verify_channel_id)
    reply = client.post("/api/discord/interactions", content=body, headers=headers)
    assert reply.status_code == 200
    assert "Linked" in reply.json()["data"]["content"]
    assert sync_membership.run(membership_id) == "gave 1 role(s)"
    assert fake_discord.member_roles(shop.guild_id, user) == {shop.role_id}
    session.expire_all()
    membership = session.get(Membership, membership_id)
    assert membership is not None
    assert membership.status == MembershipStatus.ACTIVE
    # Linked: the reminder scan retires the invitation instead of mailing again.
    assert service.resend_due(session, now=utcnow() + timedelta(days=3)).queued == []
    session.commit()
    assert invitation(session, membership_id).next_send_at is None
    assert len(smtp.messages) == 1


def test_the_same_send_is_never_mailed_twice(client: TestClient, fake_saleor: FakeSaleor, shop: Shop,
                                             smtp: SmtpSink, queued: Queued, session: Session) -> None:
    membership_id = pay(client, fake_saleor)
    [args] = take(queued, "invitations.send_invitation")
    assert send_invitation.apply(args=args).get() == "sent #1"
    # A redelivered task, a duplicate from the scan: same send number, nothing more is mailed.
    assert send_invitation.apply(args=args).get() == "already sent"
    assert send_invitation.apply(args=(membership_id, 1, True)).get() == "already sent"
    assert len(smtp.messages) == 1
    assert invitation(session, membership_id).sends == 1
    assert len(session.exec(select(AuditEvent).where(AuditEvent.kind == "invitation.sent")).all()) == 1
    # Another paid event for the same order does not invite again.
    pay(client, fake_saleor)
    assert take(queued, "invitations.send_invitation") == []


def test_smtp_temporarily_down_is_retried_then_sent(client: TestClient, fake_saleor: FakeSaleor, shop: Shop,
                                                    smtp: SmtpSink, queued: Queued, session: Session) -> None:
    membership_id = pay(client, fake_saleor)
    smtp.fail_next = 2
    assert run_sends(queued) == ["sent #1"]
    assert smtp.attempts == 3
    assert len(smtp.messages) == 1
    row = invitation(session, membership_id)
    assert row.sends == 1
    assert row.last_error is None


def test_smtp_unreachable_gives_up_and_the_scan_tries_again_later(
    client: TestClient, fake_saleor: FakeSaleor, shop: Shop, smtp: SmtpSink, queued: Queued,
    session: Session, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from saleor_discord_app.config import get_settings
    from tests.invitations.conftest import free_port

    membership_id = pay(client, fake_saleor)
    monkeypatch.setattr(send_invitation, "max_retries", 2)  # eager retries run at once: keep the test short
    monkeypatch.setattr(get_settings(), "smtp_port", free_port())  # nothing listens there
    assert run_sends(queued) == ["failed"]
    row = invitation(session, membership_id)
    assert row.sends == 0
    assert row.last_error is not None
    assert "unreachable" in row.last_error
    assert row.next_send_at is not None
    assert row.next_send_at > utcnow() + timedelta(minutes=50)
    assert session.exec(select(AuditEvent).where(AuditEvent.kind == "invitation.failed")).one()
    membership = session.get(Membership, membership_id)
    assert membership is not None
    assert membership.status == MembershipStatus.PENDING
    # SMTP is back; an hour later the scan queues the same send again and it goes out once.
    monkeypatch.setattr(get_settings(), "smtp_port", smtp.port)
    with time_machine.travel(utcnow() + timedelta(hours=1, minutes=1), tick=False):
        assert service.resend_due(session).queued == [membership_id]
        session.commit()
        assert run_sends(queued) == ["sent #1"]
    assert len(smtp.messages) == 1


def test_reminders_follow_the_store_policy(client: TestClient, fake_saleor: FakeSaleor, shop: Shop,
                                           smtp: SmtpSink, queued: Queued, session: Session) -> None:
    installation = session.get(Installation, shop.installation_id)
    assert installation is not None
    installation.settings = {"resend_after_hours": 24, "resend_max": 2}
    session.add(installation)
    session.commit()
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        membership_id = pay(client, fake_saleor)
        assert run_sends(queued) == ["sent #1"]
        clock.move_to(start + timedelta(hours=23))
        assert service.resend_due(session).queued == []
        for send in (2, 3):
            clock.move_to(start + timedelta(hours=24 * (send - 1), minutes=5))
            assert service.resend_due(session).queued == [membership_id]
            session.commit()
            assert service.resend_due(session).queued == []  # queued once, not again on the next tick
            session.commit()
            assert take(queued, "invitations.send_invitation") == [(membership_id, send, False)]
            assert send_invitation.apply(args=(membership_id, send, False)).get() == f"sent #{send}"
        clock.move_to(start + timedelta(days=10))
        assert service.resend_due(session).queued == []
        session.commit()
    assert len(smtp.messages) == 3
    assert "Reminder" in smtp.messages[1]["Subject"]
    assert "Reminder" not in smtp.messages[0]["Subject"]
    codes = [set(CODE.findall(parts(message)[0])) for message in smtp.messages]
    assert all(len(c) == 1 for c in codes)
    assert len(set.union(*codes)) == 3
    assert invitation(session, membership_id).sends == 3
    assert invitation(session, membership_id).next_send_at is None


def test_invitation_without_a_server_invite_when_discord_refuses(
    client: TestClient, fake_saleor: FakeSaleor, fake_discord: Any, shop: Shop, smtp: SmtpSink, queued: Queued,
    session: Session,
) -> None:
    fake_discord.inject("POST", r"/invites$", 403, json={"code": 50013, "message": "Missing Permissions"})
    membership_id = pay(client, fake_saleor)
    assert run_sends(queued) == ["sent #1"]
    text, html = parts(smtp.messages[0])
    assert "discord.gg" not in text
    assert "Connect Discord button" in text
    assert "Connect Discord button" in html
    assert session.exec(select(AuditEvent).where(AuditEvent.kind == "invitation.invite_failed")).one()
    row = invitation(session, membership_id)
    assert row.invite_code is None
    assert row.last_error
    assert "without a server invite" in row.last_error


def test_store_sender_and_template_overrides_are_used_and_escaped(
    client: TestClient, fake_saleor: FakeSaleor, shop: Shop, smtp: SmtpSink, queued: Queued, session: Session,
) -> None:
    installation = session.get(Installation, shop.installation_id)
    assert installation is not None
    installation.settings = {
        "email_from": "Cool Club <club@example.org>",
        "store_name": "Cool <b>Club</b>",
        "templates": {
            "welcome_subject": "Hi from {{ store }}",
            "welcome_html": "<p>{{ store }}: <a href='{{ link_url }}'>go</a> {{ claim_code }}</p>",
        },
    }
    session.add(installation)
    session.commit()
    pay(client, fake_saleor)
    assert run_sends(queued) == ["sent #1"]
    [message] = smtp.messages
    assert message["From"] == "Cool Club <club@example.org>"
    assert message["Subject"] == "Hi from Cool <b>Club</b>"
    text, html = parts(message)
    assert "Cool &lt;b&gt;Club&lt;/b&gt;:" in html
    assert "<b>" not in html
    assert "Your Discord access is ready" in text  # no text override: the built-in template
    assert CODE.search(html)


def test_revoked_before_sending_sends_nothing_and_updates_metadata_later(
    client: TestClient, fake_saleor: FakeSaleor, shop: Shop, smtp: SmtpSink, queued: Queued, session: Session,
) -> None:
    membership_id = pay(client, fake_saleor)
    assert run_sends(queued) == ["sent #1"]
    take(queued, "invitations.update_order_metadata")
    response = deliver(client, fake_saleor, "ORDER_CANCELLED",
                       {"__typename": "OrderCancelled", "issuedAt": utcnow().isoformat(),
                        "order": {"id": "T3JkZXI6MQ==", "number": "1", "status": "CANCELED",
                                  "chargeStatus": "FULL", "userEmail": EMAIL, "user": None,
                                  "total": {"gross": {"amount": 10, "currency": "USD"}},
                                  "totalCharged": {"amount": 10, "currency": "USD"},
                                  "totalRefunded": {"amount": 0}, "grantedRefunds": []}})
    assert response.status_code == 200
    process_pending_events()
    assert invitation(session, membership_id).next_send_at is None
    [(mid,)] = take(queued, "invitations.update_order_metadata")
    assert update_order_metadata.apply(args=(mid,)).get() == "revoked"
    assert {i["key"]: i["value"] for i in shop.metadata_calls[-1]["input"]}["discord_access_status"] == "revoked"
    # A stale queued send for this membership does nothing.
    assert send_invitation.apply(args=(membership_id, 2, False)).get() == "membership ended"
    assert len(smtp.messages) == 1


def test_metadata_401_uninstalls_the_store(client: TestClient, fake_saleor: FakeSaleor, shop: Shop,
                                           smtp: SmtpSink, queued: Queued, session: Session) -> None:
    membership_id = pay(client, fake_saleor)
    fake_saleor.app_token = "rotated-by-saleor"  # the app was removed: our token is no longer valid
    assert update_order_metadata.apply(args=(membership_id,)).get() == "store uninstalled"
    session.expire_all()
    installation = session.get(Installation, shop.installation_id)
    assert installation is not None
    assert installation.status == InstallationStatus.UNINSTALLED
    assert installation.app_token is None
    assert shop.metadata_calls == []
    # Nothing more is sent for an uninstalled store.
    assert run_sends(queued) == ["store inactive"]
    assert smtp.messages == []


def test_staff_send_invitation_endpoint(client: TestClient, fake_saleor: FakeSaleor, shop: Shop, smtp: SmtpSink,
                                        queued: Queued, session: Session) -> None:
    from tests.conftest import install

    membership_id = pay(client, fake_saleor)
    assert run_sends(queued) == ["sent #1"]
    url = f"/api/memberships/{membership_id}/send-invitation"

    def auth(fake: FakeSaleor, permissions: list[str]) -> dict[str, str]:
        return {"authorization-bearer": fake.dashboard_token(permissions=permissions),
                "saleor-api-url": fake.api_url}

    assert client.post(url).status_code == 401
    assert client.post(url, headers=auth(fake_saleor, ["MANAGE_PRODUCTS"])).status_code == 403
    assert take(queued, "invitations.send_invitation") == []
    with FakeSaleor(app_id="QXBwOjc=").serve() as other:
        install(client, other)
        assert client.post(url, headers=auth(other, ["MANAGE_ORDERS"])).status_code == 404
    assert client.post("/api/memberships/999999/send-invitation",
                       headers=auth(fake_saleor, ["MANAGE_ORDERS"])).status_code == 404

    response = client.post(url, headers=auth(fake_saleor, ["MANAGE_ORDERS"]))
    assert response.status_code == 202, response.text
    assert response.json() == {"membership_id": membership_id, "send_number": 2, "status": "queued"}
    client.post(url, headers=auth(fake_saleor, ["MANAGE_ORDERS"]))  # a double click: the same send number
    assert take(queued, "invitations.send_invitation") == [(membership_id, 2, True), (membership_id, 2, True)]
    assert send_invitation.apply(args=(membership_id, 2, True)).get() == "sent #2"
    assert send_invitation.apply(args=(membership_id, 2, True)).get() == "already sent"
    assert len(smtp.messages) == 2
    requested = session.exec(select(AuditEvent).where(AuditEvent.kind == "invitation.requested")).all()
    assert requested
    assert requested[0].message.endswith("staff@example.com")


def test_cli_and_beat_run_the_scan(client: TestClient, fake_saleor: FakeSaleor, shop: Shop, smtp: SmtpSink,
                                   queued: Queued, session: Session) -> None:
    from typer.testing import CliRunner

    from saleor_discord_app.cli import cli
    from saleor_discord_app.config import get_settings
    from saleor_discord_app.worker import TASK_MODULES, beat_schedule, celery_app

    entry = beat_schedule(get_settings())["resend-invitations"]
    assert entry["task"] == "invitations.resend_due"
    assert entry["schedule"] == 300.0
    assert entry["options"]["expires"]
    assert "saleor_discord_app.invitations.tasks" in TASK_MODULES
    assert "invitations.resend_due" in celery_app.tasks

    membership_id = pay(client, fake_saleor)
    assert run_sends(queued) == ["sent #1"]
    with time_machine.travel(utcnow() + timedelta(hours=49), tick=False):
        runner = CliRunner()
        other = runner.invoke(cli, ["resend-invitations", "--store", "http://127.0.0.1:1/graphql/"])
        assert other.exit_code == 1
        result = runner.invoke(cli, ["resend-invitations", "--store", fake_saleor.api_url])
        assert result.exit_code == 0, result.output
        assert "queued 1 invitation" in result.output
    assert take(queued, "invitations.send_invitation") == [(membership_id, 2, False)]


def test_linked_customer_gets_no_email(client: TestClient, fake_saleor: FakeSaleor, shop: Shop, smtp: SmtpSink,
                                       queued: Queued, session: Session) -> None:
    links.link_customer(session, shop.installation_id, customer_email=EMAIL, discord_user_id="123456789012345678",
                        via=LinkMethod.OAUTH)
    session.commit()
    membership_id = pay(client, fake_saleor)
    assert take(queued, "invitations.send_invitation") == []
    assert session.exec(select(Invitation).where(Invitation.membership_id == membership_id)).first() is None
    # Even a stale automatic send does nothing for a linked customer.
    assert send_invitation.apply(args=(membership_id, 1, False)).get() == "customer already linked"
    assert smtp.messages == []
