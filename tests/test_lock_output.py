"""The sync lock (flock, stale takeover) and the output renderers."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from crawler.errors import LockHeldError
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
