"""Discord servers of a store (Dashboard JWT, MANAGE_PRODUCTS) and the bot install flow (F2).

- ``GET  /api/discord/bot-install``          → ``{"url": ...}`` Discord's authorize page for this store
- ``GET  /discord/bot/callback``             ← Discord's redirect (browser, no JWT): stores the server
- ``GET  /api/discord/servers``              → the store's servers with their health
- ``GET  /api/discord/servers/{id}/roles``   → live roles a product can sell (``above_bot`` marked)
- ``GET  /api/discord/servers/{id}/channels``→ live channels
- ``PATCH /api/discord/servers/{id}``        ← ``{"verification_channel_id": ...}``
- ``DELETE /api/discord/servers/{id}``       → forget the server
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from saleor_discord_app.app_config import repository, servers
from saleor_discord_app.app_config.schemas import (
    SNOWFLAKE,
    BotInstallUrl,
    ChannelOption,
    RoleOption,
    ServerRead,
    ServerUpdate,
)
from saleor_discord_app.db import get_session, session_scope
from saleor_discord_app.discord import bot_install
from saleor_discord_app.discord.errors import RetryLater
from saleor_discord_app.models import DiscordServer
from saleor_discord_app.saleor.auth import DashboardUser, dashboard_user

log = structlog.get_logger(__name__)

router = APIRouter(tags=["discord servers"])
ProductStaff = Annotated[DashboardUser, Depends(dashboard_user("MANAGE_PRODUCTS"))]
SessionDep = Annotated[Session, Depends(get_session)]

UNREACHABLE = "Discord could not be reached. Try again in a minute."


# ---------------------------------------------------------------------- bot install


@router.get("/api/discord/bot-install", response_model=BotInstallUrl)
def bot_install_url(
    user: ProductStaff, guild_id: str | None = Query(None, pattern=SNOWFLAKE, description="Pre-select a server")
) -> BotInstallUrl:
    try:
        return BotInstallUrl(url=bot_install.authorize_url(user.installation_id, guild_id=guild_id))
    except bot_install.BotInstallFailed as exc:
        raise HTTPException(503, exc.message) from exc


@router.get(bot_install.CALLBACK_PATH, response_class=HTMLResponse, include_in_schema=False)
def bot_install_callback(
    code: str | None = None,
    state: str | None = None,
    guild_id: str | None = None,
    permissions: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> HTMLResponse:
    # ``guild_id`` is only a hint (anyone can edit the URL): the server is the one of the token response.
    try:
        with session_scope() as session:
            installation_id = bot_install.claim_state(session, state)
        with session_scope() as session:
            result = bot_install.complete_install(
                session, installation_id, code=code, error=error_description or error, permissions_hint=permissions
            )
    except bot_install.BotInstallFailed as exc:
        log.info("discord.bot_install.failed", reason=exc.message)
        return _page("The bot was not added", f"<p>{escape(exc.message)}</p>", 400)
    if guild_id and guild_id != result.guild_id:
        log.warning("discord.bot_install.guild_hint_mismatch", hint=guild_id, guild_id=result.guild_id)
    name = escape(result.name or result.guild_id)
    body = f"<p>The bot was added to <strong>{name}</strong>. You can close this tab.</p>"
    if result.problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in result.problems)
        body += f"<p>Fix these in Discord so the app can give and take roles:</p><ul class='problems'>{items}</ul>"
    elif not result.checked:
        body += "<p>Discord could not be reached to check the bot's permissions; the app checks again shortly.</p>"
    return _page("Bot added", body, 200)


def _page(title: str, body: str, status: int) -> HTMLResponse:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;"
        "line-height:1.5}.problems li{color:#a00}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    # The URL carried a code and a state: keep it out of caches and Referer headers.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(html, status_code=status, headers=headers)


# ---------------------------------------------------------------------- servers API


def _server(session: Session, user: DashboardUser, server_id: int) -> DiscordServer:
    server = repository.get_server(session, user.installation_id, server_id)
    if server is None:
        raise HTTPException(404, "No such Discord server in this store.")
    return server


def _live(call: Any, server: DiscordServer) -> list[dict[str, Any]]:
    try:
        result: list[dict[str, Any]] = call(server)
    except servers.ServerUnavailable as exc:
        raise HTTPException(409, exc.reason) from exc
    except RetryLater as exc:
        raise HTTPException(503, UNREACHABLE) from exc
    return result


@router.get("/api/discord/servers", response_model=list[ServerRead])
def list_servers(user: ProductStaff, session: SessionDep) -> list[ServerRead]:
    return [ServerRead.model_validate(s) for s in repository.list_servers(session, user.installation_id)]


@router.get("/api/discord/servers/{server_id}", response_model=ServerRead)
def get_server(server_id: int, user: ProductStaff, session: SessionDep) -> ServerRead:
    return ServerRead.model_validate(_server(session, user, server_id))


@router.get("/api/discord/servers/{server_id}/roles", response_model=list[RoleOption])
def server_roles(server_id: int, user: ProductStaff, session: SessionDep) -> list[RoleOption]:
    roles = _live(servers.live_roles, _server(session, user, server_id))
    return [RoleOption.model_validate(r) for r in roles]


@router.get("/api/discord/servers/{server_id}/channels", response_model=list[ChannelOption])
def server_channels(server_id: int, user: ProductStaff, session: SessionDep) -> list[ChannelOption]:
    channels = _live(servers.live_channels, _server(session, user, server_id))
    return [ChannelOption.model_validate(c) for c in channels]


@router.patch("/api/discord/servers/{server_id}", response_model=ServerRead)
def update_server(server_id: int, body: ServerUpdate, user: ProductStaff, session: SessionDep) -> ServerRead:
    server = _server(session, user, server_id)
    try:
        servers.update_server(session, server, body.model_dump(exclude_unset=True), by=user.email or user.user_id)
    except servers.ServerInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    except RetryLater as exc:
        raise HTTPException(503, UNREACHABLE) from exc
    return ServerRead.model_validate(server)


@router.delete("/api/discord/servers/{server_id}", status_code=204)
def forget_server(server_id: int, user: ProductStaff, session: SessionDep) -> Response:
    servers.forget_server(session, _server(session, user, server_id), by=user.email or user.user_id)
    return Response(status_code=204)
