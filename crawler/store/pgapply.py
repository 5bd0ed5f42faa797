"""One package's rows in PostgreSQL, inside the savepoint the writer
opened (`PostgresWriter.apply_packages`): the package row, its new content
(one `unnest` insert per table, in key order), its digests and tag spans;
under `--full` every stored object compared and repaired. `Tx` is the
transaction's connection: it counts the rows changed and keeps U+0000 out
of text."""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import asyncpg

from ..model import CacheEntry, PackageResult, utc_now
from .protocol import Applied
from .rows import (CHILD_TABLES, CONFIG_COLUMNS, MANIFEST_COLUMNS, child_rows, config_rows, diff_tags, full_listed,
                   manifest_rows, restamp)

_ROWS = re.compile(r"(\d+)$")


class Unchanged(Exception):
    """Raised inside a transaction that wrote nothing worth keeping: roll back."""


# What one package's rows can do wrong (a value out of range, a constraint):
# its savepoint is rolled back and its batch-mates commit. Anything else (a
# lock, a full disk, a lost session, a deadlock) is the transaction's.
PACKAGE_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


async def apply_package_rows(tx: "Tx", owner_id: int, result: PackageResult) -> Applied:
    """One package's rows, inside the caller's savepoint; Unchanged (its
    Applied the argument) when nothing had to change."""
    applied = Applied()
    now = utc_now()
    package_id, row_changed = await _package_row(tx, owner_id, result, now)
    before = tx.changes
    await _write_content(tx, result, now, applied)
    await _write_digests(tx, package_id, result, now, applied)
    await _write_tags(tx, package_id, result, now, applied)
    await tx.insert("referrers", sorted({(r.subject_digest, r.referrer_digest, r.kind, r.artifact_type, r.via)
                                         for r in result.referrers}))
    await save_cache_rows(tx, result.cache)
    await tx.execute("DELETE FROM incomplete_listings WHERE owner_id = $1 AND package = $2",
                     owner_id, result.ref.name)
    applied.changed = row_changed or tx.changes > before
    if not applied.changed:
        raise Unchanged(applied)
    return applied


