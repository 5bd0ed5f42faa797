"""Read-only access for `query`, `report` and `status` (and the metrics file's
counts): a standard-library sqlite3 connection that cannot write, and the one
place SQL typed by a person is run.

The connection opens the file `mode=ro` with `query_only` on and an
authorizer that denies ATTACH (another file could be written) and the pragmas
that change state or would turn `query_only` back off. The engine writes with
aiosqlite through `store.py`; nothing here imports it, so a query starts fast.

A database on a read-only file system or in a directory this user cannot
write is still readable: see `open_readonly` for when `immutable=1` is safe.
`QueryGuard` stops a statement at its deadline (`--timeout`) or on
SIGINT/SIGTERM, however long SQLite would otherwise run.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import structlog

from .errors import (QueryError, QueryInterrupted, QueryTimeout, StoreCreateError, UsageError, storage_error,
                     storage_kind)

__all__ = ["QueryGuard", "open_readonly", "run_query"]

log = structlog.get_logger("crawler.readonly")

BUSY_TIMEOUT_MS = 5000
# SQLite virtual-machine steps between two looks at the clock and the signal
# flag: a few microseconds apart, and no measurable cost.
PROGRESS_STEPS = 1000

_DENIED_PRAGMAS = {"query_only", "writable_schema", "journal_mode", "locking_mode", "wal_checkpoint",
                   "schema_version", "user_version", "application_id", "incremental_vacuum",
                   "optimize", "shrink_memory", "secure_delete", "auto_vacuum", "trusted_schema"}


def _read_only_authorizer(action, arg1, arg2, _db, _trigger):
    """query_only stops writes to this file; this also stops ATTACHing another
    file (which could be written) and turning query_only back off."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _DENIED_PRAGMAS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _connect(path: Path, *, immutable: bool) -> tuple[sqlite3.Connection, int]:
    """Open, switch writes off, and read the schema version (the first read:
    where a WAL database that cannot get its -shm fails)."""
    flags = "mode=ro&immutable=1" if immutable else "mode=ro"
    conn = sqlite3.connect(f"file:{_uri_path(path)}?{flags}", uri=True)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = _schema_version(conn)
    except BaseException:
        conn.close()
        raise
    conn.set_authorizer(_read_only_authorizer)
    return conn, version


def _uri_path(path: Path) -> str:
    # A file name may hold URI syntax ('?', '#', '%'): quote those.
    text = str(Path(path).resolve())
    return text.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def _schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT name FROM sqlite_master WHERE name = 'schema_version'").fetchone()
    if row is None:
        return 0
    return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)


def _writable_here(path: Path) -> bool:
    """Can this process create files beside the database and write it?"""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        return False
    return os.access(path.parent, os.W_OK | os.X_OK) and os.access(path, os.W_OK)


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def open_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write (for `query`, `report`, `status`).

    The store keeps the database in WAL mode, and SQLite reads a WAL database
    through its `-shm` index, which even a read-only connection must create
    (or write) beside the file. On a read-only file system, or in a directory
    this user cannot write (a dashboard user reading the timer's database),
    that fails. Then the file is opened `immutable=1`: no -shm, no locks, the
    file read as it is. That is exact only when the database file holds every
    commit and nobody changes it during the read, so the fallback is taken
    only when
      * the ordinary read-only open failed (SQLite could not get its -shm), and
      * this process cannot write there (the directory or the file, or the
        file system is mounted read-only), and
      * no non-empty `-wal` lies beside it: that file holds commits not yet
        copied into the database, which an immutable read would silently
        miss; we refuse instead, saying how to fold them in.
    A sync writing the same file from another account while a long query
    reads it immutably could in theory checkpoint under the reader; the read
    may then fail ("malformed"), it never writes anything, and rerunning it
    is enough. On a read-only file system nobody can write, so this cannot
    happen there.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"database not found: {path} (run `ghcr-inventory sync` first)")
    try:
        try:
            conn, version = _connect(path, immutable=False)
        except sqlite3.OperationalError as exc:
            if storage_kind(exc) != "create" or _writable_here(path):
                raise
            wal = Path(f"{path}-wal")
            if _nonempty(wal):
                raise StoreCreateError(
                    f"cannot read it here: SQLite needs to create {path.name}-shm beside it, and "
                    f"{wal.name} holds commits not yet in the database; read it where the directory "
                    f"is writable, or let its owner fold them in (`sqlite3 {path} 'PRAGMA "
                    f"wal_checkpoint(TRUNCATE)'`) ({exc})", where=str(path)) from None
            log.info("readonly_immutable", db=str(path), reason=str(exc))
            conn, version = _connect(path, immutable=True)
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB" or "not a database" in str(exc):
            raise UsageError(f"{path} is not an SQLite database ({exc})") from None
        raise storage_error(exc, str(path)) from None
    if version == 0:
        conn.close()
        raise UsageError(f"{path} is not a ghcr-inventory database (no schema_version table)")
    return conn


