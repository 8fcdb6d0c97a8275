"""Typed settings for every process (api, worker, beat, CLI).

Every field can be set from the environment with the ``SDA_`` prefix (``SDA_DATABASE_URL`` ...) or from a
``.env`` file. ``.env.example`` documents each one.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SDA_", env_file=".env", extra="ignore")

    environment: str = Field("development", description="development | production | test")
    public_url: str = Field(
        "http://localhost:8000",
        description="Public base URL of the app, as Saleor and customers reach it (no trailing slash).",
    )
    data_dir: Path = Field(Path("data"), description="Folder for the embedded SQLite file and broker.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means a SQLite file in data_dir.")
    redis_url: str | None = Field(None, description="Redis URL (broker + caches); empty means embedded.")
    secret_key: SecretStr = Field(
        SecretStr(DEV_SECRET_KEY), description="Encrypts tokens at rest and signs links/state."
    )
    allowed_saleor_url_pattern: str = Field(
        ".*", description="Regex a Saleor API URL must fully match to install the app."
    )
    app_id: str = Field("com.example.saleor-discord-memberships", description="Manifest id.")
    app_name: str = Field("Discord Memberships", description="Manifest name.")
    jwks_refetch_interval_seconds: int = Field(60, description="Minimum gap between JWKS refetches.")
    webhook_redispatch_after_seconds: int = Field(
        60, description="A recorded webhook event not dispatched after this long is dispatched again."
    )
    expiry_interval_seconds: int = Field(300, description="How often beat expires memberships.")

    discord_api_base_url: str = Field("https://discord.com/api/v10", description="Discord REST base.")
    discord_oauth_authorize_url: str = Field(
        "https://discord.com/oauth2/authorize", description="Discord OAuth2 authorize page."
    )
    discord_client_id: str = Field("", description="Discord application (client) id.")
    discord_client_secret: SecretStr = Field(SecretStr(""), description="Discord OAuth2 client secret.")
    discord_bot_token: SecretStr = Field(SecretStr(""), description="Discord bot token.")
    discord_public_key: str = Field("", description="Discord application public key (hex, Ed25519).")
    discord_retry_backoff_seconds: float = Field(
        0.5, description="First wait before retrying a Discord 5xx/network error in place (doubles each time)."
    )

    smtp_host: str = Field("", description="Default SMTP host for welcome emails (per-store override).")
    smtp_port: int = Field(587, description="Default SMTP port.")
    smtp_username: str = Field("", description="Default SMTP username.")
    smtp_password: SecretStr = Field(SecretStr(""), description="Default SMTP password.")
    smtp_use_tls: bool = Field(False, description="Use implicit TLS (port 465).")
    smtp_start_tls: bool = Field(False, description="Use STARTTLS.")
    email_from: str = Field("Discord Memberships <no-reply@example.com>", description="Default sender.")

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _no_dev_secret_in_production(self) -> Self:
        if self.environment == "production" and self.secret_key.get_secret_value() == DEV_SECRET_KEY:
            raise ValueError("SDA_SECRET_KEY must be set to a real secret in production")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'app.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def celery_broker_url(self) -> str:
        return self.redis_url or "filesystem://"

    def saleor_url_allowed(self, saleor_api_url: str) -> bool:
        return re.fullmatch(self.allowed_saleor_url_pattern, saleor_api_url) is not None

    def url(self, path: str) -> str:
        return f"{self.public_url}{path}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
