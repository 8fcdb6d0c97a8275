"""The app manifest Saleor reads on install, built from the webhook and extension lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from saleor_discord_app import __version__
from saleor_discord_app.config import Settings
from saleor_discord_app.saleor.webhooks import WEBHOOKS

REQUIRED_SALEOR_VERSION = ">=3.22 <3.25"
PERMISSIONS = ("MANAGE_ORDERS", "MANAGE_PRODUCTS", "MANAGE_USERS")
REGISTER_PATH = "/api/saleor/register"
MANIFEST_PATH = "/api/manifest"
APP_PAGE_PATH = "/dashboard/"
EXAMPLE_PUBLIC_URL = "https://discord-app.example.com"
"""The base URL the committed manifest.json is rendered for."""


@dataclass(frozen=True)
class ExtensionDefinition:
    label: str
    identifier: str
    mount: str
    target: str
    path: str
    permissions: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


EXTENSIONS: tuple[ExtensionDefinition, ...] = (
    ExtensionDefinition(
        label="Discord access",
        identifier="product-discord-widget",
        mount="PRODUCT_DETAILS_WIDGETS",
        target="WIDGET",
        path="/dashboard/product-widget",
        permissions=("MANAGE_PRODUCTS",),
    ),
    ExtensionDefinition(
        label="Configure Discord access",
        identifier="product-discord-popup",
        mount="PRODUCT_DETAILS_MORE_ACTIONS",
        target="POPUP",
        path="/dashboard/product-rules",
        permissions=("MANAGE_PRODUCTS",),
    ),
    ExtensionDefinition(
        label="Discord",
        identifier="order-discord-widget",
        mount="ORDER_DETAILS_WIDGETS",
        target="WIDGET",
        path="/dashboard/order-widget",
        permissions=("MANAGE_ORDERS",),
    ),
    ExtensionDefinition(
        label="Discord subscribers",
        identifier="discord-subscribers",
        mount="NAVIGATION_CUSTOMERS",
        target="APP_PAGE",
        path="/subscribers",
        permissions=("MANAGE_ORDERS",),
    ),
)


def build_manifest(settings: Settings) -> dict[str, Any]:
    base = settings.public_url
    return {
        "id": settings.app_id,
        "version": __version__,
        "name": settings.app_name,
        "about": "Sells access to Discord communities: paid orders grant Discord roles, and the roles "
        "go away when access ends (expiry, cancellation, refund, chargeback).",
        "author": "Saleor Discord Memberships",
        "requiredSaleorVersion": REQUIRED_SALEOR_VERSION,
        "permissions": list(PERMISSIONS),
        "appUrl": f"{base}{APP_PAGE_PATH}",
        "tokenTargetUrl": f"{base}{REGISTER_PATH}",
        "homepageUrl": base,
        "supportUrl": f"{base}/support",
        "dataPrivacyUrl": f"{base}/privacy",
        "extensions": [
            {
                "label": extension.label,
                "identifier": extension.identifier,
                "mount": extension.mount,
                "target": extension.target,
                "permissions": list(extension.permissions),
                # APP_PAGE urls are relative to appUrl (required by Saleor 3.22); the others are absolute.
                "url": extension.path if extension.target == "APP_PAGE" else f"{base}{extension.path}",
                **({"options": extension.options} if extension.options else {}),
            }
            for extension in EXTENSIONS
        ],
        "webhooks": [
            {
                "name": webhook.name,
                "asyncEvents": list(webhook.events),
                "query": webhook.query,
                "targetUrl": f"{base}{webhook.path}",
                "isActive": True,
            }
            for webhook in WEBHOOKS
        ],
    }
