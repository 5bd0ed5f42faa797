"""Workers: turn one discovered package into one complete PackageResult.

Tag -> digest comes from the cheapest source (docs/architecture.md
"Workers"): on GitHub the versions listing (100 versions a page, ETag);
elsewhere tags/list plus a manifest HEAD per tag with If-None-Match.
Manifests and config blobs are content-addressed, so a digest already in
the database is never fetched again (except under --full); digests two
packages share are fetched once per run (`Inflight`). What content *is*
(kinds, referrer links) is `crawler.oci`'s question; this module only
fetches and assembles. Nothing here writes: the result goes to the writer
whole.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime

import structlog

from ..config import CrawlConfig
from ..github import GitHubClient
from ..errors import NotFoundError, ParseError
from ..model import CacheEntry, MissingChild, PackageRef, PackageResult, StoredPackage, VersionEntry
from ..oci import (ImageConfig, ImageIndex, ImageManifest, Referrer, api_referrers, content_referrers,
                   cosign_referrers, is_valid_repository)
from ..registry import RegistryClient
from ..store import StoreReader
from .state import Hold, RunState
from .versions import KnownListing, can_stop, first_by_digest, synthesise

log = structlog.get_logger("crawler.engine.worker")


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What a worker may use: the run's state, the store's read face and
    the fetching clients. It cannot write: results go to the writer whole."""

    state: RunState
    reader: StoreReader
    registry: RegistryClient
    github: GitHubClient | None
    crawl: CrawlConfig

    @property
    def full(self) -> bool:
        return self.state.full


def use_versions_listing(ref: PackageRef, crawl: CrawlConfig) -> bool:
    if crawl.tag_source == "auto":
        return ref.discovery in ("rest", "graphql")
    return crawl.tag_source == "versions"


async def sync_package(ctx: WorkerContext, owner_kind: str, owner_id: int, ref: PackageRef,
                       hold: Hold | None = None) -> PackageResult | None:
    """The package's complete result, or None when it is unchanged (skipped).
    `hold` collects what the result holds, for the caller to release
    (`RunState.release`) once it is committed or has failed."""
    hold = Hold() if hold is None else hold
    if not is_valid_repository(ref.repository_path):
        raise ParseError(f"package name {ref.name[:80]!r} is not a valid registry repository name "
                         f"({ref.repository_path[:80]!r}); it cannot be fetched")
    prefetched: dict[str, ImageManifest | ImageIndex] = {}
    if use_versions_listing(ref, ctx.crawl):
        stored = None if ctx.full else await ctx.reader.stored_package(owner_id, ref.name)
        if unchanged(stored, ref, ctx.crawl):
            return None
        versions, cache, listing = await _versions_listing(ctx, owner_kind, ref, stored)
        tags = _tag_map(versions)
    else:
        tags, cache, prefetched = await _registry_tags(ctx, ref)
        versions, listing = [], "registry"
    result = PackageResult(ref=ref, versions=[], tags=tags, cache=cache, full=ctx.full, listing=listing)
    listed = [v.digest for v in versions] + list(tags.values())
    tag_of = {d: t for t, d in sorted(tags.items(), reverse=True)}
    reached = await _fetch_content(ctx, ref, listed, tag_of, result, hold, prefetched)
    by_digest = {v.digest: v for v in versions}
    result.versions = [by_digest.get(d) or VersionEntry(d) for d in dict.fromkeys(listed + reached)]
    result.referrers.extend(cosign_referrers(tags, result.manifests))
    return result


def unchanged(stored: StoredPackage | None, ref: PackageRef, crawl: CrawlConfig) -> bool:
    """The listing says the package is as it was synced last, and no whole
    listing is due: nothing to fetch."""
    return (stored is not None and stored.deleted_at is None and stored.last_synced is not None
            and ref.updated_at is not None and stored.listing_key == ref.listing_key
            and not _whole_listing_due(crawl, stored))


def _whole_listing_due(crawl: CrawlConfig, stored: StoredPackage) -> bool:
    """A package committed from a listing cut short since its last whole one
    is listed whole once that is `full_listing_interval_s` old, changed or
    not: what no stop rule sees (a new tag on an old version, hidden behind a
    newer build) is recorded at most that late."""
    listed = _epoch(stored.full_listed_at)
    return (listed is not None and (stored.last_synced or "") > (stored.full_listed_at or "")
            and time.time() - listed >= crawl.full_listing_interval_s > 0)


