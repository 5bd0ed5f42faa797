"""`ghcr-inventory migrate --to postgresql://…`: move an SQLite inventory,
history included, into PostgreSQL, so crawlers continue from it.

Everything is copied in one PostgreSQL transaction (all or nothing) while
the SQLite file's sync lock and the advisory lock of every owner it holds
are taken, so no crawler writes either side meanwhile. It is idempotent:
rows are matched on their natural keys (an owner by registry and name, a
package by owner and name, a run by its start, mode, owners, pid and
host; content by digest), so running it again copies nothing twice, and it
can merge an inventory into one other crawlers already fill. Into an empty
target the ids are kept as they are (the views show the same rows, run ids
included); otherwise new rows get new ids, in the source's order. The HTTP
cache comes along, so the first sync against PostgreSQL is incremental: an
unchanged org costs its discovery pages, answered 304.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import asyncpg
import structlog

from ..errors import StoreError, UsageError
from ..lock import SyncLock
from ..readonly import open_readonly
from .pgconnect import PgTarget, claim_owners, connect, translate
from .pgapply import Tx
from .postgres import SCHEMA_VERSION, apply_schema, column_layout

log = structlog.get_logger("crawler.store.migrate")

# Tables copied by content key (ON CONFLICT DO NOTHING), in the writer's order.
CONTENT = ("manifests", "configs", "manifest_children", "layers", "annotations", "descriptor_annotations",
           "config_labels", "referrers", "repositories", "http_cache", "registry_facts")
# Tables without ids of their own whose rows name owners or runs: copied with
# those ids mapped to the target's (ON CONFLICT DO NOTHING keeps what the
# target already knows).
MAPPED = (("attestation_checks", ("owner_id",)), ("attestations", ("owner_id",)),
          ("incomplete_listings", ("owner_id", "run_id")), ("package_changes", ("run_id",)),
          ("events", ("run_id",)))


@dataclass
class Migrated:
    """What one migration copied, per table: rows new in the target."""

    copied: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)   # already there (matched), not copied

    def line(self, source: str, target: str) -> str:
        new = ", ".join(f"{n} {t}" for t, n in self.copied.items() if n) or "nothing new"
        there = sum(self.kept.values())
        return f"migrated {source} → {target}: {new}" + (f" ({there} rows were already there)" if there else "")


async def migrate(source: Path, target: PgTarget) -> Migrated:
    """Copy the SQLite inventory at `source` into `target` (see the module doc)."""
    with SyncLock(source):
        lite = open_readonly(source)
        try:
            version = lite.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise UsageError(f"{source} has schema version {version}; this program migrates version "
                                 f"{SCHEMA_VERSION}: run a sync on it with this version first")
            conn = await connect(target)
            try:
                return await _copy(lite, conn, target)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                raise translate(exc, target.where) from None
            finally:
                await conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the SQLite inventory ({exc})", where=str(source)) from None
        finally:
            lite.close()


async def _copy(lite: sqlite3.Connection, conn: asyncpg.Connection, target: PgTarget) -> Migrated:
    await apply_schema(conn)
    layout = await column_layout(conn)
    owners = lite.execute("SELECT registry, name FROM owners ORDER BY id").fetchall()
    for registry in sorted({r for r, _ in owners}):
        await claim_owners(conn, registry, [n for r, n in owners if r == registry], target.where)
    done = Migrated()
    async with conn.transaction():
        tx = Tx(conn, layout)
        owner_ids = await _keyed(tx, lite, done, "owners", ("registry", "name"), {})
        package_ids = await _keyed(tx, lite, done, "packages", ("owner_id", "name"), {"owner_id": owner_ids})
        for table in CONTENT:
            await _content(tx, lite, done, table)
        fresh = set(package_ids.new)
        await _children(tx, lite, done, "package_digests", "package_id", package_ids, fresh)
        await _children(tx, lite, done, "tags", "package_id", package_ids, fresh, keep_id=package_ids.same)
        run_ids = await _keyed(tx, lite, done, "sync_runs", ("started_at", "mode", "owners", "pid", "host"), {})
        await _children(tx, lite, done, "run_errors", "run_id", run_ids, set(run_ids.new), order="rowid",
                        one_by_one=True)
        maps = {"owner_id": owner_ids, "run_id": run_ids}
        for table, columns in MAPPED:
            await _mapped(tx, lite, done, table, {c: maps[c] for c in columns})
        for table in ("owners", "packages", "tags", "sync_runs"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")
    return done


class _Ids(dict):
    """Source id -> target id, and which source ids were new in the target."""

    def __init__(self) -> None:
        super().__init__()
        self.new: list[int] = []
        self.same = True      # ids kept as they were (an empty target)


def _columns(lite: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in lite.execute(f'PRAGMA table_info("{table}")')]


async def _keyed(tx: Tx, lite: sqlite3.Connection, done: Migrated, table: str, key: Sequence[str],
                 refs: dict[str, _Ids]) -> _Ids:
    """Copy a table with an id, matching rows on `key` (after mapping the
    columns in `refs` to target ids); returns the id mapping."""
    columns = _columns(lite, table)
    ids = _Ids()
    ids.same = not await tx.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})") and \
        all(r.same for r in refs.values())
    # A key may name several rows (two runs of one process started within
    # one second): they are matched in id order, the n-th with the n-th.
    existing: dict[tuple, list[int]] = {}
    for r in await tx.fetch(f"SELECT id, {', '.join(key)} FROM {table} ORDER BY id"):
        existing.setdefault(tuple(r[1:]), []).append(r[0])
    inserts = []
    for row in lite.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id"):
        values = dict(zip(columns, row))
        for column, mapping in refs.items():
            values[column] = mapping[values[column]]
        natural = tuple(values[k] for k in key)
        if existing.get(natural):
            ids[values["id"]] = existing[natural].pop(0)
            done.kept[table] = done.kept.get(table, 0) + 1
            continue
        ids.new.append(values["id"])
        inserts.append(values)
    names = columns if ids.same else [c for c in columns if c != "id"]
    for values in inserts:
        new_id = await tx.fetchval(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))}) "
            f"RETURNING id", *(_cast(values[n]) for n in names))
        ids[values["id"]] = new_id
    done.copied[table] = len(inserts)
    return ids


async def _content(tx: Tx, lite: sqlite3.Connection, done: Migrated, table: str) -> None:
    columns = [c for c, _ in tx.layout[table]]
    source = _columns(lite, table)
    rows = [tuple(_cast(v) for v in r) for r in lite.execute(f"SELECT {', '.join(columns)} FROM {table}")]
    missing = [c for c in columns if c not in source]
    if missing:
        raise StoreError(f"the SQLite inventory lacks {table}.{missing[0]}: run a sync on it with this version")
    copied = await tx.insert(table, rows)
    done.copied[table] = copied
    done.kept[table] = len(rows) - copied


async def _children(tx: Tx, lite: sqlite3.Connection, done: Migrated, table: str, parent: str, ids: _Ids,
                    fresh: set[int], *, order: str = "", keep_id: bool = False, one_by_one: bool = False) -> None:
    """Rows belonging to a parent copied just now (a parent already in the
    target keeps its own rows: they were copied with it, or are newer)."""
    columns = [c for c, _ in tx.layout[table] if keep_id or c != "id"]
    by = order or ("id" if "id" in _columns(lite, table) else "rowid")
    rows = [dict(zip(columns, r)) for r in lite.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {by}")]
    wanted = [r for r in rows if r[parent] in fresh]
    for r in wanted:
        r[parent] = ids[r[parent]]
    if not (one_by_one or (table == "tags" and not keep_id)):
        await tx.insert(table, [tuple(_cast(r[c]) for c in columns) for r in wanted], columns=columns,
                        conflict="ON CONFLICT DO NOTHING")
    else:   # new ids in the source's order (v_tag_moves orders spans by id, status errors by rowid)
        for r in wanted:
            await tx.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                             f"({', '.join(f'${i + 1}' for i in range(len(columns)))})",
                             *(_cast(r[c]) for c in columns))
    done.copied[table] = len(wanted)
    done.kept[table] = len(rows) - len(wanted)


async def _mapped(tx: Tx, lite: sqlite3.Connection, done: Migrated, table: str, refs: dict[str, _Ids]) -> None:
    """Copy a table whose rows point at owners or runs, the ids mapped."""
    columns = [c for c, _ in tx.layout[table]]
    rows = []
    for row in lite.execute(f"SELECT {', '.join(columns)} FROM {table}"):
        values = dict(zip(columns, row))
        for column, mapping in refs.items():
            if values[column] is not None:          # a pending event has no run yet
                values[column] = mapping[values[column]]
        rows.append(tuple(_cast(values[c]) for c in columns))
    copied = await tx.insert(table, sorted(rows, key=lambda r: tuple(str(v) for v in r)))
    done.copied[table] = copied
    done.kept[table] = len(rows) - copied


def _cast(value):
    return bytes(value) if isinstance(value, memoryview) else value

