"""Engine, sessions, migrations and after-commit hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, create_engine

from saleor_discord_app.config import get_settings

log = structlog.get_logger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent
MIGRATIONS_DIR = PACKAGE_ROOT / "migrations"
MIGRATION_LOCK_KEY = 7_318_201_944  # any constant: the advisory lock that serialises migrations


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    url = settings.effective_database_url
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets the api, worker and beat processes read while one writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # pool_recycle instead of pre-ping: a ping per checkout costs a round trip on every webhook.
    return create_engine(url, pool_recycle=1800, pool_size=10, max_overflow=20)


def reset_engine() -> None:
    """Forget the cached engine (tests switch databases)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()


def is_sqlite(session: OrmSession) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "sqlite"


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error (tasks, CLI)."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_session() -> Iterator[Session]:
    """FastAPI dependency: one session per request, committed before the response is sent."""
    with session_scope() as session:
        yield session


def after_commit(session: OrmSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction has committed (never on rollback)."""
    session.info.setdefault("after_commit", []).append(callback)


@event.listens_for(OrmSession, "after_commit")
def _run_after_commit(session: OrmSession) -> None:
    if session.in_nested_transaction():
        # SQLAlchemy also fires after_commit when a SAVEPOINT is released; the data is not visible to other
        # connections until the outer transaction commits, so the callbacks wait for that.
        return
    callbacks: list[Callable[[], None]] = session.info.pop("after_commit", [])
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a failed dispatch is picked up again by the sweep
            log.exception("db.after_commit.failed")


@event.listens_for(OrmSession, "after_rollback")
def _drop_after_commit(session: OrmSession) -> None:
    session.info.pop("after_commit", None)


def run_migrations() -> None:
    """Bring the schema to the latest Alembic revision (called on start and by tests)."""
    from alembic import command
    from alembic.config import Config

    engine = get_engine()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    if engine.dialect.name != "postgresql":
        command.upgrade(config, "head")
        return
    # Several api workers or replicas start together: one migrates, the others wait and find nothing to do.
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            command.upgrade(config, "head")
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
