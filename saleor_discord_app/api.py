"""Every router of the app, in one place."""

from fastapi import APIRouter

from saleor_discord_app.app_config.endpoints import router as rules_router
from saleor_discord_app.backfill.endpoints import router as backfill_router
from saleor_discord_app.claims.endpoints import router as claims_router
from saleor_discord_app.invitations.endpoints import router as invitations_router
from saleor_discord_app.linking.endpoints import router as linking_router
from saleor_discord_app.reconcile.endpoints import router as reconcile_router
from saleor_discord_app.saleor.endpoints import router as saleor_router

api_router = APIRouter()
api_router.include_router(saleor_router)
api_router.include_router(rules_router)
api_router.include_router(backfill_router)
api_router.include_router(claims_router)
api_router.include_router(invitations_router)
api_router.include_router(linking_router)
api_router.include_router(reconcile_router)
