"""Shapes of the access-rule API."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from saleor_discord_app.models import OnEndAction, PartialRefundPolicy

SNOWFLAKE = r"^\d{15,21}$"


class RuleFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    guild_id: str = Field(pattern=SNOWFLAKE, description="Discord server id")
    channel_id: str | None = Field(None, pattern=SNOWFLAKE, description="Channel the customer must see")
    role_ids: list[str] = Field(min_length=1, max_length=10, description="Roles the purchase grants")
    duration_days: int | None = Field(None, ge=1, le=36500, description="Access length; null = no end")
    grace_days: int = Field(0, ge=0, le=365)
    on_end_action: OnEndAction = OnEndAction.REMOVE_ROLE
    alumni_role_id: str | None = Field(None, pattern=SNOWFLAKE)
    partial_refund_policy: PartialRefundPolicy = PartialRefundPolicy.KEEP
    is_active: bool = True

    @model_validator(mode="after")
    def _check(self) -> Self:
        for role_id in self.role_ids:
            if not role_id.isdigit():
                raise ValueError(f"role id {role_id!r} is not a Discord id")
            if role_id == self.guild_id:
                raise ValueError("@everyone cannot be sold: pick a real role")
        if self.on_end_action == OnEndAction.SWAP_TO_ALUMNI and not self.alumni_role_id:
            raise ValueError("swap_to_alumni needs alumni_role_id")
        return self


class RuleCreate(RuleFields):
    product_id: str | None = Field(None, max_length=128)
    variant_id: str | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _target(self) -> Self:
        if not self.product_id and not self.variant_id:
            raise ValueError("a rule needs product_id or variant_id")
        return self


class RuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    guild_id: str | None = Field(None, pattern=SNOWFLAKE)
    channel_id: str | None = Field(None, pattern=SNOWFLAKE)
    role_ids: list[str] | None = Field(None, min_length=1, max_length=10)
    duration_days: int | None = Field(None, ge=1, le=36500)
    grace_days: int | None = Field(None, ge=0, le=365)
    on_end_action: OnEndAction | None = None
    alumni_role_id: str | None = Field(None, pattern=SNOWFLAKE)
    partial_refund_policy: PartialRefundPolicy | None = None
    is_active: bool | None = None


class RuleRead(RuleCreate):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: int
    preflight_problems: list[str]
    created_at: datetime
    updated_at: datetime


class BotInstallUrl(BaseModel):
    url: str


class ServerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    guild_id: str
    name: str
    bot_permissions: int
    verification_channel_id: str | None
    health_problems: list[str]
    last_checked_at: datetime | None
    last_reconciled_at: datetime | None
    created_at: datetime


class ServerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verification_channel_id: str | None = Field(
        None, pattern=SNOWFLAKE, description="Channel where customers type !claim CODE; null = none"
    )


class RoleOption(BaseModel):
    id: str
    name: str
    position: int
    color: int
    above_bot: bool = Field(description="The bot's highest role is not above this role: it cannot give it")


class ChannelOption(BaseModel):
    id: str
    name: str
    type: int
    position: int
    parent_id: str | None
