"""Hostile hosts: a foreign process holding a SQLite write lock, a full disk, a read-only file system."""

from __future__ import annotations

import errno
import os
import sqlite3

import pytest

from crawler.sandbox.hostile import (
    ForeignWriteLock,
    HostileEnvError,
    fill_up,
    free_bytes,
    is_mount_point,
    read_only,
    tiny_filesystem,
)


def make_db(path, *, wal=False):
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    return path


def insert(path):
    conn = sqlite3.connect(path, timeout=0)
    try:
        conn.execute("INSERT INTO t VALUES (2)")
        conn.commit()
    finally:
        conn.close()


def count(path):
    conn = sqlite3.connect(path, timeout=0)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


# -- a foreign write lock ------------------------------------------------------------------


@pytest.mark.parametrize("wal", [False, True])
def test_foreign_lock_blocks_writers_until_released(tmp_path, wal):
    db = make_db(tmp_path / "inventory.db", wal=wal)
    with ForeignWriteLock(db) as lock:
        assert lock.held and lock.pid not in (None, os.getpid())
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            insert(db)
        assert count(db) == 1  # BEGIN IMMEDIATE still lets readers in
    assert not lock.held
    insert(db)
    assert count(db) == 2


def test_exclusive_lock_keeps_readers_out_of_a_journal_database(tmp_path):
    db = make_db(tmp_path / "inventory.db")
    lock = ForeignWriteLock(db, mode="exclusive").acquire()
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            count(db)
    finally:
        lock.release()
    assert count(db) == 1


def test_a_timed_lock_lets_go_by_itself(tmp_path):
    db = make_db(tmp_path / "inventory.db")
    lock = ForeignWriteLock(db, seconds=1.5).acquire()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        insert(db)
    lock.wait_released(timeout_s=10)
    assert not lock.held
    insert(db)


def test_lock_failures_are_reported(tmp_path):
    with pytest.raises(HostileEnvError, match="no foreign lock.*unable to open"):
        ForeignWriteLock(tmp_path / "missing-dir" / "x.db").acquire()
    db = make_db(tmp_path / "inventory.db")
    with ForeignWriteLock(db):
        with pytest.raises(HostileEnvError, match="database is locked"):
            ForeignWriteLock(db).acquire()  # someone already holds it
    with pytest.raises(ValueError):
        ForeignWriteLock(db, mode="shared")


# -- a full disk --------------------------------------------------------------------------


def test_tiny_filesystem_fills_up_and_gives_space_back(tmp_path):
    where = tmp_path / "tiny"
    with tiny_filesystem(where, size=256 * 1024) as root:
        assert is_mount_point(root)
        st = os.statvfs(root)
        assert st.f_blocks * st.f_frsize == 256 * 1024
        db = make_db(root / "inventory.db")
        with fill_up(root) as filler:
            assert free_bytes(root) == 0 and filler.exists()
            fd = os.open(root / "more", os.O_WRONLY | os.O_CREAT)
            try:
                with pytest.raises(OSError) as info:
                    os.write(fd, b"x" * 4096)
            finally:
                os.close(fd)
            assert info.value.errno == errno.ENOSPC
            conn = sqlite3.connect(db)
            with pytest.raises(sqlite3.OperationalError, match="full"):
                conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(20_000)])
                conn.commit()
            conn.close()
        os.unlink(root / "more")
        assert free_bytes(root) > 128 * 1024
        with fill_up(root, free=10_000):
            block = os.statvfs(root).f_frsize
            assert 10_000 <= free_bytes(root) < 10_000 + block
        insert(db)
    assert not is_mount_point(where)


def test_fill_up_refuses_a_big_disk(tmp_path):
    with pytest.raises(HostileEnvError, match="tiny_filesystem"):
        with fill_up(tmp_path):
            pass


# -- a read-only file system ----------------------------------------------------------------


def test_read_only_keeps_content_and_refuses_writes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = make_db(data / "inventory.db")
    with read_only(data) as ro:
        assert ro == data and is_mount_point(data)
        assert count(db) == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
            insert(db)
        with pytest.raises(OSError) as info:
            (data / "new-file").write_text("x")
        assert info.value.errno == errno.EROFS
    assert not is_mount_point(data)
    insert(db)
    assert count(db) == 2


def test_read_only_on_a_tiny_filesystem(tmp_path):
    with tiny_filesystem(tmp_path / "tiny") as root:
        make_db(root / "inventory.db")
        with read_only(root):
            with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
                insert(root / "inventory.db")
        insert(root / "inventory.db")


def test_mount_trouble_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(HostileEnvError, match="not a directory"):
        with read_only(tmp_path / "missing"):
            pass
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(HostileEnvError, match="no 'mount' command"):
        with tiny_filesystem(tmp_path / "tiny"):
            pass
