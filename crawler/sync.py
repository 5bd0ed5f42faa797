"""The sync engine: discovery -> package queue -> N workers -> writer -> SQLite.

One run = one `sync_runs` row. For each owner, discovery feeds a bounded
queue (memory stays flat however large the org), N workers turn packages into
whole results, and the single writer task commits each in one transaction.
Failures are confined: a package that fails is recorded and skipped, the
others commit; only a fatal error (rejected token, unreachable service,
exhausted rate limit, stop signal) ends the run early — cleanly, with what was
done committed and the run row saying why.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol
from urllib.parse import urlsplit

import orjson
import structlog

from .config import Config, Credentials, OwnerConfig
from .discovery import Listing, Scope, discover
from .errors import (AuthError, InterruptedRun, InventoryError, PackageError, RateLimitedError,
                     RunTimeout, UnreachableError)
from .github import GitHubClient
from .http import HttpClient, RetryPolicy, origin
from .lock import SyncLock
from .model import PackageRef, PackageResult
from .registry import RegistryClient
from .secret import redact
from .store import Store, utc_now
from .worker import Economy, Hold, Inflight, Shared, sync_package

log = structlog.get_logger("crawler.sync")

STOP_GRACE_S = 2.0          # in-flight packages may finish within this, then roll back
UNREACHABLE_STREAK = 8      # consecutive packages failing to connect: the service is down


@dataclass(frozen=True, slots=True)
class SyncOptions:
    full: bool = False
    owners: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()


@dataclass(slots=True)
class RunSummary:
    run_id: int = 0
    status: str = "running"
    exit_code: int = 0
    message: str = ""
    packages_seen: int = 0
    packages_changed: int = 0
    packages_skipped: int = 0
    packages_failed: int = 0
    packages_deleted: int = 0
    manifests_new: int = 0
    rows_corrected: int = 0
    tags_opened: int = 0
    tags_closed: int = 0
    requests: int = 0
    not_modified: int = 0
    lower_bound: int = 0
    requests_by_kind: dict = field(default_factory=dict)
    faults: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0


class Progress(Protocol):
    def update(self, summary: RunSummary, total: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Clocks:
    """Injected time, so tests never sleep through backoff or rate limits."""

    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.time


class Writer:
    """The single task that owns the write connection. Workers hand it whole
    package results; every other write goes through `call` too."""

    def __init__(self, store: Store, summary: RunSummary, size: int) -> None:
        self.store = store
        self.release: Callable[[Hold], Awaitable[None]] = _nothing
        self.summary = summary
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=max(2, size))
        self.task = asyncio.create_task(self._loop(), name="writer")
        self.on_commit: Callable[[], None] = lambda: None

    async def submit(self, owner_id: int, result: PackageResult, hold: Hold) -> None:
        await self._put(("package", owner_id, result, hold))

    async def call(self, fn, *args, **kwargs):
        future = asyncio.get_running_loop().create_future()
        await self._put(("call", fn, args, kwargs, future))
        return await future

    async def _put(self, item) -> None:
        if self.task.done():
            self.task.result()  # re-raise the writer's failure
            raise RuntimeError("writer stopped")
        await self.queue.put(item)

    async def close(self) -> None:
        if not self.task.done():
            await self.queue.put(None)
        await self.task

    async def _loop(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if item[0] == "call":
                _, fn, args, kwargs, future = item
                try:
                    future.set_result(await fn(*args, **kwargs))
                except Exception as exc:
                    future.set_exception(exc)
                continue
            _, owner_id, result, hold = item
            try:
                applied = await self.store.apply_package(owner_id, result)
            finally:
                await self.release(hold)
            s = self.summary
            s.packages_changed += 1
            s.manifests_new += applied.manifests_new
            s.rows_corrected += applied.corrected
            s.tags_opened += applied.tags_opened
            s.tags_closed += applied.tags_closed
            log.info("package_synced", owner=result.ref.owner, package=result.ref.name,
                     tags=len(result.tags), digests=len(result.versions),
                     manifests_new=applied.manifests_new, tags_opened=applied.tags_opened,
                     tags_closed=applied.tags_closed, corrected=applied.corrected)
            self.on_commit()


class Engine:
    def __init__(self, config: Config, creds: Credentials, options: SyncOptions, store: Store,
                 run_id: int, *, clocks: Clocks, progress: Progress | None,
                 stop: asyncio.Event) -> None:
        self.config = config
        self.creds = creds
        self.options = options
        self.store = store
        self.clocks = clocks
        self.progress = progress
        self.stop = stop
        self.stopping = False
        self.summary = RunSummary(run_id=run_id)
        self.economy = Economy()
        self.inflight = Inflight(remember=options.full)
        self.total = 0
        self.unreachable_streak = 0
        self.owner_failures = 0
        self.registry_host = urlsplit(config.registry.url).netloc.lower()

    def owners(self) -> list[OwnerConfig]:
        if not self.options.owners:
            return list(self.config.owners)
        wanted = {o.lower() for o in self.options.owners}
        return [o for o in self.config.owners if o.name.lower() in wanted]

    def _http(self) -> HttpClient:
        crawl, cfg = self.config.crawl, self.config
        insecure = {urlsplit(u).hostname for u, flag in
                    ((cfg.github.api_url, cfg.github.insecure), (cfg.github.graphql_url, cfg.github.insecure),
                     (cfg.registry.url, cfg.registry.insecure)) if flag}
        return HttpClient(timeout_s=crawl.timeout_s, concurrency=crawl.concurrency,
                          retry=RetryPolicy(crawl.retries, crawl.backoff_base_s, crawl.backoff_max_s),
                          reserve=crawl.rate_limit_reserve, max_wait_s=crawl.max_wait_s,
                          insecure_hosts=frozenset(insecure), sleep=self.clocks.sleep,
                          clock=self.clocks.clock)

    async def run(self) -> RunSummary:
        started = time.monotonic()
        s = self.summary
        async with self._http() as http:
            self.http = http
            # A short queue: finished results wait here holding their parsed content.
            self.writer = Writer(self.store, s, min(self.config.crawl.concurrency, 8))
            self.writer.on_commit = self._report
            try:
                await self._guarded(self._all_owners())
                self._finish_status()
            except BaseException as exc:
                self._fail(exc)
                if not isinstance(exc, (InventoryError, asyncio.CancelledError, TimeoutError)):
                    raise
            finally:
                try:
                    await self.writer.close()
                except Exception as exc:  # the writer itself failed (disk full, corrupt db)
                    self._fail(exc)
                s.duration_s = round(time.monotonic() - started, 3)
                await self._record_run()
        return s

    async def _guarded(self, work) -> None:
        """Run the owners; on a stop signal let in-flight packages finish for
        a moment, then cancel them (they roll back: nothing was submitted)."""
        main = asyncio.create_task(work, name="owners")
        stopper = asyncio.create_task(self.stop.wait(), name="stop-watch")
        timeout = self.config.crawl.run_timeout_s or None
        try:
            done, _ = await asyncio.wait({main, stopper}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if main in done:
                return main.result()
            self.stopping = True
            await asyncio.wait({main}, timeout=STOP_GRACE_S)
            if not main.done():
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
            if stopper in done:
                raise InterruptedRun("stopped by a signal; packages in flight were rolled back")
            raise RunTimeout(f"the run exceeded crawl.run_timeout_s={timeout:g}s; what was done is "
                             f"committed, the next run continues")
        finally:
            stopper.cancel()

    async def _all_owners(self) -> None:
        gh, reg = self.config.github, self.config.registry
        facts = await self.store.registry_facts(self.registry_host)
        trusted = {origin(gh.api_url)} | {origin(h if "://" in h else f"https://{h}") for h in reg.auth_hosts}
        registry = RegistryClient(
            self.http, reg.url, credentials=self.creds.registry, username=reg.username,
            trusted_origins=trusted, max_manifest_bytes=self.config.crawl.max_manifest_bytes,
            max_config_bytes=self.config.crawl.max_config_bytes, facts=facts,
            save_facts=lambda **f: self.writer.call(self.store.save_registry_facts, self.registry_host, **f),
            clock=self.clocks.clock)
        github = GitHubClient(self.http, gh.api_url, self.creds.github, cache_lookup=self.store.cache_lookup)
        self._graphql = None
        self.shared = Shared(store=self.store, registry=registry, github=github, crawl=self.config.crawl,
                             full=self.options.full, economy=self.economy, inflight=self.inflight)
        self.writer.release = self.shared.release
        for owner in self.owners():
            if self.stopping:
                break
            await self._owner(owner, registry, github)
        await self._enrich()

    def graphql(self):
        """The GraphQL client, made (and gql imported) on first use."""
        if self._graphql is None and self.creds.github is not None:
            from .graphql import GraphQLClient
            self._graphql = GraphQLClient(self.http, self.config.github.graphql_url, self.creds.github)
        return self._graphql

    async def _enrich(self) -> None:
        """GraphQL enrichment of the packages' source repositories
        (crawler/enrich.py). Its failures are recorded, never fatal: the
        packages are already committed."""
        gh = self.config.github
        if self.creds.github is None or not gh.enrich or self.stopping:
            return
        max_age_s = None if self.options.full else gh.enrich_interval_s
        owners = [o.name for o in self.owners()]
        if not await self.store.repositories_due(self.registry_host, owners, max_age_s):
            return  # nothing due: do not even import the GraphQL stack (a no-op run stays cheap)
        from .enrich import enrich_sources

        def count_request() -> None:
            self.economy.graphql += 1

        report = await enrich_sources(self.graphql(), self.store, self.writer.call,
                                      registry=self.registry_host, owners=owners,
                                      count_request=count_request, max_age_s=max_age_s)
        for problem in report.problems:
            message = redact(f"enrichment: {problem}")
            self.summary.errors.append(message)
            log.warning("enrichment_failed", error=message, error_type=type(problem).__name__)
            await self.writer.call(self.store.record_error, self.summary.run_id, None, None,
                                   type(problem).__name__, message)

    async def _owner(self, owner: OwnerConfig, registry: RegistryClient, github: GitHubClient) -> None:
        owner_id = await self.writer.call(self.store.ensure_owner, self.registry_host, owner.name,
                                          owner.kind, owner.discovery)
        scope = Scope(owner.include, owner.exclude, self.options.packages)
        listing = Listing()
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.config.crawl.concurrency * 2)
        workers = self.config.crawl.concurrency

        async def produce() -> None:
            try:
                async for refs in discover(owner, scope, listing, github=github, registry=registry,
                                           graphql=self.graphql() if owner.discovery == "graphql" else None,
                                           conditional=not self.options.full):
                    for ref in refs:
                        if self.stopping:
                            return
                        self.total += 1
                        await queue.put(ref)
            except PackageError as exc:  # this owner's listing failed; other owners go on
                self.owner_failures += 1
                await self._record_failure(owner.name, None, exc)
            finally:
                for _ in range(workers):
                    await queue.put(None)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce(), name=f"discovery:{owner.name}")
                for i in range(workers):
                    group.create_task(self._work(owner, owner_id, queue), name=f"worker-{i}")
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None
        self.economy.discovery_pages += listing.pages
        if listing.cache:
            await self.writer.call(self.store.save_cache, listing.cache)
        if listing.complete and not self.stopping and not self.options.packages:
            deleted = await self.writer.call(self.store.mark_listed, owner_id, listing.listed,
                                             scope.configured)
            self.summary.packages_deleted += len(deleted)
            for name in deleted:
                log.info("package_deleted", owner=owner.name, package=name)
        await self._checkpoint()

    async def _work(self, owner: OwnerConfig, owner_id: int, queue: asyncio.Queue) -> None:
        while True:
            ref: PackageRef | None = await queue.get()
            if ref is None:
                return
            if self.stopping:
                continue
            self.summary.packages_seen += 1
            hold = Hold()
            try:
                result = await sync_package(self.shared, owner.kind, owner_id, ref, hold)
            except BaseException as exc:
                await self.shared.release(hold)
                if not isinstance(exc, (PackageError, UnreachableError, AuthError)):
                    raise
                if isinstance(exc, RateLimitedError) or (isinstance(exc, AuthError) and exc.fatal):
                    raise
                await self._package_failed(ref, exc)
                continue
            self.unreachable_streak = 0
            if result is None:
                await self.shared.release(hold)
                self.summary.packages_skipped += 1
                self._report()
                continue
            await self.writer.submit(owner_id, result, hold)

    async def _package_failed(self, ref: PackageRef, exc: InventoryError) -> None:
        self.summary.packages_failed += 1
        await self._record_failure(ref.owner, ref.name, exc)
        if isinstance(exc, UnreachableError):
            self.unreachable_streak += 1
            if self.unreachable_streak >= UNREACHABLE_STREAK:
                raise UnreachableError(f"{self.unreachable_streak} packages in a row could not be "
                                       f"fetched; last: {exc}")
        self._report()

    async def _record_failure(self, owner: str, package: str | None, exc: InventoryError) -> None:
        message = redact(str(exc))
        self.summary.errors.append(f"{owner}/{package}: {message}" if package else f"{owner}: {message}")
        log.error("package_failed" if package else "owner_failed", owner=owner, package=package,
                  error=message, error_type=type(exc).__name__)
        await self.writer.call(self.store.record_error, self.summary.run_id, owner, package,
                               type(exc).__name__, message)

    def _report(self) -> None:
        s, c = self.summary, self.http.counters
        s.requests, s.not_modified = c.total, c.not_modified
        if self.progress is not None:
            self.progress.update(s, self.total)

    async def _checkpoint(self) -> None:
        """Keep the run row's counters current, so a killed run still tells."""
        await self.writer.call(self.store.update_run, self.summary.run_id, **self._counters())

    def _counters(self) -> dict:
        s, c = self.summary, self.http.counters
        s.requests, s.not_modified = c.total, c.not_modified
        s.requests_by_kind = dict(sorted(c.requests.items()))
        s.faults = dict(sorted(c.faults.items()))
        s.lower_bound = self.economy.total(c.redirects + c.requests["referrers"])
        return dict(requests=s.requests, not_modified=s.not_modified, lower_bound=s.lower_bound,
                    requests_by_kind=orjson.dumps(s.requests_by_kind).decode(),
                    faults=orjson.dumps(s.faults).decode(), packages_seen=s.packages_seen,
                    packages_changed=s.packages_changed, packages_skipped=s.packages_skipped,
                    packages_failed=s.packages_failed, packages_deleted=s.packages_deleted,
                    manifests_new=s.manifests_new, rows_corrected=s.rows_corrected, bytes=c.bytes,
                    errors=len(s.errors))

    def _finish_status(self) -> None:
        s = self.summary
        if s.packages_failed or self.owner_failures:
            all_down = s.packages_changed == 0 and s.packages_skipped == 0 and self.unreachable_streak > 0
            s.status, s.exit_code = "partial", 4 if all_down else 1
            s.message = f"{s.packages_failed} package(s) and {self.owner_failures} owner(s) failed"
        else:
            s.status, s.exit_code, s.message = "ok", 0, ""

    def _fail(self, exc: BaseException) -> None:
        s = self.summary
        if isinstance(exc, RateLimitedError):
            s.status = "rate_limited"
        elif isinstance(exc, (InterruptedRun, RunTimeout, asyncio.CancelledError)):
            s.status = "interrupted"
        else:
            s.status = "failed"
        s.exit_code = getattr(exc, "exit_code", 1)
        if isinstance(exc, asyncio.CancelledError):
            s.exit_code = InterruptedRun.exit_code
        s.message = redact(str(exc)) or type(exc).__name__
        s.errors.append(s.message)

    async def _record_run(self) -> None:
        s = self.summary
        values = self._counters()
        values.update(status=s.status, finished_at=utc_now(), exit_code=s.exit_code,
                      message=s.message or None)
        await self.store.update_run(s.run_id, **values)


