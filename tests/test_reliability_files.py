"""Hostile file systems under the CLI: read-only file systems, unwritable
directories, full disks, planted lock files, a database locked by another
process, a metrics file that cannot be written. Each ends in one clear line
naming what and where and a documented exit code — never a traceback, and
never a lost commit. Every scenario is a row of RELIABILITY asserted by the
test it names; README's table is rendered from these rows (tests/reliability.py).

The faults are real: a tmpfs mounted read-only or nearly full in a private
mount namespace (`unshare`), a directory made unwritable for a child that
runs without capabilities (root ignores permission bits otherwise)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.edges import (Outcome, sh, crawler_cmd, err_lines, in_mount_namespace, no_owner_config, one_error_line,
                         run_argv, run_crawler, synced_db, wait_for, without_capabilities)
from tests.reliability import Row

RELIABILITY = [
    Row("ro-fs-read", "`query`, `report`, `status` on a database on a read-only file system",
        "they read it (`immutable=1`: SQLite cannot create its `-shm` there)",
        test="test_readers_work_on_a_read_only_file_system"),
    Row("ro-dir-read", "the same in a directory the reader cannot write (another account's database)",
        "they read it; nothing is created beside it", test="test_readers_work_in_a_directory_they_cannot_write"),
    Row("ro-dir-wal", "… while commits are still in a `-wal` beside it and no `-shm` can be made",
        "one line saying so and how to fold them in, exit 73 (an immutable read would miss them)",
        test="test_unfolded_wal_in_an_unwritable_directory_is_refused"),
    Row("db-busy", "a reader while another process holds the database locked past the 5 s busy timeout",
        "one line \"locked by another process\", exit 75 (a timer retries)",
        test="test_a_database_locked_beyond_the_busy_timeout_is_75"),
    Row("lock-symlink", "`<database>.lock` planted as a symlink (to `/etc/passwd`, say; also a FIFO, a hard "
        "link, another user's file, foreign content)",
        "never followed nor truncated: one line naming the lock file, exit 73; the target unchanged",
        test="test_a_planted_lock_symlink_is_refused_and_its_target_kept"),
    Row("ro-fs-sync", "`sync` with the database on a read-only file system",
        "one line naming the lock file and \"Read-only file system\", exit 73 (readers still work)",
        test="test_sync_on_a_read_only_file_system_is_one_line_73"),
    Row("disk-full-lock", "`sync` on a full disk", "one line \"disk is full\" naming the lock file, exit 74",
        test="test_sync_on_a_full_disk_is_one_line_74"),
    Row("parent-is-file", "`database.path` under a regular file", "one line naming it \"is not a directory\", "
        "exit 73", test="test_a_database_path_under_a_regular_file_is_one_line_73"),
    Row("metrics-file", "`--metrics-file` under a regular file, in an unwritable directory, on a read-only or "
        "full file system", "after the summary, one line saying the sync's results are committed, exit 73 / 74",
        test="test_metrics_file_that_cannot_be_written_is_one_line_73_or_74"),
]


# --- read-only file system, unwritable directory -----------------------------------------------

READERS = {
    "query": ["query", "--format", "json", "SELECT status, mode FROM v_sync_runs"],
    "report": ["report", "summary", "--format", "json"],
    "status": ["status", "--format", "json"],
}


def _readers(db: Path) -> dict[str, list[str]]:
    return {name: crawler_cmd(*argv[:1], "--db", str(db), *argv[1:]) for name, argv in READERS.items()}


def _assert_readers_work(outcomes: dict[str, Outcome]) -> None:
    import json
    for name, outcome in outcomes.items():
        assert outcome.rc == 0 and "Traceback" not in outcome.err, (name, outcome)
    assert json.loads(outcomes["query"].out) == [{"status": "ok", "mode": "incremental"}]
    summary = dict((r["metric"], r["value"]) for r in json.loads(outcomes["report"].out))
    assert summary["last_sync_status"] == "ok"
    assert json.loads(outcomes["status"].out) == []          # no owners configured


def test_readers_work_on_a_read_only_file_system(tmp_path):
    db = synced_db(tmp_path)
    mnt = tmp_path / "ro"
    mnt.mkdir()
    setup = (f"mount -t tmpfs -o size=4m tmpfs {sh(str(mnt))}; cp {sh(str(db))} {sh(str(mnt))}/; "
             f"mount -o remount,ro {sh(str(mnt))}")
    outcomes = in_mount_namespace(tmp_path, setup, {
        **_readers(mnt / "inventory.db"),
        "touch": ["touch", str(mnt / "probe")],               # the mount really is read-only
    })
    touch = outcomes.pop("touch")
    assert touch.rc != 0 and "Read-only file system" in touch.err
    _assert_readers_work(outcomes)
    assert sorted(p.name for p in mnt.iterdir()) == []       # the namespace's mount is gone


def test_readers_work_in_a_directory_they_cannot_write(tmp_path):
    db = synced_db(tmp_path)
    folder = db.parent
    folder.chmod(0o555)
    try:
        prefix = without_capabilities()
        probe = subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True, text=True)
        assert probe.returncode != 0 and "Permission denied" in probe.stderr
        outcomes = {name: run_argv(argv, prefix) for name, argv in _readers(db).items()}
    finally:
        folder.chmod(0o755)
    _assert_readers_work(outcomes)
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "inventory.db", "inventory.db.lock"]


def test_unfolded_wal_in_an_unwritable_directory_is_refused(tmp_path):
    """Commits still in -wal, no -shm and no way to create one: an immutable
    read would miss them, so the reader refuses in one line (73)."""
    db = synced_db(tmp_path)
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE sync_runs SET status = 'partial'")
    for suffix in ("", "-wal"):
        (frozen / f"inventory.db{suffix}").write_bytes(Path(f"{db}{suffix}").read_bytes())
    writer.close()
    assert (frozen / "inventory.db-wal").stat().st_size > 0
    frozen.chmod(0o555)
    try:
        outcome = run_argv(_readers(frozen / "inventory.db")["query"], without_capabilities())
    finally:
        frozen.chmod(0o755)
    line = one_error_line(outcome, 73)
    assert str(frozen / "inventory.db") in line and "inventory.db-wal holds commits" in line
    # where the directory is writable, the same files read fine and show the commit
    proc = run_crawler(*_readers(frozen / "inventory.db")["query"][3:])
    assert proc.returncode == 0 and '"partial"' in proc.stdout, proc


def test_a_database_locked_beyond_the_busy_timeout_is_75(tmp_path):
    db = synced_db(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
         "c.execute('PRAGMA locking_mode = EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE')\n"
         "c.execute('UPDATE sync_runs SET status = status')\n"
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(holder.stdout, b"locked", within_s=30)
        proc = run_crawler("query", "--db", str(db), "SELECT COUNT(*) FROM v_sync_runs")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    line = one_error_line(proc, 75)
    assert str(db) in line and "locked by another process beyond the busy timeout" in line
    assert run_crawler("query", "--db", str(db), "SELECT COUNT(*) FROM v_sync_runs").returncode == 0


# --- the lock file and the database's directory ---------------------------------------------------

def test_a_planted_lock_symlink_is_refused_and_its_target_kept(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root:x:0:0::/root:/bin/sh\n")
    db = tmp_path / "state" / "inventory.db"
    db.parent.mkdir()
    os.symlink(victim, f"{db}.lock")
    proc = run_crawler("--config", str(no_owner_config(tmp_path, db)), "sync")
    line = one_error_line(proc, 73)
    assert f"{db}.lock: " in line and "symbolic link" in line
    assert victim.read_text() == "root:x:0:0::/root:/bin/sh\n"
    assert not db.exists()                     # refused before the database was touched


def test_sync_on_a_read_only_file_system_is_one_line_73(tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    src = synced_db(tmp_path)
    fresh = no_owner_config(tmp_path, mnt / "new" / "inventory.db", name="fresh.toml")
    existing = no_owner_config(tmp_path, mnt / "inventory.db", name="existing.toml")
    setup = (f"mount -t tmpfs -o size=4m tmpfs {sh(str(mnt))}; cp {sh(str(src))} {sh(str(mnt))}/; "
             f"mount -o remount,ro {sh(str(mnt))}")
    outcomes = in_mount_namespace(tmp_path, setup, {
        "fresh": crawler_cmd("--config", str(fresh), "sync"),
        "existing": crawler_cmd("--config", str(existing), "sync"),
        "query": crawler_cmd("query", "--db", str(mnt / "inventory.db"), "SELECT COUNT(*) AS n FROM v_sync_runs"),
    })
    line = one_error_line(outcomes["fresh"], 73)
    assert str(mnt / "new") in line and "Read-only file system" in line
    line = one_error_line(outcomes["existing"], 73)
    assert f"{mnt / 'inventory.db'}.lock: cannot create or open for writing (Read-only file system)" in line
    assert outcomes["query"].rc == 0 and "1" in outcomes["query"].out     # and it still reads


def test_sync_on_a_full_disk_is_one_line_74(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    config = no_owner_config(tmp_path, mnt / "inventory.db")
    setup = (f"mount -t tmpfs -o size=64k tmpfs {sh(str(mnt))}; "
             f"dd if=/dev/zero of={sh(str(mnt / 'filler'))} bs=4096 2>/dev/null || true")
    outcomes = in_mount_namespace(tmp_path, setup, {"sync": crawler_cmd("--config", str(config), "sync")})
    line = one_error_line(outcomes["sync"], 74)
    assert str(mnt / "inventory.db") in line and "disk is full" in line and "No space left" in line


def test_a_database_path_under_a_regular_file_is_one_line_73(tmp_path):
    (tmp_path / "state").write_text("a file where a directory should be\n")
    config = no_owner_config(tmp_path, tmp_path / "state" / "inventory.db")
    line = one_error_line(run_crawler("--config", str(config), "sync"), 73)
    assert f"{tmp_path / 'state'} is not a directory" in line
    assert (tmp_path / "state").read_text() == "a file where a directory should be\n"


# --- --metrics-file ----------------------------------------------------------------------------------

COMMITTED = "the sync itself finished and its results are committed"


def _assert_run_committed(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT status FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone() == ("ok",)
    finally:
        conn.close()


def test_metrics_file_that_cannot_be_written_is_one_line_73_or_74(tmp_path):
    db = tmp_path / "inventory.db"
    config = no_owner_config(tmp_path, db)
    # a parent that is a regular file
    (tmp_path / "textfile").write_text("not a directory\n")
    proc = run_crawler("--config", str(config), "sync", "--metrics-file", str(tmp_path / "textfile" / "x.prom"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 73 and len(lines) == 2 and lines[0].startswith("sync ok:"), proc
    assert lines[1] == (f"ghcr-inventory: error: {tmp_path / 'textfile' / 'x.prom'}: cannot create the metrics "
                        f"file: {tmp_path / 'textfile'} is not a directory; {COMMITTED}")
    _assert_run_committed(db)
    # a directory this user cannot write
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        outcome = run_argv(crawler_cmd("--config", str(config), "sync", "--metrics-file", str(locked / "x.prom")),
                           without_capabilities())
    finally:
        locked.chmod(0o755)
    lines = err_lines(outcome.err)
    assert outcome.rc == 73 and len(lines) == 1, outcome
    assert "Permission denied" in lines[0] and COMMITTED in lines[0]
    # a read-only and a full file system
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    setup = (f"mount -t tmpfs -o size=1m,ro tmpfs {sh(str(ro))}; mount -t tmpfs -o size=64k tmpfs {sh(str(full))}; "
             f"dd if=/dev/zero of={sh(str(full / 'filler'))} bs=4096 2>/dev/null || true")
    outcomes = in_mount_namespace(tmp_path, setup, {
        "ro": crawler_cmd("--config", str(config), "sync", "--metrics-file", str(ro / "x.prom")),
        "full": crawler_cmd("--config", str(config), "sync", "--metrics-file", str(full / "x.prom")),
    })
    for name, code, needle in (("ro", 73, "Read-only file system"), ("full", 74, "disk is full")):
        lines = err_lines(outcomes[name].err)
        assert outcomes[name].rc == code and len(lines) == 1, (name, outcomes[name])
        assert needle in lines[0] and COMMITTED in lines[0] and "Traceback" not in outcomes[name].err
    _assert_run_committed(db)
