"""Customer ↔ Discord account links: create, replace (relink), and the tokens that come with them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from saleor_discord_app import audit
from saleor_discord_app.models import LIVE_STATUSES, CustomerLink, LinkMethod, Membership
from saleor_discord_app.sqltypes import utcnow


@dataclass(frozen=True)
class OAuthTokens:
    access_token: str
    refresh_token: str | None
    expires_in: int


def get_link(session: Session, installation_id: int, customer_email: str) -> CustomerLink | None:
    return session.exec(
        select(CustomerLink).where(
            CustomerLink.installation_id == installation_id, CustomerLink.customer_email == customer_email.lower()
        )
    ).first()


def link_customer(
    session: Session,
    installation_id: int,
    *,
    customer_email: str,
    discord_user_id: str,
    via: LinkMethod,
    discord_username: str = "",
    saleor_user_id: str | None = None,
    tokens: OAuthTokens | None = None,
) -> tuple[CustomerLink, list[Membership]]:
    """Link (or relink) a customer to a Discord account; returns the link and the customer's live memberships.

    Every membership whose status changes enqueues a Discord sync (see ``memberships.discord_sync``); a relink
    is a change for all of them: the old account loses the roles, the new one gets them.
    """
    from saleor_discord_app.memberships.discord_sync import schedule_sync

    email = customer_email.lower()
    link = get_link(session, installation_id, email)
    previous = link.discord_user_id if link else None
    if link is None:
        link = CustomerLink(installation_id=installation_id, customer_email=email, discord_user_id=discord_user_id)
    link.discord_user_id = discord_user_id
    link.discord_username = discord_username or link.discord_username
    link.saleor_user_id = saleor_user_id or link.saleor_user_id
    link.linked_via = via
    link.linked_at = utcnow()
    if tokens is not None:
        link.access_token = tokens.access_token
        link.refresh_token = tokens.refresh_token
        link.token_expires_at = expires_at(tokens.expires_in)
    elif previous != discord_user_id:
        # Tokens belong to the previous account: useless for the new one.
        link.access_token = link.refresh_token = None
        link.token_expires_at = None
    session.add(link)
    session.flush()
    audit.record(
        session,
        "customer.relinked" if previous and previous != discord_user_id else "customer.linked",
        f"{email} linked Discord account {discord_username or discord_user_id} ({via})",
        installation_id=installation_id,
        discord_user_id=discord_user_id,
        previous_discord_user_id=previous,
    )
    memberships = list(
        session.exec(
            select(Membership).where(
                Membership.installation_id == installation_id,
                Membership.customer_email == email,
                col(Membership.status).in_(LIVE_STATUSES),
            )
        )
    )
    for membership in memberships:
        schedule_sync(session, membership)
    return link, memberships


def expires_at(expires_in: int) -> datetime:
    # A minute's margin so a token is refreshed before Discord considers it expired.
    return utcnow() + timedelta(seconds=max(expires_in - 60, 0))
