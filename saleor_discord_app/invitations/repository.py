"""Queries for invitations (welcome emails) and what they need to know about memberships and stores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from saleor_discord_app.models import (
    DiscordServer,
    Installation,
    Invitation,
    Membership,
)


def get_invitation(session: Session, membership_id: int, *, lock: bool = False) -> Invitation | None:
    statement = select(Invitation).where(Invitation.membership_id == membership_id)
    if lock:
        statement = statement.with_for_update()
    return session.exec(statement).first()


def get_or_create_invitation(session: Session, membership_id: int) -> Invitation:
    invitation = get_invitation(session, membership_id, lock=True)
    if invitation is None:
        invitation = Invitation(membership_id=membership_id)
        session.add(invitation)
        session.flush()
    return invitation


def due_invitations(
    session: Session, now: datetime, *, limit: int, installation_id: int | None = None
) -> Sequence[tuple[Invitation, Membership, Installation]]:
    """Invitations whose next send is due, oldest first, locked (rows another scan holds are skipped)."""
    statement = (
        select(Invitation, Membership, Installation)
        .join(Membership, col(Membership.id) == Invitation.membership_id)
        .join(Installation, col(Installation.id) == Membership.installation_id)
        .where(col(Invitation.next_send_at).is_not(None), col(Invitation.next_send_at) <= now)
    )
    if installation_id is not None:
        statement = statement.where(Membership.installation_id == installation_id)
    return session.exec(
        statement.order_by(col(Invitation.next_send_at), col(Invitation.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=Invitation)
    ).all()


def memberships_of_order(session: Session, installation_id: int, order_id: str) -> Sequence[Membership]:
    return session.exec(
        select(Membership)
        .where(Membership.installation_id == installation_id, Membership.order_id == order_id)
        .order_by(col(Membership.id))
    ).all()


def server_of_guild(session: Session, installation_id: int, guild_id: str) -> DiscordServer | None:
    return session.exec(
        select(DiscordServer).where(
            DiscordServer.installation_id == installation_id, DiscordServer.guild_id == guild_id
        )
    ).first()


def installation_by_api_url(session: Session, saleor_api_url: str) -> Installation | None:
    return session.exec(select(Installation).where(Installation.saleor_api_url == saleor_api_url)).first()
