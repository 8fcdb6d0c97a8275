"""Saleor-facing HTTP: manifest, install (token exchange) and webhooks. Thin: services do the work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from saleor_discord_app.config import get_settings
from saleor_discord_app.db import session_scope
from saleor_discord_app.saleor import inbox, service
from saleor_discord_app.saleor.manifest import MANIFEST_PATH, REGISTER_PATH, build_manifest

router = APIRouter(tags=["saleor"])


def _error(status_code: int, code: str, message: str) -> JSONResponse:
    # Saleor shows error.message to the staff user installing the app.
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


@router.get(MANIFEST_PATH)
def manifest() -> dict[str, Any]:
    return build_manifest(get_settings())


@router.post(REGISTER_PATH)
async def register(request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "INVALID_BODY", "The body must be JSON with an auth_token.")
    auth_token = body.get("auth_token") if isinstance(body, dict) else None

    def _install() -> None:
        with session_scope() as session:
            service.install(
                session,
                saleor_api_url=request.headers.get("saleor-api-url"),
                auth_token=auth_token if isinstance(auth_token, str) else None,
                schema_version=request.headers.get("saleor-schema-version"),
            )

    try:
        await run_in_threadpool(_install)
    except service.InstallError as exc:
        return _error(exc.status_code, exc.code, exc.message)
    return JSONResponse({"success": True})


@router.post("/api/saleor/webhooks/{slug}")
async def webhook(slug: str, request: Request) -> JSONResponse:
    body = await request.body()
    try:
        accepted = await run_in_threadpool(inbox.receive, slug, request.headers, body)
    except inbox.WebhookRejected as exc:
        return JSONResponse({"error": {"message": exc.message}}, status_code=exc.status_code)
    return JSONResponse({"event_id": accepted.event_id, "duplicate": accepted.duplicate})
