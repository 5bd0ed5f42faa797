"""The SQLite store's read face (crawler.store.protocol.StoreReader): what
the workers, enrichment and the attestations stage ask of the inventory,
on the store's read-only connection; and `translated`, SQLite's and the
OS's errors as the store's one error."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Sequence

import aiosqlite

from ..errors import storage_error
from ..model import CacheEntry, RegistryFacts, StoredPackage, VersionEntry, utc_stamp
from ..oci import ImageConfig
from .protocol import DueDigests
from .rows import STORED_PACKAGE_COLUMNS, STORED_VERSIONS_SQL, due_digests, stored_versions
from .sqlapply import chunks


@contextmanager
def translated(path: Path):
    """SQLite's and the OS's errors, as the one error the engine knows."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise storage_error(exc, str(path)) from exc


class SQLiteReader:
    """The read face (crawler.store.protocol.StoreReader) on a read-only connection."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    async def _all(self, sql: str, params=()) -> list:
        # One trip to the connection's thread, not two (execute, then
        # fetchall): a cold sync makes ~10 reads a package, each trip
        # ~30 us of the event loop's CPU.
        with translated(self._path):
            return list(await self._conn.execute_fetchall(sql, params))

    async def _one(self, sql: str, params=()):
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def stored_package(self, owner_id: int, name: str) -> StoredPackage | None:
        row = await self._one(
            f"SELECT {STORED_PACKAGE_COLUMNS} FROM packages WHERE owner_id = ? AND name = ?", (owner_id, name))
        return StoredPackage(*row) if row else None

    async def stored_versions(self, package_id: int) -> list[VersionEntry]:
        return stored_versions(await self._all(STORED_VERSIONS_SQL, (package_id,) * 3))

    async def stored_packages(self, owner_id: int, names: Iterable[str]) -> dict[str, StoredPackage]:
        out: dict[str, StoredPackage] = {}
        for chunk in chunks(sorted(set(names))):
            marks = ",".join("?" * len(chunk))
            for name, *row in await self._all(
                    f"SELECT name, {STORED_PACKAGE_COLUMNS} "
                    f"FROM packages WHERE owner_id = ? AND name IN ({marks})", (owner_id, *chunk)):
                out[name] = StoredPackage(*row)
        return out

    async def known_manifests(self, digests: Iterable[str]) -> set[str]:
        return await self._known("manifests", digests)

    async def known_configs(self, digests: Iterable[str]) -> set[str]:
        return await self._known("configs", digests)

    async def _known(self, table: str, digests: Iterable[str]) -> set[str]:
        wanted = sorted(set(digests))
        found: set[str] = set()
        for chunk in chunks(wanted):
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in await self._all(f"SELECT digest FROM {table} WHERE digest IN ({marks})",
                                                        chunk))
        return found

    async def children(self, parents: Iterable[str]) -> dict[str, list[str]]:
        wanted = sorted(set(parents))
        out: dict[str, list[str]] = {}
        for chunk in chunks(wanted):
            marks = ",".join("?" * len(chunk))
            for parent, child in await self._all(
                f"SELECT parent_digest, child_digest FROM manifest_children "
                f"WHERE parent_digest IN ({marks}) ORDER BY parent_digest, position", chunk):
                out.setdefault(parent, []).append(child)
        return out

    async def load_config(self, digest: str) -> ImageConfig | None:
        row = await self._one(
            "SELECT digest, os, architecture, variant, os_version, created FROM configs WHERE digest = ?",
            (digest,))
        if row is None:
            return None
        labels = tuple((k, v) for k, v in await self._all(
            "SELECT key, value FROM config_labels WHERE config_digest = ? ORDER BY key", (digest,)))
        return ImageConfig(*row, labels=labels)

    async def cache_lookup(self, url: str) -> CacheEntry | None:
        row = await self._one("SELECT url, etag, payload FROM http_cache WHERE url = ?", (url,))
        return CacheEntry(row[0], row[1], bytes(row[2])) if row else None

    async def registry_facts(self, registry: str) -> RegistryFacts | None:
        row = await self._one(
            "SELECT realm, service, referrers FROM registry_facts WHERE registry = ?", (registry,))
        if row is None:
            return None
        return RegistryFacts(row[0], row[1], None if row[2] is None else bool(row[2]))

    async def repositories_due(self, registry: str, owners: Sequence[str], max_age_s: float | None, *,
                               after: str | None = None, limit: int | None = None) -> list[str]:
        """Distinct source repositories (OWNER/NAME) of these owners' live
        packages whose facts are missing or older than `max_age_s` (None:
        all of them), for the GraphQL enrichment: in name order, past
        `after`, at most `limit` (a page: the stage holds one at a time)."""
        sql = ("SELECT DISTINCT p.repository FROM packages p JOIN owners o ON o.id = p.owner_id "
               "LEFT JOIN repositories r ON r.name_with_owner = p.repository "
               "WHERE o.registry = ? AND o.name IN (SELECT value FROM json_each(?)) AND p.deleted_at IS NULL "
               "AND p.repository IS NOT NULL")
        params: list = [registry, json.dumps(list(owners))]
        if max_age_s is not None:
            sql += " AND (r.fetched_at IS NULL OR r.fetched_at <= ?)"
            params.append(utc_stamp(time.time() - max_age_s))
        if after is not None:
            sql += " AND p.repository > ?"
            params.append(after)
        sql += " ORDER BY p.repository" + ("" if limit is None else f" LIMIT {int(limit)}")
        return [r[0] for r in await self._all(sql, params)]

    async def attestations_due(self, registry: str, owners: Sequence[str], *, young_s: float | None,
                               interval_s: float, after: tuple[int, str] | None = None,
                               limit: int | None = None) -> list[DueDigests]:
        """The image and index digests of these GitHub owners' live packages
        to ask GitHub's attestations API about: never asked, or last answered
        `unknown`, or younger than `young_s` (attestations may be added after
        a push) and not asked within `interval_s`. `young_s` None: all. In
        (owner id, digest) order, past `after`, at most `limit` digests."""
        now = time.time()
        sql = ("SELECT DISTINCT o.id, o.name, o.kind, pd.digest FROM package_digests pd "
               "JOIN packages p ON p.id = pd.package_id AND p.deleted_at IS NULL "
               "JOIN owners o ON o.id = p.owner_id "
               "JOIN manifests m ON m.digest = pd.digest AND m.kind IN ('index', 'image') "
               "LEFT JOIN attestation_checks c ON c.owner_id = o.id AND c.digest = pd.digest "
               "WHERE o.registry = ? AND o.name IN (SELECT value FROM json_each(?)) "
               "AND o.discovery IN ('rest', 'graphql') AND pd.last_seen IS NULL")
        params: list = [registry, json.dumps(list(owners))]
        if young_s is not None:
            sql += (" AND (c.digest IS NULL OR c.coverage = 'unknown' "
                    "OR (COALESCE(pd.created_at, pd.first_seen) >= ? AND c.checked_at <= ?))")
            params += [utc_stamp(now - young_s), utc_stamp(now - interval_s)]
        if after is not None:
            sql += " AND (o.id > ? OR (o.id = ? AND pd.digest > ?))"
            params += [after[0], after[0], after[1]]
        sql += " ORDER BY o.id, pd.digest" + ("" if limit is None else f" LIMIT {int(limit)}")
        return due_digests(await self._all(sql, params))
