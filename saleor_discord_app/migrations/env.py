"""Alembic environment: the schema is SQLModel.metadata, the URL comes from the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine
from sqlmodel import SQLModel

import saleor_discord_app.models  # noqa: F401  (registers every table)
from saleor_discord_app.db import get_engine

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine: Engine = context.config.attributes.get("engine") or get_engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
