"""Turns recorded Saleor events into membership service calls (payload parsing lives here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlmodel import Session

from saleor_discord_app.memberships import service as memberships
from saleor_discord_app.models import Installation, OrderChargeState, WebhookEvent
from saleor_discord_app.saleor import service as saleor_service
from saleor_discord_app.saleor.webhooks import EventType
from saleor_discord_app.sqltypes import utcnow


class MalformedPayload(ValueError):
    """The payload lacks what the event needs; the event is marked failed, not retried."""


def _order(payload: dict[str, Any]) -> dict[str, Any]:
    order = payload.get("order")
    if not isinstance(order, dict) or not order.get("id"):
        raise MalformedPayload("payload has no order")
    return order


def _amount(value: Any) -> Decimal | None:
    if not isinstance(value, dict) or value.get("amount") is None:
        return None
    try:
        return Decimal(str(value["amount"]))
    except InvalidOperation as exc:
        raise MalformedPayload(f"bad amount {value['amount']!r}") from exc


def _email(order: dict[str, Any]) -> str:
    user = order.get("user") or {}
    return str(order.get("userEmail") or user.get("email") or "").strip().lower()


def paid_order(payload: dict[str, Any]) -> memberships.PaidOrder:
    order = _order(payload)
    email = _email(order)
    if not email:
        raise MalformedPayload("order has no customer email")
    lines = []
    for line in order.get("lines") or []:
        variant = line.get("variant") or {}
        product = variant.get("product") or {}
        lines.append(
            memberships.PaidLine(
                line_id=str(line["id"]),
                product_id=product.get("id"),
                variant_id=variant.get("id") or line.get("productVariantId"),
                quantity=int(line.get("quantity") or 1),
            )
        )
    user = order.get("user") or {}
    return memberships.PaidOrder(
        order_id=str(order["id"]),
        number=str(order.get("number") or ""),
        customer_email=email,
        saleor_user_id=user.get("id"),
        lines=lines,
    )


def order_change(payload: dict[str, Any]) -> memberships.OrderChange:
    order = _order(payload)
    refunded_lines = {
        str(refund_line["orderLine"]["id"])
        for refund in order.get("grantedRefunds") or []
        if refund.get("status") == "SUCCESS"
        for refund_line in refund.get("lines") or []
        if (refund_line.get("orderLine") or {}).get("id")
    }
    total = order.get("total") or {}
    return memberships.OrderChange(
        order_id=str(order["id"]),
        number=str(order.get("number") or ""),
        status=str(order.get("status") or ""),
        charge_status=str(order.get("chargeStatus") or ""),
        customer_email=_email(order),
        total=_amount(total.get("gross")),
        charged=_amount(order.get("totalCharged")) or Decimal(0),
        refunded=_amount(order.get("totalRefunded")) or Decimal(0),
        refunded_line_ids=frozenset(refunded_lines),
    )


def _paid(session: Session, inst: Installation, payload: dict[str, Any], at: datetime) -> None:
    assert inst.id is not None
    memberships.order_paid(session, inst.id, paid_order(payload), at)


def _ended(state: OrderChargeState) -> Callable[[Session, Installation, dict[str, Any], datetime], None]:
    def handle(session: Session, inst: Installation, payload: dict[str, Any], at: datetime) -> None:
        assert inst.id is not None
        change = order_change(payload)
        memberships.order_ended(
            session, inst.id, change.order_id, state, at, number=change.number, email=change.customer_email
        )

    return handle


def _refunded(session: Session, inst: Installation, payload: dict[str, Any], at: datetime) -> None:
    assert inst.id is not None
    memberships.order_refunded(session, inst.id, order_change(payload), at)


def _updated(session: Session, inst: Installation, payload: dict[str, Any], at: datetime) -> None:
    assert inst.id is not None
    memberships.order_updated(session, inst.id, order_change(payload), at)


def _customer_deleted(session: Session, inst: Installation, payload: dict[str, Any], at: datetime) -> None:
    assert inst.id is not None
    user = payload.get("user") or {}
    if not user.get("id") and not user.get("email"):
        raise MalformedPayload("payload has no user")
    memberships.customer_deleted(session, inst.id, saleor_user_id=user.get("id"), email=user.get("email"))


def _app_deleted(session: Session, inst: Installation, payload: dict[str, Any], at: datetime) -> None:
    app_id = (payload.get("app") or {}).get("id")
    if app_id and app_id != inst.app_id:
        # An APP_DELETED for an older installation of the app on this store: not ours any more.
        return
    saleor_service.uninstall(session, inst, reason="Saleor reported the app was deleted (APP_DELETED).")


HANDLERS: dict[str, Callable[[Session, Installation, dict[str, Any], datetime], None]] = {
    EventType.ORDER_FULLY_PAID: _paid,
    EventType.ORDER_CANCELLED: _ended(OrderChargeState.CANCELLED),
    EventType.ORDER_FULLY_REFUNDED: _ended(OrderChargeState.REFUNDED),
    EventType.ORDER_REFUNDED: _refunded,
    EventType.ORDER_UPDATED: _updated,
    EventType.CUSTOMER_DELETED: _customer_deleted,
    EventType.ACCOUNT_DELETED: _customer_deleted,
    EventType.APP_DELETED: _app_deleted,
}


def handle_event(session: Session, installation: Installation, event: WebhookEvent) -> None:
    handler = HANDLERS[event.event_type]
    handler(session, installation, event.payload, event.issued_at or event.received_at or utcnow())
