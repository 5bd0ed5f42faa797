"""The sync lock (flock, stale takeover, planted lock files) and the output renderers."""

import csv
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.errors import LockHeldError, StoreCreateError
from crawler.lock import SyncLock
from crawler.output import render


def test_second_lock_is_refused_with_the_holder_named(tmp_path):
    db = tmp_path / "inv.db"
    with SyncLock(db):
        with pytest.raises(LockHeldError) as info:
            SyncLock(db).acquire()
    assert info.value.exit_code == 75
    assert f"pid {os.getpid()}" in str(info.value)
    with SyncLock(db):  # released: can be taken again
        pass


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    db = tmp_path / "inv.db"
    # A child takes the lock and is killed without releasing it.
    code = ("import sys, os, signal; sys.path.insert(0, %r)\n"
            "from crawler.lock import SyncLock\n"
            "SyncLock(%r).acquire(); os.kill(os.getpid(), signal.SIGKILL)") % (os.getcwd(), str(db))
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    assert "pid" in (tmp_path / "inv.db.lock").read_text()  # stale text left behind
    with SyncLock(db) as lock:
        assert f"pid {os.getpid()}" in lock.path.read_text()


COLUMNS = ["package", "tag", "size"]
ROWS = [("app", "v1", 10), ("team/api", "a|b", None), ("x", "line\nbreak", 3)]


def test_render_formats():
    assert json.loads(render("json", COLUMNS, ROWS))[1] == {"package": "team/api", "tag": "a|b", "size": None}
    nd = [json.loads(l) for l in render("ndjson", COLUMNS, ROWS).splitlines()]
    assert [r["size"] for r in nd] == [10, None, 3]
    parsed = list(csv.reader(io.StringIO(render("csv", COLUMNS, ROWS))))
    assert parsed[0] == COLUMNS and parsed[3] == ["x", "line\nbreak", "3"]
    md = render("markdown", COLUMNS, ROWS).splitlines()
    assert md[0] == "| package | tag | size |" and "a\\|b" in md[3]
    table = render("table", COLUMNS, ROWS).splitlines()
    assert table[0].split() == COLUMNS and table[-1] == "(3 rows)"
    with pytest.raises(ValueError):
        render("xml", COLUMNS, ROWS)


# --- a lock file that may have been planted -------------------------------------------------------


def _refused(db) -> str:
    with pytest.raises(StoreCreateError) as info:
        SyncLock(db).acquire()
    assert info.value.exit_code == 73 and "\n" not in str(info.value)
    assert str(info.value).startswith(f"{db}.lock: ")
    return str(info.value)


def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    db = tmp_path / "inv.db"
    os.symlink(victim, f"{db}.lock")
    assert "symbolic link" in _refused(db)
    assert victim.read_text() == "precious\n"
    os.symlink(tmp_path / "would-be-created", tmp_path / "other.db.lock")   # dangling
    assert "symbolic link" in _refused(tmp_path / "other.db")
    assert not (tmp_path / "would-be-created").exists()


def test_a_fifo_lock_is_refused_without_hanging(tmp_path):
    db = tmp_path / "inv.db"
    os.mkfifo(f"{db}.lock")
    # In a child with a deadline: an open that blocked on the FIFO would hang.
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from crawler.lock import SyncLock\nfrom crawler.errors import StoreCreateError\n"
            "try:\n    SyncLock(%r).acquire()\nexcept StoreCreateError as e:\n    print(e); sys.exit(e.exit_code)\n"
            ) % (os.getcwd(), str(db))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 73 and "not a regular file (a FIFO)" in proc.stdout


def test_a_hard_link_or_foreign_content_is_never_truncated(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("pid 1 on host since 2026-01-01T00:00:00Z\n")   # even if it looks like a lock
    db = tmp_path / "inv.db"
    os.link(victim, f"{db}.lock")
    assert "2 hard links" in _refused(db)
    assert victim.read_text() == "pid 1 on host since 2026-01-01T00:00:00Z\n"
    other = tmp_path / "b.db"
    Path(f"{other}.lock").write_text("not a lock line: some file of yours\n")
    assert "something other than a lock line" in _refused(other)
    assert Path(f"{other}.lock").read_text() == "not a lock line: some file of yours\n"


def test_a_lock_owned_by_someone_else_is_refused(tmp_path, monkeypatch):
    db = tmp_path / "inv.db"
    lock = Path(f"{db}.lock")
    lock.write_text("")
    if os.geteuid() == 0:
        os.chown(lock, 65534, 65534)
    else:  # a non-root runner cannot give a file away: pretend to be another uid
        import crawler.lock as lock_mod
        monkeypatch.setattr(lock_mod.os, "geteuid", lambda: os.getuid() + 1)
    assert "owned by uid" in _refused(db)


def test_a_parent_that_is_a_file_is_named(tmp_path):
    (tmp_path / "state").write_text("a file, not a directory")
    message = _refused(tmp_path / "state" / "sub" / "inv.db")
    assert f"{tmp_path / 'state'} is not a directory" in message


def test_the_lock_line_is_rewritten_and_emptied_on_release(tmp_path):
    db = tmp_path / "inv.db"
    lock = Path(f"{db}.lock")
    lock.write_text("pid 99999999 on some-old-host-with-a-long-name since 2020-01-01T00:00:00Z\n")
    with SyncLock(db):
        text = lock.read_text()
        assert text.startswith(f"pid {os.getpid()} on ") and text.count("\n") == 1   # no tail left
    assert lock.read_text() == ""


def test_a_new_lock_file_is_private(tmp_path):
    with SyncLock(tmp_path / "inv.db") as lock:
        assert stat.S_IMODE(os.stat(lock.path).st_mode) == 0o600
