"""Discord HTTP interactions endpoint: PING and the ``/claim code:`` slash command.

Discord signs every request with the application's Ed25519 key over ``X-Signature-Timestamp + raw body``;
anything that doesn't verify (or is older than five minutes, to limit replays) gets 401 before the body is
even parsed. ``/claim`` is answered inline (type 4, ephemeral): redeeming is a few database statements and
the Discord role change runs later in the worker, well within Discord's 3-second limit.
"""

from __future__ import annotations

import json
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from saleor_discord_app.claims import service
from saleor_discord_app.config import get_settings
from saleor_discord_app.db import session_scope
from saleor_discord_app.models import LinkMethod

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/discord", tags=["discord"])

INTERACTIONS_PATH = "/api/discord/interactions"
MAX_CLOCK_SKEW_SECONDS = 300

PING = 1
APPLICATION_COMMAND = 2
AUTOCOMPLETE = 4
PONG = 1
CHANNEL_MESSAGE_WITH_SOURCE = 4
AUTOCOMPLETE_RESULT = 8
EPHEMERAL = 64

USE_IN_SERVER = "Please use /claim in the store's Discord server (the one you want access to), not here."
UNKNOWN_COMMAND = "Unknown command."
MISSING_CODE = "Please type your claim code: /claim code: ABCD-EFGH-JKLM"
TRY_AGAIN = "Something went wrong on our side. Please try again in a minute."


def verify_signature(public_key_hex: str, signature_hex: str | None, timestamp: str | None, body: bytes,
                     *, now: float | None = None) -> bool:
    """True if Discord signed ``timestamp + body`` with the app's key, recently enough."""
    if not public_key_hex or not signature_hex or not timestamp:
        return False
    try:
        sent_at = int(timestamp)
        key = VerifyKey(bytes.fromhex(public_key_hex))
        key.verify(timestamp.encode() + body, bytes.fromhex(signature_hex))
    except (ValueError, BadSignatureError):  # bad hex, wrong length, non-numeric timestamp, forged
        return False
    current = time.time() if now is None else now
    return abs(current - sent_at) <= MAX_CLOCK_SKEW_SECONDS


def _reply(content: str) -> dict[str, Any]:
    return {
        "type": CHANNEL_MESSAGE_WITH_SOURCE,
        "data": {"content": content, "flags": EPHEMERAL, "allowed_mentions": {"parse": []}},
    }


def _option(data: dict[str, Any], name: str) -> str | None:
    for option in data.get("options") or []:
        if isinstance(option, dict) and option.get("name") == name and isinstance(option.get("value"), str):
            return str(option["value"])
    return None


def _claim(interaction: dict[str, Any]) -> dict[str, Any]:
    data = interaction.get("data") or {}
    guild_id = interaction.get("guild_id")
    member = interaction.get("member") or {}
    user = member.get("user") or interaction.get("user") or {}
    if not guild_id or not member:
        return _reply(USE_IN_SERVER)
    code = _option(data, "code")
    if not code:
        return _reply(MISSING_CODE)
    user_id = str(user.get("id") or "")
    if not user_id:
        return _reply(UNKNOWN_COMMAND)
    with session_scope() as session:
        result = service.redeem(
            session,
            code=code,
            discord_user_id=user_id,
            discord_username=str(user.get("username") or ""),
            guild_id=str(guild_id),
            via=LinkMethod.CLAIM_SLASH,
        )
    return _reply(result.message)


def handle_interaction(interaction: dict[str, Any]) -> dict[str, Any]:
    """The response body for a verified interaction."""
    kind = interaction.get("type")
    if kind == PING:
        return {"type": PONG}
    if kind == AUTOCOMPLETE:
        return {"type": AUTOCOMPLETE_RESULT, "data": {"choices": []}}
    data = interaction.get("data") or {}
    if kind == APPLICATION_COMMAND and data.get("name") == "claim":
        return _claim(interaction)
    return _reply(UNKNOWN_COMMAND)


@router.post("/interactions")
async def interactions(request: Request) -> JSONResponse:
    body = await request.body()
    if not verify_signature(
        get_settings().discord_public_key,
        request.headers.get("X-Signature-Ed25519"),
        request.headers.get("X-Signature-Timestamp"),
        body,
    ):
        log.info("discord.interaction.bad_signature")
        return JSONResponse({"error": "invalid request signature"}, status_code=401)
    try:
        interaction = json.loads(body)
    except ValueError:
        return JSONResponse({"error": "body must be JSON"}, status_code=400)
    if not isinstance(interaction, dict):
        return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
    try:
        response = await run_in_threadpool(handle_interaction, interaction)
    except Exception:
        log.exception("discord.interaction.failed", type=interaction.get("type"))
        response = _reply(TRY_AGAIN)
    return JSONResponse(response)
