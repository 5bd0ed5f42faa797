"""The PostgreSQL store (`database.url`): one inventory shared by several
crawlers, each syncing its own owners, from any number of hosts.

The second implementation of `crawler.store.protocol`. The writer holds
one session: every write is one transaction (a package whole or not at
all), and the session holds the advisory lock of every owner the run
syncs (`claim`, `pgconnect.claim_owners`): a second crawler for one of
them exits 75 naming the holder, and a killed crawler's locks die with its
session. Workers read through a small pool of read-only sessions (`pgread.py`).

Content two owners share (the same digest pushed to two orgs) is written
with `INSERT … ON CONFLICT DO NOTHING`, each batch as one statement over
`unnest` arrays in key order, and the tables always in the same order, so
two crawlers' transactions take their row locks in one global order and
cannot deadlock; should the server still report a deadlock or a
serialization failure, the transaction is retried a bounded number of
times. A lost connection rolls back the transaction in flight (the server
does); the writer reconnects a bounded number of times, takes its owners'
locks again, and retries it, or ends the run: exit 4, with what was
committed intact.

Rows come from the pure builders of `rows.py`, as in the SQLite store, and
the schema is generated from schema.sql (`pgschema.py`), so both stores
hold the same rows for the same world.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, astuple, fields
from typing import Any, Awaitable, Callable, Iterable, Sequence

import asyncpg
import structlog

from ..config import DatabaseConfig
from ..errors import LockHeldError, StoreBusyError, StoreError, UnreachableError
from ..model import CacheEntry, PackageResult, RegistryFacts, utc_now
from ..secret import Secret
from .pgapply import PACKAGE_ERRORS, Tx, Unchanged, apply_package_rows, save_cache_rows
from .pgconnect import (PgTarget, claim_owners, connect, connect_kwargs, is_connection_loss, lock_key, retrying,
                        translate)
from .pgread import PostgresReader
from .pgschema import EXTRA_COLUMNS, fingerprint, postgres_statements
from .protocol import Applied, AttestationRow, Coverage, EventRecord, RepositoryRow, RunRecord

log = structlog.get_logger("crawler.store.postgres")

SCHEMA_VERSION = 2          # the same layout as the SQLite store's (schema.sql)
# Columns added to existing tables since version 1, before schema.sql's
# statements run (its CREATE TABLE IF NOT EXISTS leaves an old table as it is,
# and its views may read the new columns); the SQLite store's MIGRATIONS twin.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ('ALTER TABLE packages ADD COLUMN IF NOT EXISTS full_listed_at TEXT COLLATE "C"',),
}
SCHEMA_LOCK = lock_key("ghcr-inventory", "schema")
READERS = 4                 # read-only sessions of the workers' pool
_COUNTER_FIELDS = frozenset(f.name for f in fields(RunRecord)) - {"status", "finished_at", "exit_code", "message"}


# --- schema ---------------------------------------------------------------------------------

async def apply_schema(conn: asyncpg.Connection) -> None:
    """Create or bring the schema up to date, once: a database stamped with
    this program's fingerprint needs nothing (a no-op run issues no DDL).
    Crawlers opening a new database at the same time serialize on an
    advisory lock; the views are recreated in one transaction (dropped by
    name, never CASCADE: a view someone built on ours stops the upgrade
    with a message instead of silently vanishing)."""
    stamp = f"ghcr-inventory schema {fingerprint()}"
    if await _stamp(conn) == stamp:
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        if await _stamp(conn) == stamp:
            return
        found = await _schema_version(conn)
        if found > SCHEMA_VERSION:
            raise StoreError(f"database schema version {found} is newer than this program's "
                             f"({SCHEMA_VERSION}); upgrade ghcr-inventory")
        await _drop_views(conn)
        for version in range(found + 1, SCHEMA_VERSION + 1) if found else ():
            for statement in MIGRATIONS.get(version, ()):
                await conn.execute(statement)
        for statement in postgres_statements():
            await conn.execute(statement)
        await conn.execute("DELETE FROM schema_version")
        await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", SCHEMA_VERSION)
        await conn.execute(f"COMMENT ON TABLE schema_version IS '{stamp}'")


async def _stamp(conn: asyncpg.Connection) -> str | None:
    return await conn.fetchval("SELECT obj_description(to_regclass('schema_version'), 'pg_class')")


async def _schema_version(conn: asyncpg.Connection) -> int:
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return 0
    return int(await conn.fetchval("SELECT MAX(version) FROM schema_version") or 0)


_VIEW_NAME = re.compile(r"^CREATE VIEW (\w+)", re.I)


async def _drop_views(conn: asyncpg.Connection) -> None:
    ours = [m.group(1) for s in postgres_statements() if (m := _VIEW_NAME.match(s))]
    present = {r[0] for r in await conn.fetch(
        "SELECT table_name FROM information_schema.views WHERE table_schema = current_schema()")}
    left = [v for v in reversed(ours) if v in present]
    while left:
        blocked = []
        for view in left:
            try:
                async with conn.transaction():   # a savepoint: a refused drop leaves the rest intact
                    await conn.execute(f'DROP VIEW IF EXISTS "{view}"')
            except asyncpg.DependentObjectsStillExistError as exc:
                blocked.append((view, exc))
        if len(blocked) == len(left):
            view, exc = blocked[0]
            raise StoreError(f"cannot recreate view {view}: {exc.detail or exc} (drop the views built on "
                             f"it, upgrade, then create them again)")
        left = [v for v, _ in blocked]


async def column_layout(conn: asyncpg.Connection) -> dict[str, list[tuple[str, str]]]:
    """table -> [(column, type)] in table order, less the columns only
    PostgreSQL has (pgschema.EXTRA_COLUMNS)."""
    extra = {t: spec.split()[0] for t, spec in EXTRA_COLUMNS.items()}
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"):
        if extra.get(table) != column:
            out.setdefault(table, []).append((column, kind))
    return out


# --- the store ---------------------------------------------------------------------------------

class PostgresStore:
    """An open PostgreSQL inventory: the writer's session and the readers' pool."""

    def __init__(self, target: PgTarget, writer: "PostgresWriter", reader: "PostgresReader") -> None:
        self.target = target
        self._writer = writer
        self._reader = reader
        self._events: PostgresEvents | None = None

    @classmethod
    async def open(cls, database: DatabaseConfig, password: Secret | None = None) -> "PostgresStore":
        target = PgTarget.of(database, password)
        conn = await connect(target)
        try:
            await apply_schema(conn)
            layout = await column_layout(conn)
            pool = await asyncpg.create_pool(min_size=1, max_size=READERS,
                                             **connect_kwargs(target, read_only=True))
        except BaseException as exc:
            await _close(conn)
            if isinstance(exc, (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError)):
                raise translate(exc, target.where, connecting=True) from None
            raise
        return cls(target, PostgresWriter(target, conn, layout), PostgresReader(target, pool))

    @property
    def reader(self) -> "PostgresReader":
        return self._reader

    @property
    def events(self) -> "PostgresEvents":
        if self._events is None:
            self._events = PostgresEvents(self._writer, self._reader)
        return self._events

    @property
    def writer(self) -> "PostgresWriter":
        return self._writer

    async def claim(self, registry: str, owners: Sequence[str]) -> None:
        """Take the owners' advisory locks for this run (LockHeldError: 75)."""
        await self._writer.claim(registry, owners)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()


