"""The sync lock: one `sync` per database at a time.

An flock(2) on `<database>.lock`: the kernel drops it when the holder dies,
so a lock left by a killed process is simply taken over; the file's text
(pid, host, start time) only serves the message telling who holds it.
A second sync exits 75 (EX_TEMPFAIL) so a timer just tries again later.

The tool runs as root from timers and cron, often in a directory others can
write, so the lock file is opened as something that may have been planted:
never through a symbolic link, never a FIFO or device, never a file someone
else owns or that has another name (a hard link), and never rewritten unless
it holds nothing or a lock line of ours. Anything else is refused in one line
(exit 73, EX_CANTCREAT) and left as it is. Creating it where that cannot
work (read-only file system, a parent that is a file, disk full) is one line
too: 73 or 74, by `errors.storage_error`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import stat
from datetime import datetime, timezone
from pathlib import Path

import structlog

from .errors import LockHeldError, StoreCreateError, StoreError, storage_error
from .files import make_parent

log = structlog.get_logger("crawler.lock")

# O_NOFOLLOW: a symlink at the path fails with ELOOP instead of opening its
# target (`ln -s /etc/shadow inventory.db.lock` must not truncate /etc/shadow).
# O_NONBLOCK: a FIFO planted there cannot hang the open. O_CLOEXEC: no child
# process inherits the lock.
_OPEN = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_LINE = re.compile(r"pid \d+ on \S* since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_MAX_TEXT = 512


class SyncLock:
    def __init__(self, database: Path) -> None:
        self.path = Path(str(database) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> "SyncLock":
        where = str(self.path)
        try:
            make_parent(self.path, "lock file")
            fd = _open_lock(self.path)
        except StoreError:
            raise
        except OSError as exc:
            raise storage_error(exc, where) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise LockHeldError(f"another sync holds the lock ({holder or 'holder unknown'}); "
                                f"try again later", where=where) from None
        except OSError as exc:
            os.close(fd)
            raise storage_error(exc, where) from None
        try:
            previous = _read(fd)
            if previous:
                log.info("lock_taken_over", previous=previous, lock=where)
            started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            line = f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode()
            # Write, then cut what an older, longer line left behind: the text is
            # never absent while we hold the lock.
            if os.pwrite(fd, line, 0) != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.ftruncate(fd, len(line))
        except OSError as exc:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise storage_error(exc, where) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass  # disk trouble: the text only names a holder; the flock is what counts
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "SyncLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _open_lock(path: Path) -> int:
    """The lock file's descriptor, created here or checked to be ours.

    First try to create it exclusively (O_CREAT | O_EXCL fails on any existing
    name, a dangling symlink included, so it never creates a file elsewhere):
    a file made that way is ours. Otherwise open what is there without
    following a link, and keep it only if fstat shows a regular file owned by
    this user with one name, holding nothing or one of our lock lines; a file
    we did not write is never truncated."""
    where = str(path)
    try:
        return os.open(path, _OPEN | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, _OPEN)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreCreateError("the lock file is a symbolic link: refusing to follow it (remove it "
                                   "if you did not make it; the lock must be a plain file)",
                                   where=where) from None
        raise
    try:
        problem = _not_ours(fd)
    except OSError:
        os.close(fd)
        raise
    if problem:
        os.close(fd)
        raise StoreCreateError(f"refusing to use the lock file: {problem}; it was left untouched "
                               f"(remove it if it is stale)", where=where)
    return fd


def _not_ours(fd: int) -> str | None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return f"it is not a regular file ({_kind(st.st_mode)})"
    if st.st_uid != os.geteuid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_nlink != 1:
        return f"it has {st.st_nlink} hard links (a link to another file?)"
    text = os.pread(fd, _MAX_TEXT + 1, 0)
    if len(text) > _MAX_TEXT or (text.strip() and not _LINE.fullmatch(text.decode(errors="replace").strip())):
        return "it holds something other than a lock line"
    return None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "an unknown kind"


def _read(fd: int) -> str:
    try:
        return os.pread(fd, _MAX_TEXT, 0).decode(errors="replace").strip()
    except OSError:
        return ""
