"""The single writer: the one task that writes to the store.

Workers and enrichment never hold the store's write face; they hand whole
results to this task through its typed methods (there is no generic
"run this function" entry), and it applies each in one transaction of the
store (`crawler.store.protocol.StoreWriter`). The queue is short, so a
finished package waits here holding its parsed content only briefly.

Packages waiting in the queue when the writer takes one go into the same
transaction, each in its own savepoint (`StoreWriter.apply_packages`): one
COMMIT for several packages is what lets the writer keep up with the
workers (docs/benchmarks.md, finding 3). It never waits for a batch to
fill: a lone package is committed at once. A package counts as written,
and gives back what it held, only once its batch's COMMIT returned.

If the store fails (disk full, a foreign lock past the busy timeout, an
I/O error) the task ends with that error, every caller waiting on it gets
the error instead of waiting forever, and the engine ends the run: a
timer job never hangs on a dead writer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Sequence

import structlog

from ..model import CacheEntry, PackageResult
from ..store import Applied, AttestationRow, RegistryFacts, RepositoryRow, RunRecord, StoreWriter
from .state import Hold

log = structlog.get_logger("crawler.engine.writer")

MAX_BATCH = 32              # packages in one transaction, at most
MAX_BATCH_ROWS = 50_000     # ... and their rows: a batch stays a short transaction (~0.5 s)

Release = Callable[[Hold], Awaitable[None]]
OnApplied = Callable[[PackageResult, Applied], None]


@dataclass(slots=True)
class _Package:
    owner_id: int
    result: PackageResult
    hold: Hold


@dataclass(slots=True)
class _Write:
    method: Callable[..., Awaitable[Any]]
    args: tuple
    future: asyncio.Future


async def _nothing() -> None:
    """The write `drain` queues: done once everything before it is."""


class WriterStopped(Exception):
    """The writer task ended before it took this item (it failed earlier)."""


class Writer:
    def __init__(self, store: StoreWriter, *, release: Release, on_applied: OnApplied,
                 size: int = 8) -> None:
        self._store = store
        self._max_batch = max(1, min(MAX_BATCH, store.max_batch))
        self._release = release
        self._on_applied = on_applied
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=max(2, size))
        self._held: list = []       # taken from the queue behind a batch, next to run
        self._task = asyncio.create_task(self._loop(), name="writer")

    # -- the typed entry points ---------------------------------------------------

    async def apply_package(self, owner_id: int, result: PackageResult, hold: Hold) -> None:
        """Queue one package for its transaction; `hold` is released once it
        is committed or has failed. Raises the store's error if the writer
        has died (the caller then still owns `hold`; releasing twice is
        harmless)."""
        await self._put(_Package(owner_id, result, hold))

    async def close_stale_runs(self) -> int:
        return await self._write(self._store.close_stale_runs)

    async def begin_run(self, mode: str, owners: Iterable[str], pid: int, host: str) -> int:
        return await self._write(self._store.begin_run, mode, list(owners), pid, host)

    async def update_run(self, run_id: int, record: RunRecord) -> None:
        await self._write(self._store.update_run, run_id, record)

    async def record_error(self, run_id: int, owner: str | None, package: str | None,
                           kind: str, message: str) -> None:
        await self._write(self._store.record_error, run_id, owner, package, kind, message)

    async def ensure_owner(self, registry: str, name: str, kind: str, discovery: str) -> int:
        return await self._write(self._store.ensure_owner, registry, name, kind, discovery)

    async def mark_listed(self, owner_id: int, present: set[str],
                          in_scope: Callable[[str], bool]) -> list[str]:
        return await self._write(self._store.mark_listed, owner_id, present, in_scope)

    async def save_cache(self, entries: Iterable[CacheEntry]) -> None:
        await self._write(self._store.save_cache, list(entries))

    async def save_registry_facts(self, registry: str, facts: RegistryFacts) -> None:
        await self._write(self._store.save_registry_facts, registry, facts)

    async def save_repositories(self, rows: Iterable[RepositoryRow]) -> int:
        return await self._write(self._store.save_repositories, list(rows))

    async def touch_repositories(self, names: Iterable[str]) -> int:
        return await self._write(self._store.touch_repositories, list(names))

    async def mark_incomplete(self, owner_id: int, package: str, run_id: int, kind: str,
                              message: str) -> None:
        await self._write(self._store.mark_incomplete, owner_id, package, run_id, kind, message)

    async def save_attestations(self, owner_id: int, answered: Sequence[str],
                                rows: Sequence[AttestationRow]) -> int:
        return await self._write(self._store.save_attestations, owner_id, list(answered), list(rows))

    async def mark_attestations_unknown(self, owner_id: int, digests: Sequence[str], reason: str) -> int:
        return await self._write(self._store.mark_attestations_unknown, owner_id, list(digests), reason)

    async def record_changes(self, run_id: int, via: str, changes: Iterable[tuple[str, str]]) -> None:
        await self._write(self._store.record_changes, run_id, via, list(changes))

    async def drain(self) -> None:
        """Wait until everything queued before this call is applied (or failed)."""
        await self._write(_nothing)

    # -- lifecycle ----------------------------------------------------------------

    def interrupt(self) -> None:
        """A stop signal: a write waiting for another process's lock gives up."""
        self._store.interrupt()

    async def close(self) -> None:
        """Let the queued work finish, then stop; re-raises the task's failure."""
        if not self._task.done():
            try:
                await self._put(None)
            except WriterStopped:
                pass
        await self._task

    # -- the task -------------------------------------------------------------------

    async def _write(self, method: Callable[..., Awaitable[Any]], *args) -> Any:
        future = asyncio.get_running_loop().create_future()
        await self._put(_Write(method, args, future))
        await asyncio.wait({future, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not future.done() or isinstance(future.exception(), WriterStopped):
            self._dead()   # the store's own error, not "not written"
        return future.result()

    async def _put(self, item) -> None:
        """Queue `item`, unless the writer dies first (never wait on a dead task)."""
        if self._task.done():
            self._dead()
        put = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():   # died meanwhile: what it had not taken will never be written
            put.cancel()
            self._dead()

    def _dead(self):
        exc = self._task.exception() if not self._task.cancelled() else None
        if exc is not None:
            raise exc
        raise WriterStopped("the writer stopped")

    async def _loop(self) -> None:
        try:
            while (item := await self._next()) is not None:
                if isinstance(item, _Write):
                    await self._run_write(item)
                else:
                    await self._run_batch(self._batch(item))
        except BaseException as exc:
            await self._fail_pending(exc)
            raise

    async def _next(self):
        if self._held:
            return self._held.pop()
        return await self._queue.get()

    def _batch(self, first: _Package) -> list[_Package]:
        """`first` and the packages queued right behind it, up to the bounds;
        never waits for more. A write queued after them is held back, to run
        after them (the queue's order is the order of effects)."""
        batch, rows = [first], _rows(first)
        while len(batch) < self._max_batch and rows < MAX_BATCH_ROWS and not self._queue.empty():
            item = self._queue.get_nowait()
            if not isinstance(item, _Package):
                self._held.append(item)
                break
            batch.append(item)
            rows += _rows(item)
        return batch

    async def _run_write(self, item: _Write) -> None:
        try:
            value = await item.method(*item.args)
        except BaseException as exc:
            if not item.future.done():
                item.future.set_exception(exc)
                item.future.exception()  # retrieved here: the caller re-raises the task's error
            raise
        if not item.future.done():
            item.future.set_result(value)

    async def _run_batch(self, batch: list[_Package]) -> None:
        """One transaction for the batch. A package whose savepoint was rolled
        back ends the writer with its error once its batch-mates are
        committed and counted, as a lone failing package always has; a
        failed COMMIT ends it with nothing of the batch counted."""
        try:
            outcomes = await self._store.apply_packages([(p.owner_id, p.result) for p in batch])
        finally:
            for p in batch:
                await self._release(p.hold)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        for p, outcome in zip(batch, outcomes):
            if not isinstance(outcome, BaseException):
                self._on_applied(p.result, outcome)
        if failed:
            raise failed[0]

    async def _fail_pending(self, exc: BaseException) -> None:
        """The store failed: what is still queued will never be written."""
        while self._held or not self._queue.empty():
            item = self._held.pop() if self._held else self._queue.get_nowait()
            if isinstance(item, _Write) and not item.future.done():
                item.future.set_exception(WriterStopped(f"not written: the writer failed earlier ({exc!s})"))
                item.future.exception()
            elif isinstance(item, _Package):
                await self._release(item.hold)


def _rows(item: _Package) -> int:
    r = item.result
    return len(r.tags) + len(r.versions) + len(r.manifests) + len(r.configs)