async def _versions_listing(ctx: WorkerContext, owner_kind: str, ref: PackageRef, stored: StoredPackage | None
                            ) -> tuple[list[VersionEntry], list[CacheEntry], str]:
    """The package's complete versions listing and how it was had: "whole"
    (every page read) or "synthesised" (the newest pages read, the rest as
    the store holds it: `crawler.engine.versions`)."""
    known = await _known_listing(ctx, ref, stored)
    read: list[VersionEntry] = []
    cache: list[CacheEntry] = []
    pages, stopped = 0, False
    async with aclosing(ctx.github.versions(ref.owner, owner_kind, ref.name, conditional=not ctx.full)) as listing:
        async for page in listing:
            pages += page.requests
            read.extend(VersionEntry(v.digest, v.tags, v.id, v.created_at, v.updated_at) for v in page.items)
            if page.cache:
                cache.append(page.cache)
            # Only after a full page that links a next one: a last page ends the listing anyway.
            if known and page.next_url and page.count >= ctx.github.per_page and can_stop(
                    known, first_by_digest(read), ref.version_count, ref.updated_at):
                stopped = True
                break
    # Every page read was one the stop rule needed (it is checked after each),
    # so what was read is this package's lower bound.
    ctx.state.economy.listing_pages += pages
    if stopped:
        log.debug("versions listing cut short", package=ref.name, pages=pages, known=len(known.versions))
        return synthesise(known, first_by_digest(read)), cache, "synthesised"
    return first_by_digest(read), cache, "whole"


async def _known_listing(ctx: WorkerContext, ref: PackageRef, stored: StoredPackage | None) -> KnownListing | None:
    """What the store holds of the package's versions, when it may stand in
    for the pages not read: a whole listing younger than the interval, and
    every current tag on a stored version (otherwise the tags did not come
    from a versions listing)."""
    interval = ctx.crawl.full_listing_interval_s
    if ctx.full or interval <= 0 or ref.version_count is None or ref.updated_at is None:
        return None
    listed = _epoch(stored.full_listed_at) if stored is not None and stored.deleted_at is None else None
    if listed is None or not 0 <= time.time() - listed < interval:
        return None
    versions = await ctx.reader.stored_versions(stored.id)
    if not versions or any(v.version_id is None and v.tags for v in versions):
        return None
    return KnownListing({v.digest: v for v in versions if v.version_id is not None}, stored.updated_at)


def _epoch(stamp: str | None) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None


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


async def _registry_tags(ctx: WorkerContext, ref: PackageRef
                         ) -> tuple[dict[str, str], list[CacheEntry], dict[str, ImageManifest | ImageIndex]]:
    """tag -> digest by tags/list and a conditional HEAD per tag; also the
    manifests that had to be fetched by tag (a HEAD without a digest)."""
    reg, repo = ctx.registry, ref.repository_path
    listed = await reg.tags(repo, missing_ok=ref.discovery == "catalog")
    names = listed.names
    ctx.state.economy.listing_pages += listed.pages
    ctx.state.economy.heads += len(names)
    limit = asyncio.Semaphore(ctx.crawl.concurrency)
    prefetched: dict[str, ImageManifest | ImageIndex] = {}

    async def resolve(tag: str) -> tuple[str, str, CacheEntry | None]:
        url = f"{reg.base}/v2/{repo}/manifests/{tag}"
        async with limit:
            cached = None if ctx.full else await ctx.reader.cache_lookup(url)
            head = await reg.head_manifest(repo, tag, etag=cached.etag if cached else None)
            if head.status == 304 and cached:
                return tag, cached.payload.decode(), None
            digest = head.digest
            if digest is None:  # no Docker-Content-Digest: hash the body ourselves
                manifest = await reg.manifest(repo, tag, tag_hint=tag)
                digest = manifest.digest
                prefetched[digest] = manifest
                ctx.state.economy.manifests += 1
            entry = CacheEntry(url, head.etag, digest.encode()) if head.etag else None
            return tag, digest, entry

    resolved = await asyncio.gather(*(resolve(t) for t in names))
    return {t: d for t, d, _ in resolved}, [e for _, _, e in resolved if e], prefetched


