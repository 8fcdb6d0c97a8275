"""Every router of the app, in one place."""

from fastapi import APIRouter

from saleor_discord_app.app_config.endpoints import router as rules_router
from saleor_discord_app.saleor.endpoints import router as saleor_router

api_router = APIRouter()
api_router.include_router(saleor_router)
api_router.include_router(rules_router)
