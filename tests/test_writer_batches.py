"""Several packages in one transaction (issue 17): the writer takes the
packages already queued, each goes into its own savepoint, one COMMIT for
all. A package's own error rolls it back alone while its batch-mates
commit (both stores); a failure of the transaction itself (its COMMIT, a
full disk, another session's lock) leaves the whole batch untouched and
nothing of it counted; a lone package is committed without waiting for
company; a write queued behind packages still runs after them."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import replace

import pytest

from crawler.engine.state import Hold
from crawler.engine.writer import Writer
from crawler.errors import StoreBusyError, StoreError
from crawler.model import CacheEntry, Referrer
from crawler.store import Applied, SQLiteStore
from tests.support import PG_PASSWORD_ENV, open_inventory, rows, until
from tests.test_store import image, result


async def _rows(db, sql):
    return await asyncio.to_thread(rows, db, sql)


def _bad(name: str, n: int):
    """A package whose last statement breaks a NOT NULL constraint: every
    row before it was already written inside its savepoint."""
    img = image(n)
    bad = result(name, [img], {"v1": img[0].digest})
    bad.referrers = [Referrer(None, "x", "signature", None, "subject")]
    return bad


def _good(name: str, n: int):
    img = image(n)
    return result(name, [img], {"v1": img[0].digest, "latest": img[0].digest})


async def test_a_failing_package_rolls_back_alone_while_its_batch_mates_commit(opened, db):
    owner = await opened.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    outcomes = await opened.writer.apply_packages(
        [(owner, _good("a", 1)), (owner, _bad("bad", 2)), (owner, _good("c", 3))])
    assert [type(o) for o in outcomes[::2]] == [Applied, Applied]
    assert isinstance(outcomes[1], StoreError) and "null" in str(outcomes[1]).lower()
    assert outcomes[0].tags_opened == 2 and outcomes[0].manifests_new == 1
    assert await _rows(db, "SELECT name FROM packages ORDER BY name") == [("a",), ("c",)]
    assert await _rows(db, "SELECT COUNT(*) FROM tags") == [(4,)]
    # the failed package's content went with its savepoint
    assert await _rows(db, f"SELECT COUNT(*) FROM manifests WHERE digest = '{image(2)[0].digest}'") == [(0,)]
    assert await _rows(db, "SELECT COUNT(*) FROM manifests") == [(2,)]


async def test_an_unchanged_package_in_a_batch_says_so_and_its_mates_still_commit(opened, db):
    owner = await opened.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    await opened.writer.apply_packages([(owner, _good("a", 1)), (owner, _good("b", 2))])
    before = await _rows(db, "SELECT name, last_synced FROM packages ORDER BY name")
    again = await opened.writer.apply_packages([(owner, _good("a", 1)), (owner, _good("c", 3)),
                                                (owner, _good("b", 2))])
    assert [o.changed for o in again] == [False, True, False]
    after = await _rows(db, "SELECT name, last_synced FROM packages ORDER BY name")
    assert [r for r in after if r[0] != "c"] == before and [r[0] for r in after] == ["a", "b", "c"]
    assert again[1].tags_opened == 2 and again[0].tags_opened == 0


async def test_a_foreign_lock_mid_batch_fails_the_whole_batch_on_postgres(pg_db):
    """Another session holds a row the second package must update: the
    transaction's error (lock_timeout), not the package's; the first
    package of the batch is not committed either."""
    import asyncpg
    store = await open_inventory(pg_db)
    other = await asyncpg.connect(pg_db.url, password=os.environ[PG_PASSWORD_ENV])
    try:
        owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
        await store.writer.apply_package(owner, _good("held", 1))
        locker = other.transaction()
        await locker.start()
        await other.execute("SELECT * FROM packages WHERE name = 'held' FOR UPDATE")
        changed = _good("held", 1)
        changed.ref = replace(changed.ref, version_count=7)
        with pytest.raises(StoreBusyError):
            await asyncio.wait_for(store.writer.apply_packages([(owner, _good("new", 2)), (owner, changed)]), 30)
        await locker.rollback()
        assert await _rows(pg_db, "SELECT name, version_count FROM packages ORDER BY name") == [("held", 1)]
    finally:
        await other.close()
        await store.close()


# --- the writer task ----------------------------------------------------------------------------

class _Gated:
    """The store's write face, recording every call; the first batch waits
    at a gate until the test has queued what should share the next one."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list = []
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    @property
    def max_batch(self) -> int:
        return self.inner.max_batch

    async def apply_packages(self, batch):
        self.calls.append([r.ref.name for _, r in batch])
        if not self.entered.is_set():
            self.entered.set()
            await asyncio.wait_for(self.gate.wait(), 10)
        return await self.inner.apply_packages(batch)

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        async def recorded(*args):
            self.calls.append(name)
            return await method(*args)
        return recorded if asyncio.iscoroutinefunction(method) else method


@pytest.fixture
async def sqlite_store(tmp_path):
    s = await SQLiteStore.open(tmp_path / "inv.db")
    yield s
    await s.close()


