"""`sda doctor` against the real test database, the embedded/real broker and the fake Discord."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from sqlmodel import Session
from typer.testing import CliRunner

from saleor_discord_app.cli import cli
from saleor_discord_app.config import get_settings
from saleor_discord_app.models import DiscordServer, Installation
from tests.factories import make_rule


def test_doctor_reports_each_part(session: Session, fake_discord: Any, monkeypatch: Any) -> None:
    installation = Installation(saleor_api_url="http://127.0.0.1:1/graphql/", app_id="QXBwOjE=", app_token="t")
    session.add(installation)
    session.commit()
    assert installation.id is not None
    guild = fake_discord.add_guild(name="Store", bot_role_position=5)
    role_above = fake_discord.add_role(guild, "Top", position=9)
    session.add(DiscordServer(installation_id=installation.id, guild_id=guild, name="Store"))
    session.commit()
    make_rule(session, installation.id, guild_id=guild, role_ids=[role_above])

    result = CliRunner().invoke(cli, ["doctor"])
    lines = result.output.splitlines()
    assert any(line.startswith("[ok] database") for line in lines), result.output
    assert any(line.startswith("[ok] broker") for line in lines), result.output
    assert any(line.startswith("[ok] discord: bot") for line in lines), result.output
    assert any(line.startswith("[FAIL] server Store") and "Top" in line for line in lines), result.output
    assert result.exit_code == 1

    fake_discord.set_role_position(guild, role_above, 1)
    monkeypatch.setattr(get_settings(), "allowed_saleor_url_pattern", r"https://.*\.example\.com/graphql/")
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output

    monkeypatch.setattr(get_settings(), "secret_key", SecretStr("another-secret"))
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 1 and "cannot be decrypted" in result.output


def test_doctor_fails_on_a_rejected_bot_token(session: Session, fake_discord: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(get_settings(), "discord_bot_token", SecretStr("wrong-token"))
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 1
    assert "[FAIL] discord" in result.output and "token" in result.output.lower()
