"""Every table of the app (one module keeps Alembic's import simple and avoids cycles)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from saleor_discord_app.crypto import EncryptedString
from saleor_discord_app.sqltypes import UTCDateTime, utcnow


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default_factory=utcnow if not nullable else None,
        sa_type=UTCDateTime,
        nullable=nullable,
        index=index,
    )


def _opt_ts(index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True, index=index)


def _json(default: Any) -> Any:
    return Field(default_factory=lambda: type(default)(default), sa_column=Column(JSON, nullable=False))


class InstallationStatus(StrEnum):
    ACTIVE = "active"
    UNINSTALLED = "uninstalled"


class Installation(SQLModel, table=True):
    """One Saleor store that installed the app (the APL row)."""

    id: int | None = Field(default=None, primary_key=True)
    saleor_api_url: str = Field(unique=True, index=True, max_length=512)
    app_id: str = Field(max_length=128)
    app_token: str | None = Field(default=None, sa_type=EncryptedString, nullable=True)
    jwks: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    jwks_fetched_at: datetime | None = _opt_ts()
    saleor_schema_version: str | None = Field(default=None, max_length=32)
    status: InstallationStatus = Field(default=InstallationStatus.ACTIVE, sa_type=String(16))
    settings: dict[str, Any] = _json({})
    installed_at: datetime = _ts()
    uninstalled_at: datetime | None = _opt_ts()


class DiscordServer(SQLModel, table=True):
    """A Discord server (guild) the bot was installed into for a store."""

    __table_args__ = (UniqueConstraint("installation_id", "guild_id"),)

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int = Field(foreign_key="installation.id", index=True)
    guild_id: str = Field(max_length=32, index=True)
    name: str = Field(default="", max_length=200)
    bot_permissions: int = 0
    verification_channel_id: str | None = Field(default=None, max_length=32)
    last_claim_message_id: str | None = Field(default=None, max_length=32)
    health_problems: list[str] = _json([])
    last_checked_at: datetime | None = _opt_ts()
    last_reconciled_at: datetime | None = _opt_ts()
    created_at: datetime = _ts()


class OnEndAction(StrEnum):
    REMOVE_ROLE = "remove_role"
    KICK = "kick"
    SWAP_TO_ALUMNI = "swap_to_alumni"


class PartialRefundPolicy(StrEnum):
    KEEP = "keep"
    """A partial refund leaves access alone."""
    REVOKE = "revoke"
    """Any refund ends access."""
    REVOKE_REFUNDED_LINES = "revoke_refunded_lines"
    """Access of an order line ends when a successful granted refund lists that line."""


class AccessRule(SQLModel, table=True):
    """A product or variant that sells access to a Discord server role."""

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int = Field(foreign_key="installation.id", index=True)
    product_id: str | None = Field(default=None, max_length=128, index=True)
    variant_id: str | None = Field(default=None, max_length=128, index=True)
    name: str = Field(default="", max_length=200)
    guild_id: str = Field(max_length=32)
    channel_id: str | None = Field(default=None, max_length=32)
    role_ids: list[str] = _json([])
    duration_days: int | None = None
    """None: access does not end by time (forever / until cancelled)."""
    grace_days: int = 0
    on_end_action: OnEndAction = Field(default=OnEndAction.REMOVE_ROLE, sa_type=String(32))
    alumni_role_id: str | None = Field(default=None, max_length=32)
    partial_refund_policy: PartialRefundPolicy = Field(default=PartialRefundPolicy.KEEP, sa_type=String(32))
    is_active: bool = True
    preflight_problems: list[str] = _json([])
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class LinkMethod(StrEnum):
    OAUTH = "oauth"
    CLAIM_SLASH = "claim_slash"
    CLAIM_MESSAGE = "claim_message"


class CustomerLink(SQLModel, table=True):
    """A store customer's Discord account."""

    __table_args__ = (UniqueConstraint("installation_id", "customer_email"),)

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int = Field(foreign_key="installation.id", index=True)
    customer_email: str = Field(max_length=320, index=True)
    saleor_user_id: str | None = Field(default=None, max_length=128, index=True)
    discord_user_id: str = Field(max_length=32, index=True)
    discord_username: str = Field(default="", max_length=100)
    access_token: str | None = Field(default=None, sa_type=EncryptedString, nullable=True)
    refresh_token: str | None = Field(default=None, sa_type=EncryptedString, nullable=True)
    token_expires_at: datetime | None = _opt_ts()
    linked_via: LinkMethod = Field(default=LinkMethod.OAUTH, sa_type=String(16))
    linked_at: datetime = _ts()


class MembershipStatus(StrEnum):
    PENDING = "pending"
    INVITED = "invited"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    NEEDS_ATTENTION = "needs_attention"


LIVE_STATUSES = (
    MembershipStatus.PENDING,
    MembershipStatus.INVITED,
    MembershipStatus.ACTIVE,
    MembershipStatus.NEEDS_ATTENTION,
)
"""Statuses of a membership that still entitles its customer to access."""


