"""Customer-facing pages: the signed link page, the Connect-Discord button and the OAuth2 callback.

Plain HTML (Jinja2, no external assets). The page may be framed by a storefront, so no X-Frame-Options; the link
token is in the URL, so no Referer leaves these pages and nothing is cached.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlmodel import Session

from saleor_discord_app.config import get_settings
from saleor_discord_app.db import get_session
from saleor_discord_app.linking import service

log = structlog.get_logger(__name__)

router = APIRouter(tags=["linking"], include_in_schema=False)
SessionDep = Annotated[Session, Depends(get_session)]

_templates = Environment(
    loader=PackageLoader("saleor_discord_app.linking", "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _headers() -> dict[str, str]:
    settings = get_settings()
    form_targets = " ".join(
        origin for origin in (_origin(settings.public_url), _origin(settings.discord_oauth_authorize_url)) if origin
    )
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Robots-Tag": "noindex, nofollow",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
            f"form-action 'self' {form_targets}"
        ),
    }


def _render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=_headers())


def _message(
    title: str,
    message: str,
    *,
    status_code: int,
    icon: str = "warn",
    back_url: str | None = None,
    back_label: str = "Back",
    primary_back: bool = False,
) -> HTMLResponse:
    return _render(
        "message.html",
        status_code,
        title=title,
        message=message,
        icon=icon,
        back_url=back_url,
        back_label=back_label,
        primary_back=primary_back,
    )


def _error(exc: service.LinkingError, back_url: str | None = None) -> HTMLResponse:
    return _message(exc.title, exc.message, status_code=exc.status_code, back_url=back_url, back_label="Try again")


@router.get("/link/{token}", response_class=HTMLResponse)
def link_page(token: str, session: SessionDep) -> HTMLResponse:
    """The customer's access and the Connect-Discord button (or the linked account and a relink button)."""
    try:
        page = service.link_page(session, service.read_link(token))
    except service.LinkingError as exc:
        return _error(exc)
    return _render("link.html", page=page, connect_url=get_settings().url(f"/link/{token}/connect"))


@router.post("/link/{token}/connect")
def connect(token: str, session: SessionDep) -> Response:
    """Send the customer to Discord's consent page (POST: mail link scanners never press buttons)."""
    try:
        customer = service.read_link(token)
        service.active_store(session, customer.installation_id)
        url = service.authorize_url(customer)
    except service.LinkingError as exc:
        return _error(exc)
    return RedirectResponse(url, status_code=303, headers=_headers())


@router.get("/discord/oauth/callback", response_class=HTMLResponse)
def oauth_callback(
    session: SessionDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    """Discord sends the customer back here with a code (or an error) and the state we signed."""
    if error is not None:
        customer = service.cancelled(session, state)
        back = service.customer_link_url(customer.installation_id, customer.email) if customer else None
        if error == "access_denied":
            return _message(
                "Discord was not connected",
                "You cancelled on Discord's page, so nothing changed. You can connect whenever you are ready.",
                status_code=200,
                icon="info",
                back_url=back,
                back_label="Back to your access",
            )
        log.info("linking.oauth.error", error=error[:64])
        return _message(
            "Discord could not connect your account",
            "Discord reported a problem and nothing changed. Please try again.",
            status_code=400,
            back_url=back,
            back_label="Try again",
        )
    try:
        connected = service.complete_oauth(session, code=code, state=state)
    except service.LinkingError as exc:
        return _error(exc)
    customer = connected.customer
    message = (
        "Your roles are being added. This takes a few seconds; the server will appear in your Discord app."
        if connected.memberships
        else "You have no active Discord access from this store right now; when you buy access, you get the role "
        "automatically."
    )
    return _message(
        f"Connected as {connected.display_name}.",
        message,
        status_code=200,
        icon="ok",
        back_url=service.customer_link_url(customer.installation_id, customer.email),
        back_label="See your access",
    )
