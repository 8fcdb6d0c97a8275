"""Queries for access rules and Discord servers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from saleor_discord_app.models import AccessRule, DiscordServer, Installation, InstallationStatus


def list_rules(
    session: Session, installation_id: int, *, product_id: str | None = None, variant_id: str | None = None
) -> Sequence[AccessRule]:
    query = select(AccessRule).where(AccessRule.installation_id == installation_id)
    if product_id:
        query = query.where(AccessRule.product_id == product_id)
    if variant_id:
        query = query.where(AccessRule.variant_id == variant_id)
    return session.exec(query.order_by(col(AccessRule.id))).all()


def get_rule(session: Session, installation_id: int, rule_id: int) -> AccessRule | None:
    rule = session.get(AccessRule, rule_id)
    return rule if rule is not None and rule.installation_id == installation_id else None


def rules_for_guild(session: Session, installation_id: int, guild_id: str) -> Sequence[AccessRule]:
    return session.exec(
        select(AccessRule)
        .where(AccessRule.installation_id == installation_id, AccessRule.guild_id == guild_id)
        .order_by(col(AccessRule.id))
    ).all()


def list_servers(session: Session, installation_id: int) -> Sequence[DiscordServer]:
    return session.exec(
        select(DiscordServer).where(DiscordServer.installation_id == installation_id).order_by(col(DiscordServer.id))
    ).all()


def get_server(session: Session, installation_id: int, server_id: int) -> DiscordServer | None:
    server = session.get(DiscordServer, server_id)
    return server if server is not None and server.installation_id == installation_id else None


def get_server_by_guild(session: Session, installation_id: int, guild_id: str) -> DiscordServer | None:
    return session.exec(
        select(DiscordServer).where(
            DiscordServer.installation_id == installation_id, DiscordServer.guild_id == guild_id
        )
    ).first()


def lock_server(session: Session, server_id: int) -> DiscordServer | None:
    return session.exec(select(DiscordServer).where(DiscordServer.id == server_id).with_for_update()).first()


def active_server_ids(session: Session) -> list[int]:
    """Every server of every store that still has the app installed."""
    rows = session.exec(
        select(DiscordServer.id)
        .join(Installation, col(Installation.id) == DiscordServer.installation_id)
        .where(Installation.status == InstallationStatus.ACTIVE)
        .order_by(col(DiscordServer.id))
    ).all()
    return [server_id for server_id in rows if server_id is not None]
