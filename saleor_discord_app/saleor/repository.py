"""Queries for installations (the app's auth persistence layer, keyed by Saleor API URL)."""

from __future__ import annotations

from sqlalchemy.orm import defer
from sqlmodel import Session, select

from saleor_discord_app.models import Installation, InstallationStatus


def get_by_api_url(session: Session, saleor_api_url: str) -> Installation | None:
    return session.exec(select(Installation).where(Installation.saleor_api_url == saleor_api_url)).first()


def get_active_by_api_url(session: Session, saleor_api_url: str, *, with_token: bool = True) -> Installation | None:
    query = select(Installation).where(Installation.saleor_api_url == saleor_api_url)
    if not with_token:
        query = query.options(defer(Installation.app_token))  # type: ignore[arg-type]
    installation = session.exec(query).first()
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return None
    return installation


def list_active(session: Session) -> list[Installation]:
    return list(session.exec(select(Installation).where(Installation.status == InstallationStatus.ACTIVE)))
