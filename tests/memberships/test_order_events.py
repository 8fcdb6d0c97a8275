"""End states of memberships for every order event sequence, delivered as signed webhooks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from saleor_discord_app.models import AuditEvent, Installation, Membership, MembershipStatus, PartialRefundPolicy
from tests.conftest import deliver, process_pending_events
from tests.factories import at, changed_payload, make_rule, paid_payload
from tests.fakes.saleor import FakeSaleor

ORDER = "T3JkZXI6MQ=="
LINE = "T3JkZXJMaW5lOjE="


@pytest.fixture
def rule_id(session: Session, installation: Installation) -> int:
    assert installation.id is not None
    rule = make_rule(session, installation.id)
    assert rule.id is not None
    return rule.id


def memberships(session: Session) -> list[Membership]:
    session.expire_all()
    return list(session.exec(select(Membership).order_by(col(Membership.id))))


def send(client: TestClient, fake: FakeSaleor, *events: tuple[str, dict]) -> None:  # type: ignore[type-arg]
    for event, payload in events:
        assert deliver(client, fake, event, payload).status_code == 200
    process_pending_events()


def test_paid_creates_one_membership_per_line_and_rule(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, installation: Installation
) -> None:
    assert installation.id is not None
    make_rule(session, installation.id)  # product rule, matches lines 1 and 2
    make_rule(session, installation.id, product_id=None, variant_id="UHJvZHVjdFZhcmlhbnQ6MQ==", name="variant")
    make_rule(session, installation.id, product_id="UHJvZHVjdDo5OQ==", name="other product")
    make_rule(session, installation.id, is_active=False, name="inactive")
    payload = paid_payload(
        lines=[
            (LINE, "UHJvZHVjdDox", "UHJvZHVjdFZhcmlhbnQ6MQ=="),
            ("T3JkZXJMaW5lOjI=", "UHJvZHVjdDox", "UHJvZHVjdFZhcmlhbnQ6Mg=="),
            ("T3JkZXJMaW5lOjM=", "UHJvZHVjdDo3", "UHJvZHVjdFZhcmlhbnQ6Nw=="),
        ]
    )
    send(client, fake_saleor, ("ORDER_FULLY_PAID", payload))
    rows = memberships(session)
    rules = {m.rule_id for m in rows}
    assert sorted(m.order_line_id for m in rows) == sorted([LINE, LINE, "T3JkZXJMaW5lOjI="])
    assert len(rules) == 2  # the product rule and the variant rule; not the other product's or the inactive one
    assert len(rows) == 3
    assert {m.status for m in rows} == {MembershipStatus.PENDING}
    assert all(m.customer_email == "ashley@example.com" for m in rows)
    kinds = session.exec(select(AuditEvent.kind).where(AuditEvent.kind == "membership.created")).all()
    assert len(kinds) == 3


def test_duplicate_deliveries_change_nothing(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    payload = paid_payload()
    send(client, fake_saleor, *[("ORDER_FULLY_PAID", payload)] * 3)
    # The same event re-issued (a new issuedAt: Saleor can fire FULLY_PAID twice) is also a no-op.
    send(client, fake_saleor, ("ORDER_FULLY_PAID", paid_payload(issued_at=at(5))))
    rows = memberships(session)
    assert len(rows) == 1 and rows[0].status == MembershipStatus.PENDING
    ends_at = rows[0].ends_at
    cancel = changed_payload("OrderCancelled", status="CANCELED", issued_at=at(10))
    send(client, fake_saleor, *[("ORDER_CANCELLED", cancel)] * 3)
    rows = memberships(session)
    assert rows[0].status == MembershipStatus.REVOKED and rows[0].ends_at == ends_at
    assert len(session.exec(select(AuditEvent).where(AuditEvent.kind == "membership.revoked")).all()) == 1


def test_cancel_before_paid_ends_revoked(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    send(
        client,
        fake_saleor,
        ("ORDER_CANCELLED", changed_payload("OrderCancelled", status="CANCELED", issued_at=at(10))),
        ("ORDER_FULLY_PAID", paid_payload(issued_at=at(0))),
    )
    [membership] = memberships(session)
    assert membership.status == MembershipStatus.REVOKED
    assert membership.end_reason == "cancelled"


def test_refund_before_paid_ends_revoked(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    send(
        client,
        fake_saleor,
        (
            "ORDER_FULLY_REFUNDED",
            changed_payload("OrderFullyRefunded", charge_status="NONE", charged=0, refunded=10, issued_at=at(10)),
        ),
        ("ORDER_FULLY_PAID", paid_payload(issued_at=at(0))),
    )
    [membership] = memberships(session)
    assert (membership.status, membership.end_reason) == (MembershipStatus.REVOKED, "refunded")


def test_stale_unpaid_update_after_paid_does_not_revoke(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    """ORDER_UPDATED from before the payment (chargeStatus NONE) arriving late must not revoke."""
    send(
        client,
        fake_saleor,
        ("ORDER_FULLY_PAID", paid_payload(issued_at=at(5))),
        ("ORDER_UPDATED", changed_payload("OrderUpdated", charge_status="NONE", charged=0, issued_at=at(0))),
    )
    [membership] = memberships(session)
    assert membership.status == MembershipStatus.PENDING


def paid_again(order_id: str, number: str, line_id: str, minutes: float, **fields: Any) -> tuple[str, dict[str, Any]]:
    """A later paid order of the same product (a renewal when the customer is the same)."""
    lines = [(line_id, "UHJvZHVjdDox", "UHJvZHVjdFZhcmlhbnQ6MQ==")]
    return "ORDER_FULLY_PAID", paid_payload(order_id, number=number, lines=lines, issued_at=at(minutes), **fields)


def test_renewal_extends_from_the_later_of_now_and_the_current_end(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    send(client, fake_saleor, ("ORDER_FULLY_PAID", paid_payload(issued_at=at(0))))
    [first] = memberships(session)
    assert first.ends_at is not None
    assert first.ends_at - first.starts_at == timedelta(days=30)
    # Renewed 10 days in, while the first is still running: the new period starts at the first's end.
    send(client, fake_saleor, paid_again("T3JkZXI6Mg==", "2", "T3JkZXJMaW5lOjk=", 60 * 24 * 10))
    first, second = memberships(session)
    assert second.ends_at == first.ends_at + timedelta(days=30)
    # A third purchase by another customer starts from its own payment.
    send(
        client,
        fake_saleor,
        paid_again("T3JkZXI6Mw==", "3", "T3JkZXJMaW5lOjEw", 60 * 24 * 10, email="bob@example.com", user_id=None),
    )
    third = memberships(session)[2]
    assert third.ends_at is not None and third.ends_at - third.starts_at == timedelta(days=30)


def test_renewal_after_the_end_starts_from_the_payment(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    send(client, fake_saleor, ("ORDER_FULLY_PAID", paid_payload(issued_at=at(0))))
    send(client, fake_saleor, paid_again("T3JkZXI6Mg==", "2", "T3JkZXJMaW5lOjk=", 60 * 24 * 45))
    _first, second = memberships(session)
    assert second.ends_at is not None and second.ends_at - second.starts_at == timedelta(days=30)


def test_chargeback_via_order_updated_revokes_and_repayment_restores(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    send(
        client,
        fake_saleor,
        ("ORDER_FULLY_PAID", paid_payload(issued_at=at(0))),
        ("ORDER_UPDATED", changed_payload("OrderUpdated", issued_at=at(1))),
    )  # still FULL: nothing happens
    assert memberships(session)[0].status == MembershipStatus.PENDING
    send(
        client,
        fake_saleor,
        ("ORDER_UPDATED", changed_payload("OrderUpdated", charge_status="NONE", charged=0, issued_at=at(60))),
    )
    [membership] = memberships(session)
    assert (membership.status, membership.end_reason) == (MembershipStatus.REVOKED, "chargeback")
    send(
        client, fake_saleor, ("ORDER_UPDATED", changed_payload("OrderUpdated", charge_status="FULL", issued_at=at(90)))
    )
    assert memberships(session)[0].status == MembershipStatus.PENDING


def test_refund_that_lowers_the_charge_is_not_a_chargeback(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    send(
        client,
        fake_saleor,
        ("ORDER_FULLY_PAID", paid_payload(issued_at=at(0))),
        (
            "ORDER_UPDATED",
            changed_payload("OrderUpdated", charge_status="PARTIAL", charged=6, refunded=4, issued_at=at(10)),
        ),
    )
    assert memberships(session)[0].status == MembershipStatus.PENDING


@pytest.mark.parametrize(
    ("policy", "refunded_lines", "expected"),
    [
        (PartialRefundPolicy.KEEP, [LINE], MembershipStatus.PENDING),
        (PartialRefundPolicy.REVOKE, [], MembershipStatus.REVOKED),
        (PartialRefundPolicy.REVOKE_REFUNDED_LINES, [LINE], MembershipStatus.REVOKED),
        (PartialRefundPolicy.REVOKE_REFUNDED_LINES, ["T3JkZXJMaW5lOjI="], MembershipStatus.PENDING),
    ],
)
def test_partial_refund_follows_the_rule_policy(
    client: TestClient,
    fake_saleor: FakeSaleor,
    session: Session,
    installation: Installation,
    policy: PartialRefundPolicy,
    refunded_lines: list[str],
    expected: MembershipStatus,
) -> None:
    assert installation.id is not None
    make_rule(session, installation.id, partial_refund_policy=policy)
    refund = changed_payload(
        "OrderRefunded", charge_status="PARTIAL", charged=6, refunded=4, refunded_lines=refunded_lines, issued_at=at(10)
    )
    send(client, fake_saleor, ("ORDER_FULLY_PAID", paid_payload(issued_at=at(0))), ("ORDER_REFUNDED", refund))
    [membership] = memberships(session)
    assert membership.status == expected
    # The same sequence out of order (refund first) ends the same way.
    line_2 = "T3JkZXJMaW5lOjU1"
    late_refund = changed_payload(
        "OrderRefunded",
        "T3JkZXI6Mg==",
        charge_status="PARTIAL",
        charged=6,
        refunded=4,
        refunded_lines=[line_2 if line == LINE else line for line in refunded_lines],
        issued_at=at(10),
    )
    send(
        client,
        fake_saleor,
        ("ORDER_REFUNDED", late_refund),
        (
            "ORDER_FULLY_PAID",
            paid_payload(
                "T3JkZXI6Mg==",
                number="2",
                issued_at=at(0),
                lines=[(line_2, "UHJvZHVjdDox", "UHJvZHVjdFZhcmlhbnQ6MQ==")],
            ),
        ),
    )
    assert memberships(session)[1].status == expected


def test_full_refund_via_order_refunded_revokes(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    send(
        client,
        fake_saleor,
        ("ORDER_FULLY_PAID", paid_payload(issued_at=at(0))),
        (
            "ORDER_REFUNDED",
            changed_payload("OrderRefunded", charge_status="NONE", charged=0, refunded=10, issued_at=at(10)),
        ),
    )
    assert memberships(session)[0].end_reason == "refunded"


def test_deleted_customer_loses_access(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    send(
        client,
        fake_saleor,
        ("ORDER_FULLY_PAID", paid_payload(issued_at=at(0))),
        (
            "ORDER_FULLY_PAID",
            paid_payload(
                "T3JkZXI6Mg==",
                number="2",
                email="bob@example.com",
                user_id="VXNlcjo3",
                lines=[("T3JkZXJMaW5lOjk=", "UHJvZHVjdDox", "UHJvZHVjdFZhcmlhbnQ6MQ==")],
            ),
        ),
    )
    send(
        client,
        fake_saleor,
        (
            "CUSTOMER_DELETED",
            {
                "__typename": "CustomerDeleted",
                "issuedAt": at(5),
                "user": {"id": "VXNlcjo2", "email": "ashley@example.com"},
            },
        ),
    )
    ashley, bob = memberships(session)
    assert (ashley.status, ashley.end_reason) == (MembershipStatus.REVOKED, "customer_deleted")
    assert bob.status == MembershipStatus.PENDING


def test_malformed_payload_is_recorded_as_an_error_not_retried(
    client: TestClient, fake_saleor: FakeSaleor, session: Session, rule_id: int
) -> None:
    assert deliver(client, fake_saleor, "ORDER_FULLY_PAID", {"__typename": "OrderFullyPaid"}).status_code == 200
    assert process_pending_events() == ["processed"]
    from saleor_discord_app.models import WebhookEvent

    event = session.exec(select(WebhookEvent)).one()
    assert event.processed_at is not None and "malformed" in (event.error or "")
    assert memberships(session) == []
