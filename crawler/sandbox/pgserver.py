"""Run a real PostgreSQL server (Debian's ``postgresql`` package) on loopback.

``initdb`` + ``pg_ctl`` in a temporary directory, listening on 127.0.0.1 at
a free port, with its socket in that directory and nothing else of the
machine touched (no cluster of ``pg_lsclusters``, no system service).
PostgreSQL refuses to run as root, so as root (CI) the server runs as the
``postgres`` system user the package creates (``runuser``), which owns the
data directory; as anyone else it runs as that user.

The superuser ``postgres`` gets a password (scram-sha-256 over TCP), so
the tests exercise the password path the crawler uses in production. A
database per test comes from ``create_database`` (``CREATE DATABASE ...
TEMPLATE``: a copy of a prepared template costs milliseconds).
``stop()`` shuts the server down (``pg_ctl stop -m immediate`` if a fast
stop does not finish), and an atexit hook stops any server left running.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_LIVE: list["PostgresServer"] = []
START_TIMEOUT_S = 60


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        server.stop()


class PostgresMissingError(RuntimeError):
    """Debian's postgresql package is not installed."""


def pg_bindir() -> Path:
    """The newest installed server's bin directory (/usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        raise PostgresMissingError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                                   "(apt-get install postgresql)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One server: ``start()``, ``url(database)``, ``create_database()``, ``stop()``."""

    def __init__(self, *, user: str = "postgres") -> None:
        # Its own directory under /tmp (which every user may traverse), so the
        # server's user needs no access to the caller's directories.
        self.dir = Path(tempfile.mkdtemp(prefix="ghcr-inventory-pg-"))
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "socket"
        self.port = 0
        self.superuser = "postgres"
        self.password = secrets.token_urlsafe(18)
        self._os_user = user if os.geteuid() == 0 else None
        self._bin = pg_bindir()
        self.started = False

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> "PostgresServer":
        self.socket_dir.mkdir(exist_ok=True)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._os_user:
            entry = pwd.getpwnam(self._os_user)
            # the server's user must reach its directory: every parent searchable
            for path in (self.dir, self.socket_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run([str(self._bin / "initdb"), "-D", str(self.data), "-U", self.superuser, "-A", "scram-sha-256",
                   f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        pwfile.unlink()
        self._configure()
        last = ""
        for _ in range(5):   # a port taken between choosing and binding: choose again
            self.port = _free_port()
            proc = self._run([str(self._bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
                              "-w", "-t", str(START_TIMEOUT_S), "-o", f"-p {self.port}", "start"], check=False)
            if proc.returncode == 0:
                self.started = True
                _LIVE.append(self)
                return self
            last = self.log_tail()
        raise RuntimeError(f"PostgreSQL did not start: {last}")

    def _configure(self) -> None:
        conf = self.data / "postgresql.conf"
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            # A throwaway test server: no fsync (only a machine crash could lose
            # data), but commits stay synchronous, so a server killed at once
            # (`restart`, `halt`) keeps every transaction it acknowledged.
            "fsync": "off", "full_page_writes": "off",
            "max_connections": "200", "shared_buffers": "64MB",
            "log_min_messages": "warning", "log_min_error_statement": "panic",
        }
        with conf.open("a") as out:
            out.write("\n# ghcr-inventory test server\n")
            out.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def stop(self) -> None:
        if not self.started:
            return
        pg_ctl = [str(self._bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "20"]
        if self._run([*pg_ctl, "-m", "fast", "stop"], check=False).returncode != 0:
            self._run([*pg_ctl, "-m", "immediate", "stop"], check=False)
        self.started = False
        if self in _LIVE:
            _LIVE.remove(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop (immediately: every session is cut) and start again on the same port."""
        self._run([str(self._bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "20", "-m", "immediate", "stop"])
        self.resume()

    def halt(self) -> None:
        """Stop at once (as a crash would): every connection is cut."""
        self._run([str(self._bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "20", "-m", "immediate", "stop"])

    def resume(self) -> None:
        self._run([str(self._bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                   "-t", str(START_TIMEOUT_S), "-o", f"-p {self.port}", "start"])

    # -- databases ----------------------------------------------------------------

    def url(self, database: str = "postgres", *, user: str | None = None) -> str:
        return f"postgresql://{user or self.superuser}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser (over the socket); returns psql's output."""
        proc = self._run([str(self._bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.superuser, "-d", database,
                          "-c", sql], env={"PGPASSWORD": self.password})
        return proc.stdout

    def create_database(self, name: str, *, template: str = "template0") -> str:
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.dir / "server.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- running as the server's user -------------------------------------------------

    def _run(self, argv: list[str], *, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        name = Path(argv[0]).name
        if self._os_user:
            argv = ["runuser", "-u", self._os_user, "--", *argv]
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", **(env or {})}
        proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=START_TIMEOUT_S + 30,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{name} failed "
                               f"({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc


@dataclass(frozen=True)
class Database:
    """One database on a server: where an SQLite path would stand in a config."""

    server: PostgresServer
    name: str

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def __str__(self) -> str:
        return self.url

    def exists(self) -> bool:
        return True

    def config_lines(self, password_env: str) -> str:
        """The [database] keys naming it (the password from `password_env`)."""
        return f'url = "{self.url}"\npassword_env = "{password_env}"'


def have_postgres() -> bool:
    try:
        pg_bindir()
    except PostgresMissingError:
        return False
    return shutil.which("runuser") is not None or os.geteuid() != 0
