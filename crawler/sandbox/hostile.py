"""Hostile hosts for the crawler's own files: a foreign SQLite write lock, a full disk, a read-only file system.

- ``ForeignWriteLock(path)`` — another *process* opens the SQLite file and holds
  ``BEGIN IMMEDIATE`` (or ``EXCLUSIVE``) until released, for at most
  ``seconds`` if given. ``acquire()`` returns only once the child printed
  ``locked`` (bounded by ``timeout_s``): no sleeping to synchronise. The child
  also lets go when its stdin closes, so a dead test never leaves a lock behind.
- ``tiny_filesystem(dir, size=…)`` — a tmpfs of ``size`` bytes mounted on ``dir``;
  ``fill_up(dir, free=N)`` fills it until at most N bytes (plus less than one
  block) are free and gives the space back on exit.
- ``read_only(dir)`` — ``dir`` bind-mounted onto itself read-only, content kept
  (a database on a read-only file system); undone on exit.

Mounting needs root (``CAP_SYS_ADMIN``), which the tests have here and in CI.
Where mounting is impossible these raise ``HostileEnvError`` saying why; they
never skip. Every external command runs with a timeout, and unmounting falls
back to a lazy unmount so a busy mount cannot hang a test's teardown.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

__all__ = ["HostileEnvError", "ForeignWriteLock", "tiny_filesystem", "fill_up", "read_only", "free_bytes", "is_mount_point"]

LOCK_MODES = ("immediate", "exclusive")

# The child: lock, say so, wait for a line on stdin (or EOF, or the deadline), roll back, say so.
_LOCKER = r"""
import select, sqlite3, sys
path, mode, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
conn = sqlite3.connect(path, isolation_level=None, timeout=0)
conn.execute("BEGIN " + mode.upper())
print("locked", flush=True)
select.select([sys.stdin], [], [], None if seconds < 0 else seconds)
conn.execute("ROLLBACK")
conn.close()
print("released", flush=True)
"""


class HostileEnvError(RuntimeError):
    """A hostile environment could not be set up (the message says what the host lacks)."""


class ForeignWriteLock:
    """A write lock on a SQLite database held by a separate process.

    ``mode`` "immediate" takes SQLite's RESERVED lock (other connections may
    read, none may write: ``database is locked``); "exclusive" also keeps
    readers out of a rollback-journal database. ``seconds`` None holds until
    ``release()``; else the child lets go by itself after that long
    (``wait_released()`` observes it).
    """

    def __init__(self, path: str | os.PathLike, *, mode: str = "immediate", seconds: float | None = None,
                 timeout_s: float = 10.0) -> None:
        if mode not in LOCK_MODES:
            raise ValueError(f"mode must be one of {LOCK_MODES}")
        self.path = Path(path)
        self.mode = mode
        self.seconds = seconds
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen | None = None
        self.held = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def acquire(self) -> "ForeignWriteLock":
        """Start the child and return once it holds the lock (HostileEnvError if it cannot)."""
        if self._proc is not None:
            raise RuntimeError("already acquired")
        seconds = -1.0 if self.seconds is None else float(self.seconds)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, str(self.path), self.mode, str(seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self._read_line(self.timeout_s)
        if line != "locked":
            why = self._stderr() or line or f"no answer in {self.timeout_s} s"
            self._kill()
            raise HostileEnvError(f"no foreign lock on {self.path}: {why}")
        self.held = True
        return self

    def release(self, timeout_s: float | None = None) -> None:
        """Tell the child to roll back and exit; wait for it (bounded)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                proc.stdin.write("release\n")
                proc.stdin.flush()
        self._finish(timeout_s)

    def wait_released(self, timeout_s: float | None = None) -> None:
        """Wait (bounded) for a ``seconds``-limited lock to be let go by the child itself."""
        if self._proc is None:
            return
        line = self._read_line(self.timeout_s if timeout_s is None else timeout_s)
        if line != "released":
            raise HostileEnvError(f"the lock on {self.path} was not released in time ({line or 'no answer'})")
        self._finish(timeout_s)

    def _finish(self, timeout_s: float | None) -> None:
        proc, self._proc = self._proc, None
        self.held = False
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(self.timeout_s if timeout_s is None else timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()

    def _read_line(self, timeout_s: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout_s):
                return ""
        return self._proc.stdout.readline().strip()

    def _stderr(self) -> str:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return ""
        try:
            proc.wait(2)
            return proc.stderr.read().strip().splitlines()[-1] if proc.returncode is not None else ""
        except (subprocess.TimeoutExpired, IndexError, OSError):
            return ""

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._finish(5)

    def __enter__(self) -> "ForeignWriteLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# -- file systems --------------------------------------------------------------------


def _run(argv: list[str], what: str, timeout_s: float = 10.0) -> None:
    if shutil.which(argv[0]) is None:
        raise HostileEnvError(f"cannot {what}: no {argv[0]!r} command on this host")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise HostileEnvError(f"cannot {what}: {' '.join(argv)} hung for {timeout_s} s") from exc
    if proc.returncode != 0:
        hint = "" if os.geteuid() == 0 else " (mounting needs root: CAP_SYS_ADMIN)"
        raise HostileEnvError(f"cannot {what}: {' '.join(argv)}: {proc.stderr.strip() or proc.returncode}{hint}")


def _unmount(directory: Path, timeout_s: float = 10.0) -> None:
    try:
        _run(["umount", str(directory)], f"unmount {directory}", timeout_s)
    except HostileEnvError:
        # Still busy (a file left open): detach it now, the kernel frees it later.
        _run(["umount", "-l", str(directory)], f"unmount {directory}", timeout_s)


def is_mount_point(directory: str | os.PathLike) -> bool:
    """Whether something is mounted on ``directory`` (bind mounts too, which ``os.path.ismount`` misses)."""
    target = os.path.realpath(directory)
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        for line in mounts:
            point = line.split()[4].encode().decode("unicode_escape")  # spaces come as \040
            if point == target:
                return True
    return False


def free_bytes(directory: str | os.PathLike) -> int:
    """Bytes an unprivileged writer may still use on ``directory``'s file system."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


@contextlib.contextmanager
def tiny_filesystem(directory: str | os.PathLike, *, size: int = 256 * 1024, timeout_s: float = 10.0) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes (rounded up to pages) mounted on ``directory`` (created if missing)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-t", "tmpfs", "-o", f"size={int(size)},mode=0755", "tmpfs", str(path)],
         f"mount a {size}-byte tmpfs on {path}", timeout_s)
    try:
        yield path
    finally:
        _unmount(path, timeout_s)


@contextlib.contextmanager
def fill_up(directory: str | os.PathLike, *, free: int = 0, filler_name: str = ".sandbox-filler") -> Iterator[Path]:
    """Fill ``directory``'s file system with one file until ``free`` to ``free + block − 1`` bytes are free.

    ``free=0`` leaves it completely full (the next write gets ``ENOSPC``).
    Yields the filler's path; deleting it early gives the space back; on exit
    it is removed. Meant for a ``tiny_filesystem``: on a big disk it refuses
    to write more than 64 MiB.
    """
    path = Path(directory)
    filler = path / filler_name
    block = os.statvfs(path).f_frsize or 4096
    need = free_bytes(path) - free
    if need > 64 << 20:
        raise HostileEnvError(f"{path} has {need} bytes to fill: use tiny_filesystem() for a full disk")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        zeros = bytes(1 << 16)
        for _ in range(10_000):  # bounded: each round writes at least one block or stops
            room = free_bytes(path) - free
            chunk = (room // block) * block
            if chunk <= 0:
                break
            try:
                os.write(fd, zeros[: min(chunk, len(zeros))])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    finally:
        os.close(fd)
    try:
        yield filler
    finally:
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()


@contextlib.contextmanager
def read_only(directory: str | os.PathLike, *, timeout_s: float = 10.0) -> Iterator[Path]:
    """``directory`` made read-only in place (bind mount onto itself, remounted ``ro``), content kept.

    Opening for writing, creating and deleting under it fail with ``EROFS``
    until exit. Only new opens are refused: a descriptor opened for writing
    before entering (through the directory's own mount) still writes, so open
    the database after entering.
    """
    path = Path(directory)
    if not path.is_dir():
        raise HostileEnvError(f"cannot make {path} read-only: not a directory")
    _run(["mount", "--bind", str(path), str(path)], f"bind-mount {path}", timeout_s)
    try:
        _run(["mount", "-o", "remount,bind,ro", str(path)], f"remount {path} read-only", timeout_s)
    except BaseException:
        _unmount(path, timeout_s)
        raise
    if _writable(path):
        _unmount(path, timeout_s)
        raise HostileEnvError(f"{path} is still writable after remounting it read-only")
    try:
        yield path
    finally:
        _unmount(path, timeout_s)


def _writable(path: Path) -> bool:
    probe = path / ".sandbox-ro-probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True