async def _close(conn: asyncpg.Connection | None) -> None:
    if conn is None:
        return
    try:
        await asyncio.wait_for(conn.close(), 5)
    except Exception:
        conn.terminate()


class PostgresWriter:
    """The write face (StoreWriter): every method one transaction on the
    writer's session, which also holds the run's owner locks."""

    # The writer gives PostgreSQL one package a transaction: a package's
    # shared rows are locked in key order, which keeps concurrent crawlers
    # free of deadlocks; a batch of several would lock package after package
    # (deadlocks, detected and retried, but wasted work), and it bought no
    # speed here (docs/benchmarks.md, finding 3). `apply_packages` still
    # takes a batch, with the same savepoint semantics as SQLite's.
    max_batch = 1

    def __init__(self, target: PgTarget, conn: asyncpg.Connection, layout: dict) -> None:
        self._target = target
        self._conn: asyncpg.Connection | None = conn
        self._layout = layout
        self._claimed: tuple[str, tuple[str, ...]] | None = None
        self._interrupted = False
        self._busy = False
        self._cancelling: asyncio.Task | None = None

    # -- session ---------------------------------------------------------------------

    async def claim(self, registry: str, owners: Sequence[str]) -> None:
        conn = await self._session()
        try:
            await claim_owners(conn, registry, owners, self._target.where)
        except LockHeldError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise translate(exc, self._target.where) from None
        self._claimed = (registry, tuple(owners))

    async def _session(self) -> asyncpg.Connection:
        """The writer's session; after a lost one, a new one holding the same
        owner locks again (another crawler that took one meanwhile: 75)."""
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        self._conn = None
        # raw errors here: _retrying decides whether to try again
        conn = await asyncpg.connect(**connect_kwargs(self._target))
        if self._claimed is not None:
            registry, owners = self._claimed
            try:
                await claim_owners(conn, registry, owners, self._target.where)
            except BaseException:
                await _close(conn)
                raise
            log.info("postgres_reconnected", db=self._target.where)
        self._conn = conn
        return conn

    async def close(self) -> None:
        if self._cancelling is not None:
            await asyncio.gather(self._cancelling, return_exceptions=True)
        conn, self._conn = self._conn, None
        await _close(conn)

    def interrupt(self) -> None:
        """A stop signal: a statement waiting for a lock another crawler holds
        gives up now (its transaction rolls back) instead of at lock_timeout."""
        self._interrupted = True
        conn = self._conn
        if conn is not None and self._busy and not conn.is_closed():
            self._cancelling = asyncio.get_running_loop().create_task(self._cancel_lock_wait(conn.get_server_pid()))

    async def _cancel_lock_wait(self, pid: int) -> None:
        try:
            other = await connect(self._target)
        except Exception:
            return
        try:
            await other.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                                "WHERE pid = $1 AND wait_event_type = 'Lock'", pid)
        except Exception:
            pass
        finally:
            await _close(other)

    async def _transaction(self, work: Callable[[Tx], Awaitable[Any]]) -> Any:
        """`work` in one transaction; retried whole after a lost connection
        or an aborted transaction (bounded), translated otherwise."""
        async def attempt():
            conn = await self._session()
            tx = Tx(conn, self._layout)
            self._busy = True
            try:
                async with conn.transaction():
                    return await work(tx)
            except Unchanged as unchanged:
                return unchanged.args[0] if unchanged.args else None
            except asyncpg.QueryCanceledError as exc:
                if self._interrupted:
                    raise StoreBusyError("gave up waiting for a lock another crawler holds: stopped by a signal",
                                         where=self._target.where) from None
                raise exc
            except BaseException as exc:
                if is_connection_loss(exc):
                    await self._lost()
                raise
            finally:
                self._busy = False
        try:
            return await retrying(self._target, attempt)
        except UnreachableError as exc:
            raise UnreachableError(f"{exc.message}; gave up after {self._target.reconnect_attempts} "
                                   f"reconnect(s): what was committed is intact", where=exc.where) from None

    async def _lost(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    # -- runs -----------------------------------------------------------------------

    async def close_stale_runs(self) -> int:
        """Runs left 'running' by a process that no longer has a session (its
        application_name is gone from pg_stat_activity): killed. Several
        crawlers run at once, so "running" alone proves nothing here."""
        async def work(tx: Tx) -> int:
            return await tx.execute(
                "UPDATE sync_runs SET status = 'interrupted', finished_at = COALESCE(finished_at, $1), "
                "message = COALESCE(message, 'process ended without finishing the run') "
                "WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE "
                "a.datname = current_database() AND a.application_name = "
                "left('ghcr-inventory pid ' || sync_runs.pid || ' on ' || sync_runs.host, 63))", utc_now())
        return await self._transaction(work)

    async def begin_run(self, mode: str, owners: Iterable[str], pid: int, host: str) -> int:
        owners = ",".join(owners)

        async def work(tx: Tx) -> int:
            return await tx.fetchval(
                "INSERT INTO sync_runs (started_at, mode, status, owners, pid, host) "
                "VALUES ($1, $2, 'running', $3, $4, $5) RETURNING id", utc_now(), mode, owners, pid, host)
        return await self._transaction(work)

    async def update_run(self, run_id: int, record: RunRecord) -> None:
        values = {k: v for k, v in asdict(record).items() if v is not None or k in _COUNTER_FIELDS}
        columns = ", ".join(f"{k} = ${i + 1}" for i, k in enumerate(values))

        async def work(tx: Tx) -> None:
            await tx.execute(f"UPDATE sync_runs SET {columns} WHERE id = ${len(values) + 1}",
                             *values.values(), run_id)
        await self._transaction(work)

    async def record_error(self, run_id: int, owner: str | None, package: str | None,
                           kind: str, message: str) -> None:
        async def work(tx: Tx) -> None:
            await tx.execute("INSERT INTO run_errors (run_id, owner, package, kind, message, at) "
                             "VALUES ($1, $2, $3, $4, $5, $6)", run_id, owner, package, kind, message, utc_now())
        await self._transaction(work)

    # -- owners and packages ------------------------------------------------------------

    async def ensure_owner(self, registry: str, name: str, kind: str, discovery: str) -> int:
        async def work(tx: Tx) -> int:
            row = await tx.fetchrow("SELECT id, kind, discovery FROM owners WHERE registry = $1 AND name = $2",
                                    registry, name)
            if row and (row[1], row[2]) == (kind, discovery):
                raise Unchanged(row[0])   # a no-op run writes nothing but its run row
            return await tx.fetchval(
                "INSERT INTO owners (registry, name, kind, discovery, first_seen) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (registry, name) DO UPDATE SET kind = excluded.kind, "
                "discovery = excluded.discovery RETURNING id", registry, name, kind, discovery, utc_now())
        return await self._transaction(work)

    async def mark_listed(self, owner_id: int, present: set[str],
                          in_scope: Callable[[str], bool]) -> list[str]:
        """As SQLiteWriter.mark_listed: after a complete listing, packages in
        scope but absent are deleted (their tags and digests closed)."""
        now = utc_now()

        async def work(tx: Tx) -> list[str]:
            gone = [(pid, name) for pid, name in await tx.fetch(
                "SELECT id, name FROM packages WHERE owner_id = $1 AND deleted_at IS NULL ORDER BY id", owner_id)
                if name not in present and in_scope(name)]
            ids = [pid for pid, _ in gone]
            await tx.execute("DELETE FROM incomplete_listings WHERE owner_id = $1 AND package = ''", owner_id)
            if ids:
                await tx.execute("UPDATE packages SET deleted_at = $1 WHERE id = ANY($2::bigint[])", now, ids)
                await tx.execute("UPDATE tags SET last_seen = $1 WHERE package_id = ANY($2::bigint[]) "
                                 "AND last_seen IS NULL", now, ids)
                await tx.execute("UPDATE package_digests SET last_seen = $1 WHERE package_id = ANY($2::bigint[]) "
                                 "AND last_seen IS NULL", now, ids)
            return sorted(name for _, name in gone)
        return await self._transaction(work)

    async def apply_package(self, owner_id: int, result: PackageResult) -> Applied:
        """One package in one transaction (a batch of one); its error is raised."""
        [outcome] = await self.apply_packages([(owner_id, result)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def apply_packages(self, batch: Sequence[tuple[int, PackageResult]]) -> list[Applied | Exception]:
        """As SQLiteWriter.apply_packages: one transaction, each package in
        its own savepoint (a nested `conn.transaction()`). A deadlock, a
        serialization failure or a lost session is the whole transaction's
        (retried whole by `_transaction`), never one package's; a batch in
        which nothing changed is rolled back."""
        async def work(tx: Tx) -> list[Applied | Exception]:
            outcomes = [await self._savepoint(tx, owner_id, result) for owner_id, result in batch]
            if not any(isinstance(o, Applied) and o.changed for o in outcomes):
                raise Unchanged(outcomes)
            return outcomes
        return await self._transaction(work)

    async def _savepoint(self, tx: Tx, owner_id: int, result: PackageResult) -> Applied | Exception:
        try:
            async with tx.conn.transaction():
                return await apply_package_rows(tx, owner_id, result)
        except Unchanged as unchanged:
            return unchanged.args[0]
        except PACKAGE_ERRORS as exc:
            return translate(exc, self._target.where)
        except Exception as exc:
            if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)):
                raise
            return exc   # not the database's: this package's rows could not be built

    async def save_cache(self, entries: Iterable[CacheEntry]) -> None:
        entries = list(entries)

        async def work(tx: Tx) -> None:
            await save_cache_rows(tx, entries)
        await self._transaction(work)

    async def save_registry_facts(self, registry: str, facts: RegistryFacts) -> None:
        referrers = None if facts.referrers is None else int(facts.referrers)

        async def work(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO registry_facts (registry, realm, service, referrers, updated_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (registry) DO UPDATE SET "
                "realm = COALESCE(excluded.realm, registry_facts.realm), "
                "service = COALESCE(excluded.service, registry_facts.service), "
                "referrers = COALESCE(excluded.referrers, registry_facts.referrers), "
                "updated_at = excluded.updated_at", registry, facts.realm, facts.service, referrers, utc_now())
        await self._transaction(work)

    async def save_repositories(self, rows: Iterable[RepositoryRow]) -> int:
        latest = {r.name_with_owner: astuple(r) for r in rows}
        now = utc_now()
        values = [(*r[:2], None if r[2] is None else int(r[2]), *r[3:], now) for _, r in sorted(latest.items())]

        async def work(tx: Tx) -> None:
            await tx.insert("repositories", values, conflict=(
                "ON CONFLICT (name_with_owner) DO UPDATE SET node_id = excluded.node_id, "
                "archived = excluded.archived, visibility = excluded.visibility, pushed_at = excluded.pushed_at, "
                "default_branch = excluded.default_branch, head_oid = excluded.head_oid, "
                "fetched_at = excluded.fetched_at"))
        await self._transaction(work)
        return len(values)

    async def touch_repositories(self, names: Iterable[str]) -> int:
        names = sorted(set(names))
        now = utc_now()

        async def work(tx: Tx) -> None:
            await tx.insert("repositories", [(n, now) for n in names], columns=("name_with_owner", "fetched_at"),
                            conflict="ON CONFLICT (name_with_owner) DO UPDATE SET fetched_at = excluded.fetched_at")
        await self._transaction(work)
        return len(names)

    # -- later stages: listings left incomplete, attestations, how changes were found -----------

    async def mark_incomplete(self, owner_id: int, package: str, run_id: int, kind: str,
                              message: str) -> None:
        """As SQLiteWriter.mark_incomplete ('' = the owner's packages listing)."""
        async def work(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO incomplete_listings (owner_id, package, run_id, kind, message, at) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (owner_id, package) DO UPDATE SET "
                "run_id = excluded.run_id, kind = excluded.kind, message = excluded.message, at = excluded.at",
                owner_id, package, run_id, kind, message, utc_now())
        await self._transaction(work)

    async def save_attestations(self, owner_id: int, answered: Sequence[str],
                                rows: Sequence[AttestationRow]) -> int:
        """As SQLiteWriter.save_attestations: GitHub's complete answer for
        `answered` replaces their bundles; each becomes `listed` or `none`."""
        now = utc_now()
        answered = sorted(set(answered))
        listed = {r.digest for r in rows}
        values = sorted({(owner_id, *_attestation_values(r), now) for r in rows}, key=lambda v: v[:3])

        async def work(tx: Tx) -> None:
            await tx.execute("DELETE FROM attestations WHERE owner_id = $1 AND digest = ANY($2::text[])",
                             owner_id, answered)
            await tx.insert("attestations", values, columns=_ATTESTATION_COLUMNS)
            await tx.insert("attestation_checks",
                            [(owner_id, d, "listed" if d in listed else "none", now) for d in answered],
                            columns=("owner_id", "digest", "coverage", "checked_at"),
                            conflict="ON CONFLICT (owner_id, digest) DO UPDATE SET coverage = excluded.coverage, "
                                     "checked_at = excluded.checked_at, reason = NULL")
        await self._transaction(work)
        return len(rows)

    async def mark_attestations_unknown(self, owner_id: int, digests: Sequence[str], reason: str) -> int:
        """As SQLiteWriter.mark_attestations_unknown: `unknown`, never `none`;
        an earlier answer is kept."""
        now = utc_now()
        wanted = sorted(set(digests))

        async def work(tx: Tx) -> None:
            await tx.insert("attestation_checks", [(owner_id, d, "unknown", now, reason) for d in wanted],
                            columns=("owner_id", "digest", "coverage", "checked_at", "reason"),
                            conflict="ON CONFLICT (owner_id, digest) DO UPDATE SET checked_at = excluded.checked_at, "
                                     "reason = excluded.reason WHERE attestation_checks.coverage = 'unknown'")
        await self._transaction(work)
        return len(digests)

    async def record_changes(self, run_id: int, via: str, changes: Iterable[tuple[str, str]]) -> None:
        now = utc_now()
        rows = sorted({(run_id, owner, package, via, now) for owner, package in changes})
        if not rows:
            return

        async def work(tx: Tx) -> None:
            await tx.insert("package_changes", rows, columns=("run_id", "owner", "package", "via", "at"))
        await self._transaction(work)


class PostgresEvents:
    """`serve`'s event log (EventLog) on the writer's session, one
    transaction at a time (deliveries are answered concurrently and a
    session runs one statement at a time), reads on the readers' pool."""

    _COLUMNS = ("delivery_id", "received_at", "event", "action", "owner", "package", "state")

    def __init__(self, writer: PostgresWriter, reader: PostgresReader) -> None:
        self._writer = writer
        self._reader = reader
        self._one_at_a_time = asyncio.Lock()

    async def record_event(self, event: EventRecord) -> bool:
        async def work(tx: Tx) -> int:
            return await tx.insert("events", [astuple(event)], columns=self._COLUMNS,
                                   conflict="ON CONFLICT (delivery_id) DO NOTHING")
        async with self._one_at_a_time:
            return await self._writer._transaction(work) == 1   # noqa: SLF001 - the same store's writer

    async def pending_events(self) -> list[EventRecord]:
        rows = await self._reader._all(  # noqa: SLF001 - the same store's read face
            f"SELECT {', '.join(self._COLUMNS)} FROM events WHERE state = 'pending' "
            "ORDER BY received_at, delivery_id")
        return [EventRecord(*row) for row in rows]

    async def finish_events(self, delivery_ids: Sequence[str], state: str, run_id: int | None,
                            message: str | None) -> None:
        now = utc_now()

        async def work(tx: Tx) -> None:
            await tx.execute("UPDATE events SET state = $1, run_id = $2, finished_at = $3, message = $4 "
                             "WHERE delivery_id = ANY($5::text[])", state, run_id, now, message,
                             sorted(set(delivery_ids)))
        async with self._one_at_a_time:
            await self._writer._transaction(work)   # noqa: SLF001

    async def coverage(self) -> Coverage:
        row = await self._reader._one(  # noqa: SLF001
            "SELECT COUNT(*), COALESCE(SUM(reconcile_only), 0), COALESCE(SUM(webhook_changes), 0), "
            "COALESCE(SUM(reconcile_changes), 0) FROM v_coverage")
        return Coverage(*(int(v) for v in row))

    async def ping(self) -> None:
        await self._reader._one("SELECT 1")  # noqa: SLF001


_ATTESTATION_COLUMNS = ("owner_id", "digest", "bundle_digest", "media_type", "predicate_type", "repository_id",
                        "bundle_url", "signer_workflow", "signer_repository", "signer_ref", "signer_commit",
                        "signer_issuer", "signed_at", "verified", "verify_error", "bundle", "fetched_at")


def _attestation_values(r: AttestationRow) -> tuple:
    return (r.digest, r.bundle_digest, r.media_type, r.predicate_type, r.repository_id, r.bundle_url,
            r.signer_workflow, r.signer_repository, r.signer_ref, r.signer_commit, r.signer_issuer,
            r.signed_at, int(r.verified), r.verify_error, r.bundle)


# --- one package's rows ------------------------------------------------------------------
