"""Reaching PostgreSQL: connection settings from the config, the one
translation of asyncpg's errors into the crawler's, and the per-owner
advisory locks that let several crawlers share one inventory.

Every session the crawler opens carries `application_name` "ghcr-inventory
pid N on HOST" (what a lock message and a stale run are matched by) and
the timeouts that keep every wait bounded: `statement_timeout`,
`lock_timeout`, `idle_in_transaction_session_timeout`, plus asyncpg's own
`command_timeout` for a server that stops answering altogether.

Errors (`translate`): refused credentials exit 3; a database that does not
exist or may not be written 73; a full disk 74; a lock or row held past
`lock_timeout`, a statement past `statement_timeout`, too many
connections, a deadlock or serialization failure retried to the end 75;
a server that cannot be reached or went away 4 (UnreachableError, after
the bounded reconnects of the caller).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import socket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import asyncpg
import structlog

from ..config import DatabaseConfig
from ..errors import (AuthError, InventoryError, LockHeldError, StoreBusyError, StoreCreateError, StoreError,
                      UnreachableError)
from ..secret import Secret, redact

__all__ = ["PgTarget", "claim_owners", "connect", "is_connection_loss", "is_retryable", "lock_key",
           "retrying", "session_label", "translate"]

log = structlog.get_logger("crawler.store.postgres")

RETRIES = 4                 # a transaction the server aborted (deadlock, serialization)
# SQLSTATE classes and codes (PostgreSQL "Appendix A. Error Codes").
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_LOST = (asyncpg.ConnectionDoesNotExistError, asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError,
         asyncpg.CrashShutdownError, asyncpg.CannotConnectNowError, asyncpg.IdleInTransactionSessionTimeoutError,
         asyncpg.IdleSessionTimeoutError, ConnectionError, OSError, TimeoutError, EOFError)


def session_label(pid: int | None = None, host: str | None = None) -> str:
    """The application_name of this process's sessions (63 bytes at most)."""
    text = f"ghcr-inventory pid {pid or os.getpid()} on {host or socket.gethostname()}"
    return text.encode()[:63].decode(errors="ignore")


@dataclass(frozen=True)
class PgTarget:
    """Where and how to connect: the URL (no password in it), the password
    (a Secret, or None for ~/.pgpass / trust), TLS and timeouts."""

    url: str
    password: Secret | None = None
    sslmode: str | None = None
    connect_timeout_s: float = 10.0
    lock_timeout_s: float = 10.0
    statement_timeout_s: float = 300.0
    reconnect_attempts: int = 5

    @classmethod
    def of(cls, database: DatabaseConfig, password: Secret | None) -> "PgTarget":
        return cls(database.url or "", password, database.sslmode, database.connect_timeout_s,
                   database.lock_timeout_s, database.statement_timeout_s, database.reconnect_attempts)

    @property
    def where(self) -> str:
        """The server and database, as messages name it (never a password)."""
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        return f"postgresql://{host}:{parts.port or 5432}{parts.path}"

    def settings(self, *, read_only: bool = False) -> dict[str, str]:
        ms = lambda s: str(max(1, int(s * 1000)))  # noqa: E731
        out = {"application_name": session_label(), "statement_timeout": ms(self.statement_timeout_s),
               "lock_timeout": ms(self.lock_timeout_s),
               # A crawler stopped (SIGSTOP, a hung host) inside a transaction
               # must not keep its row locks forever.
               "idle_in_transaction_session_timeout": ms(max(60.0, self.statement_timeout_s)),
               "timezone": "UTC"}
        if read_only:
            out["default_transaction_read_only"] = "on"
        return out


async def connect(target: PgTarget, *, read_only: bool = False) -> asyncpg.Connection:
    """One session, or the translated reason there is none."""
    try:
        return await asyncpg.connect(**connect_kwargs(target, read_only=read_only))
    except BaseException as exc:
        if isinstance(exc, (asyncpg.PostgresError, *_LOST, asyncpg.InterfaceError)):
            raise translate(exc, target.where, connecting=True) from None
        raise


def connect_kwargs(target: PgTarget, *, read_only: bool = False) -> dict:
    kwargs = {"dsn": target.url, "timeout": target.connect_timeout_s, "server_settings": target.settings(read_only=read_only),
              "command_timeout": target.statement_timeout_s + 5, "statement_cache_size": 256}
    if target.password is not None:
        kwargs["password"] = target.password.reveal()
    if target.sslmode:
        kwargs["ssl"] = target.sslmode
    return kwargs


def is_connection_loss(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc) or "connection" in str(exc)
    return isinstance(exc, _LOST)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _RETRYABLE)


