"""The store against real SQLite: schema, one transaction per package,
idempotent upserts, tag history, deletions only from complete listings,
--full repair, read-only access."""

import asyncio
import os
import sqlite3
import stat

import orjson
import pytest

from crawler.errors import QueryError
from crawler.oci import compute_digest, parse_config, parse_manifest
from crawler.model import PackageRef, PackageResult, Referrer, VersionEntry
from crawler.errors import StoreError
from crawler.readonly import open_readonly, run_query
from crawler.store import SQLiteStore as Store, apply_schema, schema_text
from crawler.store.sqlite import SCHEMA_VERSION
from crawler.store.rows import diff_tags


def blob(data: dict) -> tuple[bytes, str]:
    raw = orjson.dumps(data)
    return raw, compute_digest(raw)


def image(n: int, labels=None):
    cfg_raw, cfg_digest = blob({"architecture": "amd64", "os": "linux",
                                "created": "2026-01-01T00:00:00Z", "config": {"Labels": labels or {}},
                                "rootfs": {"type": "layers", "diff_ids": []}})
    layer = f"sha256:{n:064x}"
    raw, digest = blob({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": cfg_digest, "size": len(cfg_raw)},
                        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                    "digest": layer, "size": 1000 + n}]})
    return parse_manifest(raw, digest=digest), parse_config(cfg_raw, digest=cfg_digest)


def ref(name="app", **kw):
    return PackageRef(owner="acme", name=name, repository_path=f"acme/{name}", discovery="rest",
                      updated_at=kw.pop("updated_at", "2026-01-01T00:00:00Z"), version_count=kw.pop("vc", 1), **kw)


def result(name, imgs, tags, complete=True, full=False):
    return PackageResult(ref=ref(name), versions=[VersionEntry(m.digest) for m, _ in imgs], tags=tags,
                         manifests=[m for m, _ in imgs], configs=[c for _, c in imgs], complete=complete,
                         full=full)


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(tmp_path / "inv.db")
    yield s
    await s.close()


