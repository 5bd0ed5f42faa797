"""Units of crawler/engine/ that otherwise run only end to end: the shared
fetch (`Inflight`), the memory budget, the error policy, and the writer —
against a real SQLite store in a temporary file."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from crawler.engine.policy import Ends, Stage, ends, run_status
from crawler.engine.state import Hold, Inflight, MemoryBudget, RunState
from crawler.engine.writer import Writer
from crawler.errors import (AuthError, InterruptedRun, NotFoundError, ParseError, RateLimitedError, RunTimeout,
                            UnreachableError)
from crawler.model import CacheEntry, PackageRef, PackageResult, VersionEntry
from crawler.errors import StoreError
from crawler.store import RunRecord, SQLiteStore


# --- Inflight ---------------------------------------------------------------------------------

async def test_inflight_shares_one_fetch_between_concurrent_callers():
    inflight, calls = Inflight(), []
    gate = asyncio.Event()

    async def fetch():
        calls.append(1)
        await gate.wait()
        return "manifest"

    first = asyncio.create_task(inflight.get("m:a", fetch))
    second = asyncio.create_task(inflight.get("m:a", fetch))
    await asyncio.sleep(0)
    assert inflight.pending("m:a") and not first.done()
    gate.set()
    assert await first == ("manifest", True) and await second == ("manifest", False)
    assert calls == [1]
    inflight.release(["m:a"])
    assert not inflight.pending("m:a")          # released: a later package fetches (or finds it stored)


async def test_a_failed_shared_fetch_is_retried_in_the_waiters_own_repository():
    inflight = Inflight()
    gate = asyncio.Event()
    asked = []

    async def denied():                     # package A's repository answers 403
        asked.append("a")
        await gate.wait()
        raise NotFoundError("denied in a")

    async def served():                     # package B's own repository serves the content
        asked.append("b")
        return "manifest"

    first = asyncio.create_task(inflight.get("m:b", denied))
    second = asyncio.create_task(inflight.get("m:b", served))
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(NotFoundError):
        await first
    assert await second == ("manifest", True) and asked == ["a", "b"]
    assert not inflight.pending("m:b")

    async def fine():
        return "ok"
    assert await inflight.get("m:b", fine) == ("ok", True)


async def test_inflight_under_full_remembers_released_digests():
    inflight = Inflight(remember=True)

    async def fetch():
        return 1
    await inflight.get("m:c", fetch)
    inflight.release(["m:c"])
    assert inflight.pending("m:c")              # --full: verified once per run


# --- MemoryBudget and RunState.release ----------------------------------------------------------

async def test_memory_budget_bounds_held_content_and_lets_a_giant_run_alone():
    budget = MemoryBudget(100)
    assert await budget.acquire(60) == 60
    giant = asyncio.create_task(budget.acquire(5000))   # capped at the whole budget
    await asyncio.sleep(0)
    assert not giant.done()                              # waits for the 60 held
    await budget.release(60)
    assert await giant == 100 and budget.free == 0
    await budget.release(100)
    assert budget.free == 100


async def test_run_state_release_gives_back_keys_and_units():
    state = RunState.new(1, full=False)
    state.budget = MemoryBudget(10)

    async def fetch():
        return 1
    await state.inflight.get("m:x", fetch)
    hold = Hold(keys=["m:x"], units=await state.budget.acquire(4))
    await state.release(hold)
    assert (hold.keys, hold.units, state.budget.free) == ([], 0, 10)
    assert not state.inflight.pending("m:x")


# --- the error policy ---------------------------------------------------------------------------

@pytest.mark.parametrize("exc, stage, expected", [
    (NotFoundError("x"), Stage.PACKAGE, Ends.PACKAGE),
    (ParseError("x"), Stage.PACKAGE, Ends.PACKAGE),
    (UnreachableError("x"), Stage.PACKAGE, Ends.PACKAGE),
    (AuthError("x", fatal=False), Stage.PACKAGE, Ends.PACKAGE),
    (AuthError("x"), Stage.PACKAGE, Ends.RUN),
    (RateLimitedError("x"), Stage.PACKAGE, Ends.RUN),
    (StoreError("x"), Stage.PACKAGE, Ends.RUN),
    (ValueError("a bug"), Stage.PACKAGE, Ends.RUN),
    (NotFoundError("x"), Stage.LISTING, Ends.OWNER),
    (ParseError("x"), Stage.LISTING, Ends.OWNER),
    (UnreachableError("x"), Stage.LISTING, Ends.RUN),
    (AuthError("x"), Stage.LISTING, Ends.RUN),
])
def test_what_an_error_ends(exc, stage, expected):
    assert ends(exc, stage) is expected


def test_run_status_of_the_error_that_ended_it():
    assert run_status(RateLimitedError("x")) == ("rate_limited", 4)
    assert run_status(InterruptedRun("x")) == ("interrupted", 130)
    assert run_status(RunTimeout("x")) == ("interrupted", 4)
    assert run_status(asyncio.CancelledError()) == ("interrupted", 130)
    assert run_status(AuthError("x")) == ("failed", 3)


# --- the writer ---------------------------------------------------------------------------------

def _result(name: str, digest: str = "sha256:" + "a" * 64) -> PackageResult:
    ref = PackageRef(owner="acme", name=name, repository_path=f"acme/{name}", discovery="rest",
                     updated_at="2026-01-01T00:00:00Z", version_count=1)
    return PackageResult(ref=ref, versions=[VersionEntry(digest)], tags={})


@pytest.fixture
async def store(tmp_path):
    s = await SQLiteStore.open(tmp_path / "inv.db")
    yield s
    await s.close()


async def test_writer_applies_packages_in_order_and_releases_their_holds(store):
    released, applied = [], []

    async def release(hold):
        released.append(hold)

    writer = Writer(store.writer, release=release, on_applied=lambda r, a: applied.append(r.ref.name))
    run_id = await writer.begin_run("incremental", ["acme"], 1, "h")
    owner = await writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    holds = [Hold(), Hold()]
    await writer.apply_package(owner, _result("a"), holds[0])
    await writer.apply_package(owner, _result("b"), holds[1])
    await writer.save_cache([CacheEntry("https://api/x", '"e"', b"{}")])
    await writer.update_run(run_id, RunRecord(requests=3, status="ok"))
    await writer.close()
    assert applied == ["a", "b"] and released == holds
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT name FROM packages ORDER BY name").fetchall() == [("a",), ("b",)]
    assert db.execute("SELECT requests, status FROM sync_runs").fetchall() == [(3, "ok")]


async def test_a_failing_store_fails_every_waiting_caller_instead_of_hanging(store, tmp_path):
    released = []

    async def release(hold):
        released.append(hold)

    writer = Writer(store.writer, release=release, on_applied=lambda r, a: None, size=2)
    owner = await writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    bad = _result("bad")
    bad.versions = [VersionEntry(None)]               # NOT NULL: the store fails in the transaction
    await writer.apply_package(owner, bad, Hold())
    # Queued behind the failure (the queue holds 2): each must end, none may hang.
    holds = [Hold(keys=[f"m:{i}"]) for i in range(4)]
    behind = [asyncio.create_task(writer.apply_package(owner, _result(f"p{i}"), hold))
              for i, hold in enumerate(holds)]
    calls = [asyncio.create_task(writer.record_error(1, "acme", None, "X", "m")) for _ in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*behind, *calls, return_exceptions=True), timeout=10)
    assert all(isinstance(r, StoreError) for r in results[len(behind):]), results
    assert all(r is None or isinstance(r, StoreError) for r in results[:len(behind)]), results
    with pytest.raises(StoreError, match="NOT NULL"):
        await asyncio.wait_for(writer.record_error(1, "acme", None, "X", "m"), timeout=10)
    with pytest.raises(StoreError):
        await asyncio.wait_for(writer.close(), timeout=10)
    accepted = [hold for hold, r in zip(holds, results) if r is None]
    assert all(any(h is hold for h in released) for hold in accepted)  # what it took, it gave back
    assert sqlite3.connect(store.path).execute("SELECT COUNT(*) FROM packages").fetchone() == (0,)
