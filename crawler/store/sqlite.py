"""The SQLite store: schema and migrations, the read face for the workers
and the write face of the single writer task, one transaction per package.

The first implementation of `crawler.store.protocol`; only this module (and
the read-only access for `query`) knows the inventory may live in SQLite
(docs/architecture.md "Layers"). Rows are built by the pure functions of
`rows.py` and written here; every write goes through
`SQLiteWriter.transaction()` (BEGIN IMMEDIATE ... COMMIT), so a package is
either fully updated or untouched, whatever kills the process.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, astuple, fields
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Sequence

import aiosqlite
import structlog

from ..errors import StoreError, storage_error
from ..model import CacheEntry, PackageResult, RegistryFacts, utc_now
from .protocol import Applied, AttestationRow, Coverage, EventRecord, RepositoryRow, RunRecord
from .sqlapply import PACKAGE_ERRORS, Unchanged, apply_package_rows, package_error, save_cache_rows
from .sqlread import SQLiteReader, translated

log = structlog.get_logger("crawler.store")

SCHEMA_VERSION = 2
# Forward migrations: version reached -> statements taking the previous version
# there. The views are recreated from schema.sql at every open, and tables
# added later are created by its IF NOT EXISTS statements, so only changes to
# existing tables belong here.
MIGRATIONS: dict[int, Sequence[str]] = {
    2: ("ALTER TABLE packages ADD COLUMN full_listed_at TEXT",),
}
BUSY_TIMEOUT_MS = 10_000   # how long a write waits for a lock another process holds, in all
BUSY_SLICE_MS = 200        # one wait inside SQLite; between two, a stop signal is noticed
# A run row's counters are written at every checkpoint; its outcome fields
# only once they are known (None leaves the stored value alone).
_COUNTER_FIELDS = frozenset(f.name for f in fields(RunRecord)) - {"status", "finished_at", "exit_code", "message"}




def schema_text() -> str:
    return resources.files("crawler.store").joinpath("schema.sql").read_text(encoding="utf-8")


def create_private_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use 0644);
    SQLite gives its -wal and -shm files the same mode. An existing file is
    never opened here: closing a descriptor of a file drops every POSIX lock
    this process holds on it, SQLite's included, so a second store opened
    while another is open (`serve` keeps one, each sync opens its own) would
    let another process believe it is the last connection and remove the WAL
    under it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def apply_schema(conn: sqlite3.Connection) -> int:
    """Bring a database (new or old) to SCHEMA_VERSION; returns the version found."""
    found = _schema_version(conn)
    if found > SCHEMA_VERSION:
        raise StoreError(f"database schema version {found} is newer than this program's "
                         f"({SCHEMA_VERSION}); upgrade ghcr-inventory")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for version in range(found + 1, SCHEMA_VERSION + 1):
            if found == 0:
                break  # a new database: schema.sql creates the latest layout
            for statement in MIGRATIONS.get(version, ()):
                conn.execute(statement)
        views = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'view'")]
        for view in views:
            conn.execute(f'DROP VIEW IF EXISTS "{view}"')
        for statement in _statements(schema_text()):
            conn.execute(statement)
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def _schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT name FROM sqlite_master WHERE name = 'schema_version'").fetchone()
    if row is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (sqlite3.complete_statement
    knows about strings, comments and CREATE TRIGGER bodies)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(l.strip().startswith("--") or not l.strip() for l in buf.splitlines()):
        out.append(buf.strip())
    return out




# --- the store ---------------------------------------------------------------

class SQLiteStore:
    """An open SQLite inventory: a write connection for the writer task
    (`writer`) and a read connection for the workers' lookups (`reader`);
    WAL lets both work at once."""

    def __init__(self, path: Path, write: aiosqlite.Connection, read: aiosqlite.Connection) -> None:
        self.path = path
        self._reader = SQLiteReader(read, path)
        self._writer = SQLiteWriter(write, path)
        self._events = SQLiteEvents(self._writer, self._reader)
        self._connections = (read, write)

    @classmethod
    async def open(cls, path: Path) -> "SQLiteStore":
        path = Path(path)
        opened: list[aiosqlite.Connection] = []
        try:
            create_private_file(path)
            _prepare(path)
            write = await aiosqlite.connect(path, isolation_level=None)
            opened.append(write)
            await _pragmas(write)
            read = await aiosqlite.connect(f"file:{path.resolve()}?mode=ro", uri=True,
                                           isolation_level=None)
            opened.append(read)
            await read.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except BaseException as exc:
            # An open connection's thread is not a daemon: left open, the
            # process would never exit.
            for conn in opened:
                await _close_quietly(conn)
            if isinstance(exc, (sqlite3.DatabaseError, OSError)):
                raise storage_error(exc, str(path)) from exc
            raise
        return cls(path, write, read)

    @property
    def reader(self) -> "SQLiteReader":
        return self._reader

    @property
    def writer(self) -> "SQLiteWriter":
        return self._writer

    @property
    def events(self) -> "SQLiteEvents":
        return self._events

    async def claim(self, registry: str, owners: Sequence[str]) -> None:
        """Nothing to take: the sync lock (crawler/lock.py) is held on the whole file."""

    async def close(self) -> None:
        for conn in self._connections:
            await _close_quietly(conn)


async def _close_quietly(conn: aiosqlite.Connection) -> None:
    try:
        await conn.close()
    except (sqlite3.Error, ValueError):
        pass


class SQLiteWriter:
    """The write face (crawler.store.protocol.StoreWriter): every method is
    one BEGIN IMMEDIATE ... COMMIT on the write connection, used only by the
    writer task."""

    # One COMMIT for up to 32 packages: SQLite's commit cost is the pages a
    # transaction dirtied, which packages share (docs/benchmarks.md, finding 3).
    max_batch = 32

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._w = conn
        self._path = path
        self._interrupted = False

    def interrupt(self) -> None:
        """Stop waiting for a write lock another process holds (a stop
        signal): the wait in progress gives up within one busy slice."""
        self._interrupted = True

    @asynccontextmanager
    async def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT; anything raised rolls back. SQLite's
        errors (disk full, a lock held past the busy timeout, I/O) become
        StoreError here, the store's boundary."""
        with translated(self._path):
            await self._begin()
            try:
                yield self._w
            except Unchanged:
                await _rollback(self._w)
                return
            except BaseException:
                await _rollback(self._w)
                raise
            try:
                await self._w.execute("COMMIT")
            except BaseException:
                await _rollback(self._w)
                raise

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting at most BUSY_TIMEOUT_MS for a lock another
        process holds. SQLite's own busy wait cannot be interrupted
        (sqlite3_interrupt does not end it), so it waits in short slices
        here and a stop signal ends the wait between two of them."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        waited = False
        while True:
            try:
                await self._w.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or self._interrupted or time.monotonic() >= deadline:
                    raise
                if not waited:
                    log.info("store_busy_wait", db=str(self._path), timeout_s=BUSY_TIMEOUT_MS / 1000)
                    waited = True
            await asyncio.sleep(0.01)

    async def close_stale_runs(self) -> int:
        """Runs left 'running' by a killed process become 'interrupted'.
        Called under the sync lock, so no live run can be among them."""
        async with self.transaction() as db:
            cur = await db.execute(
                "UPDATE sync_runs SET status = 'interrupted', "
                "finished_at = COALESCE(finished_at, ?), "
                "message = COALESCE(message, 'process ended without finishing the run') "
                "WHERE status = 'running'", (utc_now(),))
            return cur.rowcount

    async def begin_run(self, mode: str, owners: Iterable[str], pid: int, host: str) -> int:
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT INTO sync_runs (started_at, mode, status, owners, pid, host) "
                "VALUES (?, ?, 'running', ?, ?, ?)", (utc_now(), mode, ",".join(owners), pid, host))
            return cur.lastrowid

    async def update_run(self, run_id: int, record: RunRecord) -> None:
        """Checkpoint or finish a run row: the counters always, the outcome
        fields once they are set."""
        values = {k: v for k, v in asdict(record).items() if v is not None or k in _COUNTER_FIELDS}
        columns = ", ".join(f"{k} = ?" for k in values)
        async with self.transaction() as db:
            await db.execute(f"UPDATE sync_runs SET {columns} WHERE id = ?", (*values.values(), run_id))

    async def record_error(self, run_id: int, owner: str | None, package: str | None,
                           kind: str, message: str) -> None:
        async with self.transaction() as db:
            await db.execute("INSERT INTO run_errors (run_id, owner, package, kind, message, at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (run_id, owner, package, kind, message, utc_now()))

    async def ensure_owner(self, registry: str, name: str, kind: str, discovery: str) -> int:
        with translated(self._path):
            cur = await self._w.execute(
                "SELECT id, kind, discovery FROM owners WHERE registry = ? AND name = ?", (registry, name))
            row = await cur.fetchone()
        if row and (row[1], row[2]) == (kind, discovery):
            return row[0]  # a no-op run writes nothing but its run row
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT INTO owners (registry, name, kind, discovery, first_seen) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (registry, name) DO UPDATE SET kind = excluded.kind, "
                "discovery = excluded.discovery RETURNING id",
                (registry, name, kind, discovery, utc_now()))
            row = await cur.fetchone()
            return row[0]

    async def mark_listed(self, owner_id: int, present: set[str],
                          in_scope: Callable[[str], bool]) -> list[str]:
        """After a complete listing: packages in scope but absent are deleted
        (their tags and digests closed); listed ones are not touched here (a
        restored package is revived by its own sync). Returns deleted names."""
        now = utc_now()
        async with self.transaction() as db:
            cur = await db.execute(
                "SELECT id, name FROM packages WHERE owner_id = ? AND deleted_at IS NULL", (owner_id,))
            gone = [(pid, name) for pid, name in await cur.fetchall()
                    if name not in present and in_scope(name)]
            await db.execute("DELETE FROM incomplete_listings WHERE owner_id = ? AND package = ''",
                             (owner_id,))
            for pid, _ in gone:
                await db.execute("UPDATE packages SET deleted_at = ? WHERE id = ?", (now, pid))
                await db.execute("UPDATE tags SET last_seen = ? WHERE package_id = ? AND last_seen IS NULL",
                                 (now, pid))
                await db.execute("UPDATE package_digests SET last_seen = ? "
                                 "WHERE package_id = ? AND last_seen IS NULL", (now, pid))
        return sorted(name for _, name in gone)

    async def apply_package(self, owner_id: int, result: PackageResult) -> Applied:
        """One package in one transaction (a batch of one); its error is raised."""
        [outcome] = await self.apply_packages([(owner_id, result)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def apply_packages(self, batch: Sequence[tuple[int, PackageResult]]) -> list[Applied | Exception]:
        """Several packages in one BEGIN IMMEDIATE ... COMMIT, each inside its
        own SAVEPOINT: one COMMIT writes the index pages the packages share
        once instead of once each (docs/benchmarks.md, finding 3), and a
        package that fails is rolled back to its savepoint alone. A result
        that changes nothing (a no-op in registry mode, where every package
        is listed again) is rolled back too and comes back with `changed`
        False; a batch in which nothing changed is not committed at all."""
        outcomes: list[Applied | Exception] = []
        async with self.transaction() as db:
            for owner_id, result in batch:
                outcomes.append(await self._savepoint(db, owner_id, result))
            if not any(isinstance(o, Applied) and o.changed for o in outcomes):
                raise Unchanged   # writes nothing, not even `last_synced`
        return outcomes

    async def _savepoint(self, db, owner_id: int, result: PackageResult) -> Applied | Exception:
        await db.execute("SAVEPOINT package")
        try:
            applied = await apply_package_rows(db, self._w, owner_id, result)
        except Exception as exc:
            mine = not isinstance(exc, (OSError, sqlite3.Error)) or isinstance(exc, PACKAGE_ERRORS)
            if not mine or not self._w.in_transaction:
                raise   # the transaction's (a lock, a full disk, I/O), not this package's: the batch fails
            await db.execute("ROLLBACK TO package")
            await db.execute("RELEASE package")
            return exc.args[0] if isinstance(exc, Unchanged) else package_error(exc, self._path)
        await db.execute("RELEASE package")
        return applied

    async def save_cache(self, entries: Iterable[CacheEntry]) -> None:
        async with self.transaction() as db:
            await save_cache_rows(db, entries)

    async def save_registry_facts(self, registry: str, facts: RegistryFacts) -> None:
        """Remember what the registry said; a fact left None keeps the stored one."""
        referrers = None if facts.referrers is None else int(facts.referrers)
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO registry_facts (registry, realm, service, referrers, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (registry) DO UPDATE SET "
                "realm = COALESCE(excluded.realm, registry_facts.realm), "
                "service = COALESCE(excluded.service, registry_facts.service), "
                "referrers = COALESCE(excluded.referrers, registry_facts.referrers), "
                "updated_at = excluded.updated_at",
                (registry, facts.realm, facts.service, referrers, utc_now()))

    async def save_repositories(self, rows: Iterable[RepositoryRow]) -> int:
        rows = [astuple(r) for r in rows]
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO repositories (name_with_owner, node_id, archived, visibility, pushed_at, "
                "default_branch, head_oid, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name_with_owner) DO UPDATE SET node_id = excluded.node_id, "
                "archived = excluded.archived, visibility = excluded.visibility, "
                "pushed_at = excluded.pushed_at, default_branch = excluded.default_branch, "
                "head_oid = excluded.head_oid, fetched_at = excluded.fetched_at",
                [(*r[:2], None if r[2] is None else int(r[2]), *r[3:], utc_now()) for r in rows])
        return len(rows)

    async def touch_repositories(self, names: Iterable[str]) -> int:
        """Record that these repositories were asked about and GitHub had no
        facts for them (NOT_FOUND): facts stored before are kept, only
        fetched_at moves, so they are asked again after the interval."""
        names = sorted(set(names))
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO repositories (name_with_owner, fetched_at) VALUES (?, ?) "
                "ON CONFLICT (name_with_owner) DO UPDATE SET fetched_at = excluded.fetched_at",
                [(n, utc_now()) for n in names])
        return len(names)

    async def mark_incomplete(self, owner_id: int, package: str, run_id: int, kind: str,
                              message: str) -> None:
        """Record that the last listing of `package` ('' = the owner's
        packages listing) did not end complete; its commit (or the owner's
        next complete listing) clears it."""
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO incomplete_listings (owner_id, package, run_id, kind, message, at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner_id, package) DO UPDATE SET "
                "run_id = excluded.run_id, kind = excluded.kind, message = excluded.message, at = excluded.at",
                (owner_id, package, run_id, kind, message, utc_now()))

    async def save_attestations(self, owner_id: int, answered: Sequence[str],
                                rows: Sequence[AttestationRow]) -> int:
        """GitHub's complete answer for `answered` digests: their bundles
        replace the ones stored, and each becomes `listed` or `none`."""
        now = utc_now()
        answered = sorted(set(answered))
        listed = {r.digest for r in rows}
        async with self.transaction() as db:
            await db.executemany("DELETE FROM attestations WHERE owner_id = ? AND digest = ?",
                                 [(owner_id, d) for d in answered])
            await db.executemany(
                "INSERT INTO attestations (owner_id, digest, bundle_digest, media_type, predicate_type, "
                "repository_id, bundle_url, signer_workflow, signer_repository, signer_ref, signer_commit, "
                "signer_issuer, signed_at, verified, verify_error, bundle, fetched_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(owner_id, *_attestation_values(r), now) for r in rows])
            await db.executemany(
                "INSERT INTO attestation_checks (owner_id, digest, coverage, checked_at, reason) "
                "VALUES (?, ?, ?, ?, NULL) ON CONFLICT (owner_id, digest) DO UPDATE SET "
                "coverage = excluded.coverage, checked_at = excluded.checked_at, reason = NULL",
                [(owner_id, d, "listed" if d in listed else "none", now) for d in answered])
        return len(rows)

    async def mark_attestations_unknown(self, owner_id: int, digests: Sequence[str], reason: str) -> int:
        """GitHub could not tell (403, an answer cut short): `unknown`,
        never `none`. What an earlier answer stored is kept."""
        now = utc_now()
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO attestation_checks (owner_id, digest, coverage, checked_at, reason) "
                "VALUES (?, ?, 'unknown', ?, ?) ON CONFLICT (owner_id, digest) DO UPDATE SET "
                "checked_at = excluded.checked_at, reason = excluded.reason "
                "WHERE attestation_checks.coverage = 'unknown'",
                [(owner_id, d, now, reason) for d in sorted(set(digests))])
        return len(digests)

    async def record_changes(self, run_id: int, via: str, changes: Iterable[tuple[str, str]]) -> None:
        rows = [(run_id, owner, package, via, utc_now()) for owner, package in changes]
        if not rows:
            return
        async with self.transaction() as db:
            await db.executemany("INSERT INTO package_changes (run_id, owner, package, via, at) "
                                 "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)



def _attestation_values(r: AttestationRow) -> tuple:
    return (r.digest, r.bundle_digest, r.media_type, r.predicate_type, r.repository_id, r.bundle_url,
            r.signer_workflow, r.signer_repository, r.signer_ref, r.signer_commit, r.signer_issuer,
            r.signed_at, int(r.verified), r.verify_error, r.bundle)



def _busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


async def _rollback(conn: aiosqlite.Connection) -> None:
    """Roll back if a transaction is still open (a failed COMMIT may have
    ended it already); never mask the error that got us here."""
    try:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
    except (sqlite3.Error, OSError, ValueError):
        pass


def _prepare(path: Path) -> None:
    """Schema and migrations, synchronously, before the async connections open."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"cannot switch {path} to WAL mode (got {mode}); is it on a network share?")
        apply_schema(conn)
    finally:
        conn.close()


# Checkpoint the WAL every 8,192 pages (32 MiB) instead of SQLite's 1,000: a
# cold sync dirties index pages all over the file (random digest keys), and
# a page written by several commits between two checkpoints is copied back
# to the database once; at 1,000 pages nearly every batch paid a checkpoint
# (docs/benchmarks.md, finding 3). What a crash can lose is unchanged (a
# commit is in the WAL or not; recovery replays it); the WAL file is cut
# back to 32 MiB after a checkpoint.
WAL_CHECKPOINT_PAGES = 8192


async def _pragmas(conn: aiosqlite.Connection) -> None:
    for pragma in (f"PRAGMA busy_timeout = {BUSY_SLICE_MS}", "PRAGMA foreign_keys = ON",
                   "PRAGMA synchronous = NORMAL", f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}",
                   f"PRAGMA journal_size_limit = {WAL_CHECKPOINT_PAGES * 4096}"):
        await conn.execute(pragma)


class SQLiteEvents:
    """The event log (crawler.store.protocol.EventLog) of `serve`: writes
    through the store's write connection, one transaction each and one at a
    time (deliveries are answered concurrently; a connection holds one
    transaction), reads on its read connection."""

    _COLUMNS = "delivery_id, received_at, event, action, owner, package, state"

    def __init__(self, writer: SQLiteWriter, reader: SQLiteReader) -> None:
        self._writer = writer
        self._reader = reader
        self._one_at_a_time = asyncio.Lock()

    async def record_event(self, event: EventRecord) -> bool:
        async with self._one_at_a_time, self._writer.transaction() as db:
            cur = await db.execute(
                f"INSERT INTO events ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (delivery_id) DO NOTHING", astuple(event))
            return cur.rowcount == 1

    async def pending_events(self) -> list[EventRecord]:
        rows = await self._reader._all(  # noqa: SLF001 - the same store's read face
            f"SELECT {self._COLUMNS} FROM events WHERE state = 'pending' ORDER BY received_at, delivery_id")
        return [EventRecord(*row) for row in rows]

    async def finish_events(self, delivery_ids: Sequence[str], state: str, run_id: int | None,
                            message: str | None) -> None:
        now = utc_now()
        async with self._one_at_a_time, self._writer.transaction() as db:
            await db.executemany(
                "UPDATE events SET state = ?, run_id = ?, finished_at = ?, message = ? WHERE delivery_id = ?",
                [(state, run_id, now, message, d) for d in delivery_ids])

    async def coverage(self) -> Coverage:
        row = await self._reader._one(  # noqa: SLF001
            "SELECT COUNT(*), COALESCE(SUM(reconcile_only), 0), COALESCE(SUM(webhook_changes), 0), "
            "COALESCE(SUM(reconcile_changes), 0) FROM v_coverage")
        return Coverage(*(int(v) for v in row))

    async def ping(self) -> None:
        await self._reader._one("SELECT 1")  # noqa: SLF001