def rows(path, sql, params=()):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def test_database_is_private_wal_and_versioned(store, tmp_path):
    mode = stat.S_IMODE(os.stat(tmp_path / "inv.db").st_mode)
    assert mode == 0o600
    assert rows(store.path, "PRAGMA journal_mode")[0][0] == "wal"
    assert rows(store.path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    views = {r[0] for r in rows(store.path, "SELECT name FROM sqlite_master WHERE type='view'")}
    assert {"v_packages", "v_tags", "v_tag_history", "v_images", "v_labels", "v_referrers",
            "v_sync_runs"} <= views


async def test_reopening_keeps_data_and_recreates_views(tmp_path):
    s = await Store.open(tmp_path / "a.db")
    owner = await s.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    await s.writer.apply_package(owner, result("app", [image(1)], {"v1": image(1)[0].digest}))
    await s.close()
    s = await Store.open(tmp_path / "a.db")
    await s.close()
    assert rows(tmp_path / "a.db", "SELECT tag FROM v_tags") == [("v1",)]


async def test_migrations_run_forward_and_refuse_newer(tmp_path, monkeypatch):
    from crawler.store import sqlite as store_mod
    path = tmp_path / "m.db"
    conn = sqlite3.connect(path, isolation_level=None)
    apply_schema(conn)
    conn.execute("UPDATE schema_version SET version = 0")  # pretend an old database
    now = store_mod.SCHEMA_VERSION
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", now + 1)
    monkeypatch.setattr(store_mod, "MIGRATIONS", {now + 1: ["ALTER TABLE owners ADD COLUMN note TEXT"]})
    conn.execute("DELETE FROM schema_version")
    conn.execute(f"INSERT INTO schema_version VALUES ({now})")
    assert store_mod.apply_schema(conn) == now
    assert "note" in [r[1] for r in conn.execute("PRAGMA table_info(owners)")]
    assert conn.execute("SELECT version FROM schema_version").fetchone() == (now + 1,)
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", now)
    with pytest.raises(store_mod.StoreError, match="newer than this program"):
        store_mod.apply_schema(conn)
    conn.close()


async def test_package_round_trip_views(store):
    owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    img = image(1, {"org.opencontainers.image.source": "https://github.com/acme/app",
                    "org.opencontainers.image.revision": "abc123"})
    applied = await store.writer.apply_package(owner, result("app", [img], {"latest": img[0].digest, "v1": img[0].digest}))
    assert applied.manifests_new == 1 and applied.tags_opened == 2
    got = rows(store.path, "SELECT package, digest, kind, platform, source, revision, size, layer_count, tags "
                           "FROM v_images")
    m = img[0]
    assert got == [("app", m.digest, "image", "linux/amd64", "https://github.com/acme/app", "abc123",
                    m.total_size, 1, "latest,v1")]
    labels = rows(store.path, "SELECT key, value FROM v_labels WHERE digest = ? ORDER BY key", (m.digest,))
    assert ("org.opencontainers.image.revision", "abc123") in labels


async def test_apply_is_idempotent(store):
    owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    img = image(2)
    res = result("app", [img], {"v1": img[0].digest})
    await store.writer.apply_package(owner, res)
    again = await store.writer.apply_package(owner, res)
    assert (again.manifests_new, again.tags_opened, again.tags_closed) == (0, 0, 0)
    assert rows(store.path, "SELECT COUNT(*) FROM tags") == [(1,)]
    assert rows(store.path, "SELECT COUNT(*) FROM manifests") == [(1,)]


async def test_tag_history_move_and_delete(store):
    owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    a, b = image(3), image(4)
    await store.writer.apply_package(owner, result("app", [a], {"latest": a[0].digest, "old": a[0].digest}))
    applied = await store.writer.apply_package(owner, result("app", [a, b], {"latest": b[0].digest}))
    assert (applied.tags_opened, applied.tags_closed) == (1, 2)
    hist = rows(store.path, "SELECT tag, digest, last_seen IS NULL FROM v_tag_history ORDER BY last_seen IS NULL, tag")
    assert hist == [("latest", a[0].digest, 0), ("old", a[0].digest, 0), ("latest", b[0].digest, 1)]
    untagged = rows(store.path, "SELECT digest FROM v_images WHERE tags IS NULL")
    assert untagged == [(a[0].digest,)]


async def test_incomplete_listing_never_deletes(store):
    owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    a, b = image(5), image(6)
    await store.writer.apply_package(owner, result("app", [a, b], {"x": a[0].digest, "y": b[0].digest}))
    applied = await store.writer.apply_package(owner, result("app", [a], {"x": a[0].digest}, complete=False))
    assert applied.tags_closed == 0 and applied.digests_closed == 0
    assert len(rows(store.path, "SELECT * FROM v_tags")) == 2


async def test_failed_transaction_leaves_nothing(store):
    owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    img = image(7)
    bad = result("app", [img], {"v1": img[0].digest})
    bad.referrers = [Referrer(None, "x", "signature", None, "subject")]  # NOT NULL violation at the end
    with pytest.raises(StoreError) as info:
        await store.writer.apply_package(owner, bad)
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)   # translated at the store's boundary
    assert rows(store.path, "SELECT COUNT(*) FROM packages") == [(0,)]
    assert rows(store.path, "SELECT COUNT(*) FROM manifests") == [(0,)]
    assert rows(store.path, "SELECT COUNT(*) FROM tags") == [(0,)]


