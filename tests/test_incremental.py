"""Issue 5: incremental runs that timers can trust — change detection,
history, deletions and restores, --full repair, the lock, `status` — in
both stores (the `store` parameter: SQLite and PostgreSQL)."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from crawler.config import load_config
from crawler.credentials import database_password
from crawler.engine.wiring import registry_host
from crawler.store import open_store
from tests.support import execute, hold_sync_lock, integrity_ok, last_run, rows, run_cli, write_config


@pytest.fixture
def org(world, fresh_owner, tmp_path, monkeypatch, db):
    """A fresh org with three packages, synced once."""
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    b = world.builder
    b.push_image(fresh_owner, "app", tags=["latest", "v1"], seed=1)
    b.push_image(fresh_owner, "other", tags=["x"], seed=2)
    b.push_index(fresh_owner, "multi", tags=["stable"], platforms=("linux/amd64", "linux/arm64"), seed=3)
    config = write_config(world, tmp_path, [(fresh_owner, "org")], db=db)
    assert run_cli(config, "sync") == 0
    return fresh_owner, config, db


def history(db, package):
    return rows(db, "SELECT tag, digest, last_seen IS NULL FROM v_tag_history WHERE package = ? "
                    "ORDER BY tag, last_seen IS NULL, first_seen", (package,))


def test_moves_deletes_and_new_platforms_are_history(world, org):
    owner, config, db = org
    b = world.builder
    old_latest = world.tags_of(owner, "app")["latest"]
    new_latest = b.push_image(owner, "app", tags=["latest"], seed=11).digest
    b.untag(owner, "app", "v1")
    old_multi = world.tags_of(owner, "multi")["stable"]
    three = b.push_index(owner, "multi", tags=["stable"], seed=13,
                         platforms=("linux/amd64", "linux/arm64", "linux/s390x"))
    assert run_cli(config, "sync") == 0
    run = last_run(db)
    assert (run["packages_changed"], run["packages_skipped"]) == (2, 1)   # "other" cost nothing
    assert run["requests"] <= run["lower_bound"] * 1.05 + 1
    assert history(db, "app") == [("latest", old_latest, 0), ("latest", new_latest, 1), ("v1", old_latest, 0)]
    assert history(db, "multi") == [("stable", old_multi, 0), ("stable", three.digest, 1)]
    platforms = {p for (p,) in rows(db, "SELECT platform FROM v_images WHERE package = 'multi' AND parent_digest = ?",
                                    (three.digest,))}
    assert platforms == {"linux/amd64", "linux/arm64", "linux/s390x"}
    # the old digests stay in the inventory, untagged
    assert rows(db, "SELECT tags FROM v_images WHERE package = 'app' AND digest = ?", (old_latest,)) == [(None,)]


def test_package_delete_and_restore(world, org):
    owner, config, db = org
    world.builder.delete_package(owner, "other")
    assert run_cli(config, "sync") == 0
    assert last_run(db)["packages_deleted"] == 1
    deleted = rows(db, "SELECT deleted_at IS NOT NULL FROM v_packages WHERE package = 'other'")
    assert deleted == [(1,)]
    assert rows(db, "SELECT COUNT(*) FROM v_tags WHERE package = 'other'") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM v_images WHERE package = 'other'") == [(0,)]
    world.builder.restore_package(owner, "other")
    assert run_cli(config, "sync") == 0
    assert rows(db, "SELECT deleted_at FROM v_packages WHERE package = 'other'") == [(None,)]
    assert [t for t, _, cur in history(db, "other") if cur] == ["x"]


def test_excluded_and_filtered_packages_are_never_concluded_deleted(world, org):
    owner, config, db = org
    assert run_cli(config, "sync", "--package", "app") == 0
    run = last_run(db)
    assert run["packages_seen"] == 1 and run["packages_deleted"] == 0
    assert rows(db, "SELECT COUNT(*) FROM v_packages WHERE deleted_at IS NOT NULL") == [(0,)]


def test_failed_listing_page_deletes_nothing(world, org):
    owner, config, db = org
    world.builder.delete_package(owner, "other")
    world.builder.untag(owner, "app", "v1")
    # the package listing fails: nothing may be concluded deleted
    world.api_proxy.inject("status", path=rf"/orgs/{owner}/packages", probability=1.0, status=502)
    assert run_cli(config, "sync") == 4
    assert rows(db, "SELECT COUNT(*) FROM v_packages WHERE deleted_at IS NOT NULL") == [(0,)]
    world.clear_faults()
    # the versions listing of "app" fails half-way: its tags stay as they were
    world.api_proxy.inject("status", path=r"/packages/container/app/versions", probability=1.0, status=500)
    before = history(db, "app")
    assert run_cli(config, "sync") == 1
    assert history(db, "app") == before
    assert integrity_ok(db)


def test_full_resync_repairs_corrupted_rows(world, org, capsys):
    owner, config, db = org
    digest = world.tags_of(owner, "app")["latest"]
    execute(db, "UPDATE manifests SET size = 1, layer_count = 99 WHERE digest = ?", (digest,))
    execute(db, "UPDATE tags SET digest = ? WHERE tag = 'x' AND last_seen IS NULL", ("sha256:" + "0" * 64,))
    assert run_cli(config, "sync") == 0          # incremental: trusts what it has
    assert rows(db, "SELECT layer_count FROM manifests WHERE digest = ?", (digest,)) == [(99,)]
    capsys.readouterr()
    assert run_cli(config, "sync", "--full") == 0
    assert "rows corrected" in capsys.readouterr().err
    run = last_run(db)
    assert run["mode"] == "full" and run["rows_corrected"] >= 2
    assert rows(db, "SELECT layer_count FROM manifests WHERE digest = ?", (digest,)) == [(2,)]
    assert rows(db, "SELECT digest FROM v_tags WHERE tag = 'x'") == [(world.tags_of(owner, "other")["x"],)]
    # a second --full finds nothing to correct and refetches everything again
    assert run_cli(config, "sync", "--full") == 0
    again = last_run(db)
    assert again["rows_corrected"] == 0 and again["not_modified"] == 0
    assert json.loads(again["requests_by_kind"])["manifest"] >= 4


def test_second_sync_while_locked_exits_75(world, org, capsys):
    owner, config, db = org
    with hold_sync_lock(db, config):
        code = run_cli(config, "sync")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 75
    assert len(err) == 1 and "another sync holds the lock" in err[0] and f"pid {os.getpid()}" in err[0]


def test_status_is_a_monitoring_probe(world, org, capsys):
    owner, config, db = org
    capsys.readouterr()
    assert run_cli(config, "status", "--max-age", "1h") == 0
    out = capsys.readouterr().out
    assert owner in out and "ok" in out
    execute(db, "UPDATE sync_runs SET finished_at = '2020-01-01T00:00:00Z'")
    assert run_cli(config, "status", "--max-age", "1h") == 1
    err = capsys.readouterr().err
    assert "stale" in err and owner in err
    assert run_cli(config, "status") == 0      # without --max-age it only reports
    assert run_cli(config, "status", "--max-age", "soon") == 2


def test_sigterm_stops_promptly_and_records_interrupted(world, fresh_owner, tmp_path, db):
    b = world.builder
    for n in range(12):
        b.push_image(fresh_owner, f"p{n}", tags=["latest"], seed=100 + n, layers=1)
    world.registry_proxy.inject("latency", probability=1.0, ms=150)
    config = write_config(world, tmp_path, [(fresh_owner, "org")], crawl={"concurrency": 2}, db=db)
    env = dict(os.environ, GHCR_SANDBOX_TOKEN=world.token)
    proc = subprocess.Popen([sys.executable, "-m", "crawler", "--config", str(config), "--log-format", "json",
                             "-v", "sync"], env=env, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:                   # wait until a package is committed
        if '"package_synced"' in line:
            break
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    code = proc.wait(timeout=10)
    assert time.monotonic() - started < 5
    assert code == 128 + signal.SIGTERM
    run = last_run(db)
    assert run["status"] == "interrupted" and run["finished_at"] is not None
    assert "stopping" in rest
    assert integrity_ok(db)


def test_unchanged_packages_are_told_from_one_store_query_per_listing_page(world, org):
    owner, config, db = org
    world.builder.push_image(owner, "other", tags=["x"], seed=21)        # one package changes
    assert run_cli(config, "sync") == 0
    run = last_run(db)
    assert (run["packages_changed"], run["packages_skipped"]) == (1, 2)
    assert json.loads(run["requests_by_kind"])["versions"] == 1          # only the changed one is listed
    assert run_cli(config, "sync") == 0
    run = last_run(db)
    assert (run["packages_changed"], run["packages_skipped"]) == (0, 3)
    assert json.loads(run["requests_by_kind"]) == {"discovery": 1}
    assert asyncio.run(stored_both_ways(config, owner, ["app", "other", "multi", "absent"])) == 3


async def stored_both_ways(config, owner: str, names: list[str]) -> int:
    """`stored_packages` (one query) agrees with `stored_package` (one each); how many it found."""
    cfg = load_config(config)
    store = await open_store(cfg.database, database_password(cfg.database, cfg.source))
    try:
        owner_id = await store.writer.ensure_owner(registry_host(cfg), owner, "org", "rest")
        many = await store.reader.stored_packages(owner_id, names)
        assert many == {n: s for n in names if (s := await store.reader.stored_package(owner_id, n))}
        assert all(s.last_synced for s in many.values())
        return len(many)
    finally:
        await store.close()
