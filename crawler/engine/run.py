"""The run lifecycle: lock, open the store, start the writer, record the
run, run every owner under the stop signal and the run timeout, enrich,
and record how it ended.

One run = one `sync_runs` row. Failures are confined (`policy.py`): a
package that fails is recorded and skipped, the others commit; only a
fatal error (rejected token, unreachable service, exhausted rate limit,
the store failing, a stop signal) ends the run early — cleanly, with what
was done committed and the run row saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from ..config import Config, OwnerConfig
from ..credentials import Credentials
from ..errors import InterruptedRun, RunTimeout, UsageError
from ..lock import SyncLock
from ..model import PackageResult, utc_now
from ..secret import redact
from ..store import Applied, Store, open_store
from .owner import OwnerPipeline
from .policy import expected, run_status
from .state import RunState, RunSummary
from .wiring import Clients, Clocks, http_client, registry_host
from .worker import WorkerContext
from .writer import Writer

log = structlog.get_logger("crawler.engine")

STOP_GRACE_S = 2.0          # in-flight packages may finish within this, then roll back
# Finished results waiting for the writer, at most: what the writer finds
# queued is its next batch (one commit), and a commit of random-key rows
# rewrites index pages all over the file, so a writer that falls behind
# catches up by taking more a commit (docs/benchmarks.md, finding 15).
# Memory stays bounded by the in-flight budget (a result holds it until written).
WRITE_QUEUE = 32


@dataclass(frozen=True, slots=True)
class SyncOptions:
    full: bool = False
    owners: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    # How the run was started, recorded with each package it changes
    # (package_changes.via): sync (the CLI, a timer), reconcile or webhook (serve).
    trigger: str = "sync"


class Progress(Protocol):
    def update(self, summary: RunSummary, total: int) -> None: ...


async def run_sync(config: Config, creds: Credentials, options: SyncOptions = SyncOptions(), *,
                   clocks: Clocks = Clocks(), progress: Progress | None = None,
                   stop: asyncio.Event | None = None) -> RunSummary:
    """Lock, open, run, record. Raises LockHeldError (75) if another sync runs."""
    unknown = [o for o in options.owners if config.owner(o) is None]
    if unknown:
        raise UsageError(f"--owner {unknown[0]!r} is not in the config's [[owners]]", where=config.source)
    trusted_root = None
    if config.attestations.enabled and config.attestations.trusted_root is not None:
        from ..attestations import load_trusted_root   # cryptography: only when a root is given
        trusted_root = load_trusted_root(config)
    # SQLite: one file lock for the database; PostgreSQL: the store's
    # per-owner advisory locks (Store.claim), so crawlers of other owners run.
    with SyncLock(config.database.path) if config.database.path else contextlib.nullcontext():
        store = await open_store(config.database, creds.database)
        try:
            await store.claim(registry_host(config), [o.name for o in selected_owners(config, options)])
            run = Run(config, creds, options, store, clocks=clocks, progress=progress,
                      stop=stop or asyncio.Event())
            run.trusted_root = trusted_root
            return await run.execute()
        finally:
            await store.close()


def selected_owners(config: Config, options: SyncOptions) -> list[OwnerConfig]:
    """The owners a run syncs: all configured ones, or those --owner names."""
    if not options.owners:
        return list(config.owners)
    wanted = {o.lower() for o in options.owners}
    return [o for o in config.owners if o.name.lower() in wanted]


class Run:
    """One sync run, from its run row to its outcome."""

    def __init__(self, config: Config, creds: Credentials, options: SyncOptions, store: Store, *,
                 clocks: Clocks, progress: Progress | None, stop: asyncio.Event) -> None:
        self.config = config
        self.creds = creds
        self.options = options
        self.store = store
        self.clocks = clocks
        self.progress = progress
        self.stop = stop
        self.registry = registry_host(config)
        self.state = RunState.new(0, full=options.full)
        self.http = http_client(config, clocks)
        self.writer = Writer(store.writer, release=self.state.release, on_applied=self._applied,
                             size=min(config.crawl.concurrency, WRITE_QUEUE))
        self.trusted_root = None          # crawler.oci.verify.TrustedRoot, set by run_sync
        self._changes_recorded = 0

    def owners(self) -> list[OwnerConfig]:
        return selected_owners(self.config, self.options)

    async def execute(self) -> RunSummary:
        started = time.monotonic()
        s = self.state.summary
        try:
            s.run_id = await self._begin()
        except BaseException:
            await self._close_writer()
            raise
        async with self.http:
            try:
                await self._guarded(self._all_owners())
                self._finish_status()
            except BaseException as exc:
                self._fail(exc)
                if not expected(exc):
                    raise
            finally:
                s.duration_s = round(time.monotonic() - started, 3)
                await self._record_run()
        return s

    async def _begin(self) -> int:
        stale = await self.writer.close_stale_runs()
        if stale:
            log.warning("previous_run_interrupted", runs=stale)
        mode = "full" if self.options.full else "incremental"
        return await self.writer.begin_run(mode, [o.name for o in self.owners()], os.getpid(),
                                           socket.gethostname())

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
            self.state.stopping = True
            self.writer.interrupt()
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
        facts = await self.store.reader.registry_facts(self.registry)

        async def save_facts(new) -> None:
            await self.writer.save_registry_facts(self.registry, new)

        clients = Clients(self.config, self.creds, self.http, self.clocks, facts=facts,
                          reader=self.store.reader, save_facts=save_facts)
        ctx = WorkerContext(self.state, self.store.reader, clients.registry, clients.github, self.config.crawl)
        owners = self.owners()
        # One catalog is one registry: its first owner reports what no configured owner covers.
        first_catalog = next((o for o in owners if o.discovery == "catalog"), None)
        for owner in owners:
            if self.state.stopping:
                break
            await OwnerPipeline(owner, state=self.state, writer=self.writer, clients=clients, ctx=ctx,
                                registry=self.registry, concurrency=self.config.crawl.concurrency,
                                only=self.options.packages, report=self._report,
                                configured=self.config.owners, report_uncovered=owner is first_catalog).run()
            await self._checkpoint()
        await self._enrich(clients)
        await self._attest(clients)

    async def _enrich(self, clients: Clients) -> None:
        """GraphQL enrichment of the packages' source repositories
        (crawler/enrich.py). Its failures are recorded, never fatal: the
        packages are already committed."""
        gh = self.config.github
        if self.creds.github is None or not gh.enrich or self.state.stopping:
            return
        max_age_s = None if self.options.full else gh.enrich_interval_s
        owners = [o.name for o in self.owners()]
        if not await self.store.reader.repositories_due(self.registry, owners, max_age_s, limit=1):
            return  # nothing due: do not even import the GraphQL stack (a no-op run stays cheap)
        from ..enrich import enrich_sources

        def count_request() -> None:
            self.state.economy.graphql += 1

        report = await enrich_sources(clients.graphql(), self.store.reader, self.writer,
                                      registry=self.registry, owners=owners,
                                      count_request=count_request, max_age_s=max_age_s)
        await self._record_problems("enrichment", report.problems)

    async def _attest(self, clients: Clients) -> None:
        """GitHub's attestations API for the digests due (crawler/attestations.py).
        Its failures are recorded, never fatal; a token that cannot read
        attestations is one warning per owner (logged there), not a failure."""
        at = self.config.attestations
        if self.creds.github is None or not at.enabled or self.state.stopping:
            return
        young = None if self.options.full else at.recheck_within_s
        due = functools.partial(self.store.reader.attestations_due, self.registry, [o.name for o in self.owners()],
                                young_s=young, interval_s=at.recheck_interval_s)
        if not await due(limit=1):
            return  # nothing due: the attestations stack (cryptography) is not even imported
        from ..attestations import MAX_SUBJECTS, AttestationsClient, check_attestations, due_owners

        async def page(after: tuple[int, str] | None) -> list:
            return await due(after=after, limit=MAX_SUBJECTS)

        def count_request() -> None:
            self.state.economy.attestations += 1

        client = AttestationsClient(self.http, self.config.github.api_url, self.creds.github)
        report = await check_attestations(client, due_owners(page, await page(None)), self.writer,
                                          root=self.trusted_root, count_request=count_request)
        await self._record_problems("attestations", report.problems)

    async def _record_problems(self, stage: str, problems) -> None:
        """A later stage's failures: in the run's errors and `run_errors`, never fatal."""
        for problem in problems:
            message = redact(f"{stage}: {problem}")
            self.state.summary.errors.append(message)
            log.warning(f"{stage}_failed", error=message, error_type=type(problem).__name__)
            await self.writer.record_error(self.state.summary.run_id, None, None,
                                           type(problem).__name__, message)

    # -- bookkeeping ------------------------------------------------------------------

    def _applied(self, result: PackageResult, applied: Applied) -> None:
        s = self.state.summary
        if not applied.changed:      # listed again and found as it was (registry mode)
            s.packages_skipped += 1
            self._report()
            return
        s.packages_changed += 1
        s.changed.append((result.ref.owner, result.ref.name))
        s.manifests_new += applied.manifests_new
        s.rows_corrected += applied.corrected
        s.tags_opened += applied.tags_opened
        s.tags_closed += applied.tags_closed
        log.info("package_synced", owner=result.ref.owner, package=result.ref.name,
                 tags=len(result.tags), digests=len(result.versions),
                 manifests_new=applied.manifests_new, tags_opened=applied.tags_opened,
                 tags_closed=applied.tags_closed, corrected=applied.corrected)
        self._report()

    def _report(self) -> None:
        s, c = self.state.summary, self.http.counters
        s.requests, s.not_modified = c.total, c.not_modified
        if self.progress is not None:
            self.progress.update(s, self.state.total)

    def _counted(self) -> RunSummary:
        """The summary with the HTTP counters and the lower bound brought up to date."""
        s, c = self.state.summary, self.http.counters
        s.requests, s.not_modified, s.bytes = c.total, c.not_modified, c.bytes
        s.requests_by_kind = dict(sorted(c.requests.items()))
        s.faults = dict(sorted(c.faults.items()))
        s.budgets = self.http.budgets()
        s.lower_bound = self.state.economy.total(c.redirects + c.requests["referrers"])
        return s

    async def _checkpoint(self) -> None:
        """Keep the run row's counters current, so a killed run still tells."""
        await self._record_changes()
        await self.writer.update_run(self.state.summary.run_id, self._counted().record())

    async def _record_changes(self) -> None:
        """The packages changed since the last checkpoint, with the run's trigger
        (the coverage report tells webhook from reconciliation by it)."""
        s = self.state.summary
        new, self._changes_recorded = s.changed[self._changes_recorded:], len(s.changed)
        if new:
            await self.writer.record_changes(s.run_id, self.options.trigger, new)

    def _finish_status(self) -> None:
        """ok; partial (exit 1) when something failed but the rest committed;
        exit 4 when nothing could be fetched at all, exit 3 when every
        package was refused for its credentials (the token, not one image)."""
        s, state = self.state.summary, self.state
        if not (s.packages_failed or state.owner_failures):
            s.status, s.exit_code, s.message = "ok", 0, ""
            return
        nothing_done = s.packages_changed == 0 and s.packages_skipped == 0
        s.status, s.exit_code = "partial", 1
        s.message = f"{s.packages_failed} package(s) and {state.owner_failures} owner(s) failed"
        if nothing_done and state.unreachable_streak > 0:
            s.exit_code = 4
        elif nothing_done and state.auth_failures == s.packages_failed and not state.owner_failures:
            s.status, s.exit_code = "failed", 3
            s.message = (f"every package ({s.packages_failed}) was refused: the credentials cannot pull "
                         f"from this registry; last: {s.errors[-1] if s.errors else 'no detail'}")

    def _fail(self, exc: BaseException) -> None:
        s = self.state.summary
        s.status, s.exit_code = run_status(exc)
        s.message = redact(str(exc)) or type(exc).__name__
        if s.message not in s.errors:
            s.errors.append(s.message)

    async def _record_run(self) -> None:
        """Record the outcome through the writer, then stop it. A writer that
        failed (the store itself) ends the run as that failure."""
        s = self.state.summary
        try:
            await self.writer.drain()   # packages already handed over count in the run row
            await self._record_changes()
        except Exception:
            pass                        # the writer failed: update_run below says how
        record = self._counted().record()
        final = replace(record, status=s.status, finished_at=utc_now(), exit_code=s.exit_code,
                         message=s.message or None)
        try:
            await self.writer.update_run(s.run_id, final)
        except Exception as exc:
            self._store_failed(exc)
            log.error("run_not_recorded", error=redact(str(exc)), error_type=type(exc).__name__)
        await self._close_writer()

    async def _close_writer(self) -> None:
        try:
            await self.writer.close()
        except Exception as exc:  # the writer itself failed (disk full, corrupt db)
            self._store_failed(exc)

    def _store_failed(self, exc: Exception) -> None:
        """The store failed at the end: that is the run's outcome, unless the
        run had already ended for a reason of its own (a stop signal, the run
        timeout, the rate limit), which stays what it reports (the next run
        marks the unrecorded row interrupted)."""
        if self.state.summary.status in ("running", "ok", "partial"):
            self._fail(exc)
