"""One package's rows in SQLite, inside the savepoint the writer opened
(`SQLiteWriter.apply_packages`): the package row, its new content (one
`executemany` per table, whatever the package's size), its digests and tag
spans; under `--full` every stored object compared and repaired. Each call
here is one trip to the connection's thread, so a package costs a few,
not a few an object."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

import aiosqlite

from ..errors import storage_error
from ..model import CacheEntry, PackageResult, utc_now
from .protocol import Applied
from .rows import (CHILD_TABLES, CONFIG_COLUMNS, MANIFEST_COLUMNS, child_rows, config_rows, diff_tags, full_listed,
                   manifest_rows, restamp)

CHUNK = 500  # keys bound in one IN list: well under SQLITE_MAX_VARIABLE_NUMBER on every build


def chunks(items: Sequence, size: int = CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def many(db, sql: str, rows: list) -> None:
    """executemany, but no trip to the database thread for no rows (most of
    a package's statements have none: nothing closed, no referrers)."""
    if rows:
        await db.executemany(sql, rows)


async def save_cache_rows(db, entries: Iterable[CacheEntry]) -> None:
    await many(
        db, "INSERT INTO http_cache (url, etag, payload, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, payload = excluded.payload, "
        "updated_at = excluded.updated_at",
        [(e.url, e.etag, e.payload, utc_now()) for e in entries])


class Unchanged(Exception):
    """Raised inside a transaction (or a package's savepoint) that wrote
    nothing worth keeping: roll back."""


# What one package's rows can do wrong (a constraint, a value SQLite cannot
# bind): its savepoint is rolled back and its batch-mates commit. SQLite's
# other errors (a lock, a full disk, I/O, a damaged file) are the whole
# transaction's, as is anything after which SQLite ended it itself.
PACKAGE_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError)


