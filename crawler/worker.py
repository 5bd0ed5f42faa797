"""Workers: turn one discovered package into one complete PackageResult.

Tag -> digest comes from the cheapest source (DESIGN.md "Workers"): on GitHub
the versions listing (100 versions a page, ETag); elsewhere tags/list plus a
manifest HEAD per tag with If-None-Match. Manifests and config blobs are
content-addressed, so a digest already in the database is never fetched again
(except under --full); digests two packages share are fetched once per run
(`Inflight`). Nothing here writes: the result goes to the writer whole.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

import structlog

from .config import CrawlConfig
from .github import GitHubClient, GhVersion
from .manifest import ImageConfig, ImageIndex, ImageManifest, cosign_tag_subject
from .model import CacheEntry, PackageRef, PackageResult, Referrer, VersionEntry
from .registry import RegistryClient
from .store import Store

log = structlog.get_logger("crawler.worker")
T = TypeVar("T")
REFERRER_KINDS = {"signature": "signature", "attestation": "attestation", "sbom": "sbom"}


@dataclass(slots=True)
class Economy:
    """The run's lower bound of requests (DESIGN.md "Request economy"),
    accumulated from what actually changed."""

    discovery_pages: int = 0
    listing_pages: int = 0        # versions pages / tags pages of changed packages
    heads: int = 0                # one HEAD per tag (registry mode)
    manifests: int = 0            # one GET per new digest
    configs: int = 0              # one GET per new config digest
    scopes: int = 0               # one token per repository scope
    graphql: int = 0

    def total(self, imposed: int = 0) -> int:
        """`imposed`: requests the registry makes unavoidable — the extra hop
        of redirected blob GETs (ghcr) and the referrers API queries (one per
        new tagged digest where it exists; one probe, once, where it does not)."""
        return (self.discovery_pages + self.listing_pages + self.heads + self.manifests
                + self.configs + self.scopes + self.graphql + imposed)


class Inflight:
    """Digests fetched this run but not yet committed, shared by workers so a
    digest two packages share is fetched once. Entries are released when the
    writer commits (or the package fails), so memory stays bounded by the
    work in flight; under --full the digests (only) are remembered for the
    run, so shared content is verified once."""

    def __init__(self, remember: bool = False) -> None:
        self._futures: dict[str, asyncio.Future] = {}
        self._remember = remember
        self.done: set[str] = set()

    async def get(self, key: str, fetch: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """(value, fetched_here). Concurrent callers of one key share a fetch."""
        future = self._futures.get(key)
        if future is not None:
            return await asyncio.shield(future), False
        future = asyncio.get_running_loop().create_future()
        self._futures[key] = future
        try:
            value = await fetch()
        except BaseException as exc:
            self._futures.pop(key, None)
            if not future.done():
                future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
                future.exception()  # mark retrieved: the fetching caller re-raises it
            raise
        future.set_result(value)
        return value, True

    def pending(self, key: str) -> bool:
        return key in self._futures or key in self.done

    def release(self, keys) -> None:
        for key in keys:
            self._futures.pop(key, None)
            if self._remember:
                self.done.add(key)


class Budget:
    """How many fetched-but-uncommitted manifests may be held at once.

    A package is committed whole, so its parsed manifests live until the
    writer has it; a few 2,000-tag packages in flight at once would otherwise
    set the peak memory (docs/benchmarks.md, finding 4). A package takes
    units for the digests it fetches (at most the whole budget, so a giant
    still runs alone) and gives them back when committed or failed."""

    def __init__(self, units: int) -> None:
        self.total = units
        self.free = units
        self._changed = asyncio.Condition()

    async def acquire(self, wanted: int) -> int:
        wanted = min(wanted, self.total)
        async with self._changed:
            await self._changed.wait_for(lambda: self.free >= wanted)
            self.free -= wanted
        return wanted

    async def release(self, units: int) -> None:
        if units:
            async with self._changed:
                self.free += units
                self._changed.notify_all()


@dataclass(slots=True)
class Hold:
    """What one package holds until it is committed or fails."""

    keys: list[str] = field(default_factory=list)    # Inflight keys
    units: int = 0                                   # Budget units


MAX_HELD_MANIFESTS = 8_000


@dataclass(slots=True)
class Shared:
    store: Store
    registry: RegistryClient
    github: GitHubClient | None
    crawl: CrawlConfig
    full: bool
    economy: Economy = field(default_factory=Economy)
    inflight: Inflight = field(default_factory=Inflight)
    budget: Budget = field(default_factory=lambda: Budget(MAX_HELD_MANIFESTS))

    async def release(self, hold: Hold) -> None:
        self.inflight.release(hold.keys)
        await self.budget.release(hold.units)
        hold.keys.clear()
        hold.units = 0


def use_versions_listing(ref: PackageRef, crawl: CrawlConfig) -> bool:
    if crawl.tag_source == "auto":
        return ref.discovery in ("rest", "graphql")
    return crawl.tag_source == "versions"


async def sync_package(shared: Shared, owner_kind: str, owner_id: int, ref: PackageRef,
                       hold: Hold | None = None) -> PackageResult | None:
    """The package's complete result, or None when it is unchanged (skipped).
    `hold` collects what the result holds, for the caller to release
    (`Shared.release`) once it is committed or has failed."""
    hold = Hold() if hold is None else hold
    prefetched: dict[str, ImageManifest | ImageIndex] = {}
    if use_versions_listing(ref, shared.crawl):
        if not shared.full and await _unchanged(shared, owner_id, ref):
            return None
        versions, cache = await _versions_listing(shared, owner_kind, ref)
        tags = _tag_map(versions)
    else:
        tags, cache, prefetched = await _registry_tags(shared, ref)
        versions = []
    result = PackageResult(ref=ref, versions=[], tags=tags, cache=cache, full=shared.full)
    listed = [v.digest for v in versions] + list(tags.values())
    tag_of = {d: t for t, d in sorted(tags.items(), reverse=True)}
    reached = await _fetch_content(shared, ref, listed, tag_of, result, hold, prefetched)
    by_digest = {v.digest: v for v in versions}
    result.versions = [by_digest.get(d) or VersionEntry(d) for d in dict.fromkeys(listed + reached)]
    result.referrers.extend(_cosign_referrers(tags, result.manifests))
    return result


async def _unchanged(shared: Shared, owner_id: int, ref: PackageRef) -> bool:
    stored = await shared.store.stored_package(owner_id, ref.name)
    return (stored is not None and stored.deleted_at is None and stored.last_synced is not None
            and ref.updated_at is not None and stored.listing_key == ref.listing_key)


async def _versions_listing(shared: Shared, owner_kind: str, ref: PackageRef
                            ) -> tuple[list[VersionEntry], list[CacheEntry]]:
    versions: list[GhVersion] = []
    cache: list[CacheEntry] = []
    async for page in shared.github.versions(ref.owner, owner_kind, ref.name, conditional=not shared.full):
        versions.extend(page.items)
        if page.cache:
            cache.append(page.cache)
    shared.economy.listing_pages += max(1, math.ceil(len(versions) / 100))
    entries = {}
    for v in versions:   # a digest listed twice (pages shifting under us): keep the first
        entries.setdefault(v.digest, VersionEntry(v.digest, v.tags, v.id, v.created_at, v.updated_at))
    return list(entries.values()), cache


def _tag_map(versions: list[VersionEntry]) -> dict[str, str]:
    """tag -> digest. Should GitHub list one tag on two versions (it moved
    while we paged), the most recently updated version wins."""
    tags: dict[str, tuple[str, str]] = {}
    for v in versions:
        for tag in v.tags:
            stamp = v.updated_at or ""
            if tag not in tags or stamp > tags[tag][0]:
                tags[tag] = (stamp, v.digest)
    return {tag: digest for tag, (_, digest) in tags.items()}


async def _registry_tags(shared: Shared, ref: PackageRef
                         ) -> tuple[dict[str, str], list[CacheEntry], dict[str, ImageManifest | ImageIndex]]:
    """tag -> digest by tags/list and a conditional HEAD per tag; also the
    manifests that had to be fetched by tag (a HEAD without a digest)."""
    reg, repo = shared.registry, ref.repository_path
    names = await reg.tags(repo, missing_ok=ref.discovery == "catalog")
    shared.economy.listing_pages += max(1, math.ceil(len(names) / 100))
    shared.economy.heads += len(names)
    limit = asyncio.Semaphore(shared.crawl.concurrency)
    prefetched: dict[str, ImageManifest | ImageIndex] = {}

    async def resolve(tag: str) -> tuple[str, str, CacheEntry | None]:
        url = f"{reg.base}/v2/{repo}/manifests/{tag}"
        async with limit:
            cached = None if shared.full else await shared.store.cache_lookup(url)
            head = await reg.head_manifest(repo, tag, etag=cached.etag if cached else None)
            if head.status == 304 and cached:
                return tag, cached.payload.decode(), None
            digest = head.digest
            if digest is None:  # no Docker-Content-Digest: hash the body ourselves
                manifest = await reg.manifest(repo, tag, tag_hint=tag)
                digest = manifest.digest
                prefetched[digest] = manifest
                shared.economy.manifests += 1
            entry = CacheEntry(url, head.etag, digest.encode()) if head.etag else None
            return tag, digest, entry

    resolved = await asyncio.gather(*(resolve(t) for t in names))
    return {t: d for t, d, _ in resolved}, [e for _, _, e in resolved if e], prefetched


async def _fetch_content(shared: Shared, ref: PackageRef, digests: list[str], tag_of: dict[str, str],
                         result: PackageResult, hold: Hold,
                         prefetched: dict[str, ImageManifest | ImageIndex]) -> list[str]:
    """Fetch (verified) every manifest the database lacks, following index
    children, and the config blobs of new images. Returns every digest
    reached, children included."""
    store, reg, repo = shared.store, shared.registry, ref.repository_path
    wanted = list(dict.fromkeys(digests))
    known = set() if shared.full else await store.known("manifests", wanted)
    reached: list[str] = []
    seen = set(wanted)
    todo = [d for d in wanted if d not in known]
    known_parents = [d for d in wanted if d in known]
    hold.units += await shared.budget.acquire(len(todo))
    limit = asyncio.Semaphore(shared.crawl.concurrency)
    fetched: dict[str, ImageManifest | ImageIndex] = {}

    async def one(digest: str):
        if digest in prefetched:
            fetched[digest] = prefetched[digest]
            return
        hold.keys.append("m:" + digest)
        async with limit:
            value, mine = await shared.inflight.get(
                "m:" + digest, lambda: reg.manifest(repo, digest, digest=digest, tag_hint=tag_of.get(digest)))
        if mine:
            shared.economy.manifests += 1
        fetched[digest] = value

    # Children of indexes already stored belong to this package too.
    for parent, children in (await store.children(known_parents)).items():
        for child in children:
            if child not in seen:
                seen.add(child)
                reached.append(child)
    while todo:
        await asyncio.gather(*(one(d) for d in todo))
        new_children = []
        for d in todo:
            m = fetched[d]
            if isinstance(m, ImageIndex):
                for child in m.manifests:
                    if child.digest not in seen:
                        seen.add(child.digest)
                        reached.append(child.digest)
                        new_children.append(child.digest)
        known_children = set() if shared.full else await store.known("manifests", new_children)
        todo = [c for c in new_children if c not in known_children]
    result.manifests.extend(fetched[d] for d in fetched)
    result.configs.extend(await _configs(shared, repo, list(fetched.values()), hold))
    result.referrers.extend(_content_referrers(fetched.values()))
    if shared.crawl.referrers:
        subjects = [d for d, m in fetched.items() if d in tag_of and m.kind in ("image", "index")]
        result.referrers.extend(await _api_referrers(shared, repo, subjects))
    if fetched or not use_versions_listing(ref, shared.crawl):
        shared.economy.scopes += 1
    return reached


async def _configs(shared: Shared, repo: str, manifests: list, hold: Hold) -> list[ImageConfig]:
    """Config blobs of new images: fetched once per digest, forever; a
    config already stored is loaded (the manifest row needs its labels)."""
    wanted = sorted({m.config.digest for m in manifests
                     if isinstance(m, ImageManifest) and m.kind == "image"})
    if not wanted:
        return []
    known = set() if shared.full else await shared.store.known("configs", wanted)
    limit = asyncio.Semaphore(shared.crawl.concurrency)
    out: list[ImageConfig] = []

    async def one(digest: str):
        if digest in known:
            config = await shared.store.load_config(digest)
            if config is not None:
                out.append(config)
                return
        hold.keys.append("c:" + digest)
        async with limit:
            config, mine = await shared.inflight.get(
                "c:" + digest, lambda: shared.registry.config(repo, digest))
        if mine:
            shared.economy.configs += 1
        out.append(config)

    await asyncio.gather(*(one(d) for d in wanted))
    return out


async def _api_referrers(shared: Shared, repo: str, subjects: list[str]) -> list[Referrer]:
    """Links from the OCI referrers API, for new tagged images and indexes
    (where the registry has the API; elsewhere the tag schemes above do)."""
    out: list[Referrer] = []
    for subject in subjects:
        if shared.registry.referrers_supported is False:
            break
        descriptors = await shared.registry.referrers_of(repo, subject)
        for d in descriptors or ():
            out.append(Referrer(subject, d.digest, artifact_kind(d.artifact_type), d.artifact_type,
                                "referrers-api"))
    return out


def artifact_kind(artifact_type: str | None) -> str:
    """signature | attestation | sbom | other, from an artifactType."""
    t = (artifact_type or "").lower()
    if any(s in t for s in ("signature", "sigstore.bundle", "cosign")):
        return "signature"
    if any(s in t for s in ("in-toto", "dsse", "provenance", "attestation")):
        return "attestation"
    if any(s in t for s in ("spdx", "cyclonedx", "syft", "sbom")):
        return "sbom"
    return "other"


def _referrer_kind(kind: str) -> str:
    return REFERRER_KINDS.get(kind, "other")


def _content_referrers(manifests) -> list[Referrer]:
    """Links the content itself states: OCI `subject`, buildx attestations."""
    out = []
    for m in manifests:
        if m.subject is not None:
            out.append(Referrer(m.subject.digest, m.digest, _referrer_kind(m.kind), m.artifact_type,
                                "subject"))
        if isinstance(m, ImageIndex):
            for child, described in m.attestations():
                if described:
                    out.append(Referrer(described, child.digest, "attestation", child.artifact_type,
                                        "buildx"))
    return out


def _cosign_referrers(tags: dict[str, str], manifests) -> list[Referrer]:
    """cosign's tag scheme (sha256-<hex>.sig/.att/.sbom), the fallback where
    a registry has no referrers API (ghcr.io)."""
    kinds = {m.digest: m.kind for m in manifests}
    out = []
    for tag, digest in tags.items():
        linked = cosign_tag_subject(tag)
        if linked is None:
            continue
        subject, by_tag = linked
        kind = kinds.get(digest)
        out.append(Referrer(subject, digest, REFERRER_KINDS.get(kind, by_tag), None, "cosign-tag"))
    return out
