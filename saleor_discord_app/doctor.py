"""`sda doctor`: checks configuration, database, broker, Discord and every server's bot permissions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import select

from saleor_discord_app.config import DEV_SECRET_KEY, get_settings
from saleor_discord_app.db import get_engine, session_scope


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_configuration() -> Check:
    settings = get_settings()
    problems = []
    if settings.secret_key.get_secret_value() == DEV_SECRET_KEY:
        problems.append("SDA_SECRET_KEY is the development default (tokens at rest are not really protected)")
    if not settings.public_url.startswith("https://") and settings.environment == "production":
        problems.append("SDA_PUBLIC_URL should be https in production")
    for name in ("discord_client_id", "discord_public_key"):
        if not getattr(settings, name):
            problems.append(f"SDA_{name.upper()} is not set")
    for name in ("discord_bot_token", "discord_client_secret"):
        if not getattr(settings, name).get_secret_value():
            problems.append(f"SDA_{name.upper()} is not set")
    if settings.allowed_saleor_url_pattern == ".*":
        problems.append("SDA_ALLOWED_SALEOR_URL_PATTERN allows any Saleor to install the app")
    return Check("configuration", not problems, "; ".join(problems) or f"public URL {settings.public_url}")


def check_database() -> Check:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from saleor_discord_app.db import MIGRATIONS_DIR

    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
            current = MigrationContext.configure(connection).get_current_revision()
    except Exception as exc:
        return Check("database", False, f"cannot connect: {exc.__class__.__name__}: {exc}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    if current != head:
        return Check("database", False, f"schema at {current}, latest is {head}: run `sda migrate`")
    return Check("database", True, f"{get_engine().dialect.name}, schema up to date ({head})")


def check_broker() -> Check:
    from saleor_discord_app.worker import celery_app

    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        return Check("broker", False, f"cannot reach {get_settings().celery_broker_url}: {exc}")
    return Check("broker", True, get_settings().celery_broker_url.split("@")[-1])


def check_discord() -> list[Check]:
    from saleor_discord_app.discord.connect import bot_client
    from saleor_discord_app.discord.errors import DiscordError
    from saleor_discord_app.discord.preflight import check_server
    from saleor_discord_app.models import AccessRule, DiscordServer, Installation, InstallationStatus

    try:
        with bot_client() as client:
            bot = client.get_current_user()
            checks = [Check("discord", True, f"bot {bot.get('username')} ({bot.get('id')}) reachable")]
            with session_scope() as session:
                servers = session.exec(
                    select(DiscordServer, Installation)
                    .join(Installation, Installation.id == DiscordServer.installation_id)  # type: ignore[arg-type]
                    .where(Installation.status == InstallationStatus.ACTIVE)
                ).all()
                for server, installation in servers:
                    rules = session.exec(
                        select(AccessRule).where(AccessRule.installation_id == installation.id,
                                                 AccessRule.guild_id == server.guild_id)
                    ).all()
                    roles = sorted({role for rule in rules for role in rule.role_ids})
                    problems = check_server(client, server.guild_id, role_ids=roles)
                    checks.append(Check(f"server {server.name or server.guild_id}", not problems,
                                        "; ".join(problems) or f"bot can manage {len(roles)} sold role(s)"))
            return checks
    except DiscordError as exc:
        return [Check("discord", False, getattr(exc, "reason", None) or exc.message)]


def run_checks() -> list[Check]:
    steps: list[Callable[[], Check | list[Check]]] = [check_configuration, check_database, check_broker, check_discord]
    results: list[Check] = []
    for step in steps:
        try:
            outcome = step()
        except Exception as exc:  # a check must report, never crash the whole diagnosis
            outcome = Check(step.__name__.removeprefix("check_"), False, f"{exc.__class__.__name__}: {exc}")
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    return results
