"""Queries of the subscription check (F14): servers to check, desired roles, links and membership updates.

The desired-state query streams ``(discord_user_id, rule_id)`` pairs (``yield_per``: a server-side cursor on
PostgreSQL), so no Membership objects are built for the bulk of a server; the few rows a repair needs are read
per member-list page with small ``IN`` queries.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime

from sqlalchemy import Select, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from saleor_discord_app.models import (
    LIVE_STATUSES,
    AccessRule,
    CustomerLink,
    DiscordServer,
    Installation,
    InstallationStatus,
    Membership,
    MembershipStatus,
)

STREAM_CHUNK = 5000


def servers_to_reconcile(session: Session, saleor_api_url: str | None = None) -> list[int]:
    """Ids of the Discord servers of active installations (optionally of one store), oldest first."""
    query = (
        select(DiscordServer.id)
        .join(Installation, col(Installation.id) == DiscordServer.installation_id)
        .where(Installation.status == InstallationStatus.ACTIVE)
        .order_by(col(DiscordServer.id))
    )
    if saleor_api_url is not None:
        query = query.where(Installation.saleor_api_url == saleor_api_url)
    return [server_id for server_id in session.exec(query).all() if server_id is not None]


def get_server(session: Session, server_id: int) -> DiscordServer | None:
    return session.get(DiscordServer, server_id)


def guild_rules(session: Session, installation_id: int, guild_id: str) -> Sequence[AccessRule]:
    """Every rule of the store on the guild, active or not: a deactivated rule's live memberships still grant."""
    return session.exec(
        select(AccessRule)
        .where(AccessRule.installation_id == installation_id, AccessRule.guild_id == guild_id)
        .order_by(col(AccessRule.id))
    ).all()


def _live_linked(installation_id: int, rule_ids: Collection[int]) -> Select[str, int, int | None]:
    return (
        sa_select(col(CustomerLink.discord_user_id), col(Membership.rule_id), col(Membership.id))
        .join(
            CustomerLink,
            (col(CustomerLink.installation_id) == col(Membership.installation_id))
            & (col(CustomerLink.customer_email) == col(Membership.customer_email)),
        )
        .where(
            col(Membership.installation_id) == installation_id,
            col(Membership.rule_id).in_(list(rule_ids)),
            col(Membership.status).in_(LIVE_STATUSES),
        )
    )


def iter_desired(
    session: Session, installation_id: int, rule_ids: Collection[int], discord_user_ids: Collection[str] | None = None
) -> Iterator[tuple[str, int, int]]:
    """``(discord_user_id, rule_id, membership_id)`` of every live membership of a linked customer on the rules."""
    if not rule_ids:
        return
    query = _live_linked(installation_id, rule_ids)
    if discord_user_ids is not None:
        query = query.where(col(CustomerLink.discord_user_id).in_(list(discord_user_ids)))
    result = session.execute(query.execution_options(yield_per=STREAM_CHUNK))
    for discord_user_id, rule_id, membership_id in result:
        yield str(discord_user_id), int(rule_id), int(membership_id)


def ended_users(session: Session, installation_id: int, rule_ids: Collection[int]) -> list[str]:
    """Discord users who were granted a role by a membership on the rules that has ended (may still hold it)."""
    if not rule_ids:
        return []
    rows = session.exec(
        select(Membership.discord_user_id)
        .where(
            Membership.installation_id == installation_id,
            col(Membership.rule_id).in_(list(rule_ids)),
            col(Membership.status).not_in(LIVE_STATUSES),
            col(Membership.discord_user_id).is_not(None),
        )
        .distinct()
    ).all()
    return [user for user in rows if user]


def ended_memberships(
    session: Session, installation_id: int, rule_ids: Collection[int], discord_user_ids: Collection[str]
) -> Sequence[Membership]:
    """Ended memberships on the rules last granted to these Discord users, newest first (audit attribution)."""
    if not rule_ids or not discord_user_ids:
        return []
    return session.exec(
        select(Membership)
        .where(
            Membership.installation_id == installation_id,
            col(Membership.rule_id).in_(list(rule_ids)),
            col(Membership.status).not_in(LIVE_STATUSES),
            col(Membership.discord_user_id).in_(list(discord_user_ids)),
        )
        .order_by(col(Membership.id).desc())
    ).all()


def links_of_users(session: Session, installation_id: int, discord_user_ids: Collection[str]) -> Sequence[CustomerLink]:
    if not discord_user_ids:
        return []
    return session.exec(
        select(CustomerLink)
        .where(
            CustomerLink.installation_id == installation_id,
            col(CustomerLink.discord_user_id).in_(list(discord_user_ids)),
        )
        .order_by(col(CustomerLink.id))
    ).all()


def live_memberships_of_link(
    session: Session, link: CustomerLink, rule_ids: Collection[int]
) -> Sequence[Membership]:
    return session.exec(
        select(Membership)
        .where(
            Membership.installation_id == link.installation_id,
            Membership.customer_email == link.customer_email,
            col(Membership.rule_id).in_(list(rule_ids)),
            col(Membership.status).in_(LIVE_STATUSES),
        )
        .order_by(col(Membership.id))
    ).all()


def memberships_by_id(session: Session, ids: Collection[int]) -> Sequence[Membership]:
    if not ids:
        return []
    return session.exec(select(Membership).where(col(Membership.id).in_(list(ids))).order_by(col(Membership.id))).all()


def _linked_emails(installation_id: int, discord_user_ids: Collection[str]) -> Select[str]:
    return sa_select(col(CustomerLink.customer_email)).where(
        col(CustomerLink.installation_id) == installation_id,
        col(CustomerLink.discord_user_id).in_(list(discord_user_ids)),
    )


def confirm_active(
    session: Session, installation_id: int, rule_ids: Collection[int], discord_user_ids: Collection[str],
    now: datetime,
) -> list[int]:
    """Roles confirmed present for these users: their live linked memberships on the rules become ``active``.

    Returns the ids of memberships whose status changed (for the timeline). Two set-based UPDATEs, no ORM
    objects: one for the status changes, one stamping ``last_synced_at`` on all of them.
    """
    if not rule_ids or not discord_user_ids:
        return []
    emails = _linked_emails(installation_id, discord_user_ids)
    scope = (
        (col(Membership.installation_id) == installation_id)
        & col(Membership.rule_id).in_(list(rule_ids))
        & col(Membership.customer_email).in_(emails)
        & col(Membership.status).in_(LIVE_STATUSES)
    )
    changed = [
        int(membership_id)
        for membership_id in session.exec(
            select(Membership.id).where(scope, Membership.status != MembershipStatus.ACTIVE)
        ).all()
        if membership_id is not None
    ]
    if changed:
        session.execute(
            update(Membership)
            .where(col(Membership.id).in_(changed))
            .values(status=MembershipStatus.ACTIVE, attention_reason=None, last_error=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    # UPDATE ... FROM customerlink (PostgreSQL, SQLite >= 3.33): one join instead of a subquery per row.
    session.execute(
        update(Membership)
        .where(
            col(CustomerLink.installation_id) == col(Membership.installation_id),
            col(CustomerLink.customer_email) == col(Membership.customer_email),
            col(CustomerLink.discord_user_id).in_(list(discord_user_ids)),
            col(Membership.installation_id) == installation_id,
            col(Membership.rule_id).in_(list(rule_ids)),
            col(Membership.status).in_(LIVE_STATUSES),
        )
        .values(last_synced_at=now, discord_user_id=col(CustomerLink.discord_user_id))
        .execution_options(synchronize_session=False)
    )
    return changed
