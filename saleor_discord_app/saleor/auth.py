"""Dashboard requests: the Saleor Dashboard's JWT proves who is calling, for which store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, Request
from sqlmodel import Session

from saleor_discord_app.db import get_session
from saleor_discord_app.models import Installation
from saleor_discord_app.saleor import repository, service
from saleor_discord_app.saleor.jws import SignatureError, decode_dashboard_token, fetch_jwks


@dataclass(frozen=True)
class DashboardUser:
    installation: Installation
    user_id: str
    email: str
    permissions: frozenset[str]

    @property
    def installation_id(self) -> int:
        assert self.installation.id is not None
        return self.installation.id


def _token(request: Request) -> str | None:
    token = request.headers.get("authorization-bearer")
    if token:
        return token
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    return value if scheme.lower() == "bearer" and value else None


def verify_dashboard_token(installation: Installation, token: str) -> dict[str, Any]:
    """Decode with the cached JWKS; on failure refetch once (rate-limited like webhooks)."""
    try:
        return decode_dashboard_token(token, installation.jwks or {"keys": []}, issuer=installation.saleor_api_url)
    except SignatureError:
        if not service.may_refetch(installation):
            raise
    fresh = service.refetch_jwks(installation, fetch_jwks)
    if fresh is None:
        raise SignatureError("token does not verify and the store's JWKS could not be refetched")
    return decode_dashboard_token(token, fresh, issuer=installation.saleor_api_url)


def dashboard_user(permission: str) -> Callable[..., DashboardUser]:
    """FastAPI dependency: a verified Dashboard user of a known store holding ``permission``."""

    def dependency(request: Request, session: Session = Depends(get_session)) -> DashboardUser:
        api_url = request.headers.get("saleor-api-url")
        token = _token(request)
        if not api_url or not token:
            raise HTTPException(401, "Missing Saleor-Api-Url or authorization-bearer header.")
        installation = repository.get_active_by_api_url(session, api_url)
        if installation is None:
            raise HTTPException(401, "This store has not installed the app.")
        try:
            claims = verify_dashboard_token(installation, token)
        except SignatureError as exc:
            raise HTTPException(401, f"Invalid Dashboard token: {exc}") from exc
        if claims.get("app") != installation.app_id:
            raise HTTPException(401, "The token was issued for another app.")
        permissions = frozenset(claims.get("permissions") or [])
        if permission not in permissions:
            raise HTTPException(403, f"You need the {permission} permission for this.")
        return DashboardUser(
            installation=installation,
            user_id=str(claims.get("user_id") or ""),
            email=str(claims.get("email") or ""),
            permissions=permissions,
        )

    return dependency