async def retrying(target: PgTarget, attempt: Callable[[], Awaitable[Any]]) -> Any:
    """Run `attempt`, again after a lost connection or an aborted
    transaction (a deadlock, a serialization failure), a bounded number of
    times with jittered backoff; then its error, translated."""
    tries = max(target.reconnect_attempts, RETRIES) + 1
    for n in range(tries):
        try:
            return await attempt()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            lost, retry = is_connection_loss(exc), is_retryable(exc)
            limit = target.reconnect_attempts if lost else RETRIES
            if not (lost or retry) or n >= limit:
                raise translate(exc, target.where) from None
            log.warning("postgres_retry", reason=type(exc).__name__, attempt=n + 1, of=limit)
            await asyncio.sleep(min(2.0, 0.1 * 2 ** n) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


def translate(exc: BaseException, where: str, *, connecting: bool = False) -> InventoryError:
    """asyncpg's (or the socket's) error as the crawler's, with its exit code."""
    if isinstance(exc, InventoryError):
        return exc
    reason = redact(" ".join(str(exc).split()) or type(exc).__name__)
    if isinstance(exc, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
        return AuthError(f"PostgreSQL refused the credentials ({reason}); the password comes from "
                         f"database.password_env/password_file, PGPASSWORD or ~/.pgpass", where=where)
    if isinstance(exc, (asyncpg.InvalidCatalogNameError, asyncpg.InsufficientPrivilegeError)):
        return StoreCreateError(f"cannot create or open for writing ({reason})", where=where)
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return StoreCreateError(f"the server only allows reads (a standby?) ({reason})", where=where)
    if isinstance(exc, asyncpg.DiskFullError):
        return StoreError(f"the inventory could not be written: the server's disk is full ({reason})", where=where)
    if isinstance(exc, (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError, asyncpg.TooManyConnectionsError,
                        *_RETRYABLE)):
        return StoreBusyError(f"the database stayed busy ({reason}); try again later", where=where)
    if is_connection_loss(exc):
        verb = "cannot connect to" if connecting else "lost the connection to"
        return UnreachableError(f"{verb} PostgreSQL ({reason})", where=where)
    if isinstance(exc, asyncpg.PostgresError):
        return StoreError(f"the inventory could not be written ({reason})", where=where)
    return StoreError(f"the inventory could not be written ({type(exc).__name__}: {reason})", where=where)


# --- per-owner locks ------------------------------------------------------------------

def lock_key(registry: str, owner: str) -> int:
    """A stable signed 64-bit key for (registry, owner): the advisory lock
    every crawler of that owner takes, on any host."""
    digest = hashlib.sha256(f"ghcr-inventory\0{registry.lower()}\0{owner.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_HOLDER_SQL = """
SELECT a.application_name, to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       host(a.client_addr)
  FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database
                                                            WHERE datname = current_database())
   AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1
 LIMIT 1
"""


async def claim_owners(conn: asyncpg.Connection, registry: str, owners: Iterable[str], where: str) -> list[int]:
    """Take every owner's advisory lock on this session, in key order (two
    crawlers never wait on each other: they try, and one gives up), or
    none: LockHeldError (75) naming who holds the first one taken. The
    locks last as long as the session, so a killed crawler leaves none."""
    wanted = sorted({(lock_key(registry, o), o) for o in owners})
    taken: list[int] = []
    for key, owner in wanted:
        if await _try_lock(conn, key):
            taken.append(key)
            continue
        holder = await _holder(conn, key)
        for k in taken:
            await conn.fetchval("SELECT pg_advisory_unlock($1)", k)
        raise LockHeldError(f"another sync holds the lock for owner {owner} on {registry} "
                            f"({holder or 'holder unknown'}); try again later", where=where)
    return taken


DEAD_HOLDER_WAIT_S = 5.0   # a killed crawler's session ends as soon as its server notices


async def _try_lock(conn: asyncpg.Connection, key: int) -> bool:
    """Take the lock now; or, when its holder is a crawler of this host
    whose process is gone (killed a moment ago, its session not yet ended
    by the server), as soon as the server ends that session (bounded)."""
    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        return True
    deadline = asyncio.get_running_loop().time() + DEAD_HOLDER_WAIT_S
    while _dead_here(await _holder_label(conn, key)) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return True
    return False


def _dead_here(label: str | None) -> bool:
    match = re.fullmatch(r"ghcr-inventory pid (\d+) on (.*)", label or "")
    if not match or match.group(2) != session_label().split(" on ", 1)[1]:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


async def _holder_label(conn: asyncpg.Connection, key: int) -> str | None:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = await conn.fetchrow(_HOLDER_SQL, unsigned >> 32, unsigned & 0xFFFFFFFF)
    return row[0] if row else None


async def _holder(conn: asyncpg.Connection, key: int) -> str:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = await conn.fetchrow(_HOLDER_SQL, unsigned >> 32, unsigned & 0xFFFFFFFF)
    if row is None:
        return ""
    name, since, addr = row
    label = (name or "a session").removeprefix("ghcr-inventory ")
    return f"{label}{f' from {addr}' if addr else ''} since {since}"
