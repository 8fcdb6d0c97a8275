"""Installing the bot into a store's Discord server (F2; discord-platform.md A1).

1. The app page asks for ``authorize_url``: Discord's authorize page with the least-privilege permissions and
   a ``state`` signed for this store, expiring in 15 minutes and usable once.
2. Discord sends the owner back to ``/discord/bot/callback`` with ``code`` and ``state`` (and ``guild_id``,
   which is only a hint). ``complete_install`` consumes the state, exchanges the code and trusts the guild
   of the token response, never the query string.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import structlog
from sqlmodel import Session

from saleor_discord_app import audit, signing
from saleor_discord_app.app_config import repository, servers
from saleor_discord_app.config import get_settings
from saleor_discord_app.discord import connect
from saleor_discord_app.discord.errors import DiscordError, InvalidUserToken, RetryLater
from saleor_discord_app.discord.preflight import BOT_PERMISSIONS, INSTALL_PERMISSIONS
from saleor_discord_app.models import DiscordServer, Installation, InstallationStatus

log = structlog.get_logger(__name__)

STATE_PURPOSE = "bot-install"
STATE_TTL = timedelta(minutes=15)
CALLBACK_PATH = "/discord/bot/callback"
BOT_SCOPES = "bot applications.commands"
GUILD_INSTALL = "0"


class BotInstallFailed(Exception):
    """The install cannot be completed; ``message`` is shown to the store owner."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class InstallResult:
    server_id: int
    guild_id: str
    name: str
    problems: list[str]
    checked: bool


def redirect_uri() -> str:
    return get_settings().url(CALLBACK_PATH)


def authorize_url(installation_id: int, *, guild_id: str | None = None) -> str:
    settings = get_settings()
    if not settings.discord_client_id:
        raise BotInstallFailed("The app has no Discord client id: set SDA_DISCORD_CLIENT_ID (see README).")
    state = signing.sign(STATE_PURPOSE, {"i": installation_id}, expires_in=STATE_TTL, single_use=True)
    params = {
        "client_id": settings.discord_client_id,
        "scope": BOT_SCOPES,
        "permissions": str(INSTALL_PERMISSIONS),
        "response_type": "code",
        "redirect_uri": redirect_uri(),
        "integration_type": GUILD_INSTALL,
        "state": state,
    }
    if guild_id:
        params["guild_id"] = guild_id
        params["disable_guild_select"] = "true"
    return f"{settings.discord_oauth_authorize_url}?{urlencode(params)}"


def claim_state(session: Session, state: str | None) -> int:
    """Check and use up the state (commit this before talking to Discord); returns the store's id."""
    if not state:
        raise BotInstallFailed("This page was opened without its security token. Start again from the app's page.")
    try:
        data = signing.consume(session, STATE_PURPOSE, state)
    except signing.InvalidSignedToken as exc:
        raise BotInstallFailed(
            f"The install link is not valid: {exc}. Start again with “Install bot” on the app's page."
        ) from exc
    installation_id = data.get("i")
    if not isinstance(installation_id, int):
        raise BotInstallFailed("The install link is not valid. Start again with “Install bot” on the app's page.")
    return installation_id


def complete_install(
    session: Session,
    installation_id: int,
    *,
    code: str | None,
    error: str | None = None,
    permissions_hint: str | None = None,
) -> InstallResult:
    """Exchange the code and store the server of the token response. Raises ``BotInstallFailed``."""
    installation = session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE or installation.id is None:
        raise BotInstallFailed("The store this install was started from no longer has the app installed.")
    if error:
        raise BotInstallFailed(
            f"Discord did not add the bot ({error}). Start again with “Install bot” on the app's page."
        )
    if not code:
        raise BotInstallFailed("Discord did not send an authorization code. Start again from the app's page.")

    try:
        with connect.oauth_client() as oauth:
            token = oauth.exchange_code(code, redirect_uri())
    except InvalidUserToken as exc:
        raise BotInstallFailed(
            "Discord refused the authorization (it expired or was already used). Start again with “Install bot”."
        ) from exc
    except RetryLater as exc:
        raise BotInstallFailed("Discord could not be reached. Wait a minute, then start again.") from exc
    except DiscordError as exc:
        raise BotInstallFailed(f"Discord refused the install: {exc.message}") from exc

    guild = token.guild or {}
    guild_id = str(guild.get("id") or "")
    if not guild_id.isdigit():
        raise BotInstallFailed("Discord did not say which server the bot was added to. Start again.")
    name = str(guild.get("name") or "")[:200]
    server = repository.get_server_by_guild(session, installation.id, guild_id)
    created = server is None
    if server is None:
        server = DiscordServer(installation_id=installation.id, guild_id=guild_id)
    server.name = name or server.name
    session.add(server)
    session.flush()
    assert server.id is not None
    audit.record(session, "discord.bot_installed", f"Bot added to the Discord server “{server.name}”",
                 installation_id=installation.id, server_id=server.id, guild_id=guild_id, created=created)
    if created and permissions_hint and permissions_hint.isdigit():
        server.bot_permissions = int(permissions_hint) & BOT_PERMISSIONS  # until the check reads the real ones
    checked = True
    try:
        servers.check_server_health(session, server.id)
    except RetryLater:
        checked = False
        from saleor_discord_app.app_config.tasks import check_server
        from saleor_discord_app.worker import enqueue_after_commit

        enqueue_after_commit(session, check_server, server.id)
    return InstallResult(server.id, guild_id, server.name, list(server.health_problems), checked)
