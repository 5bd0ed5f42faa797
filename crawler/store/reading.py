"""The read path of `query`, `report`, `status` and the metrics counts,
for either store: the one place that picks the SQLite reader
(`crawler/readonly.py`) or the PostgreSQL one (`pgreadonly.py`).

Both connections answer `execute(sql, params)` with SQL written for SQLite
(the reports' and status' own SQL: PostgreSQL gets it transpiled), so the
callers hold one kind of object; `guard` and `user_query` hide the rest.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path

from ..config import DatabaseConfig, database_url_problem
from ..errors import UsageError
from ..readonly import QueryGuard, open_readonly, run_query
from ..secret import Secret

__all__ = ["guard", "open_reader", "run_sql", "user_query"]


def open_reader(database: DatabaseConfig | str | Path, password: Secret | None = None):
    """A connection that cannot write: to the SQLite file, or (a
    `postgresql://` URL, or `database.url`) to PostgreSQL."""
    if isinstance(database, DatabaseConfig):
        if not database.url:
            return open_readonly(database.path)
        from .pgconnect import PgTarget
        from .pgreadonly import open_pg_readonly
        return open_pg_readonly(PgTarget.of(database, password))
    text = str(database)
    if text.startswith(("postgresql://", "postgres://")):
        problem = database_url_problem(text)
        if problem:
            raise UsageError(f"--db {problem}")
        return open_reader(DatabaseConfig(path=None, url=text), password)
    return open_readonly(Path(database))


def guard(conn, timeout_s: float | None, *, what: str = "query",
          option: str = "--timeout") -> AbstractContextManager:
    """Stop the statements run inside at `timeout_s` or on SIGINT/SIGTERM."""
    if isinstance(conn, sqlite3.Connection):
        return QueryGuard(conn, timeout_s, what=what, option=option)
    return conn.guard(timeout_s, what=what, option=option)


def run_sql(conn, sql: str, params=()) -> tuple[list[str], list[tuple]]:
    """The project's own SQL (written for SQLite) on either store."""
    if isinstance(conn, sqlite3.Connection):
        return run_query(conn, sql, params)
    cur = conn.execute(sql, params)
    return [d[0] for d in cur.description], cur.fetchall()


def user_query(conn, sql: str) -> tuple[list[str], list[tuple]]:
    """SQL a person typed, in the dialect of the store it runs on."""
    if isinstance(conn, sqlite3.Connection):
        return run_query(conn, sql)
    return conn.run_user_query(sql)
