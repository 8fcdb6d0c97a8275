"""Queries for claim codes, claim attempts and the servers whose verification channel is scanned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import CursorResult, delete, update
from sqlmodel import Session, col, select

from saleor_discord_app.models import (
    ClaimAttempt,
    ClaimCode,
    DiscordServer,
    Installation,
    InstallationStatus,
)


def get_code_by_hash(session: Session, code_hash: str) -> ClaimCode | None:
    return session.exec(select(ClaimCode).where(ClaimCode.code_hash == code_hash)).first()


def delete_unused_codes(session: Session, membership_id: int) -> int:
    """Drop the membership's codes that were never redeemed (a new code replaces them)."""
    result: CursorResult[tuple[()]] = session.execute(  # type: ignore[assignment]
        delete(ClaimCode).where(
            col(ClaimCode.membership_id) == membership_id, col(ClaimCode.used_at).is_(None)
        )
    )
    return int(result.rowcount or 0)


def mark_used(session: Session, code_id: int, *, discord_user_id: str, now: datetime) -> bool:
    """Mark the code used unless someone else did first; True only for the one redemption that wins.

    A conditional UPDATE (``WHERE used_at IS NULL``): of two concurrent redemptions the database lets exactly
    one change the row; the other sees 0 rows once the first commits (row lock on PostgreSQL, the write lock
    on SQLite).
    """
    result: CursorResult[tuple[()]] = session.execute(  # type: ignore[assignment]
        update(ClaimCode)
        .where(col(ClaimCode.id) == code_id, col(ClaimCode.used_at).is_(None))
        .values(used_at=now, used_by_discord_user_id=discord_user_id)
    )
    return int(result.rowcount or 0) == 1


def record_attempt(session: Session, *, discord_user_id: str, guild_id: str | None, succeeded: bool,
                   now: datetime) -> None:
    session.add(ClaimAttempt(discord_user_id=discord_user_id, guild_id=guild_id, succeeded=succeeded,
                             created_at=now))
    session.flush()


def recent_failures(session: Session, discord_user_id: str, since: datetime) -> list[datetime]:
    """When the user's failed attempts since ``since`` happened, oldest first."""
    rows = session.exec(
        select(ClaimAttempt.created_at)
        .where(
            ClaimAttempt.discord_user_id == discord_user_id,
            col(ClaimAttempt.succeeded).is_(False),
            col(ClaimAttempt.created_at) > since,
        )
        .order_by(col(ClaimAttempt.created_at))
    ).all()
    return list(rows)


def purge_attempts(session: Session, before: datetime) -> int:
    result: CursorResult[tuple[()]] = session.execute(  # type: ignore[assignment]
        delete(ClaimAttempt).where(col(ClaimAttempt.created_at) < before)
    )
    return int(result.rowcount or 0)


def servers_of_installation(session: Session, installation_id: int, guild_id: str) -> DiscordServer | None:
    return session.exec(
        select(DiscordServer).where(
            DiscordServer.installation_id == installation_id, DiscordServer.guild_id == guild_id
        )
    ).first()


def scannable_server_ids(session: Session) -> Sequence[int]:
    """Servers with a verification channel, of stores that still have the app installed."""
    rows = session.exec(
        select(DiscordServer.id)
        .join(Installation, col(Installation.id) == DiscordServer.installation_id)
        .where(
            col(DiscordServer.verification_channel_id).is_not(None),
            Installation.status == InstallationStatus.ACTIVE,
        )
        .order_by(col(DiscordServer.id))
    ).all()
    return [row for row in rows if row is not None]


def advance_last_message(session: Session, server_id: int, *, expected: str | None, new: str) -> bool:
    """Compare-and-set the server's last read message id; False if another scan moved it meanwhile."""
    current = col(DiscordServer.last_claim_message_id)
    result: CursorResult[tuple[()]] = session.execute(  # type: ignore[assignment]
        update(DiscordServer)
        .where(col(DiscordServer.id) == server_id, current.is_(None) if expected is None else current == expected)
        .values(last_claim_message_id=new)
    )
    return int(result.rowcount or 0) == 1