async def test_package_deleted_and_restored(store):
    owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    img = image(8)
    await store.writer.apply_package(owner, result("app", [img], {"v1": img[0].digest}))
    await store.writer.apply_package(owner, result("other", [img], {"v1": img[0].digest}))
    deleted = await store.writer.mark_listed(owner, {"other"}, lambda name: True)
    assert deleted == ["app"]
    assert rows(store.path, "SELECT package FROM v_packages WHERE deleted_at IS NOT NULL") == [("app",)]
    assert rows(store.path, "SELECT package FROM v_tags") == [("other",)]
    # out-of-scope packages (excluded by a glob) are never concluded deleted
    assert await store.writer.mark_listed(owner, set(), lambda name: name != "other") == []
    await store.writer.apply_package(owner, result("app", [img], {"v1": img[0].digest}))
    assert rows(store.path, "SELECT package, deleted_at FROM v_packages ORDER BY package") == [
        ("app", None), ("other", None)]
    assert rows(store.path, "SELECT COUNT(*) FROM v_tag_history WHERE package = 'app'") == [(2,)]


async def test_full_resync_repairs_a_corrupted_row(store):
    owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    img = image(9, {"a": "1"})
    await store.writer.apply_package(owner, result("app", [img], {"v1": img[0].digest}))
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE manifests SET size = 1, kind = 'artifact' WHERE digest = ?", (img[0].digest,))
    conn.execute("UPDATE config_labels SET value = 'tampered'")
    conn.commit()
    conn.close()
    applied = await store.writer.apply_package(owner, result("app", [img], {"v1": img[0].digest}, full=True))
    assert applied.corrected == 2
    assert rows(store.path, "SELECT size, kind FROM manifests") == [(img[0].size, "image")]
    assert rows(store.path, "SELECT value FROM config_labels") == [("1",)]
    clean = await store.writer.apply_package(owner, result("app", [img], {"v1": img[0].digest}, full=True))
    assert clean.corrected == 0



def test_diff_tags_table():
    assert diff_tags({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}, True) == (["b"], [("b", "3"), ("c", "4")])
    assert diff_tags({"a": "1"}, {}, True) == (["a"], [])
    assert diff_tags({"a": "1"}, {}, False) == ([], [])


async def test_readonly_connection_refuses_writes(store):
    conn = open_readonly(store.path)
    try:
        cols, got = run_query(conn, "SELECT COUNT(*) AS n FROM v_packages")
        assert cols == ["n"] and got == [(0,)]
        for sql in ("DELETE FROM packages", "CREATE TABLE x (a)", "PRAGMA query_only = OFF",
                    f"ATTACH DATABASE '{store.path}.x' AS x", "DROP VIEW v_tags"):
            with pytest.raises(QueryError) as info:
                run_query(conn, sql)
            assert "\n" not in str(info.value)
        with pytest.raises(QueryError, match="SQL error: no such table: nope"):
            run_query(conn, "SELECT * FROM nope")
        with pytest.raises(QueryError):
            run_query(conn, "SELECT 1; SELECT 2")
    finally:
        conn.close()
    assert not os.path.exists(f"{store.path}.x")
    assert rows(store.path, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'v_tags'") == [(1,)]


def test_schema_text_is_the_top_level_file():
    from pathlib import Path
    top = Path(__file__).resolve().parent.parent / "schema.sql"
    assert schema_text() == top.read_text()


async def test_a_foreign_write_lock_ends_in_a_store_error_within_the_busy_timeout(store, monkeypatch):
    from crawler.store import sqlite as store_mod
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_MS", 600)
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")                    # another process's write lock, held
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(StoreError, match="locked"):
            await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest") > 0   # usable again


async def test_interrupt_ends_a_wait_for_a_foreign_lock_promptly(store):
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        loop = asyncio.get_running_loop()
        waiting = asyncio.create_task(store.writer.ensure_owner("ghcr.io", "acme", "org", "rest"))
        await asyncio.sleep(0.3)
        assert not waiting.done()                        # waiting for the lock (10 s at most)
        started = loop.time()
        store.writer.interrupt()
        with pytest.raises(StoreError):
            await asyncio.wait_for(waiting, timeout=5)
        assert loop.time() - started < 2
    finally:
        other.execute("ROLLBACK")
        other.close()