async def _nothing(_hold) -> None:
    return None


def _first_error(group: BaseExceptionGroup) -> BaseException:
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


async def run_sync(config: Config, creds: Credentials, options: SyncOptions = SyncOptions(), *,
                   clocks: Clocks = Clocks(), progress: Progress | None = None,
                   stop: asyncio.Event | None = None) -> RunSummary:
    """Lock, open, run, record. Raises LockHeldError (75) if another sync runs."""
    unknown = [o for o in options.owners if config.owner(o) is None]
    if unknown:
        from .errors import UsageError
        raise UsageError(f"--owner {unknown[0]!r} is not in the config's [[owners]]", where=config.source)
    with SyncLock(config.database.path):
        store = await Store.open(config.database.path)
        try:
            stale = await store.close_stale_runs()
            if stale:
                log.warning("previous_run_interrupted", runs=stale)
            owners = [o.name for o in config.owners
                      if not options.owners or o.name.lower() in {x.lower() for x in options.owners}]
            run_id = await store.begin_run("full" if options.full else "incremental", owners,
                                           os.getpid(), socket.gethostname())
            engine = Engine(config, creds, options, store, run_id, clocks=clocks, progress=progress,
                            stop=stop or asyncio.Event())
            return await engine.run()
        finally:
            await store.close()
