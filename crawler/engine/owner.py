"""The per-owner pipeline: discovery -> a bounded package queue -> N
workers -> the writer.

Discovery feeds a short queue (memory stays flat however large the org), N
workers turn packages into whole results, and the writer commits each in
one transaction. A failure ends what `policy.ends` says: one package, this
owner's listing, or the run. Only a complete listing concludes deletions.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import structlog

from ..config import OwnerConfig
from ..discovery import Listing, Scope, discover
from ..discovery.coverage import uncovered, uncovered_message
from ..errors import AuthError, InventoryError, ParseError, UnreachableError
from ..model import PackageRef, PackageResult
from ..secret import redact
from .policy import Ends, Stage, ends
from .state import Hold, RunState
from .wiring import Clients
from .worker import WorkerContext, sync_package, unchanged, use_versions_listing
from .writer import Writer

log = structlog.get_logger("crawler.engine")

UNREACHABLE_STREAK = 8      # consecutive packages failing to connect: the service is down
# The listing's new validators (ETag + compact page) are saved every this
# many pages, not all at the end: a 10,000-package listing's 100 payloads
# (~3 MB) are then not held for the whole run. A saved page is true whatever
# happens to the rest of the listing (a later 304 replays exactly it).
SAVE_PAGES = 10


class OwnerPipeline:
    """One owner's sync within a run."""

    def __init__(self, owner: OwnerConfig, *, state: RunState, writer: Writer, clients: Clients,
                 ctx: WorkerContext, registry: str, concurrency: int, only: tuple[str, ...],
                 report: Callable[[], None], configured: tuple[OwnerConfig, ...] = (),
                 report_uncovered: bool = False) -> None:
        self.owner = owner
        self.state = state
        self.writer = writer
        self.clients = clients
        self.ctx = ctx
        self.registry = registry
        self.workers = concurrency
        self.scope = Scope(owner.include, owner.exclude, only)
        self.report = report
        self.listing = Listing()
        self.configured = configured or (owner,)   # every owner of the config: what covers the catalog
        self.report_uncovered = report_uncovered   # this owner's catalog says what none of them covers
        self.owner_id = 0                 # set by run() once the owner row exists
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=concurrency * 2)

    async def run(self) -> None:
        o = self.owner
        owner_id = await self.writer.ensure_owner(self.registry, o.name, o.kind, o.discovery)
        self.owner_id = owner_id
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._produce(), name=f"discovery:{o.name}")
                for i in range(self.workers):
                    group.create_task(self._work(owner_id), name=f"worker-{i}")
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None
        await self._conclude(owner_id)

    async def _produce(self) -> None:
        o = self.owner
        try:
            graphql = self.clients.graphql() if o.discovery == "graphql" else None
            async for refs in discover(o, self.scope, self.listing, github=self.clients.github,
                                       registry=self.clients.registry, graphql_client=graphql,
                                       conditional=not self.state.full):
                for ref in await self._to_fetch(refs):
                    if self.state.stopping:
                        break
                    self.state.total += 1
                    await self.queue.put(ref)
                if len(self.listing.cache) >= SAVE_PAGES:
                    await self._save_validators()
        except Exception as exc:
            if ends(exc, Stage.LISTING) is not Ends.OWNER:
                raise
            self.state.owner_failures += 1   # this owner's listing failed; other owners go on
            await record_failure(self.state, self.writer, o.name, None, exc)
            await self._mark_incomplete("", exc)
        # One end marker per worker. Not in a `finally`: when the task group
        # cancels this task (a worker ended the run), the workers are gone and
        # a put on the full queue would wait forever.
        for _ in range(self.workers):
            await self.queue.put(None)

    async def _to_fetch(self, refs: list[PackageRef]) -> list[PackageRef]:
        """The refs of a discovery page that a worker must look at. The ones
        whose listing says they are as synced last are counted as skipped
        here, from one store query for the page, instead of one query each
        in the workers: a no-op of a large org is then its listing pages."""
        state, crawl = self.state, self.ctx.crawl
        listed = [r for r in refs if use_versions_listing(r, crawl)]
        if state.full or not listed:
            return refs
        stored = await self.ctx.reader.stored_packages(self.owner_id, [r.name for r in listed])
        fetch = [r for r in refs if not (use_versions_listing(r, crawl) and unchanged(stored.get(r.name), r, crawl))]
        skipped = len(refs) - len(fetch)
        if skipped and not state.stopping:
            state.total += skipped
            state.summary.packages_seen += skipped
            state.summary.packages_skipped += skipped
            self.report()
        return fetch

    async def _work(self, owner_id: int) -> None:
        state = self.state
        while True:
            ref: PackageRef | None = await self.queue.get()
            if ref is None:
                return
            if state.stopping:
                continue
            state.summary.packages_seen += 1
            hold = Hold()
            try:
                result = await sync_package(self.ctx, self.owner.kind, owner_id, ref, hold)
            except BaseException as exc:
                await state.release(hold)
                if ends(exc, Stage.PACKAGE) is not Ends.PACKAGE:
                    raise
                await self._package_failed(ref, exc)
                continue
            finally:
                self.ctx.registry.forget(ref.repository_path)   # its requests are over
            state.unreachable_streak = 0
            if result is not None:
                await self._report_missing(ref, result)
            if result is None:
                await state.release(hold)
                state.summary.packages_skipped += 1
                self.report()
                continue
            try:
                await self.writer.apply_package(owner_id, result, hold)
            except BaseException:
                await state.release(hold)
                raise

    async def _report_missing(self, ref: PackageRef, result: PackageResult) -> None:
        """A broken multi-arch image is committed (v_broken_indexes) and
        said in the run's errors; it does not fail the package."""
        for gap in result.missing:
            self.state.summary.broken_children += 1
            message = (f"index {gap.parent} lists {gap.child}, which the registry does not have "
                       f"({gap.reason}); recorded in v_broken_indexes")
            await record_problem(self.state, self.writer, ref.owner, ref.name, "MissingChild", message,
                                 event="index_child_missing")

    async def _package_failed(self, ref: PackageRef, exc: InventoryError) -> None:
        state = self.state
        state.summary.packages_failed += 1
        if isinstance(exc, AuthError):
            state.auth_failures += 1
        await record_failure(state, self.writer, ref.owner, ref.name, exc)
        await self._mark_incomplete(ref.name, exc)
        if isinstance(exc, UnreachableError):
            state.unreachable_streak += 1
            if state.unreachable_streak >= UNREACHABLE_STREAK:
                raise UnreachableError(f"{state.unreachable_streak} packages in a row could not be "
                                       f"fetched; last: {exc}")
        self.report()

    async def _conclude(self, owner_id: int) -> None:
        """After the listing: report what it skipped, keep its validators,
        and conclude deletions only from a complete listing of the whole scope."""
        listing, state = self.listing, self.state
        for reason in listing.skipped:
            state.owner_failures += 1
            skipped = ParseError(f"entry skipped, so no deletion is concluded this run: {reason}")
            await record_failure(state, self.writer, self.owner.name, None, skipped)
            await self._mark_incomplete("", skipped)
        state.economy.discovery_pages += listing.pages
        state.economy.scopes += listing.tokens
        if self.report_uncovered and listing.catalog:
            missed = uncovered(self.configured, listing.catalog)
            if missed:
                await record_problem(state, self.writer, self.owner.name, None, "UncoveredRepositories",
                                     uncovered_message(missed), event="uncovered_repositories")
        await self._save_validators()
        if listing.complete and not state.stopping and not self.scope.only:
            deleted = await self.writer.mark_listed(owner_id, listing.listed, self.scope.configured)
            state.summary.packages_deleted += len(deleted)
            for name in deleted:
                log.info("package_deleted", owner=self.owner.name, package=name)


    async def _save_validators(self) -> None:
        entries = self.listing.cache[:]
        self.listing.cache.clear()
        if entries:
            await self.writer.save_cache(entries)

    async def _mark_incomplete(self, package: str, exc: Exception) -> None:
        """What plan-cleanup must know: this package's (or, '', this owner's)
        last listing did not end complete (table incomplete_listings)."""
        await self.writer.mark_incomplete(self.owner_id, package, self.state.summary.run_id,
                                          type(exc).__name__, redact(str(exc)))


async def record_failure(state: RunState, writer: Writer, owner: str, package: str | None,
                         exc: InventoryError) -> None:
    """Log and record an owner's or a package's failure in the run."""
    await record_problem(state, writer, owner, package, type(exc).__name__, str(exc),
                         event="package_failed" if package else "owner_failed", level="error")


async def record_problem(state: RunState, writer: Writer, owner: str, package: str | None, kind: str,
                         text: str, *, event: str, level: str = "warning") -> None:
    """Log a problem and record it in the run's errors (`run_errors`)."""
    message = redact(text)
    state.summary.errors.append(f"{owner}/{package}: {message}" if package else f"{owner}: {message}")
    getattr(log, level)(event, owner=owner, package=package, error=message, error_type=kind)
    await writer.record_error(state.summary.run_id, owner, package, kind, message)


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The error that ended a task group: the first one that is not a
    cancellation (TaskGroup cancels the siblings of the task that failed)."""
    flat: list[BaseException] = []

    def walk(err: BaseException) -> None:
        if isinstance(err, BaseExceptionGroup):
            for inner in err.exceptions:
                walk(inner)
        else:
            flat.append(err)

    walk(group)
    return next((e for e in flat if not isinstance(e, asyncio.CancelledError)), flat[0])
