"""Customer account linking: signed links, the OAuth2 authorize URL, and completing the callback.

A customer link (``/link/{token}``) is signed, expires after 60 days and is *not* single-use: the customer may
come back to it (to relink another account, or to check their access). The OAuth ``state`` is signed, short-lived
and single-use. Neither carries anything secret: only the store (installation id) and the customer's email.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jwt
import structlog
from sqlmodel import Session, col, select

from saleor_discord_app import signing
from saleor_discord_app.config import get_settings
from saleor_discord_app.discord.connect import oauth_client
from saleor_discord_app.discord.errors import DiscordError, InvalidUserToken, RetryLater
from saleor_discord_app.memberships.discord_sync import RECONNECT_REASON
from saleor_discord_app.memberships.links import OAuthTokens, get_link, link_customer
from saleor_discord_app.models import (
    LIVE_STATUSES,
    AccessRule,
    CustomerLink,
    DiscordServer,
    Installation,
    InstallationStatus,
    LinkMethod,
    Membership,
    MembershipStatus,
)

log = structlog.get_logger(__name__)

LINK_PURPOSE = "customer-link"
STATE_PURPOSE = "customer-oauth"
LINK_TTL = timedelta(days=60)
STATE_TTL = timedelta(minutes=10)
REQUIRED_SCOPES = ("identify", "guilds.join")
CALLBACK_PATH = "/discord/oauth/callback"


class LinkingError(Exception):
    """Something the customer sees as a friendly page; ``status_code`` is the HTTP status of that page."""

    def __init__(self, title: str, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.title = title
        self.message = message
        self.status_code = status_code


def invalid_link() -> LinkingError:
    return LinkingError(
        "This link is not valid",
        "The link may have been cut short or mistyped. Open it again from the store's email, or ask the store "
        "to send it again.",
    )


def expired_link() -> LinkingError:
    return LinkingError(
        "This link has expired",
        "For your security, links to connect Discord stop working after a while. Ask the store to send you a "
        "new one, or use the newest email you received.",
        status_code=410,
    )


def store_gone() -> LinkingError:
    return LinkingError(
        "This store no longer offers Discord access here",
        "The store stopped using the Discord app. If you think this is a mistake, contact the store.",
        status_code=410,
    )


def bad_state() -> LinkingError:
    return LinkingError(
        "This Discord sign-in cannot be used",
        "It was already used, took too long, or did not start from the store's page. Go back to the link in "
        "your email and press “Connect Discord” again.",
    )


@dataclass(frozen=True)
class Customer:
    installation_id: int
    email: str


@dataclass(frozen=True)
class AccessItem:
    name: str
    server: str
    status: str
    status_label: str
    ends_label: str


@dataclass(frozen=True)
class LinkPage:
    customer: Customer
    store: str
    items: list[AccessItem]
    link: CustomerLink | None


@dataclass(frozen=True)
class Connected:
    customer: Customer
    link: CustomerLink
    display_name: str
    memberships: int


# ------------------------------------------------------------------ signed links


def _claims(installation_id: int, customer_email: str) -> dict[str, Any]:
    return {"i": installation_id, "e": customer_email.strip().lower()}


def customer_link_token(installation_id: int, customer_email: str) -> str:
    return signing.sign(LINK_PURPOSE, _claims(installation_id, customer_email), expires_in=LINK_TTL)


def customer_link_url(installation_id: int, customer_email: str) -> str:
    """The customer's Connect-Discord page (valid 60 days, reusable)."""
    return get_settings().url(f"/link/{customer_link_token(installation_id, customer_email)}")


def membership_link_url(membership: Membership) -> str:
    """The Connect-Discord page for the customer of ``membership`` (it lists all their access in the store)."""
    return customer_link_url(membership.installation_id, membership.customer_email)


def _customer(data: dict[str, Any]) -> Customer:
    installation_id, email = data.get("i"), data.get("e")
    if not isinstance(installation_id, int) or not isinstance(email, str) or not email:
        raise invalid_link()
    return Customer(installation_id, email.lower())


def _expired(exc: signing.InvalidSignedToken) -> bool:
    return isinstance(exc.__cause__, jwt.ExpiredSignatureError)


def read_link(token: str) -> Customer:
    """The customer a link token was made for; forged → 400, expired → 410 (as LinkingError)."""
    try:
        data = signing.unsign(LINK_PURPOSE, token)
    except signing.InvalidSignedToken as exc:
        raise (expired_link() if _expired(exc) else invalid_link()) from exc
    return _customer(data)


def active_store(session: Session, installation_id: int) -> Installation:
    installation = session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        raise store_gone()
    return installation


def store_label(installation: Installation) -> str:
    configured = installation.settings.get("store_name") if isinstance(installation.settings, dict) else None
    if isinstance(configured, str) and configured.strip():
        return configured.strip()
    return urlsplit(installation.saleor_api_url).hostname or "the store"


# ------------------------------------------------------------------ the link page


def _status_label(membership: Membership, linked: bool) -> str:
    if membership.status == MembershipStatus.ACTIVE:
        return "Active"
    if membership.status == MembershipStatus.NEEDS_ATTENTION:
        if membership.attention_reason == RECONNECT_REASON:
            return "Connect Discord again to get your role"
        return "Delayed: the store has been told and is fixing it"
    return "Being added to Discord" if linked else "Waiting for you to connect Discord"


def _ends_label(ends_at: datetime | None) -> str:
    if ends_at is None:
        return "No end date"
    return f"Until {ends_at.day} {ends_at:%b %Y}"


