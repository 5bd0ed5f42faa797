"""Issue 11: a timer job must always end — a full disk or another process's
write lock in the middle of a sync ends the run in one line with its own
exit code, the package in flight rolled back and what was committed intact;
a stop signal ends a wait for a foreign lock promptly.

Real `ghcr-inventory sync` processes (so exit codes, stderr and time are the
user's), against the sandbox, with crawler/sandbox/hostile.py's tiny file
system and foreign SQLite lock.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawler.sandbox.faults import FOREVER
from crawler.sandbox.hostile import ForeignWriteLock, fill_up, tiny_filesystem
from tests.reliability import Row
from tests.support import integrity_ok, rows, write_config

ROOT = Path(__file__).resolve().parent.parent

RELIABILITY = [
    Row("disk-full-mid-sync", "the disk filling up in the middle of a sync",
        "one line \"disk is full\", exit 74, within seconds; committed packages intact, the next run completes",
        test="test_disk_full_mid_sync_ends_in_one_line"),
    Row("foreign-lock-mid-sync", "another process taking the database's write lock mid-sync and holding it 25 s",
        "the writer waits at most 10 s, then one line, exit 75 (a timer retries); the next run completes",
        test="test_foreign_write_lock_mid_sync_is_75_within_the_busy_timeout"),
    Row("signal-during-lock-wait", "SIGTERM while a write waits for such a lock",
        "exit 143 within a few seconds", test="test_sigterm_ends_a_wait_for_a_foreign_lock"),
]


def start_sync(config: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "crawler", "--config", str(config), "--log-format", "json",
                             "--log-level", "info", "sync", *extra], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def running(db: Path) -> bool:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return bool(conn.execute("SELECT COUNT(*) FROM sync_runs WHERE status = 'running'").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def last_line(err: str) -> str:
    return [line for line in err.splitlines() if line.strip()][-1]


@pytest.fixture
def token(world, monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    return world.token


@pytest.fixture
def slow_owner(world, fresh_owner):
    """Six packages whose versions listings answer slowly: a sync lasts a few seconds."""
    for i in range(6):
        world.builder.push_image(fresh_owner, f"p{i}", tags=["latest"])
    world.api_proxy.inject("latency", path=rf"/orgs/{fresh_owner}/packages/container/.*/versions", ms=400,
                           times=FOREVER)
    return fresh_owner


def test_disk_full_mid_sync_ends_in_one_line(world, fresh_owner, tmp_path, token):
    for i in range(3):
        world.builder.push_image(fresh_owner, f"first{i}", tags=["latest"])
    with tiny_filesystem(tmp_path / "tiny", size=8 * 1024 * 1024) as root:
        db = root / "inventory.db"
        config = write_config(world, tmp_path, [(fresh_owner, "org")], db=db, crawl={"concurrency": 1})
        first = start_sync(config)
        assert first.wait(timeout=60) == 0, first.stderr.read()
        committed = rows(db, "SELECT package, tag FROM v_tags ORDER BY package")
        for i in range(40):
            world.builder.push_image(fresh_owner, f"more{i:02d}", tags=["latest", "v1"], layers=3)
        with fill_up(root, free=96 * 1024):
            started = time.monotonic()
            proc = start_sync(config)
            code = proc.wait(timeout=60)
            err = proc.stderr.read()
            assert code == 74, err[-2000:]
            assert time.monotonic() - started < 30
            assert "disk is full" in last_line(err) and "Traceback" not in err
            assert set(committed) <= set(rows(db, "SELECT package, tag FROM v_tags"))
            assert integrity_ok(db)
        again = start_sync(config)                        # space again: the next run completes
        assert again.wait(timeout=120) == 0, again.stderr.read()[-2000:]
        assert len(rows(db, "SELECT * FROM v_tags")) == 3 + 40 * 2


def test_foreign_write_lock_mid_sync_is_75_within_the_busy_timeout(world, slow_owner, tmp_path, token):
    db = tmp_path / "inventory.db"
    config = write_config(world, tmp_path, [(slow_owner, "org")], db=db, crawl={"concurrency": 1})
    proc = start_sync(config)
    try:
        wait_for(lambda: running(db), 30, "the run to start")
        with ForeignWriteLock(db, seconds=25) as lock:
            locked_at = time.monotonic()
            code = proc.wait(timeout=40)
            waited = time.monotonic() - locked_at
            assert lock.held
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 75, err[-2000:]
    assert waited < 20                                    # 10 s of busy timeout, not the 25 s the lock lasts
    assert "locked by another process" in last_line(err) and "Traceback" not in err
    world.clear_faults()
    again = start_sync(config)
    assert again.wait(timeout=60) == 0, again.stderr.read()[-2000:]
    assert rows(db, "SELECT COUNT(*) FROM v_tags") == [(6,)]
    assert integrity_ok(db)


def test_sigterm_ends_a_wait_for_a_foreign_lock(world, slow_owner, tmp_path, token):
    db = tmp_path / "inventory.db"
    config = write_config(world, tmp_path, [(slow_owner, "org")], db=db, crawl={"concurrency": 1})
    proc = start_sync(config)
    try:
        wait_for(lambda: running(db), 30, "the run to start")
        with ForeignWriteLock(db, seconds=25):
            seen = []
            for line in proc.stderr:                      # the writer says when it starts waiting
                seen.append(line)
                if "store_busy_wait" in line:
                    break
            assert any("store_busy_wait" in line for line in seen), "".join(seen)[-2000:]
            stopped_at = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=15)
            assert time.monotonic() - stopped_at < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 143
