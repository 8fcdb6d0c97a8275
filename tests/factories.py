"""Builders for Saleor payloads (shaped like the subscription queries' results) and database rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from saleor_discord_app.models import AccessRule, DiscordServer, Installation

BASE_TIME = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GUILD_ID = "900000000000000001"
ROLE_ID = "900000000000000101"


def at(minutes: float) -> str:
    return (BASE_TIME + timedelta(minutes=minutes)).isoformat()


def paid_payload(
    order_id: str = "T3JkZXI6MQ==",
    *,
    number: str = "1",
    email: str = "ashley@example.com",
    user_id: str | None = "VXNlcjo2",
    lines: list[tuple[str, str, str]] | None = None,
    issued_at: str | None = None,
    quantity: int = 1,
) -> dict[str, Any]:
    lines = lines if lines is not None else [("T3JkZXJMaW5lOjE=", "UHJvZHVjdDox", "UHJvZHVjdFZhcmlhbnQ6MQ==")]
    return {
        "__typename": "OrderFullyPaid",
        "issuedAt": issued_at or at(0),
        "version": "3.23.28",
        "order": {
            "id": order_id,
            "number": number,
            "status": "UNFULFILLED",
            "chargeStatus": "FULL",
            "userEmail": email,
            "user": {"id": user_id, "email": email} if user_id else None,
            "channel": {"slug": "default-channel"},
            "lines": [
                {
                    "id": line_id,
                    "quantity": quantity,
                    "productVariantId": variant_id,
                    "variant": {"id": variant_id, "product": {"id": product_id}},
                }
                for line_id, product_id, variant_id in lines
            ],
        },
    }


def changed_payload(
    typename: str,
    order_id: str = "T3JkZXI6MQ==",
    *,
    status: str = "UNFULFILLED",
    charge_status: str = "FULL",
    total: float = 10.0,
    charged: float = 10.0,
    refunded: float = 0.0,
    refunded_lines: list[str] | None = None,
    issued_at: str | None = None,
    email: str = "ashley@example.com",
) -> dict[str, Any]:
    return {
        "__typename": typename,
        "issuedAt": issued_at or at(1),
        "order": {
            "id": order_id,
            "number": "1",
            "status": status,
            "chargeStatus": charge_status,
            "userEmail": email,
            "user": {"id": "VXNlcjo2"},
            "total": {"gross": {"amount": total, "currency": "USD"}},
            "totalCharged": {"amount": charged, "currency": "USD"},
            "totalRefunded": {"amount": refunded},
            "grantedRefunds": [
                {"status": "SUCCESS", "lines": [{"quantity": 1, "orderLine": {"id": line}} for line in refunded_lines]}
            ]
            if refunded_lines
            else [],
        },
    }


def make_rule(session: Session, installation_id: int, *, connect_server: bool = True, **fields: Any) -> AccessRule:
    """An access rule; its Discord server is connected to the store unless ``connect_server`` is False."""
    values: dict[str, Any] = {
        "product_id": "UHJvZHVjdDox",
        "guild_id": GUILD_ID,
        "role_ids": [ROLE_ID],
        "name": "VIP",
        "duration_days": 30,
        **fields,
    }
    rule = AccessRule(installation_id=installation_id, **values)
    connected = session.exec(
        select(DiscordServer).where(
            DiscordServer.installation_id == installation_id, DiscordServer.guild_id == rule.guild_id
        )
    ).first()
    if connected is None and connect_server:
        session.add(DiscordServer(installation_id=installation_id, guild_id=rule.guild_id, name="Store"))
    session.add(rule)
    session.commit()
    session.refresh(rule)
    return rule


def make_installation(session: Session, saleor_api_url: str = "http://127.0.0.1:1/graphql/") -> int:
    """A store that installed the app (without going through the install endpoint)."""
    installation = Installation(saleor_api_url=saleor_api_url, app_id="QXBwOjE=", app_token="t")
    session.add(installation)
    session.commit()
    assert installation.id is not None
    return installation.id
