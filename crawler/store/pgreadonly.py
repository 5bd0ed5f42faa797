"""Read-only access to a PostgreSQL inventory for `query`, `report`,
`status` and the metrics file's counts: the counterpart of
`crawler/readonly.py`.

A synchronous face over one asyncpg session on a private event loop, the
shape the SQLite read path has (`execute(sql, params)` → a cursor with
`fetchall`, `fetchone`, `description`), so reports and status run
unchanged on both stores. The session sets `default_transaction_read_only`
and every statement runs in a `READ ONLY` transaction: a write is refused
by the server, one line, exit 2 (the real protection for dashboards is a
read-only role: README "Several crawlers, one inventory").

The project's SQL (reports, status) is written for SQLite and transpiled
(`pgschema.transpile`); SQL a person types into `query` is PostgreSQL's and
runs as typed. Values come back as the SQLite surface gives them: numerics
as int or float, booleans as 0/1, timestamps as ISO text.

`guard` bounds what runs inside it: `--timeout` is the session's
`statement_timeout` (the server stops the statement: exit 124), and
SIGINT/SIGTERM cancel the statement at once (exit 130/143).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import signal
import threading
import uuid
from contextlib import contextmanager
from typing import Any, Sequence

import asyncpg

from ..errors import InventoryError, QueryError, QueryInterrupted, QueryTimeout
from .pgconnect import PgTarget, connect, is_connection_loss, translate
from .pgschema import UntranslatableSQL, transpile

__all__ = ["PgReadConnection", "open_pg_readonly"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# SQLSTATE classes that are the server's trouble, not the SQL's: connection,
# insufficient resources, operator intervention, system error, internal error.
_SERVER = ("08", "53", "55", "57", "58", "XX")


def open_pg_readonly(target: PgTarget) -> "PgReadConnection":
    return PgReadConnection(target)


class _Cursor:
    def __init__(self, columns: list[str], rows: list[tuple]) -> None:
        self.description = [(c, None, None, None, None, None, None) for c in columns]
        self._rows = rows

    def fetchall(self) -> list[tuple]:
        return list(self._rows)

    def fetchone(self):
        return self._rows[0] if self._rows else None


class PgReadConnection:
    """One read-only session, used synchronously."""

    def __init__(self, target: PgTarget) -> None:
        self.target = target
        self._loop = asyncio.new_event_loop()
        self._timeout_s: float | None = None
        self._what = "query"
        self._option = "--timeout"
        self._signum: int | None = None
        try:
            self._conn = self._loop.run_until_complete(connect(target, read_only=True))
        except BaseException:
            self._loop.close()
            raise

    # -- the sqlite3-shaped face -------------------------------------------------------

    def execute(self, sql: str, params: Sequence | dict = ()) -> _Cursor:
        """Run SQL written for SQLite (the project's own), transpiled."""
        try:
            pgsql, names = transpile(sql)
        except (UntranslatableSQL, ValueError) as exc:
            raise QueryError(f"SQL: {exc}") from None
        if isinstance(params, dict):
            args = [params[n] for n in names]
        else:
            args = list(params)
        return self._run(pgsql, args, coerce=True)

    def run_user_query(self, sql: str) -> tuple[list[str], list[tuple]]:
        """SQL a person typed, as PostgreSQL's."""
        cur = self._run(sql, [], coerce=False)
        return [d[0] for d in cur.description], cur.fetchall()

    def close(self) -> None:
        try:
            self._loop.run_until_complete(asyncio.wait_for(self._conn.close(), 5))
        except Exception:
            self._conn.terminate()
        finally:
            self._loop.close()

    # -- guard ---------------------------------------------------------------------------

    @contextmanager
    def guard(self, timeout_s: float | None, *, what: str = "query", option: str = "--timeout"):
        """Bound the statements inside: `timeout_s` (None/0: none), SIGINT/SIGTERM."""
        # None: the session's own statement_timeout (database.statement_timeout_s);
        # 0: no limit, as --timeout 0 says; else that many seconds.
        self._timeout_s, self._what, self._option, self._signum = timeout_s, what, option, None
        try:
            yield self
        finally:
            self._timeout_s = None

    # -- running ---------------------------------------------------------------------------

    def _run(self, sql: str, args: list, *, coerce: bool) -> _Cursor:
        task = self._loop.create_task(self._fetch(sql, args, coerce))
        installed = self._install_signals(task)
        try:
            columns, rows = self._loop.run_until_complete(task)
        except asyncio.CancelledError:
            name = signal.Signals(self._signum or signal.SIGINT).name
            raise QueryInterrupted(f"{self._what} stopped by {name}; nothing was changed",
                                   signum=self._signum or signal.SIGINT) from None
        finally:
            for signum in installed:
                self._loop.remove_signal_handler(signum)
        return _Cursor(columns, [tuple(_value(v) for v in r) for r in rows])

    def _install_signals(self, task: asyncio.Task) -> list[int]:
        if threading.current_thread() is not threading.main_thread():
            return []

        def on_signal(signum: int) -> None:
            if self._signum is None:
                self._signum = signum
            task.cancel()   # asyncpg cancels the statement on the server too

        for signum in SIGNALS:
            self._loop.add_signal_handler(signum, on_signal, signum)
        return list(SIGNALS)

    async def _fetch(self, sql: str, args: list, coerce: bool) -> tuple[list[str], list]:
        conn = self._conn
        try:
            async with conn.transaction(readonly=True):
                if self._timeout_s is not None:
                    await conn.execute(f"SET LOCAL statement_timeout = {max(int(self._timeout_s * 1000), 0)}")
                stmt = await conn.prepare(sql)
                if coerce:
                    args = [_coerce(a, p) for a, p in zip(args, stmt.get_parameters())]
                rows = await stmt.fetch(*args)
                columns = [a.name for a in stmt.get_attributes()]
        except asyncpg.QueryCanceledError as exc:
            if self._signum is not None:
                raise asyncio.CancelledError() from None
            if self._timeout_s and "statement timeout" in str(exc):
                raise QueryTimeout(f"{self._what} stopped after {self._timeout_s:g}s by {self._option} "
                                   f"{self._timeout_s:g} (0 = no limit)") from None
            raise translate(exc, self.target.where) from None
        except (asyncpg.ReadOnlySQLTransactionError, asyncpg.InsufficientPrivilegeError) as exc:
            raise QueryError(f"the database is opened read-only: queries cannot change it ({exc})") from None
        except InventoryError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            state = getattr(exc, "sqlstate", "") or ""
            if not isinstance(exc, asyncpg.PostgresError) or is_connection_loss(exc) or state[:2] in _SERVER:
                raise translate(exc, self.target.where) from None
            raise QueryError(f"SQL error: {' '.join(str(exc).split())}") from None
        return columns, rows


def _coerce(value: Any, param) -> Any:
    """A parameter as the type the server inferred for it (SQLite takes any)."""
    kind = getattr(param, "name", "")
    if value is None:
        return None
    if kind in ("text", "varchar", "name") and not isinstance(value, str):
        return str(value)
    if kind in ("int2", "int4", "int8") and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _value(value: Any) -> Any:
    """A value as SQLite's surface has it: numbers, text, bytes or None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, dt.timedelta)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return str(list(value))
    return value