class Membership(SQLModel, table=True):
    """Access bought by one order line under one access rule."""

    __table_args__ = (
        UniqueConstraint("installation_id", "order_line_id", "rule_id"),
        Index("ix_membership_customer", "installation_id", "customer_email"),
        Index("ix_membership_status_ends", "status", "ends_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int = Field(foreign_key="installation.id", index=True)
    rule_id: int = Field(foreign_key="accessrule.id", index=True)
    order_id: str = Field(max_length=128, index=True)
    order_number: str = Field(default="", max_length=32)
    order_line_id: str = Field(max_length=128)
    customer_email: str = Field(max_length=320)
    saleor_user_id: str | None = Field(default=None, max_length=128)
    status: MembershipStatus = Field(default=MembershipStatus.PENDING, sa_type=String(20))
    starts_at: datetime = _ts()
    ends_at: datetime | None = _opt_ts()
    discord_user_id: str | None = Field(default=None, max_length=32, index=True)
    """The Discord account the role was last granted to (kept after revoke to know whom to strip)."""
    guild_id: str = Field(default="", max_length=32, index=True)
    end_reason: str | None = Field(default=None, max_length=64)
    attention_reason: str | None = Field(default=None, max_length=500)
    last_error: str | None = Field(default=None, max_length=1000)
    last_synced_at: datetime | None = _opt_ts()
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class OrderChargeState(StrEnum):
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    UNPAID = "unpaid"
    """Charged less than the total with no refund covering the gap: not paid yet, or charged back."""


class OrderRecord(SQLModel, table=True):
    """What the app last learned about an order; lets out-of-order events land in the right end state."""

    __table_args__ = (UniqueConstraint("installation_id", "order_id"),)

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int = Field(foreign_key="installation.id", index=True)
    order_id: str = Field(max_length=128)
    order_number: str = Field(default="", max_length=32)
    customer_email: str = Field(default="", max_length=320)
    state: OrderChargeState = Field(sa_type=String(24))
    state_issued_at: datetime = _ts()
    """issuedAt of the event that set ``state``; older events never overwrite a newer state."""
    refunded_line_ids: list[str] = _json([])
    """Order lines with a successful granted refund (partial-refund policy), kept for late paid events."""
    partial_refund_at: datetime | None = _opt_ts()
    updated_at: datetime = _ts()


class WebhookEvent(SQLModel, table=True):
    """Inbox of verified Saleor deliveries; one row per distinct delivery content."""

    __table_args__ = (UniqueConstraint("installation_id", "dedupe_key"),)

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int = Field(foreign_key="installation.id", index=True)
    event_type: str = Field(max_length=64)
    dedupe_key: str = Field(max_length=64)
    payload: dict[str, Any] = _json({})
    issued_at: datetime | None = _opt_ts()
    received_at: datetime = _ts()
    dispatched_at: datetime | None = _opt_ts(index=True)
    processed_at: datetime | None = _opt_ts(index=True)
    attempts: int = 0
    error: str | None = Field(default=None, max_length=1000)


class AuditEvent(SQLModel, table=True):
    """Timeline entry: every grant, email, claim, role change and error."""

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int | None = Field(default=None, foreign_key="installation.id", index=True)
    membership_id: int | None = Field(default=None, foreign_key="membership.id", index=True)
    kind: str = Field(max_length=64)
    message: str = Field(default="", max_length=1000)
    data: dict[str, Any] = _json({})
    created_at: datetime = _ts(index=True)


class ClaimCode(SQLModel, table=True):
    """A single-use code that links whoever redeems it to one membership (only the hash is stored)."""

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int = Field(foreign_key="installation.id", index=True)
    membership_id: int = Field(foreign_key="membership.id", index=True)
    code_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = _ts()
    used_at: datetime | None = _opt_ts()
    used_by_discord_user_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = _ts()


class Invitation(SQLModel, table=True):
    """Welcome email state for a membership whose customer is not linked yet."""

    id: int | None = Field(default=None, primary_key=True)
    membership_id: int = Field(foreign_key="membership.id", unique=True)
    sends: int = 0
    last_sent_at: datetime | None = _opt_ts()
    next_send_at: datetime | None = _opt_ts(index=True)
    invite_code: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=1000)


class UsedNonce(SQLModel, table=True):
    """Nonces of single-use signed tokens (OAuth state) that were already consumed."""

    nonce: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = _ts(index=True)


class ClaimAttempt(SQLModel, table=True):
    """A claim-code redemption attempt (failed ones throttle the Discord user who made them)."""

    __table_args__ = (Index("ix_claimattempt_user_time", "discord_user_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    discord_user_id: str = Field(max_length=32)
    guild_id: str | None = Field(default=None, max_length=32)
    succeeded: bool = False
    created_at: datetime = _ts()


class BackfillJob(SQLModel, table=True):
    """Granting existing paid orders of a product after its rule was added; resumable from ``cursor``."""

    id: int | None = Field(default=None, primary_key=True)
    installation_id: int = Field(foreign_key="installation.id", index=True)
    rule_id: int = Field(foreign_key="accessrule.id", index=True)
    status: str = Field(default="queued", max_length=16)
    """queued | running | done | failed"""
    cursor: str | None = Field(default=None, max_length=512)
    pages: int = 0
    orders_seen: int = 0
    orders_matched: int = 0
    memberships_created: int = 0
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _ts()
    finished_at: datetime | None = _opt_ts()