def run_query(conn: sqlite3.Connection, sql: str, params=()) -> tuple[list[str], list[tuple]]:
    """Run one statement; bad SQL or a write is a QueryError (exit 2), a
    database locked or unreadable a StoreError (75/74/73)."""
    try:
        cur = conn.execute(sql, params)
        rows = cur.fetchall()
    except sqlite3.Warning as exc:  # e.g. several statements at once
        raise QueryError(f"SQL: {exc}") from None
    except sqlite3.Error as exc:
        text = str(exc)
        if "readonly" in text or "read-only" in text or "not authorized" in text:
            raise QueryError("the database is opened read-only: queries cannot change it "
                             f"({text})") from None
        if isinstance(exc, sqlite3.OperationalError) and _is_storage(exc):
            raise storage_error(exc, _db_file(conn)) from None
        raise QueryError(f"SQL error: {text}") from None
    columns = [d[0] for d in cur.description or ()]
    return columns, rows


_STORAGE_NAMES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN",
                  "SQLITE_CORRUPT", "SQLITE_NOTADB")
_STORAGE_TEXTS = ("database is locked", "database table is locked", "disk i/o error",
                  "database or disk is full", "unable to open database file", "malformed")


def _is_storage(exc: sqlite3.Error) -> bool:
    """A failure of the file, not of the SQL a person typed."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    if name:
        return name.startswith(_STORAGE_NAMES)
    text = str(exc).lower()
    return any(needle in text for needle in _STORAGE_TEXTS)


def _db_file(conn: sqlite3.Connection) -> str:
    try:
        return next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "")
    except sqlite3.Error:
        return ""


class QueryGuard:
    """Stop the statements run on `conn` inside the block at a deadline
    (`timeout_s`; None or 0: none) or when SIGINT/SIGTERM arrives.

    A statement runs inside SQLite's C code, and Python runs a signal handler
    only between bytecodes: Ctrl-C would wait for a runaway query to end on
    its own, which may be never. SQLite's progress handler calls back into
    Python every PROGRESS_STEPS steps; there the pending handler runs (ours
    only records the signal), and the callback answers non-zero, which makes
    SQLite abandon the statement. Leaving the block then raises
    QueryInterrupted (exit 128 + signal) or QueryTimeout (124) in place of
    the "interrupted" error SQLite gave. The previous handlers come back on
    exit; outside the main thread, where Python cannot install handlers, only
    the deadline applies.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, conn: sqlite3.Connection, timeout_s: float | None, *, what: str = "query",
                 option: str = "--timeout") -> None:
        self.conn = conn
        self.timeout_s = timeout_s or None
        self.what = what
        self.option = option
        self.signum: int | None = None
        self.timed_out = False
        self._deadline: float | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "QueryGuard":
        if self.timeout_s is not None:
            self._deadline = time.monotonic() + self.timeout_s
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        self.conn.set_progress_handler(self._tick, PROGRESS_STEPS)
        return self

    def _on_signal(self, signum: int, _frame) -> None:
        if self.signum is None:
            self.signum = signum

    def _tick(self) -> int:
        if self.signum is not None:
            return 1
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.timed_out = True
            return 1
        return 0

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self.conn.set_progress_handler(None, 0)
        except sqlite3.ProgrammingError:  # already closed
            pass
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self.signum is not None:
            name = signal.Signals(self.signum).name
            raise QueryInterrupted(f"{self.what} stopped by {name}; nothing was changed",
                                   signum=self.signum) from None
        if self.timed_out:
            raise QueryTimeout(f"{self.what} stopped after {self.timeout_s:g}s by {self.option} "
                               f"{self.timeout_s:g} (0 = no limit)") from None
        return False
