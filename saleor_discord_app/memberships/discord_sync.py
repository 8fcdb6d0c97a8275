"""Makes Discord follow a membership: grant when live and linked, the on-end action when it ends.

A role stays while any other live membership of the same Discord user grants the same (server, role):
one purchase never revokes another's access (F11).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from sqlalchemy import and_
from sqlmodel import Session, col, select

from saleor_discord_app import audit
from saleor_discord_app.discord.client import DiscordClient
from saleor_discord_app.discord.connect import bot_client, oauth_client
from saleor_discord_app.discord.errors import InvalidUserToken, NeedsAttention
from saleor_discord_app.memberships.links import OAuthTokens, expires_at, get_link
from saleor_discord_app.models import (
    LIVE_STATUSES,
    AccessRule,
    CustomerLink,
    DiscordServer,
    Installation,
    InstallationStatus,
    Membership,
    MembershipStatus,
    OnEndAction,
)
from saleor_discord_app.sqltypes import utcnow

log = structlog.get_logger(__name__)

RECONNECT_REASON = (
    "The customer is not in the Discord server and their Discord authorization expired: they must open their "
    "Connect-Discord link again (or join the server and use their claim code)."
)
NOT_IN_SERVER_REASON = (
    "The customer is not in the Discord server and linked with a claim code, so the app cannot add them: "
    "they must join the server (invite link in their email) and the role follows within 5 minutes."
)


SERVER_NOT_CONNECTED_REASON = (
    "The Discord server of this product is not connected to the store: use \"Install bot\" in the app for "
    "that server, then press Resync."
)


def server_connected(session: Session, installation_id: int, guild_id: str) -> bool:
    return (
        session.exec(
            select(DiscordServer.id).where(
                DiscordServer.installation_id == installation_id, DiscordServer.guild_id == guild_id
            )
        ).first()
        is not None
    )


def needs_sync(session: Session, membership: Membership) -> bool:
    if membership.status in LIVE_STATUSES:
        return get_link(session, membership.installation_id, membership.customer_email) is not None
    return membership.discord_user_id is not None


def schedule_sync(session: Session, membership: Membership) -> None:
    """Queue a Discord sync for the membership after the transaction commits (if there is work)."""
    from saleor_discord_app.memberships.tasks import sync_membership
    from saleor_discord_app.worker import enqueue_after_commit

    if membership.id is not None and needs_sync(session, membership):
        enqueue_after_commit(session, sync_membership, membership.id)


def roles_still_granted(
    session: Session, installation_id: int, guild_id: str, discord_user_id: str, *, excluding: int | None
) -> set[str]:
    """Roles in ``guild_id`` that other live memberships linked to ``discord_user_id`` grant."""
    rows = session.exec(
        select(Membership, AccessRule, CustomerLink)
        .join(AccessRule, col(AccessRule.id) == Membership.rule_id)
        .join(
            CustomerLink,
            and_(
                col(CustomerLink.installation_id) == col(Membership.installation_id),
                col(CustomerLink.customer_email) == col(Membership.customer_email),
            ),
        )
        .where(
            Membership.installation_id == installation_id,
            AccessRule.guild_id == guild_id,
            CustomerLink.discord_user_id == discord_user_id,
            col(Membership.status).in_(LIVE_STATUSES),
        )
    ).all()
    return {role for membership, rule, _ in rows if membership.id != excluding for role in rule.role_ids}


def _user_access_token(session: Session, link: CustomerLink) -> str | None:
    """A usable OAuth access token for adding the customer to a server, refreshed when expired."""
    if link.access_token and link.token_expires_at and link.token_expires_at > utcnow():
        return link.access_token
    if not link.refresh_token:
        return None
    with oauth_client() as oauth:
        try:
            token = oauth.refresh(link.refresh_token)
        except InvalidUserToken:
            link.access_token = link.refresh_token = None
            session.add(link)
            return None
    tokens = OAuthTokens(token.access_token, token.refresh_token or link.refresh_token, token.expires_in)
    link.access_token, link.refresh_token = tokens.access_token, tokens.refresh_token
    link.token_expires_at = expires_at(tokens.expires_in)
    session.add(link)
    return link.access_token


def _grant(session: Session, client: DiscordClient, link: CustomerLink, rule: AccessRule, reason: str) -> str:
    member = client.get_member(rule.guild_id, link.discord_user_id)
    if member is None:
        token = _user_access_token(session, link)
        if token is None:
            raise NeedsAttention(RECONNECT_REASON if link.refresh_token is None and link.linked_via == "oauth"
                                 else NOT_IN_SERVER_REASON)
        try:
            added = client.add_member(rule.guild_id, link.discord_user_id, access_token=token,
                                      role_ids=rule.role_ids, reason=reason)
        except InvalidUserToken as exc:
            raise NeedsAttention(RECONNECT_REASON) from exc
        if added:
            return "added to the server with the role"
        member = {"roles": []}  # 204: already a member after all; roles were not applied
    missing = [role for role in rule.role_ids if role not in set(member.get("roles") or [])]
    for role in missing:
        client.add_role(rule.guild_id, link.discord_user_id, role, reason=reason)
    return f"gave {len(missing)} role(s)" if missing else "roles already present"


def _take_away(session: Session, client: DiscordClient, membership: Membership, rule: AccessRule,
               discord_user_id: str, reason: str) -> str:
    assert membership.id is not None
    keep = roles_still_granted(session, membership.installation_id, rule.guild_id, discord_user_id,
                               excluding=membership.id)
    to_remove = [role for role in rule.role_ids if role not in keep]
    ended = membership.status in (MembershipStatus.EXPIRED, MembershipStatus.REVOKED)
    action = rule.on_end_action if ended else OnEndAction.REMOVE_ROLE
    if action == OnEndAction.KICK and not keep:
        client.kick(rule.guild_id, discord_user_id, reason=reason)
        return "kicked from the server"
    for role in to_remove:
        client.remove_role(rule.guild_id, discord_user_id, role, reason=reason)
    swap = action == OnEndAction.SWAP_TO_ALUMNI and rule.alumni_role_id and to_remove
    if swap and rule.alumni_role_id and client.get_member(rule.guild_id, discord_user_id) is not None:
        client.add_role(rule.guild_id, discord_user_id, rule.alumni_role_id, reason=reason)
        return f"removed {len(to_remove)} role(s), gave the alumni role"
    kept = f" (kept {len(rule.role_ids) - len(to_remove)} still granted by another purchase)" if keep else ""
    return f"removed {len(to_remove)} role(s){kept}"


def sync_membership(session: Session, membership_id: int) -> str:
    """Bring Discord in line with one membership. Idempotent; raises RetryLater for the task to retry."""
    membership = session.get(Membership, membership_id, with_for_update=True)
    if membership is None:
        return "missing"
    installation = session.get(Installation, membership.installation_id)
    rule = session.get(AccessRule, membership.rule_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE or rule is None:
        return "store inactive"
    if not server_connected(session, membership.installation_id, rule.guild_id):
        # One bot serves every store: a store must never grant or strip roles in a server it did not connect.
        _needs_attention(session, membership, SERVER_NOT_CONNECTED_REASON)
        return "needs attention"
    link = get_link(session, membership.installation_id, membership.customer_email)
    order = f"order #{membership.order_number or membership.order_id}"
    try:
        with bot_client() as client:
            if membership.status in LIVE_STATUSES:
                if link is None:
                    return "not linked"
                outcome = ""
                if membership.discord_user_id and membership.discord_user_id != link.discord_user_id:
                    outcome = _take_away(session, client, membership, rule, membership.discord_user_id,
                                         f"Store: {order} moved to another Discord account") + "; "
                outcome += _grant(session, client, link, rule, f"Store: {order} paid")
                changed = membership.status != MembershipStatus.ACTIVE
                membership.status = MembershipStatus.ACTIVE
                if changed:
                    _status_shown_to_storefront(session, membership)
                membership.discord_user_id = link.discord_user_id
                membership.attention_reason = None
            else:
                if membership.discord_user_id is None:
                    return "never granted"
                outcome = _take_away(session, client, membership, rule, membership.discord_user_id,
                                     f"Store: {order} {membership.end_reason or membership.status}")
                changed = True
    except NeedsAttention as exc:
        _needs_attention(session, membership, exc.reason)
        return "needs attention"
    membership.last_synced_at = utcnow()
    membership.last_error = None
    session.add(membership)
    if changed:
        audit.record(session, "discord.synced", outcome, installation_id=membership.installation_id,
                     membership_id=membership.id, status=str(membership.status))
    return outcome


def _status_shown_to_storefront(session: Session, membership: Membership) -> None:
    from saleor_discord_app.invitations.service import schedule_order_metadata

    schedule_order_metadata(session, membership)


def _needs_attention(session: Session, membership: Membership, reason: str) -> None:
    if membership.status in LIVE_STATUSES and membership.status != MembershipStatus.NEEDS_ATTENTION:
        membership.status = MembershipStatus.NEEDS_ATTENTION
        _status_shown_to_storefront(session, membership)
    membership.attention_reason = reason[:500]
    membership.last_error = reason[:1000]
    membership.last_synced_at = utcnow()
    session.add(membership)
    audit.record(session, "discord.needs_attention", reason, installation_id=membership.installation_id,
                 membership_id=membership.id)


def schedule_all(session: Session, memberships: Iterable[Membership]) -> None:
    for membership in memberships:
        schedule_sync(session, membership)


def record_retry(session: Session, membership_id: int, error: str, *, final: bool = False) -> None:
    membership = session.get(Membership, membership_id)
    if membership is None:
        return
    if final:
        _needs_attention(session, membership, f"Discord kept failing after many retries ({error}); the "
                         "5-minute check will try again, or press Resync.")
    else:
        membership.last_error = f"Discord is busy or unreachable, retrying: {error}"[:1000]
        session.add(membership)
