"""`errors.storage_error`: OSError and sqlite3 failures on the inventory's
files become the StoreError subclass that carries their exit code (73 cannot
create, 74 could not write, 75 locked beyond the busy timeout). The sqlite3
errors here are real ones, provoked against real files."""

from __future__ import annotations

import errno
import os
import sqlite3

import pytest

from crawler.errors import (InventoryError, StoreBusyError, StoreCreateError, StoreError,
                            storage_error)


@pytest.mark.parametrize("code, exit_code", [
    (errno.ENOSPC, 74), (errno.EDQUOT, 74), (errno.EIO, 74),
    (errno.EROFS, 73), (errno.EACCES, 73), (errno.EPERM, 73), (errno.ENOTDIR, 73), (errno.EISDIR, 73),
    (errno.ELOOP, 73),
])
def test_oserror_by_errno(code, exit_code):
    exc = OSError(code, os.strerror(code), "/var/lib/inv/inventory.db")
    err = storage_error(exc, "/var/lib/inv/inventory.db")
    assert isinstance(err, StoreError) and err.exit_code == exit_code
    assert str(err).startswith("/var/lib/inv/inventory.db: ")
    assert os.strerror(code) in str(err)
    assert str(err).count("/var/lib/inv/inventory.db") == 1   # where is not repeated


def test_oserror_names_the_other_file_when_it_differs():
    exc = NotADirectoryError(errno.ENOTDIR, "Not a directory", "/srv/file/inv.db.lock")
    err = storage_error(exc, "/srv/file/inv.db")
    assert isinstance(err, StoreCreateError)
    assert str(err) == ("/srv/file/inv.db: cannot create or open for writing "
                        "(Not a directory: /srv/file/inv.db.lock)")


def test_a_store_error_passes_through():
    original = StoreBusyError("held", where="x")
    assert storage_error(original, "y") is original


def _sqlite_error(action) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as info:
        action()
    return info.value


def test_real_sqlite_errors(tmp_path):
    db = tmp_path / "inv.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE t (x BLOB)")

    # full: a page budget the insert exceeds
    conn.execute("PRAGMA max_page_count = 3")
    full = _sqlite_error(lambda: conn.execute("INSERT INTO t VALUES (zeroblob(100000))"))
    # busy: another connection holds the write lock, no busy timeout left
    conn.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    busy = _sqlite_error(lambda: other.execute("SELECT * FROM t"))
    conn.execute("ROLLBACK")
    # read-only: a write through a mode=ro connection
    ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    readonly = _sqlite_error(lambda: ro.execute("INSERT INTO t VALUES (1)"))
    # cannot open: the parent directory does not exist
    cantopen = _sqlite_error(lambda: sqlite3.connect(tmp_path / "missing" / "inv.db").execute("SELECT 1"))
    for c in (conn, other, ro):
        c.close()

    cases = [(full, StoreError, 74, "disk is full"), (busy, StoreBusyError, 75, "try again later"),
             (readonly, StoreCreateError, 73, "readonly database"),
             (cantopen, StoreCreateError, 73, "unable to open database file")]
    for exc, cls, code, needle in cases:
        err = storage_error(exc, str(db))
        assert type(err) is cls and err.exit_code == code, (exc, err)
        assert needle in str(err) and "\n" not in str(err)


@pytest.mark.parametrize("text, code", [
    ("database or disk is full", 74), ("disk I/O error", 74), ("database is locked", 75),
    ("database table is locked", 75), ("attempt to write a readonly database", 73),
    ("unable to open database file", 73), ("database disk image is malformed", 74),
])
def test_sqlite_texts_without_an_error_name(text, code):
    # aiosqlite and older builds may carry only the text
    assert storage_error(sqlite3.OperationalError(text), "db").exit_code == code


def test_store_errors_are_inventory_errors_and_pickle():
    import pickle
    err = storage_error(OSError(errno.EROFS, "Read-only file system"), "/ro/inv.db")
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, InventoryError) and again.exit_code == 73 and str(again) == str(err)


async def test_a_failed_open_closes_what_it_opened(tmp_path, monkeypatch):
    """A pragma refused while opening must not leave the write connection's
    (non-daemon) thread running: the process would never exit."""
    import threading

    from crawler.store import sqlite as store_sqlite

    async def refuse(conn):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store_sqlite, "_pragmas", refuse)
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(StoreError, match="inventory.db"):
        await store_sqlite.SQLiteStore.open(tmp_path / "inventory.db")
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive() and not t.daemon]
    assert left == []
