"""The PostgreSQL store's read face (crawler.store.protocol.StoreReader):
what the workers, enrichment and the attestations stage ask of the
inventory, on a small pool of read-only sessions, each read retried after
a lost connection (`pgconnect.retrying`). The SQLite twin is `sqlread.py`;
`pgreadonly.py` is the CLI's read-only access (`query`, `report`, `status`)."""

from __future__ import annotations

import asyncio
import time
from typing import Iterable, Sequence

import asyncpg

from ..model import CacheEntry, RegistryFacts, StoredPackage, VersionEntry, utc_stamp
from ..oci import ImageConfig
from .pgapply import pg_text
from .pgconnect import PgTarget, retrying
from .protocol import DueDigests
from .rows import STORED_PACKAGE_COLUMNS, STORED_VERSIONS_SQL, due_digests, stored_versions

_STORED_VERSIONS = STORED_VERSIONS_SQL.replace("?", "$1")   # one parameter, the package id, used thrice


class PostgresReader:
    """The read face (StoreReader) on a pool of read-only sessions."""

    def __init__(self, target: PgTarget, pool: asyncpg.Pool) -> None:
        self._target = target
        self._pool = pool

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), 5)
        except Exception:
            self._pool.terminate()

    async def _all(self, sql: str, *args) -> list:
        args = tuple(map(pg_text, args))

        async def attempt():
            async with self._pool.acquire() as conn:
                return await conn.fetch(sql, *args)
        return await retrying(self._target, attempt)

    async def _one(self, sql: str, *args):
        rows = await self._all(sql, *args)
        return rows[0] if rows else None

    async def stored_package(self, owner_id: int, name: str) -> StoredPackage | None:
        row = await self._one(
            f"SELECT {STORED_PACKAGE_COLUMNS} FROM packages WHERE owner_id = $1 AND name = $2", owner_id, name)
        return StoredPackage(*row) if row else None

    async def stored_versions(self, package_id: int) -> list[VersionEntry]:
        return stored_versions(await self._all(_STORED_VERSIONS, package_id))

    async def stored_packages(self, owner_id: int, names: Iterable[str]) -> dict[str, StoredPackage]:
        wanted = sorted(set(names))
        if not wanted:
            return {}
        rows = await self._all(
            f"SELECT name, {STORED_PACKAGE_COLUMNS} "
            "FROM packages WHERE owner_id = $1 AND name = ANY($2::text[])", owner_id, wanted)
        return {r[0]: StoredPackage(*r[1:]) for r in rows}

    async def known_manifests(self, digests: Iterable[str]) -> set[str]:
        return await self._known("manifests", digests)

    async def known_configs(self, digests: Iterable[str]) -> set[str]:
        return await self._known("configs", digests)

    async def _known(self, table: str, digests: Iterable[str]) -> set[str]:
        wanted = sorted(set(digests))
        if not wanted:
            return set()
        return {r[0] for r in await self._all(f"SELECT digest FROM {table} WHERE digest = ANY($1::text[])", wanted)}

    async def children(self, parents: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        wanted = sorted(set(parents))
        if not wanted:
            return out
        for parent, child in await self._all(
                "SELECT parent_digest, child_digest FROM manifest_children WHERE parent_digest = ANY($1::text[]) "
                "ORDER BY parent_digest, position", wanted):
            out.setdefault(parent, []).append(child)
        return out

    async def load_config(self, digest: str) -> ImageConfig | None:
        row = await self._one(
            "SELECT digest, os, architecture, variant, os_version, created FROM configs WHERE digest = $1", digest)
        if row is None:
            return None
        labels = tuple((k, v) for k, v in await self._all(
            "SELECT key, value FROM config_labels WHERE config_digest = $1 ORDER BY key", digest))
        return ImageConfig(*row, labels=labels)

    async def cache_lookup(self, url: str) -> CacheEntry | None:
        row = await self._one("SELECT url, etag, payload FROM http_cache WHERE url = $1", url)
        return CacheEntry(row[0], row[1], bytes(row[2])) if row else None

    async def registry_facts(self, registry: str) -> RegistryFacts | None:
        row = await self._one("SELECT realm, service, referrers FROM registry_facts WHERE registry = $1", registry)
        if row is None:
            return None
        return RegistryFacts(row[0], row[1], None if row[2] is None else bool(row[2]))

    async def repositories_due(self, registry: str, owners: Sequence[str], max_age_s: float | None, *,
                               after: str | None = None, limit: int | None = None) -> list[str]:
        """As SQLiteReader.repositories_due: a page of the source repositories
        of these owners' live packages whose facts are missing or older than
        max_age_s, in name order past `after`."""
        sql = ("SELECT DISTINCT p.repository FROM packages p JOIN owners o ON o.id = p.owner_id "
               "LEFT JOIN repositories r ON r.name_with_owner = p.repository "
               "WHERE o.registry = $1 AND o.name = ANY($2::text[]) AND p.deleted_at IS NULL "
               "AND p.repository IS NOT NULL")
        args: list = [registry, list(owners)]
        if max_age_s is not None:
            args.append(utc_stamp(time.time() - max_age_s))
            sql += f" AND (r.fetched_at IS NULL OR r.fetched_at <= ${len(args)})"
        if after is not None:
            args.append(after)
            sql += f" AND p.repository > ${len(args)}"
        sql += " ORDER BY p.repository" + ("" if limit is None else f" LIMIT {int(limit)}")
        return [r[0] for r in await self._all(sql, *args)]

    async def attestations_due(self, registry: str, owners: Sequence[str], *, young_s: float | None,
                               interval_s: float, after: tuple[int, str] | None = None,
                               limit: int | None = None) -> list[DueDigests]:
        """As SQLiteReader.attestations_due."""
        now = time.time()
        sql = ("SELECT DISTINCT o.id, o.name, o.kind, pd.digest FROM package_digests pd "
               "JOIN packages p ON p.id = pd.package_id AND p.deleted_at IS NULL "
               "JOIN owners o ON o.id = p.owner_id "
               "JOIN manifests m ON m.digest = pd.digest AND m.kind IN ('index', 'image') "
               "LEFT JOIN attestation_checks c ON c.owner_id = o.id AND c.digest = pd.digest "
               "WHERE o.registry = $1 AND o.name = ANY($2::text[]) AND o.discovery IN ('rest', 'graphql') "
               "AND pd.last_seen IS NULL")
        args: list = [registry, list(owners)]
        if young_s is not None:
            sql += (" AND (c.digest IS NULL OR c.coverage = 'unknown' "
                    "OR (COALESCE(pd.created_at, pd.first_seen) >= $3 AND c.checked_at <= $4))")
            args += [utc_stamp(now - young_s), utc_stamp(now - interval_s)]
        if after is not None:
            args += list(after)
            n = len(args)
            sql += f" AND (o.id > ${n - 1} OR (o.id = ${n - 1} AND pd.digest > ${n}))"
        sql += " ORDER BY o.id, pd.digest" + ("" if limit is None else f" LIMIT {int(limit)}")
        return due_digests(await self._all(sql, *args))
