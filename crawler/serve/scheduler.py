"""From accepted events to syncs: coalescing, one sync at a time, the lock,
reconciliation.

- **Debounce and coalesce.** An event makes its package pending; an owner's
  pending packages are synced together, in one targeted sync
  (`SyncOptions(packages=…, trigger="webhook")`), `debounce_s` after the
  first of them arrived — so the several events of one multi-platform push
  with attestations, or a burst across many packages, cost one sync.
- **One sync at a time, sharing the lock.** Runs of this process go one
  after another (the SQLite inventory's lock is per database); a run that
  finds the lock held by a timer's `sync` (LockHeldError) waits and tries
  again, with backoff, until it runs or the process stops — an event is
  never dropped. A failing store is retried the same way.
- **Nothing lost.** Events are in the store before they reach this module;
  `start` first syncs those a previous process left pending. A run stopped
  by a signal leaves its events pending for the next start.
- **Reconciliation.** Every `reconcile_interval_s` (and once at start,
  after the pending events: deliveries GitHub sent while the process was
  down are not resent) a full incremental sync of every owner
  (`trigger="reconcile"`): GitHub sends no event for packages without a
  source repository, and only a complete listing concludes deletions.

Time is injected (`clock`, `sleep`), so the tests drive debounce and
backoff without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Awaitable, Callable, Iterable

import structlog

from ..config import Config
from ..credentials import Credentials
from ..engine import Clocks, RunSummary, SyncOptions, run_sync
from ..errors import InventoryError, LockHeldError, StoreError
from ..secret import redact
from ..store import EventLog, EventRecord
from .telemetry import Telemetry

log = structlog.get_logger("crawler.serve")

RETRY_S = 1.0           # first wait after finding the lock held (or the store failing); doubles
RETRY_MAX_S = 60.0
Sync = Callable[..., Awaitable[RunSummary]]


@dataclass(slots=True)
class Pending:
    """A package waiting for its targeted sync, and the deliveries that asked for it."""

    first: float                                            # `clock` time of its first event
    deliveries: dict[str, float] = field(default_factory=dict)  # delivery id -> received (unix time)


class Scheduler:
    def __init__(self, config: Config, creds: Credentials, events: EventLog, telemetry: Telemetry, *,
                 stop: asyncio.Event, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, wall: Callable[[], float] = time.time,
                 sync: Sync = run_sync, clocks: Clocks = Clocks()) -> None:
        self.config = config
        self.creds = creds
        self.events = events
        self.telemetry = telemetry
        self.stop = stop
        self.clock, self.sleep, self.wall = clock, sleep, wall
        self._sync, self._clocks = sync, clocks
        self.debounce_s = config.serve.debounce_s
        self._pending: dict[str, dict[str, Pending]] = {}      # owner -> package -> Pending
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._one_at_a_time = asyncio.Lock()
        self.started = wall()
        self.last_reconcile: float | None = None              # unix time of the last good one
        self.running: str | None = None                       # what runs now, for /healthz
        self.failure: BaseException | None = None             # a loop's unexpected error (a bug)

    # -- what the HTTP side calls -------------------------------------------------------

    def submit(self, owner: str, package: str, delivery_id: str, received: float) -> None:
        """An event accepted (and stored) for `owner`'s `package`."""
        packages = self._pending.setdefault(owner, {})
        pending = packages.setdefault(package, Pending(self.clock()))
        pending.deliveries[delivery_id] = received
        self._wake_owner(owner)

    def _wake_owner(self, owner: str) -> None:
        self._update_depth()
        self._wake.setdefault(owner, asyncio.Event()).set()
        if owner not in self._tasks or self._tasks[owner].done():
            self._tasks[owner] = asyncio.create_task(self._guard(self._owner_loop(owner)),
                                                     name=f"serve:{owner}")

    @property
    def depth(self) -> int:
        return sum(len(p) for p in self._pending.values())

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, pending: Iterable[EventRecord]) -> None:
        """Sync what a previous process left pending, then start the timer."""
        by_owner: dict[str, dict[str, Pending]] = {}
        for event in pending:
            entry = by_owner.setdefault(event.owner, {}).setdefault(event.package, Pending(self.clock()))
            entry.deliveries[event.delivery_id] = _unix(event.received_at)
        for owner, batch in by_owner.items():
            if self.stop.is_set():
                return
            log.info("pending_events_resumed", owner=owner, packages=len(batch),
                     deliveries=sum(len(p.deliveries) for p in batch.values()))
            await self._sync_batch(owner, batch)
        if self.config.serve.reconcile_interval_s > 0 and not self.stop.is_set():
            self._tasks["<reconcile>"] = asyncio.create_task(self._guard(self._reconcile_loop()),
                                                             name="serve:reconcile")

    async def close(self) -> None:
        """After `stop` was set: let every loop end (the engine rolls back what is in flight)."""
        self.stop.set()
        for wake in self._wake.values():
            wake.set()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _guard(self, loop: Awaitable[None]) -> None:
        """A loop's unexpected error (a bug) stops the service, which reports it (exit 70)."""
        try:
            await loop
        except Exception as exc:
            self.failure = self.failure or exc
            self.stop.set()

    # -- the owner loop ------------------------------------------------------------------

    async def _owner_loop(self, owner: str) -> None:
        wake = self._wake[owner]
        while not self.stop.is_set():
            packages = self._pending.get(owner)
            if not packages:
                wake.clear()
                await self._wait(wake)
                continue
            due = min(p.first for p in packages.values()) + self.debounce_s
            if self.clock() < due:
                wake.clear()
                await self._wait(wake, until=due)
                continue
            batch = self._pending.pop(owner)
            self._update_depth()
            await self._sync_batch(owner, batch)

    async def _sync_batch(self, owner: str, batch: dict[str, Pending]) -> None:
        names = tuple(sorted(batch))
        commits = _Commits(self.wall)
        summary = await self._run(SyncOptions(owners=(owner,), packages=names, trigger="webhook"),
                                  progress=commits)
        if summary is None:            # stopped before it ran: the events stay pending in the store
            return
        if summary.status == "interrupted":
            log.info("events_left_pending", owner=owner, packages=list(names))
            if not self.stop.is_set():      # the run timeout, not a stop: try them again
                self._requeue(owner, batch)
            return
        ended = self.wall()
        failed = _failed_packages(summary, owner, names)
        for package, pending in batch.items():
            state = "failed" if package in failed else "done"
            message = failed.get(package)
            await self.events.finish_events(list(pending.deliveries), state, summary.run_id, message)
            committed = commits.at.get((owner, package), ended)
            for delivery, received in pending.deliveries.items():
                if state == "done":
                    self.telemetry.latency.observe(max(committed - received, 0.0))
                log.info("event_synced", owner=owner, package=package, delivery=delivery, state=state,
                         run_id=summary.run_id, latency_s=round(max(committed - received, 0.0), 3))

    def _requeue(self, owner: str, batch: dict[str, Pending]) -> None:
        packages = self._pending.setdefault(owner, {})
        for package, pending in batch.items():
            merged = packages.setdefault(package, Pending(self.clock()))
            merged.deliveries.update(pending.deliveries)
        self._wake_owner(owner)

    # -- reconciliation -------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        interval = self.config.serve.reconcile_interval_s
        while not self.stop.is_set():
            summary = await self._run(SyncOptions(trigger="reconcile"))
            if summary is not None and summary.status in ("ok", "partial"):
                self.last_reconcile = self.wall()
                self.telemetry.last_reconcile.set(self.last_reconcile)
            await self._wait(until=self.clock() + interval)

    # -- running a sync ---------------------------------------------------------------------

    async def _run(self, options: SyncOptions, progress=None) -> RunSummary | None:
        """Run one sync, waiting for the lock (and a failing store) as long as
        it takes; None if the process stops first."""
        delay = RETRY_S
        while not self.stop.is_set():
            async with self._one_at_a_time:
                if self.stop.is_set():
                    return None
                self.running = options.trigger
                try:
                    summary = await self._sync(self.config, self.creds, options, clocks=self._clocks,
                                               progress=progress, stop=self.stop)
                except (LockHeldError, StoreError) as exc:
                    self._retrying(options, exc, delay)
                else:
                    self._done(options, summary)
                    return summary
                finally:
                    self.running = None
            await self._wait(until=self.clock() + delay)
            delay = min(delay * 2, RETRY_MAX_S)
        return None

    def _retrying(self, options: SyncOptions, exc: InventoryError, delay: float) -> None:
        if isinstance(exc, LockHeldError):
            self.telemetry.lock_waits.inc()
            log.info("sync_waits_for_lock", trigger=options.trigger, packages=list(options.packages),
                     holder=redact(str(exc)), retry_in_s=delay)
        else:
            self.telemetry.syncs.labels(options.trigger, "store_error").inc()
            log.error("sync_store_failed", trigger=options.trigger, error=redact(str(exc)), retry_in_s=delay,
                      cause=redact(repr(exc.__cause__)) if exc.__cause__ else None)

    def _done(self, options: SyncOptions, summary: RunSummary) -> None:
        self.telemetry.sync_done(options.trigger, summary)
        log.info("sync_finished", trigger=options.trigger, owners=list(options.owners),
                 packages=list(options.packages), run_id=summary.run_id, status=summary.status,
                 changed=summary.packages_changed, unchanged=summary.packages_skipped,
                 failed=summary.packages_failed, requests=summary.requests, lower_bound=summary.lower_bound,
                 duration_s=summary.duration_s, message=redact(summary.message) or None)

    async def _wait(self, *events: asyncio.Event, until: float | None = None) -> None:
        """Until one of `events` is set, the stop signal, or `clock()` reaches
        `until` (injected sleep). The time left is read when the sleep task
        starts, not when it is made: time moved in between (a test's step
        clock) must shorten the sleep, not push its end further out."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (*events, self.stop)]
        if until is not None:
            waiters.append(asyncio.ensure_future(self._sleep_until(until)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _sleep_until(self, until: float) -> None:
        await self.sleep(max(until - self.clock(), 0.0))

    def _update_depth(self) -> None:
        self.telemetry.queue_depth.set(self.depth)


class _Commits:
    """A run's progress hook: when each changed package was committed."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self.wall = wall
        self.at: dict[tuple[str, str], float] = {}
        self._seen = 0

    def update(self, summary: RunSummary, total: int) -> None:
        now = self.wall()
        for key in summary.changed[self._seen:]:
            self.at.setdefault(key, now)
        self._seen = len(summary.changed)


def _failed_packages(summary: RunSummary, owner: str, names: tuple[str, ...]) -> dict[str, str]:
    """Package -> why, for the packages this run failed (every one when the run failed as a whole)."""
    if summary.status == "ok":
        return {}
    if summary.status != "partial":
        return {name: summary.message or summary.status for name in names}
    failed = {}
    for name in names:
        for error in summary.errors:
            if error.startswith(f"{owner}/{name}: ") or f"'{owner}/{name}'" in error:
                failed[name] = error
                break
    return failed


def _unix(stamp: str) -> float:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return time.time()
