"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from saleor_discord_app import __version__
from saleor_discord_app.api import api_router
from saleor_discord_app.config import get_settings
from saleor_discord_app.db import run_migrations
from saleor_discord_app.logging import configure_logging


def create_app(*, migrate: bool = True) -> FastAPI:
    settings = get_settings()
    configure_logging(json_logs=settings.environment == "production")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await run_in_threadpool(run_migrations)
        yield

    # redirect_slashes=False: Saleor never follows redirects, a 307 on a trailing slash breaks installs.
    app = FastAPI(title="Saleor Discord Memberships", version=__version__, lifespan=lifespan, redirect_slashes=False)
    app.include_router(api_router)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    return app