async def _fetch_content(ctx: WorkerContext, ref: PackageRef, digests: list[str], tag_of: dict[str, str],
                         result: PackageResult, hold: Hold,
                         prefetched: dict[str, ImageManifest | ImageIndex]) -> list[str]:
    """Fetch (verified) every manifest the database lacks, following index
    children, and the config blobs of new images. Returns every digest
    reached, children included. A child an index lists but the registry no
    longer has (404) is recorded in `result.missing` — the index, its other
    children and the package's other tags are still committed; any other
    digest that cannot be fetched fails the package."""
    reader, repo = ctx.reader, ref.repository_path
    wanted = list(dict.fromkeys(digests))
    known = set() if ctx.full else await reader.known_manifests(wanted)
    reached: list[str] = []
    seen = set(wanted)
    todo = [d for d in wanted if d not in known]
    parents: dict[str, str] = {}            # child -> an index of this package that lists it
    hold.units += await ctx.state.budget.acquire(len(todo))
    fetched: dict[str, ImageManifest | ImageIndex] = {}
    gone: dict[str, NotFoundError] = {}

    # Children of indexes already stored belong to this package too.
    for parent, children in (await reader.children([d for d in wanted if d in known])).items():
        for child in children:
            parents.setdefault(child, parent)
            if child not in seen:
                seen.add(child)
                reached.append(child)
    own = len(prefetched)                  # requests this package made itself (it needed a token)
    while todo:
        own += await _fetch_round(ctx, repo, todo, tag_of, hold, prefetched, fetched, gone)
        new_children = []
        for d in todo:
            m = fetched.get(d)
            if isinstance(m, ImageIndex):
                for child in m.manifests:
                    parents.setdefault(child.digest, d)
                    if child.digest not in seen:
                        seen.add(child.digest)
                        reached.append(child.digest)
                        new_children.append(child.digest)
        known_children = set() if ctx.full else await reader.known_manifests(new_children)
        todo = [c for c in new_children if c not in known_children]
    for digest, error in gone.items():
        if digest not in parents:
            raise error                      # a tagged or listed digest itself is gone: not a fact yet
        result.missing.append(MissingChild(parents[digest], digest, error.message))
    result.manifests.extend(fetched.values())
    configs, own_configs = await _configs(ctx, repo, list(fetched.values()), hold)
    result.configs.extend(configs)
    own += own_configs
    result.referrers.extend(content_referrers(fetched.values()))
    if ctx.crawl.referrers:
        subjects = [d for d, m in fetched.items() if d in tag_of and m.kind in ("image", "index")]
        own += int(ctx.registry.referrers_supported is not False and bool(subjects))   # asked before the call
        result.referrers.extend(await _api_referrers(ctx, repo, subjects))
    # A token for this repository's scope only if the package asked the
    # registry itself: content another package fetched for it needed none.
    if ctx.registry.demands_tokens and (own or not use_versions_listing(ref, ctx.crawl)):
        ctx.state.economy.scopes += 1
    return reached


async def _fetch_round(ctx: WorkerContext, repo: str, todo: list[str], tag_of: dict[str, str], hold: Hold,
                       prefetched: dict[str, ImageManifest | ImageIndex],
                       fetched: dict[str, ImageManifest | ImageIndex], gone: dict[str, NotFoundError]) -> int:
    """Fetch `todo` concurrently into `fetched`; 404s go to `gone` for the
    caller to judge (a missing index child, or a failure). Returns how many
    fetches were this package's own (not shared with another's)."""
    limit = asyncio.Semaphore(ctx.crawl.concurrency)
    own = 0

    async def one(digest: str) -> None:
        if digest in prefetched:
            fetched[digest] = prefetched[digest]
            return
        hold.keys.append("m:" + digest)
        try:
            async with limit:
                value, mine = await ctx.state.inflight.get(
                    "m:" + digest,
                    lambda: ctx.registry.manifest(repo, digest, digest=digest, tag_hint=tag_of.get(digest)))
        except NotFoundError as exc:
            gone[digest] = exc
            return
        if mine:
            nonlocal own
            own += 1
            ctx.state.economy.manifests += 1
        fetched[digest] = value

    await asyncio.gather(*(one(d) for d in todo))
    return own


async def _configs(ctx: WorkerContext, repo: str, manifests: list, hold: Hold) -> tuple[list[ImageConfig], int]:
    """Config blobs of new images: fetched once per digest, forever; a
    config already stored is loaded (the manifest row needs its labels).
    Also returns how many fetches were this package's own."""
    wanted = sorted({m.config.digest for m in manifests
                     if isinstance(m, ImageManifest) and m.kind == "image"})
    if not wanted:
        return [], 0
    known = set() if ctx.full else await ctx.reader.known_configs(wanted)
    limit = asyncio.Semaphore(ctx.crawl.concurrency)
    out: list[ImageConfig] = []
    own = 0

    async def one(digest: str):
        if digest in known:
            config = await ctx.reader.load_config(digest)
            if config is not None:
                out.append(config)
                return
        hold.keys.append("c:" + digest)
        async with limit:
            config, mine = await ctx.state.inflight.get(
                "c:" + digest, lambda: ctx.registry.config(repo, digest))
        if mine:
            nonlocal own
            own += 1
            ctx.state.economy.configs += 1
        out.append(config)

    await asyncio.gather(*(one(d) for d in wanted))
    return out, own


async def _api_referrers(ctx: WorkerContext, repo: str, subjects: list[str]) -> list[Referrer]:
    """Links from the OCI referrers API, for new tagged images and indexes
    (where the registry has the API; elsewhere the tag schemes above do)."""
    out: list[Referrer] = []
    for subject in subjects:
        if ctx.registry.referrers_supported is False:
            break
        descriptors = await ctx.registry.referrers_of(repo, subject)
        out.extend(api_referrers(subject, descriptors or ()))
    return out