def pg_text(value: Any) -> Any:
    """PostgreSQL's text cannot hold U+0000 (SQLite's can, and a registry's
    JSON may carry it in a label): stored as U+FFFD, so one hostile value
    cannot stop a run."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


class Tx:
    """One transaction's connection, counting the rows its statements changed;
    every text value it sends passes through `pg_text`."""

    def __init__(self, conn: asyncpg.Connection, layout: dict[str, list[tuple[str, str]]]) -> None:
        self.conn = conn
        self.layout = layout
        self.changes = 0

    async def execute(self, sql: str, *args) -> int:
        status = await self.conn.execute(sql, *map(pg_text, args))
        n = int(m.group(1)) if (m := _ROWS.search(status or "")) else 0
        self.changes += n
        return n

    async def fetch(self, sql: str, *args) -> list:
        return await self.conn.fetch(sql, *map(pg_text, args))

    async def fetchrow(self, sql: str, *args):
        return await self.conn.fetchrow(sql, *map(pg_text, args))

    async def fetchval(self, sql: str, *args):
        return await self.conn.fetchval(sql, *map(pg_text, args))

    async def insert(self, table: str, rows: Sequence[tuple], *, columns: Sequence[str] | None = None,
                     conflict: str = "ON CONFLICT DO NOTHING") -> int:
        """INSERT the rows as one statement over unnest arrays, in key order
        (every column, the key first: the row locks of two transactions
        writing the same keys are taken in one order). Returns rows written."""
        if not rows:
            return 0
        layout = dict(self.layout[table])
        names = list(columns or [c for c, _ in self.layout[table]])
        arrays = [[pg_text(v) for v in col] for col in zip(*rows)]
        casts = ", ".join(f"${i + 1}::{_ARRAY[layout[n]]}" for i, n in enumerate(names))
        order = ", ".join(str(i + 1) for i in range(len(names)) if layout[names[i]] != "bytea")
        sql = (f"INSERT INTO {table} ({', '.join(names)}) SELECT * FROM unnest({casts}) "
               f"ORDER BY {order} {conflict}")
        return await self.execute(sql, *arrays)


_ARRAY = {"text": "text[]", "bigint": "bigint[]", "bytea": "bytea[]", "integer": "integer[]",
          "double precision": "float8[]"}


async def save_cache_rows(tx: Tx, entries: Iterable[CacheEntry]) -> None:
    now = utc_now()
    latest = {e.url: (e.url, e.etag, e.payload, now) for e in entries}
    await tx.insert("http_cache", [latest[u] for u in sorted(latest)], conflict=(
        "ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, payload = excluded.payload, "
        "updated_at = excluded.updated_at"))


async def _package_row(tx: Tx, owner_id: int, result: PackageResult, now: str) -> tuple[int, bool]:
    ref = result.ref
    row = await tx.fetchrow(
        "SELECT id, github_id, visibility, repository, html_url, version_count, created_at, updated_at, "
        "deleted_at, full_listed_at, last_synced FROM packages WHERE owner_id = $1 AND name = $2", owner_id, ref.name)
    wanted = (ref.github_id, ref.visibility, ref.repository, ref.html_url, ref.version_count, ref.created_at,
              ref.updated_at, None)
    if (row is not None and tuple(row[1:9]) == wanted and not result.full
            and not restamp(result, row[9], row[10])):
        return row[0], False
    listed, keep = full_listed(result, now)
    package_id = await tx.fetchval(
        "INSERT INTO packages (owner_id, name, github_id, visibility, repository, html_url, version_count, "
        "created_at, updated_at, first_seen, last_synced, full_listed_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT (owner_id, name) DO UPDATE SET github_id = excluded.github_id, "
        "visibility = excluded.visibility, repository = excluded.repository, html_url = excluded.html_url, "
        "version_count = excluded.version_count, created_at = excluded.created_at, "
        "updated_at = excluded.updated_at, last_synced = excluded.last_synced, deleted_at = NULL, "
        "full_listed_at = CASE WHEN $13::boolean THEN packages.full_listed_at ELSE excluded.full_listed_at END "
        "RETURNING id",
        owner_id, ref.name, ref.github_id, ref.visibility, ref.repository, ref.html_url, ref.version_count,
        ref.created_at, ref.updated_at, now, now, listed, keep)
    return package_id, True


async def _write_content(tx: Tx, result: PackageResult, now: str, applied: Applied) -> None:
    """New content, one statement per table, the tables in one fixed order
    (manifests, configs, then CHILD_TABLES; referrers after the package's
    own rows)."""
    if result.full:
        await _repair_content(tx, result, now, applied)
        return
    applied.manifests_new += await tx.insert("manifests", sorted((*r, now) for r in manifest_rows(result).values()))
    await tx.insert("configs", sorted((*r, now) for r in config_rows(result).values()))
    for table, by_object in child_rows(result).items():
        await tx.insert(table, sorted({r for object_rows in by_object.values() for r in object_rows}))


async def _repair_content(tx: Tx, result: PackageResult, now: str, applied: Applied) -> None:
    """Under --full: every object compared with what is stored and repaired,
    a table at a time for the whole package (a few statements, not several
    an object), the tables in `_write_content`'s order and each table's
    rows in key order, as every write here."""
    applied.manifests_new += await _repair_objects(tx, "manifests", MANIFEST_COLUMNS, now, applied,
                                                   manifest_rows(result))
    await _repair_objects(tx, "configs", CONFIG_COLUMNS, now, applied, config_rows(result))
    children = child_rows(result)
    for table, key_column in CHILD_TABLES:
        await _repair_rows(tx, table, key_column, children[table], applied)


async def _repair_objects(tx: Tx, table: str, columns: Sequence[str], now: str, applied: Applied,
                          wanted: dict[str, tuple]) -> int:
    """Content rows (`columns`, the digest first; `fetched_at` added on
    insert): the missing ones inserted, the ones that differ updated
    (counted as corrected). Returns how many were new."""
    stored = {r[0]: tuple(r) for r in await tx.fetch(
        f"SELECT {', '.join(columns)} FROM {table} WHERE {columns[0]} = ANY($1::text[])", sorted(wanted))}
    new = await tx.insert(table, [(*row, now) for d, row in sorted(wanted.items()) if d not in stored])
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns[1:]))
    for d, row in sorted(wanted.items()):
        if d in stored and stored[d] != row:
            await tx.execute(f"UPDATE {table} SET {sets} WHERE {columns[0]} = $1", row[0], *row[1:])
            applied.corrected += 1
    return new


async def _repair_rows(tx: Tx, table: str, key_column: str, wanted: dict[str, list[tuple]],
                       applied: Applied) -> None:
    """Make the child rows of each content-addressed object (a key of
    `wanted`) exactly its rows, counting the rows that had to change."""
    if not wanted:
        return
    names = ", ".join(c for c, _ in tx.layout[table])
    stored: dict[str, set[tuple]] = {}
    for r in await tx.fetch(f"SELECT {names} FROM {table} WHERE {key_column} = ANY($1::text[])", sorted(wanted)):
        stored.setdefault(r[0], set()).add(tuple(r))
    stale, rows = [], []
    for key, want in sorted(wanted.items()):
        have, want_set = stored.get(key, set()), set(want)
        if have == want_set:
            continue
        applied.corrected += max(len(have - want_set), len(want_set - have))
        stale.append(key)
        rows.extend(want_set)
    if stale:
        await tx.execute(f"DELETE FROM {table} WHERE {key_column} = ANY($1::text[])", stale)
        await tx.insert(table, sorted(rows), conflict="")


async def _write_digests(tx: Tx, package_id: int, result: PackageResult, now: str, applied: Applied) -> None:
    latest = {v.digest: (package_id, v.digest, v.version_id, v.created_at, v.updated_at, now)
              for v in result.versions}
    await tx.insert("package_digests", [latest[d] for d in sorted(latest)],
                    columns=("package_id", "digest", "version_id", "created_at", "updated_at", "first_seen"),
                    conflict=(
        "ON CONFLICT (package_id, digest) DO UPDATE SET "
        "version_id = COALESCE(excluded.version_id, package_digests.version_id), "
        "created_at = COALESCE(excluded.created_at, package_digests.created_at), "
        "updated_at = COALESCE(excluded.updated_at, package_digests.updated_at), "
        "first_seen = CASE WHEN package_digests.last_seen IS NULL THEN package_digests.first_seen "
        "ELSE excluded.first_seen END, last_seen = NULL "
        "WHERE package_digests.last_seen IS NOT NULL "
        "OR COALESCE(excluded.version_id, package_digests.version_id) IS DISTINCT FROM package_digests.version_id "
        "OR COALESCE(excluded.created_at, package_digests.created_at) IS DISTINCT FROM package_digests.created_at "
        "OR COALESCE(excluded.updated_at, package_digests.updated_at) IS DISTINCT FROM package_digests.updated_at"))
    if not result.complete:
        return
    present = set(latest)
    gone = sorted(d for (d,) in await tx.fetch(
        "SELECT digest FROM package_digests WHERE package_id = $1 AND last_seen IS NULL", package_id)
        if d not in present)
    if gone:
        await tx.execute("UPDATE package_digests SET last_seen = $1 WHERE package_id = $2 "
                         "AND digest = ANY($3::text[])", now, package_id, gone)
    applied.digests_closed += len(gone)
    if result.full:
        applied.corrected += len(gone)


async def _write_tags(tx: Tx, package_id: int, result: PackageResult, now: str, applied: Applied) -> None:
    current = {t: d for t, d in await tx.fetch(
        "SELECT tag, digest FROM tags WHERE package_id = $1 AND last_seen IS NULL", package_id)}
    close, opened = diff_tags(current, result.tags, result.complete)
    if close:
        await tx.execute("UPDATE tags SET last_seen = $1 WHERE package_id = $2 AND tag = ANY($3::text[]) "
                         "AND last_seen IS NULL", now, package_id, close)
    await tx.insert("tags", [(package_id, t, d, now) for t, d in opened],
                    columns=("package_id", "tag", "digest", "first_seen"), conflict="")
    applied.tags_closed += len(close)
    applied.tags_opened += len(opened)
    if result.full:
        applied.corrected += len(close)
