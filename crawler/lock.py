"""The sync lock: one `sync` per database at a time.

An flock(2) on `<database>.lock`: the kernel drops it when the holder dies,
so a lock left by a killed process is simply taken over; the file's text
(pid, host, start time) only serves the message telling who holds it.
A second sync exits 75 (EX_TEMPFAIL) so a timer just tries again later.
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

import structlog

from .errors import LockHeldError

log = structlog.get_logger("crawler.lock")


class SyncLock:
    def __init__(self, database: Path) -> None:
        self.path = Path(str(database) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> "SyncLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise LockHeldError(f"another sync holds the lock ({holder or 'holder unknown'}); "
                                f"try again later", where=str(self.path)) from None
        previous = _read(fd)
        if previous:
            log.info("lock_taken_over", previous=previous, lock=str(self.path))
        started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "SyncLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        return ""
