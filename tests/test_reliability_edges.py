"""Hostile environments and bad input at the edges of the CLI: read-only
file systems, full disks, planted lock files, runaway queries, secrets in
URLs and tokens, escape sequences in data. Each ends in one clear line naming
what and where and a documented exit code — never a traceback. Every scenario
is a row of RELIABILITY asserted by the test it names; README's table is
rendered from these rows (tests/reliability.py).

File-system faults are real: a tmpfs mounted read-only or nearly full in a
private mount namespace (`unshare`), a directory made unwritable for a child
that runs without capabilities (root ignores permission bits otherwise)."""

from __future__ import annotations

import errno
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawler import cli
from tests.reliability import Row

ROOT = Path(__file__).resolve().parent.parent

RELIABILITY = [
    Row("internal-error", "an unexpected exception inside a command (a bug)",
        "one line `internal error: <Type>: <msg> (rerun with -vv for the traceback)`, exit 70; "
        "the traceback only at debug level", test="test_unexpected_exception_is_one_line_exit_70"),
    Row("unexpected-oserror", "an untranslated OSError (disk full, read-only file system) reaching the CLI",
        "one line naming the file, exit 74 / 73", test="test_unexpected_oserror_is_one_line_74_or_73"),
]


# --- helpers ------------------------------------------------------------------------------

def err_lines(text: str) -> list[str]:
    """The lines the CLI printed about the outcome (not log events)."""
    return [line for line in text.splitlines() if line.startswith(f"{cli.PROG}:")]


def crawler_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "crawler", *args]


def run_crawler(*args: str, env: dict | None = None, prefix: list[str] = (), timeout: float = 60,
                cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *crawler_cmd(*args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


# --- last-resort handler -------------------------------------------------------------------

def test_unexpected_exception_is_one_line_exit_70(tmp_path, monkeypatch, capsys):
    def boom(args, **_):
        raise RuntimeError("boom\nwith a second line")

    monkeypatch.setattr(cli, "cmd_status", boom)
    assert cli.main(["--log-format", "json", "status", "--db", str(tmp_path / "x.db")]) == 70
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "ghcr-inventory: internal error: RuntimeError: boom with a second line "
        "(rerun with -vv for the traceback)"]
    # -vv: the traceback too, the one line still last
    assert cli.main(["--log-format", "json", "-vv", "status", "--db", str(tmp_path / "x.db")]) == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in boom" in err
    assert err.strip().splitlines()[-1].startswith("ghcr-inventory: internal error: RuntimeError: boom")


@pytest.mark.parametrize("code, exit_code", [(errno.ENOSPC, 74), (errno.EROFS, 73)])
def test_unexpected_oserror_is_one_line_74_or_73(tmp_path, monkeypatch, capsys, code, exit_code):
    where = str(tmp_path / "somewhere" / "file")

    def fail(args, **_):
        raise OSError(code, os.strerror(code), where)

    monkeypatch.setattr(cli, "cmd_status", fail)
    assert cli.main(["--log-format", "json", "status"]) == exit_code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ghcr-inventory: error: {where}: ")
    assert os.strerror(code) in lines[0] and "Traceback" not in lines[0]
