"""The manifest, the committed manifest.json, and the no-redirect rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from saleor_discord_app.config import Settings
from saleor_discord_app.saleor.manifest import EXAMPLE_PUBLIC_URL, REQUIRED_SALEOR_VERSION, build_manifest
from saleor_discord_app.saleor.webhooks import WEBHOOKS

ROOT = Path(__file__).resolve().parents[2]


def test_committed_manifest_json_matches_the_endpoint_rendering() -> None:
    committed = json.loads((ROOT / "manifest.json").read_text())
    assert committed == build_manifest(Settings(public_url=EXAMPLE_PUBLIC_URL))


def test_manifest_endpoint_uses_the_configured_public_url(client: TestClient) -> None:
    response = client.get("/api/manifest", headers={"Host": "127.0.0.1", "Saleor-Schema-Version": "3.23"})
    assert response.status_code == 200
    manifest = response.json()
    assert manifest["tokenTargetUrl"] == "http://testserver/api/saleor/register"
    assert all(hook["targetUrl"].startswith("http://testserver/api/saleor/webhooks/") for hook in manifest["webhooks"])
    for field in ("id", "version", "name", "tokenTargetUrl", "appUrl", "permissions", "webhooks", "extensions"):
        assert manifest[field], field


def test_manifest_permissions_and_versions() -> None:
    manifest = build_manifest(Settings(public_url=EXAMPLE_PUBLIC_URL))
    assert sorted(manifest["permissions"]) == ["MANAGE_ORDERS", "MANAGE_PRODUCTS", "MANAGE_USERS"]
    assert "MANAGE_APPS" not in json.dumps(manifest)
    spec = SpecifierSet(",".join(REQUIRED_SALEOR_VERSION.split()))
    for supported in ("3.22.0", "3.22.67", "3.23.28", "3.24.0"):
        assert Version(supported) in spec, supported
    for unsupported in ("3.21.69", "3.25.0", "4.0.0"):
        assert Version(unsupported) not in spec, unsupported
    events = sorted(event for hook in manifest["webhooks"] for event in hook["asyncEvents"])
    assert events == sorted(
        [
            "ORDER_FULLY_PAID",
            "ORDER_CANCELLED",
            "ORDER_FULLY_REFUNDED",
            "ORDER_REFUNDED",
            "ORDER_UPDATED",
            "CUSTOMER_DELETED",
            "ACCOUNT_DELETED",
            "APP_DELETED",
        ]
    )
    for extension in manifest["extensions"]:
        assert set(extension["permissions"]) <= set(manifest["permissions"])
        if extension["target"] == "APP_PAGE":
            assert extension["url"].startswith("/")
        else:
            assert extension["url"].startswith(EXAMPLE_PUBLIC_URL)


@pytest.mark.parametrize(
    "path",
    [
        "/api/manifest/",
        "/api/saleor/register/",
        "/api/saleor/webhooks/order-fully-paid/",
        "/api/rules/",
        "/health/",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_no_redirect_anywhere(client: TestClient, path: str, method: str) -> None:
    response = client.request(method, path)
    assert not 300 <= response.status_code < 400, (method, path, response.status_code)


def test_every_route_answers_without_redirect(client: TestClient) -> None:
    for route in client.app.routes:  # type: ignore[attr-defined]
        path = getattr(route, "path", "")
        concrete = path.replace("{slug}", WEBHOOKS[0].slug).replace("{rule_id}", "1")
        for variant in (concrete, concrete.rstrip("/") + "/"):
            for method in getattr(route, "methods", {"GET"}):
                response = client.request(method, variant)
                assert not 300 <= response.status_code < 400, (method, variant)
