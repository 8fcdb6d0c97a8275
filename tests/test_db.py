"""After-commit hooks: work is handed to the worker only once the data is visible to other connections."""

from __future__ import annotations

from sqlalchemy import text

from saleor_discord_app.db import after_commit, session_scope


def test_callbacks_wait_for_the_outer_commit_not_a_savepoint() -> None:
    calls: list[str] = []
    with session_scope() as session:
        session.execute(text("SELECT 1"))
        with session.begin_nested():
            after_commit(session, lambda: calls.append("sent"))
        assert calls == []  # the savepoint was released, but nothing is committed yet
    assert calls == ["sent"]


def test_callbacks_are_dropped_on_rollback() -> None:
    calls: list[str] = []
    try:
        with session_scope() as session:
            after_commit(session, lambda: calls.append("sent"))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert calls == []
