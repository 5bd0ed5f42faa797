"""Helpers of the CLI-edge reliability tests (tests/test_reliability_edges.py,
tests/test_reliability_files.py): the real command in a child process, a
child without capabilities (so permission bits apply to root), a private
mount namespace for read-only and full file systems."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from crawler import cli

ROOT = Path(__file__).resolve().parent.parent


def err_lines(text: str) -> list[str]:
    """The lines the CLI printed about the outcome (not log events)."""
    return [line for line in text.splitlines() if line.startswith(f"{cli.PROG}:")]


def crawler_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "crawler", *args]


def run_crawler(*args: str, env: dict | None = None, prefix: list[str] = (), timeout: float = 60,
                cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The real command in a child process. Its output is decoded by hand:
    text mode would turn every carriage return into a line break."""
    proc = subprocess.run([*prefix, *crawler_cmd(*args)], capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)
    proc.stdout, proc.stderr = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    return proc


def without_capabilities() -> list[str]:
    """A prefix running a child that permission bits apply to: root keeps its
    uid (it owns the files) but drops every capability (CAP_DAC_OVERRIDE)."""
    return ["setpriv", "--bounding-set=-all", "--inh-caps=-all"] if os.geteuid() == 0 else []


class Outcome:
    def __init__(self, rc: int, out: str, err: str) -> None:
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self) -> str:
        return f"Outcome(rc={self.rc}, out={self.out[-300:]!r}, err={self.err[-600:]!r})"


def run_argv(argv: list[str], prefix: list[str] = ()) -> Outcome:
    proc = subprocess.run([*prefix, *argv], capture_output=True, timeout=60, cwd=ROOT)
    return Outcome(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))


def in_mount_namespace(tmp_path: Path, setup: str, commands: dict[str, list[str]],
                       timeout: float = 120) -> dict[str, Outcome]:
    """Run `setup` (sh, may mount) then each command in a private mount
    namespace (mounts vanish with it); returns each command's outcome.
    Root gets one with `unshare --mount`; anyone else a user namespace
    mapping them to root, where mounting a tmpfs is allowed too."""
    prefix = (["unshare", "--mount", "--propagation", "private"] if os.geteuid() == 0
              else ["unshare", "--user", "--map-root-user", "--mount"])
    out = tmp_path / "outcomes"
    out.mkdir(exist_ok=True)
    lines = ["set -eu", setup, "set +e"]
    for name, argv in commands.items():
        quoted = " ".join(sh(a) for a in argv)
        lines.append(f"{quoted} >{sh(str(out / name))}.out 2>{sh(str(out / name))}.err; "
                     f"echo $? >{sh(str(out / name))}.rc")
    proc = subprocess.run([*prefix, "sh", "-c", "\n".join(lines)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, f"namespace setup failed: {proc.stderr}"
    return {name: Outcome(int((out / f"{name}.rc").read_text()), (out / f"{name}.out").read_text(),
                          (out / f"{name}.err").read_text()) for name in commands}


def sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def synced_db(tmp_path: Path, name: str = "src") -> Path:
    """A real inventory (WAL mode, schema, one finished run) made by `sync`
    with no owners: no network involved."""
    work = tmp_path / name
    work.mkdir()
    config = work / "config.toml"
    config.write_text('[database]\npath = "inventory.db"\n')
    assert cli.main(["--config", str(config), "--log-format", "json", "--log-level", "error", "sync"]) == 0
    db = work / "inventory.db"
    assert not Path(f"{db}-wal").exists()        # closed cleanly: everything is in the file
    return db


def no_owner_config(tmp_path: Path, db: Path, name: str = "config.toml", extra: str = "") -> Path:
    """A config with no owners: `sync` runs locally (lock, database, run
    record) without any network, which is all these faults need."""
    config = tmp_path / name
    config.write_text(f'[database]\npath = "{db}"\n{extra}')
    return config


def one_error_line(result, code: int) -> str:
    """`result` (a CompletedProcess or an Outcome) exited `code` having
    printed exactly one line, an error line; returns it."""
    rc, err = (result.rc, result.err) if isinstance(result, Outcome) else (result.returncode, result.stderr)
    lines = err.strip().splitlines()
    assert rc == code and len(lines) == 1 and "Traceback" not in err, result
    assert lines[0].startswith(f"{cli.PROG}: error: ")
    return lines[0]


def wait_for(stream, needle: bytes, within_s: float) -> bytes:
    """Read a child's pipe until `needle` shows up (bounded: fails, never hangs)."""
    seen, deadline = b"", time.monotonic() + within_s
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} never came: {seen[-500:]!r}"
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            chunk = os.read(stream.fileno(), 65536)
            assert chunk, f"the child closed its stderr first: {seen[-500:]!r}"
            seen += chunk
    return seen
