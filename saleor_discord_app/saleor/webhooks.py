"""The one list of Saleor webhooks: it builds the manifest and routes deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

GRAPHQL_DIR = Path(__file__).resolve().parent / "graphql"


class EventType:
    """Saleor async event names as the manifest spells them (deliveries carry them lower-cased)."""

    ORDER_FULLY_PAID = "ORDER_FULLY_PAID"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_FULLY_REFUNDED = "ORDER_FULLY_REFUNDED"
    ORDER_REFUNDED = "ORDER_REFUNDED"
    ORDER_UPDATED = "ORDER_UPDATED"
    CUSTOMER_DELETED = "CUSTOMER_DELETED"
    ACCOUNT_DELETED = "ACCOUNT_DELETED"
    APP_DELETED = "APP_DELETED"


@dataclass(frozen=True)
class WebhookDefinition:
    name: str
    slug: str
    """Path segment: the webhook is delivered to /api/saleor/webhooks/<slug>."""
    events: tuple[str, ...]
    subscription_file: str

    @property
    def path(self) -> str:
        return f"/api/saleor/webhooks/{self.slug}"

    @property
    def query(self) -> str:
        return load_graphql(f"subscriptions/{self.subscription_file}")


WEBHOOKS: tuple[WebhookDefinition, ...] = (
    WebhookDefinition(
        name="Discord memberships: order fully paid",
        slug="order-fully-paid",
        events=(EventType.ORDER_FULLY_PAID,),
        subscription_file="order_fully_paid.graphql",
    ),
    WebhookDefinition(
        name="Discord memberships: order cancelled, refunded or charged back",
        slug="order-changed",
        events=(
            EventType.ORDER_CANCELLED,
            EventType.ORDER_FULLY_REFUNDED,
            EventType.ORDER_REFUNDED,
            EventType.ORDER_UPDATED,
        ),
        subscription_file="order_changed.graphql",
    ),
    WebhookDefinition(
        name="Discord memberships: customer deleted",
        slug="customer-deleted",
        events=(EventType.CUSTOMER_DELETED, EventType.ACCOUNT_DELETED),
        subscription_file="customer_deleted.graphql",
    ),
    WebhookDefinition(
        name="Discord memberships: app deleted",
        slug="app-deleted",
        events=(EventType.APP_DELETED,),
        subscription_file="app_deleted.graphql",
    ),
)

WEBHOOKS_BY_SLUG = {webhook.slug: webhook for webhook in WEBHOOKS}


@cache
def load_graphql(relative_path: str) -> str:
    return (GRAPHQL_DIR / relative_path).read_text()


def all_graphql_documents() -> dict[str, str]:
    """Every .graphql document the app sends or subscribes with, by path (validated by a test)."""
    return {
        str(path.relative_to(GRAPHQL_DIR)): path.read_text()
        for path in sorted(GRAPHQL_DIR.rglob("*.graphql"))
    }