def package_error(exc: Exception, path: Path) -> Exception:
    """The error a package's savepoint was rolled back for (a constraint, a
    value SQLite cannot bind, a row that could not be built), as the store's
    boundary reports it: SQLite's errors as StoreError, the cause kept."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    error = storage_error(exc, str(path))
    error.__cause__ = exc
    return error


async def apply_package_rows(db, conn: aiosqlite.Connection, owner_id: int, result: PackageResult) -> Applied:
    """One package's rows, inside the caller's savepoint; Unchanged (its
    Applied the argument) when nothing had to change."""
    applied = Applied()
    now = utc_now()
    before = conn.total_changes
    package_id, row_changed = await _package_row(db, owner_id, result, now)
    await _write_content(db, result, now, applied)
    await _write_digests(db, package_id, result, now, applied)
    await _write_tags(db, package_id, result, now, applied)
    await many(
        db, "INSERT INTO referrers (subject_digest, referrer_digest, kind, artifact_type, via) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(r.subject_digest, r.referrer_digest, r.kind, r.artifact_type, r.via) for r in result.referrers])
    await save_cache_rows(db, result.cache)
    await db.execute("DELETE FROM incomplete_listings WHERE owner_id = ? AND package = ?",
                     (owner_id, result.ref.name))
    applied.changed = row_changed or conn.total_changes > before
    if not applied.changed:
        raise Unchanged(applied)
    return applied


async def _package_row(db, owner_id: int, result: PackageResult, now: str) -> tuple[int, bool]:
    """The package's id, and whether its row had to change (new, revived,
    or listing fields that differ)."""
    ref = result.ref
    rows = await db.execute_fetchall(
        "SELECT id, github_id, visibility, repository, html_url, version_count, created_at, updated_at, "
        "deleted_at, full_listed_at, last_synced FROM packages WHERE owner_id = ? AND name = ?",
        (owner_id, ref.name))
    row = rows[0] if rows else None
    wanted = (ref.github_id, ref.visibility, ref.repository, ref.html_url, ref.version_count, ref.created_at,
              ref.updated_at, None)
    if (row is not None and tuple(row[1:9]) == wanted and not result.full
            and not restamp(result, row[9], row[10])):
        return row[0], False
    return await _upsert_package(db, owner_id, result, now), True


async def _upsert_package(db, owner_id: int, result: PackageResult, now: str) -> int:
    ref = result.ref
    listed, keep = full_listed(result, now)
    [(package_id,)] = await db.execute_fetchall(
        "INSERT INTO packages (owner_id, name, github_id, visibility, repository, html_url, version_count, "
        "created_at, updated_at, first_seen, last_synced, full_listed_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (owner_id, name) DO UPDATE SET github_id = excluded.github_id, "
        "visibility = excluded.visibility, repository = excluded.repository, html_url = excluded.html_url, "
        "version_count = excluded.version_count, created_at = excluded.created_at, "
        "updated_at = excluded.updated_at, last_synced = excluded.last_synced, deleted_at = NULL, "
        "full_listed_at = CASE WHEN ? THEN packages.full_listed_at ELSE excluded.full_listed_at END "
        "RETURNING id",
        (owner_id, ref.name, ref.github_id, ref.visibility, ref.repository, ref.html_url,
         ref.version_count, ref.created_at, ref.updated_at, now, now, listed, keep))
    return package_id


async def _write_content(db, result: PackageResult, now: str, applied: Applied) -> None:
    """New content, one executemany per table (a package costs the same few
    round trips to the database thread whatever its size). Under --full each
    object is compared with what is stored instead, and repaired."""
    if result.full:
        await _repair_content(db, result, now, applied)
        return
    manifests = [(*row, now) for row in manifest_rows(result).values()]
    if manifests:
        cur = await db.executemany(_insert("manifests", MANIFEST_COLUMNS), manifests)
        applied.manifests_new += max(cur.rowcount, 0)
    await many(db, _insert("configs", CONFIG_COLUMNS), [(*row, now) for row in config_rows(result).values()])
    for table, by_object in child_rows(result).items():
        rows = [r for object_rows in by_object.values() for r in object_rows]
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            await db.executemany(f"INSERT INTO {table} VALUES ({marks}) ON CONFLICT DO NOTHING", rows)


def _insert(table: str, columns: Sequence[str]) -> str:
    """A content row (`columns`, then fetched_at), kept if already there."""
    return (f"INSERT INTO {table} ({', '.join(columns)}, fetched_at) "
            f"VALUES ({', '.join('?' * (len(columns) + 1))}) ON CONFLICT DO NOTHING")


async def _repair_content(db, result: PackageResult, now: str, applied: Applied) -> None:
    """Under --full: every object compared with what is stored and repaired.
    The stored rows are read a table at a time for the whole package (a few
    trips to the database thread, not several an object: a --full of 29,000
    digests made ~370,000)."""
    applied.manifests_new += await _repair_objects(db, "manifests", MANIFEST_COLUMNS, now, applied,
                                                   manifest_rows(result))
    await _repair_objects(db, "configs", CONFIG_COLUMNS, now, applied, config_rows(result))
    children = child_rows(result)
    for table, key_column in CHILD_TABLES:
        await _repair_rows(db, table, key_column, children[table], applied)


async def _repair_objects(db, table: str, columns: Sequence[str], now: str, applied: Applied,
                          wanted: dict[str, tuple]) -> int:
    """Content rows (`columns`, the digest first): the missing ones inserted,
    the ones that differ updated (counted as corrected). Returns how many
    were new."""
    stored = await _stored_by_key(db, f"SELECT {', '.join(columns)} FROM {table}", columns[0], wanted)
    new = [(*row, now) for d, row in wanted.items() if d not in stored]
    await many(db, _insert(table, columns), new)
    changed = [row for d, row in wanted.items() if d in stored and stored[d] != [row]]
    sets = ", ".join(f"{c} = ?" for c in columns[1:])
    await many(db, f"UPDATE {table} SET {sets} WHERE {columns[0]} = ?", [(*row[1:], row[0]) for row in changed])
    applied.corrected += len(changed)
    return len(new)


async def _stored_by_key(db, select: str, key_column: str, keys: Iterable[str]) -> dict[str, list[tuple]]:
    """The rows `select` reads for these keys, by key (`key_column` first)."""
    out: dict[str, list[tuple]] = {}
    for chunk in chunks(list(keys)):
        marks = ",".join("?" * len(chunk))
        for row in await db.execute_fetchall(f"{select} WHERE {key_column} IN ({marks})", chunk):
            out.setdefault(row[0], []).append(tuple(row))
    return out


async def _repair_rows(db, table: str, key_column: str, wanted: dict[str, list[tuple]],
                       applied: Applied) -> None:
    """Make the child rows of each content-addressed object (a key of
    `wanted`) exactly its rows, counting the rows that had to change."""
    stored = await _stored_by_key(db, f"SELECT * FROM {table}", key_column, wanted)
    stale, rows = [], []
    for key, want in wanted.items():
        have, want_set = set(stored.get(key, ())), set(want)
        if have == want_set:
            continue
        applied.corrected += max(len(have - want_set), len(want_set - have))  # rows changed, not +/-
        stale.append((key,))
        rows.extend(want)
    await many(db, f"DELETE FROM {table} WHERE {key_column} = ?", stale)
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        await db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


async def _write_digests(db, package_id: int, result: PackageResult, now: str, applied: Applied) -> None:
    await many(
        db, "INSERT INTO package_digests (package_id, digest, version_id, created_at, updated_at, first_seen) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (package_id, digest) DO UPDATE SET "
        "version_id = COALESCE(excluded.version_id, package_digests.version_id), "
        "created_at = COALESCE(excluded.created_at, package_digests.created_at), "
        "updated_at = COALESCE(excluded.updated_at, package_digests.updated_at), "
        "first_seen = CASE WHEN package_digests.last_seen IS NULL THEN package_digests.first_seen "
        "ELSE excluded.first_seen END, last_seen = NULL "
        # only when something differs: an unchanged package must write nothing
        "WHERE package_digests.last_seen IS NOT NULL "
        "OR COALESCE(excluded.version_id, package_digests.version_id) IS NOT package_digests.version_id "
        "OR COALESCE(excluded.created_at, package_digests.created_at) IS NOT package_digests.created_at "
        "OR COALESCE(excluded.updated_at, package_digests.updated_at) IS NOT package_digests.updated_at",
        [(package_id, v.digest, v.version_id, v.created_at, v.updated_at, now) for v in result.versions])
    if not result.complete:
        return
    listed = await db.execute_fetchall(
        "SELECT digest FROM package_digests WHERE package_id = ? AND last_seen IS NULL", (package_id,))
    present = {v.digest for v in result.versions}
    gone = [(now, package_id, d) for (d,) in listed if d not in present]
    await many(db, "UPDATE package_digests SET last_seen = ? WHERE package_id = ? AND digest = ?", gone)
    applied.digests_closed += len(gone)
    if result.full:
        applied.corrected += len(gone)


async def _write_tags(db, package_id: int, result: PackageResult, now: str, applied: Applied) -> None:
    current = dict(await db.execute_fetchall(
        "SELECT tag, digest FROM tags WHERE package_id = ? AND last_seen IS NULL", (package_id,)))
    close, opened = diff_tags(current, result.tags, result.complete)
    await many(db, "UPDATE tags SET last_seen = ? WHERE package_id = ? AND tag = ? AND last_seen IS NULL",
                [(now, package_id, t) for t in close])
    await many(db, "INSERT INTO tags (package_id, tag, digest, first_seen) VALUES (?, ?, ?, ?)",
                [(package_id, t, d, now) for t, d in opened])
    applied.tags_closed += len(close)
    applied.tags_opened += len(opened)
    if result.full:
        applied.corrected += len(close)