def _writer(store, size=8):
    released, applied = [], []

    async def release(hold):
        released.append(hold)

    writer = Writer(store, release=release, on_applied=lambda r, a: applied.append(r.ref.name), size=size)
    return writer, released, applied


async def test_the_writer_batches_what_is_queued_and_a_failure_in_it_ends_the_writer_after_its_mates(sqlite_store):
    gated = _Gated(sqlite_store.writer)
    writer, released, applied = _writer(gated)
    owner = await sqlite_store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    holds = [Hold(keys=[f"k{i}"]) for i in range(4)]
    await writer.apply_package(owner, _good("first", 1), holds[0])
    await asyncio.wait_for(gated.entered.wait(), 10)          # the writer is inside the first batch
    for i, res in enumerate((_good("a", 2), _bad("bad", 3), _good("c", 4)), start=1):
        await writer.apply_package(owner, res, holds[i])
    gated.gate.set()
    with pytest.raises(StoreError, match="NOT NULL"):
        await asyncio.wait_for(writer.close(), 10)
    assert gated.calls == [["first"], ["a", "bad", "c"]]
    assert applied == ["first", "a", "c"] and released == holds
    assert rows(sqlite_store.path, "SELECT name FROM packages ORDER BY name") == [("a",), ("c",), ("first",)]


async def test_a_write_queued_behind_packages_runs_after_them(sqlite_store):
    gated = _Gated(sqlite_store.writer)
    writer, _, applied = _writer(gated)
    owner = await sqlite_store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    run_id = await sqlite_store.writer.begin_run("incremental", ["acme"], 1, "h")
    await writer.apply_package(owner, _good("first", 1), Hold())
    await asyncio.wait_for(gated.entered.wait(), 10)
    await writer.apply_package(owner, _good("a", 2), Hold())
    error = asyncio.create_task(writer.record_error(run_id, "acme", None, "X", "m"))
    await until(lambda: writer._queue.qsize() == 2, within_s=10, what="the write queued")  # noqa: SLF001
    await writer.apply_package(owner, _good("b", 3), Hold())
    gated.gate.set()
    await asyncio.wait_for(error, 10)
    await asyncio.wait_for(writer.close(), 10)
    assert gated.calls == [["first"], ["a"], "record_error", ["b"]]
    assert applied == ["first", "a", "b"]


async def test_a_lone_package_is_committed_without_waiting_for_company(sqlite_store):
    done = asyncio.Event()

    async def release(hold):
        pass

    writer = Writer(sqlite_store.writer, release=release, on_applied=lambda r, a: done.set())
    owner = await writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    await writer.apply_package(owner, _good("alone", 1), Hold())
    await asyncio.wait_for(done.wait(), 10)            # nothing else is ever queued
    assert rows(sqlite_store.path, "SELECT name FROM packages") == [("alone",)]
    await writer.close()


async def test_a_failed_commit_fails_the_whole_batch_and_counts_none_of_it(sqlite_store, monkeypatch):
    gated = _Gated(sqlite_store.writer)
    writer, released, applied = _writer(gated)
    owner = await sqlite_store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    await writer.apply_package(owner, _good("first", 1), Hold())
    await asyncio.wait_for(gated.entered.wait(), 10)
    holds = [Hold(keys=["a"]), Hold(keys=["b"])]
    await writer.apply_package(owner, _good("a", 2), holds[0])
    await writer.apply_package(owner, _good("b", 3), holds[1])
    conn = sqlite_store.writer._w                       # noqa: SLF001 - the fault is injected at COMMIT
    real = conn.execute
    commits = []

    async def failing_commit(sql, *args):
        if sql == "COMMIT":
            commits.append(sql)
            if len(commits) == 2:                       # the second batch's COMMIT: a disk that filled up
                raise sqlite3.OperationalError("database or disk is full")
        return await real(sql, *args)
    monkeypatch.setattr(conn, "execute", failing_commit)
    gated.gate.set()
    with pytest.raises(StoreError, match="disk is full") as info:
        await asyncio.wait_for(writer.close(), 10)
    assert info.value.exit_code == 74
    assert gated.calls == [["first"], ["a", "b"]]
    assert applied == ["first"]                          # nothing of the failed batch counted ...
    assert all(any(h is hold for h in released) for hold in holds)   # ... but all it held given back
    assert rows(sqlite_store.path, "SELECT name FROM packages") == [("first",)]


async def test_a_disk_filling_up_mid_batch_leaves_the_whole_batch_untouched(sqlite_store):
    """A real SQLITE_FULL in the second package (the database may not grow):
    the transaction's error, so the first package is rolled back too."""
    owner = await sqlite_store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    conn = sqlite_store.writer._w                       # noqa: SLF001
    pages = (await (await conn.execute("PRAGMA page_count")).fetchone())[0]
    await conn.execute(f"PRAGMA max_page_count = {pages}")
    big = _good("big", 2)
    big.cache = [CacheEntry("https://api/x", '"e"', b"x" * 200_000)]
    with pytest.raises(StoreError, match="disk is full"):
        await sqlite_store.writer.apply_packages([(owner, _good("small", 1)), (owner, big)])
    assert rows(sqlite_store.path, "SELECT COUNT(*) FROM packages") == [(0,)]
