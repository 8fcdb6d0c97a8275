"""Install, uninstall and signature checks for stores."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import structlog
from sqlmodel import Session

from saleor_discord_app import audit
from saleor_discord_app.config import get_settings
from saleor_discord_app.db import session_scope
from saleor_discord_app.models import Installation, InstallationStatus
from saleor_discord_app.saleor import repository
from saleor_discord_app.saleor.client import SaleorClient, SaleorError, SaleorUnauthorized
from saleor_discord_app.saleor.jws import SignatureError, fetch_jwks, verify_webhook_signature
from saleor_discord_app.sqltypes import utcnow

log = structlog.get_logger(__name__)

API_URL_PATTERN = re.compile(r"https?://[^/\s?#]+(/[^\s?#]*)?/graphql/")

JwksFetcher = Callable[[str], dict[str, Any]]
AppIdFetcher = Callable[[str, str], str | None]


def _fetch_app_id(saleor_api_url: str, token: str) -> str | None:
    return SaleorClient(saleor_api_url, token).fetch_app_id()


@dataclass
class InstallError(Exception):
    status_code: int
    code: str
    message: str


def install(
    session: Session,
    *,
    saleor_api_url: str | None,
    auth_token: str | None,
    schema_version: str | None,
    fetch_app_id: AppIdFetcher = _fetch_app_id,
    jwks_fetcher: JwksFetcher = fetch_jwks,
) -> Installation:
    """Register a store (or re-register it): prove the token, fetch the JWKS, upsert by API URL."""
    if not saleor_api_url:
        raise InstallError(400, "MISSING_SALEOR_API_URL", "The Saleor-Api-Url header is missing.")
    if not API_URL_PATTERN.fullmatch(saleor_api_url):
        raise InstallError(400, "INVALID_SALEOR_API_URL", f"{saleor_api_url!r} is not a Saleor API URL.")
    if not auth_token:
        raise InstallError(400, "MISSING_AUTH_TOKEN", "The request body has no auth_token.")
    if not get_settings().saleor_url_allowed(saleor_api_url):
        raise InstallError(
            403, "SALEOR_URL_PROHIBITED", f"This app does not accept installs from {saleor_api_url}."
        )
    try:
        app_id = fetch_app_id(saleor_api_url, auth_token)
    except (SaleorError, SaleorUnauthorized) as exc:
        raise InstallError(401, "UNKNOWN_APP_ID", f"The app token could not be verified: {exc}") from exc
    if not app_id:
        raise InstallError(401, "UNKNOWN_APP_ID", "Saleor did not return an app id for the token.")
    try:
        jwks = jwks_fetcher(saleor_api_url)
    except (httpx.HTTPError, ValueError) as exc:
        raise InstallError(
            401, "JWKS_NOT_AVAILABLE", f"The store's JWKS could not be fetched: {exc}"
        ) from exc

    installation = repository.get_by_api_url(session, saleor_api_url)
    reinstall = installation is not None
    if installation is None:
        installation = Installation(saleor_api_url=saleor_api_url, app_id=app_id)
    installation.app_id = app_id
    installation.app_token = auth_token
    installation.jwks = jwks
    installation.jwks_fetched_at = utcnow()
    installation.saleor_schema_version = schema_version
    installation.status = InstallationStatus.ACTIVE
    installation.installed_at = utcnow()
    installation.uninstalled_at = None
    session.add(installation)
    session.flush()
    audit.record(
        session,
        "installation.reinstalled" if reinstall else "installation.installed",
        f"Installed into {saleor_api_url}",
        installation_id=installation.id,
        app_id=app_id,
    )
    return installation


def uninstall(session: Session, installation: Installation, *, reason: str) -> None:
    """Stop all work for a store and forget its token (APP_DELETED, or Saleor said 401)."""
    if installation.status == InstallationStatus.UNINSTALLED:
        return
    installation.status = InstallationStatus.UNINSTALLED
    installation.app_token = None
    installation.uninstalled_at = utcnow()
    session.add(installation)
    audit.record(session, "installation.uninstalled", reason, installation_id=installation.id)


def verify_webhook(
    installation: Installation, signature: str | None, body: bytes, *, jwks_fetcher: JwksFetcher = fetch_jwks
) -> None:
    """Verify a delivery; on failure refetch the store's JWKS once (at most once per interval) and retry."""
    if not signature:
        raise SignatureError("missing Saleor-Signature header")
    try:
        verify_webhook_signature(signature, body, installation.jwks or {"keys": []})
        return
    except SignatureError:
        if not may_refetch(installation):
            raise
    fresh = refetch_jwks(installation, jwks_fetcher)
    if fresh is None:
        raise SignatureError("signature does not verify and the store's JWKS could not be refetched")
    verify_webhook_signature(signature, body, fresh)


def may_refetch(installation: Installation) -> bool:
    interval = timedelta(seconds=get_settings().jwks_refetch_interval_seconds)
    last = installation.jwks_fetched_at
    return last is None or utcnow() - last >= interval


def refetch_jwks(installation: Installation, jwks_fetcher: JwksFetcher) -> dict[str, Any] | None:
    """Fetch and store the JWKS in its own transaction, so a rejected request still counts the fetch."""
    with session_scope() as session:
        row = session.get(Installation, installation.id, with_for_update=True)
        if row is None:
            return None
        if row.jwks_fetched_at != installation.jwks_fetched_at:
            # Another request refetched meanwhile: use its result rather than fetching again.
            installation.jwks, installation.jwks_fetched_at = row.jwks, row.jwks_fetched_at
            return row.jwks
        row.jwks_fetched_at = utcnow()
        try:
            row.jwks = jwks_fetcher(row.saleor_api_url)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("saleor.jwks.refetch_failed", installation_id=row.id, error=str(exc))
            session.add(row)
            installation.jwks_fetched_at = row.jwks_fetched_at
            return None
        session.add(row)
        log.info("saleor.jwks.refetched", installation_id=row.id)
        installation.jwks, installation.jwks_fetched_at = row.jwks, row.jwks_fetched_at
        return row.jwks