def link_page(session: Session, customer: Customer) -> LinkPage:
    installation = active_store(session, customer.installation_id)
    link = get_link(session, customer.installation_id, customer.email)
    rows = session.exec(
        select(Membership, AccessRule)
        .join(AccessRule, col(AccessRule.id) == Membership.rule_id)
        .where(
            Membership.installation_id == customer.installation_id,
            Membership.customer_email == customer.email,
            col(Membership.status).in_(LIVE_STATUSES),
        )
        .order_by(col(Membership.created_at), col(Membership.id))
    ).all()
    servers = {
        server.guild_id: server.name
        for server in session.exec(
            select(DiscordServer).where(DiscordServer.installation_id == customer.installation_id)
        )
    }
    items = [
        AccessItem(
            name=rule.name or "Discord access",
            server=servers.get(rule.guild_id, ""),
            status=str(membership.status),
            status_label=_status_label(membership, link is not None),
            ends_label=_ends_label(membership.ends_at),
        )
        for membership, rule in rows
    ]
    return LinkPage(customer=customer, store=store_label(installation), items=items, link=link)


# ------------------------------------------------------------------ OAuth2


def callback_url() -> str:
    return get_settings().url(CALLBACK_PATH)


def authorize_url(customer: Customer) -> str:
    """Discord's consent page for ``identify guilds.join``; the state is signed, single-use, 10 minutes."""
    settings = get_settings()
    if not settings.discord_client_id:
        raise LinkingError(
            "Discord is not set up yet",
            "The store has not finished connecting its Discord application. Please try again later.",
            status_code=503,
        )
    state = signing.sign(
        STATE_PURPOSE,
        _claims(customer.installation_id, customer.email),
        expires_in=STATE_TTL,
        single_use=True,
    )
    params = {
        "response_type": "code",
        "client_id": settings.discord_client_id,
        "scope": " ".join(REQUIRED_SCOPES),
        "redirect_uri": callback_url(),
        "state": state,
        "prompt": "consent",
    }
    return f"{settings.discord_oauth_authorize_url}?{urlencode(params, quote_via=quote)}"


def spend_state(session: Session, state: str | None) -> Customer:
    """Consume the single-use state (committed at once, so it stays spent whatever happens next)."""
    if not state:
        raise bad_state()
    try:
        data = signing.consume(session, STATE_PURPOSE, state)
    except signing.InvalidSignedToken as exc:
        raise bad_state() from exc
    customer = _customer(data)
    # Commit now: the state is spent even if Discord fails below, and no write lock is held while calling it.
    session.commit()
    return customer


def complete_oauth(session: Session, *, code: str | None, state: str | None) -> Connected:
    """The callback: spend the state, exchange the code, check scopes, identify the user, link the customer."""
    customer = spend_state(session, state)
    active_store(session, customer.installation_id)
    if not code:
        raise LinkingError("Discord did not send a sign-in code", "Please press “Connect Discord” again.")
    try:
        with oauth_client() as oauth:
            token = oauth.exchange_code(code, callback_url())
            missing = [scope for scope in REQUIRED_SCOPES if scope not in token.scopes]
            if missing:
                _revoke_quietly(oauth.revoke, token.access_token)
                raise LinkingError(
                    "Discord did not give the permissions needed",
                    "To add you to the server, the app needs to know your Discord account and to be allowed to "
                    "join servers for you. Press “Connect Discord” again and keep both permissions.",
                )
            user = oauth.get_user(token.access_token)
    except InvalidUserToken as exc:
        raise LinkingError(
            "Discord did not accept this sign-in",
            "The sign-in may have been used already or taken too long. Press “Connect Discord” again.",
        ) from exc
    except RetryLater as exc:
        log.warning("linking.oauth.discord_unavailable", installation_id=customer.installation_id, error=str(exc))
        raise LinkingError(
            "Discord is not answering right now",
            "Please wait a minute, then press “Connect Discord” again.",
            status_code=503,
        ) from exc
    except DiscordError as exc:
        log.warning("linking.oauth.discord_error", installation_id=customer.installation_id, error=repr(exc))
        raise LinkingError(
            "Discord could not complete the sign-in",
            "Please press “Connect Discord” again. If it keeps failing, contact the store.",
            status_code=502,
        ) from exc

    user_id, username = user.get("id"), user.get("username")
    if not isinstance(user_id, str) or not user_id:
        raise LinkingError("Discord did not say who you are", "Please press “Connect Discord” again.", status_code=502)
    username = username if isinstance(username, str) else ""
    global_name = user.get("global_name")
    display_name = global_name if isinstance(global_name, str) and global_name else username or user_id

    link, memberships = link_customer(
        session,
        customer.installation_id,
        customer_email=customer.email,
        discord_user_id=user_id,
        discord_username=username,
        via=LinkMethod.OAUTH,
        tokens=OAuthTokens(token.access_token, token.refresh_token, token.expires_in),
    )
    log.info(
        "linking.oauth.connected",
        installation_id=customer.installation_id,
        discord_user_id=user_id,
        memberships=len(memberships),
    )
    return Connected(customer=customer, link=link, display_name=display_name, memberships=len(memberships))


def cancelled(session: Session, state: str | None) -> Customer | None:
    """The customer pressed Cancel on Discord: spend the state; the customer when it was genuine."""
    try:
        return spend_state(session, state)
    except LinkingError:
        return None


def _revoke_quietly(revoke: Callable[[str], None], token: str) -> None:
    try:
        revoke(token)
    except DiscordError:
        log.info("linking.oauth.revoke_failed")
