"""Linking tests: the fake Discord in-process with settings pointing at it, and helpers that play the
customer's browser through the OAuth redirect chain."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from saleor_discord_app.config import get_settings
from tests.conftest import wired_fake_discord
from tests.fakes.discord import FakeDiscord

CALLBACK = "http://testserver/discord/oauth/callback"
AUTHORIZE = "https://discord.test/oauth2/authorize"


@pytest.fixture
def discord(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    """The fake Discord, accepting only the customer OAuth callback URL."""
    with wired_fake_discord(monkeypatch, redirect_uris=[CALLBACK]) as fake:
        assert get_settings().discord_oauth_authorize_url == AUTHORIZE
        yield fake





def link_path(url: str) -> str:
    assert url.startswith("http://testserver/link/"), url
    return urlsplit(url).path


def start_connect(client: TestClient, link_url: str) -> str:
    """Press "Connect Discord": returns Discord's authorize URL the app redirected to."""
    response = client.post(f"{link_path(link_url)}/connect")
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location


def authorize_on_discord(fake: FakeDiscord, authorize_url: str) -> str:
    """The customer approves on (fake) Discord: returns the callback URL Discord sends them back to."""
    with httpx.Client(transport=fake.transport) as browser:
        response = browser.get(authorize_url)
    assert response.status_code == 302, response.text
    location: str = response.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return location


def connect_discord(client: TestClient, fake: FakeDiscord, link_url: str) -> httpx.Response:
    """The whole browser round trip: link page button → Discord → callback page."""
    callback = authorize_on_discord(fake, start_connect(client, link_url))
    response: httpx.Response = client.get(callback)
    return response


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
