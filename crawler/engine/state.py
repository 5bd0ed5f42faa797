"""The state of one run, in one place: its summary (what the run row and
the CLI report), the lower bound of requests it accumulates, the content
fetched but not yet committed (`Inflight`, `MemoryBudget`, `Hold`), and
`RunState`, which the owner pipelines and the workers share.

Nothing here does I/O; the run lifecycle (`run.py`) creates one `RunState`
per run and everything else receives it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
from typing import Awaitable, Callable, TypeVar

import orjson

from ..store import RunRecord

T = TypeVar("T")
# How many fetched-but-uncommitted manifests may be held at once
# (docs/benchmarks.md, finding 4).
MAX_HELD_MANIFESTS = 8_000


@dataclass(slots=True)
class RunSummary:
    """What a run did: counters, outcome, and the errors it recorded."""

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
    broken_children: int = 0        # index children the registry does not have (v_broken_indexes)
    requests: int = 0
    not_modified: int = 0
    lower_bound: int = 0
    bytes: int = 0
    requests_by_kind: dict = field(default_factory=dict)
    faults: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    changed: list[tuple[str, str]] = field(default_factory=list)   # (owner, package) committed as changed
    budgets: dict = field(default_factory=dict)     # governor -> (remaining, limit) the servers last said

    def record(self) -> RunRecord:
        """The run row's counters (the outcome fields are added at the end)."""
        counters = {f.name: getattr(self, f.name) for f in fields(RunRecord) if f.name in _SAME_NAME}
        return RunRecord(**counters, requests_by_kind=orjson.dumps(self.requests_by_kind).decode(),
                         faults=orjson.dumps(self.faults).decode(), errors=len(self.errors))


# RunRecord counters that RunSummary keeps under the same name and type.
_SAME_NAME = frozenset(f.name for f in fields(RunRecord)) - {"requests_by_kind", "faults", "errors", "status",
                                                             "finished_at", "exit_code", "message"}


@dataclass(slots=True)
class Economy:
    """The run's lower bound of requests (docs/architecture.md "Request
    economy"), accumulated from what actually changed."""

    discovery_pages: int = 0
    # Versions pages / tags pages of changed packages: for a versions listing
    # the pages the stop rule needed (engine/versions.py; it is checked after
    # every page), not ceil(V/100); every page when it never held.
    listing_pages: int = 0
    heads: int = 0                # one HEAD per tag (registry mode)
    manifests: int = 0            # one GET per new digest
    configs: int = 0              # one GET per new config digest
    scopes: int = 0               # one token per repository scope
    graphql: int = 0
    attestations: int = 0         # attestations API pages (bulk-list)

    def total(self, imposed: int = 0) -> int:
        """`imposed`: requests the registry makes unavoidable — the extra hop
        of redirected blob GETs (ghcr) and the referrers API queries (one per
        new tagged digest where it exists; one probe, once, where it does not)."""
        return (self.discovery_pages + self.listing_pages + self.heads + self.manifests
                + self.configs + self.scopes + self.graphql + self.attestations + imposed)


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
        """(value, fetched_here). Concurrent callers of one key share a fetch.

        Content is the same in every repository, but access is granted per
        repository: when the shared fetch (made in another package's
        repository) fails, this caller fetches again with its own `fetch`,
        so one package's 403 or 404 never fails another that can read it."""
        future = self._futures.get(key)
        if future is not None:
            try:
                return await asyncio.shield(future), False
            except Exception:
                return await fetch(), True
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


class MemoryBudget:
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
    units: int = 0                                   # MemoryBudget units


@dataclass(slots=True)
class RunState:
    """Shared by the run's owner pipelines and workers."""

    summary: RunSummary
    full: bool = False
    economy: Economy = field(default_factory=Economy)
    inflight: Inflight = field(default_factory=Inflight)
    budget: MemoryBudget = field(default_factory=lambda: MemoryBudget(MAX_HELD_MANIFESTS))
    stopping: bool = False          # a signal or the run timeout: take no more work
    total: int = 0                  # packages discovered so far (the progress line's denominator)
    unreachable_streak: int = 0     # consecutive packages that could not be fetched
    owner_failures: int = 0
    auth_failures: int = 0          # packages refused for their credentials

    @classmethod
    def new(cls, run_id: int, *, full: bool) -> "RunState":
        return cls(summary=RunSummary(run_id=run_id), full=full, inflight=Inflight(remember=full))

    async def release(self, hold: Hold) -> None:
        """Give back what a committed or failed package held."""
        self.inflight.release(hold.keys)
        await self.budget.release(hold.units)
        hold.keys.clear()
        hold.units = 0
