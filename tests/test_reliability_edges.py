"""Bad input and hostile conditions at the edges of the CLI: a bug or an
untranslated OSError reaching it, a reader that goes away, runaway queries,
secrets in URLs and tokens, escape sequences in data, failures in the
summary, options after the command, an unreachable registry. Each ends in
one clear line naming what and where and a documented exit code — never a
traceback. Every scenario is a row of RELIABILITY asserted by the test it
names; README's table is rendered from these rows (tests/reliability.py).
Hostile file systems are in tests/test_reliability_files.py."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from crawler import cli
from tests.edges import ROOT, crawler_cmd, err_lines, no_owner_config, one_error_line, run_crawler, synced_db, wait_for
from tests.reliability import Row

RELIABILITY = [
    Row("internal-error", "an unexpected exception inside a command (a bug)",
        "one line `internal error: <Type>: <msg> (rerun with -vv for the traceback)`, exit 70; "
        "the traceback only at debug level", test="test_unexpected_exception_is_one_line_exit_70"),
    Row("unexpected-oserror", "an untranslated OSError (disk full, read-only file system) reaching the CLI",
        "one line naming the file, exit 74 / 73", test="test_unexpected_oserror_is_one_line_74_or_73"),
    Row("broken-pipe", "the reader of `query`'s output going away (`| head`)",
        "quiet exit 141, as if killed by SIGPIPE (not mistaken for a storage failure)",
        test="test_a_reader_that_goes_away_is_a_quiet_141"),
    Row("query-signal", "Ctrl-C (SIGINT) or SIGTERM during a runaway `query` (an endless recursive CTE)",
        "stops within a second: one line, exit 130 / 143", test="test_a_runaway_query_stops_on_a_signal"),
    Row("query-timeout", "a `query` or `report` running past `--timeout` (default 30 s)",
        "stopped by SQLite's progress handler: one line naming `--timeout`, exit 124",
        test="test_query_and_report_stop_at_their_timeout"),
    Row("config-secrets", "`user:password@` in `github.api_url`/`graphql_url`/`registry.url`; a token (env or "
        "file) holding CR LF or another control character",
        "exit 2 before any request, one line naming the key, variable or file; the secret never echoed",
        test="test_secrets_in_urls_and_broken_tokens_are_exit_2_without_echo"),
    Row("token-file-mode", "a `token_file` group or others can read",
        "one warning naming the file and its mode (like ssh); the run goes on",
        test="test_an_exposed_token_file_is_warned_about_once_and_the_sync_goes_on"),
    Row("escapes", "package names and labels from the API and registry holding ANSI/OSC escape sequences and C1 "
        "controls",
        "escaped (`\\x1b`) in console logs, the progress line, the summary, error lines and `table`/`markdown` "
        "output; JSON/NDJSON/CSV keep the exact bytes", test="test_escape_sequences_from_the_api_never_reach_the_terminal"),
    Row("failures-listed", "a sync where 8 packages fail",
        "the summary lists the first 5 as `owner/package: reason`, then \"… and 3 more\"",
        test="test_the_sync_summary_lists_the_first_failures"),
    Row("status-failures", "`status` after such a run", "the last run's failures (from `run_errors`) below its table",
        test="test_status_shows_the_last_runs_failures"),
    Row("options-after", "`-v`, `--config`, `--log-format`, `--log-level` after the command (`sync -v`)",
        "accepted as before it; given in both places, the later one wins",
        test="test_global_options_work_after_the_command"),
    Row("connect-message", "an `http://` registry refusing connections",
        "`cannot connect to HOST:PORT (Connection refused)` (not aiohttp's `ssl:<ssl.SSLContext …>`), exit 4",
        test="test_an_unreachable_registry_is_named_host_port_and_reason"),
]


# --- last-resort handler -------------------------------------------------------------------

def test_unexpected_exception_is_one_line_exit_70(tmp_path, monkeypatch, capsys):
    def boom(args, **_):
        raise RuntimeError("boom\nwith a second line")

    monkeypatch.setattr(cli, "cmd_status", boom)
    assert cli.main(["--log-format", "json", "status", "--db", str(tmp_path / "x.db")]) == 70
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "ghcr-inventory: internal error: RuntimeError: boom\\x0awith a second line "
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


def test_a_reader_that_goes_away_is_a_quiet_141(tmp_path):
    db = synced_db(tmp_path)
    # The reader is gone before the child writes: its stdout is a pipe whose
    # read end is already closed (`| head` that has exited), so the first write fails.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(crawler_cmd("query", "--db", str(db), "--format", "csv", "SELECT * FROM v_sync_runs"),
                              stdout=write_end, stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == b"", proc


# --- runaway queries: --timeout, SIGINT/SIGTERM ----------------------------------------------------

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_runaway_query_stops_on_a_signal(tmp_path, signum, code):
    db = synced_db(tmp_path)
    proc = subprocess.Popen(crawler_cmd("--log-format", "json", "--log-level", "debug", "query", "--db", str(db),
                                        "--timeout", "0", RUNAWAY),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        before = wait_for(proc.stderr, b'"query_started"', within_s=30)
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = (before + err).decode()
    assert proc.returncode == code and elapsed < 5, (proc.returncode, elapsed, err[-500:])
    lines = err_lines(err)
    assert lines == [f"ghcr-inventory: error: query stopped by {signal.Signals(signum).name}; nothing was changed"]
    assert "Traceback" not in err and out == b""


def test_query_and_report_stop_at_their_timeout(tmp_path):
    db = synced_db(tmp_path)
    started = time.monotonic()
    proc = run_crawler("query", "--db", str(db), "--timeout", "0.5", RUNAWAY)
    assert time.monotonic() - started < 10
    line = one_error_line(proc, 124)
    assert line == "ghcr-inventory: error: query stopped after 0.5s by --timeout 0.5 (0 = no limit)"
    # a report over 50,000 packages: a deadline already past at SQLite's first check
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT INTO owners (registry, name, kind, discovery, first_seen) "
                 "VALUES ('ghcr.io', 'acme', 'org', 'rest', '2026-01-01T00:00:00Z')")
    conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000) "
                 "INSERT INTO packages (owner_id, name, first_seen) "
                 "SELECT 1, 'p' || i, '2026-01-01T00:00:00Z' FROM n")
    conn.close()
    assert run_crawler("report", "summary", "--db", str(db)).returncode == 0
    proc = run_crawler("report", "summary", "--db", str(db), "--timeout", "0.000001")
    line = one_error_line(proc, 124)
    assert "report summary stopped after 1e-06s by --timeout" in line
    # 0 = no limit; a bad value is a usage error
    assert run_crawler("query", "--db", str(db), "--timeout", "0", "SELECT 1").returncode == 0
    proc = run_crawler("query", "--db", str(db), "--timeout", "-1", "SELECT 1")
    assert proc.returncode == 2 and "--timeout" in proc.stderr and "seconds >= 0" in proc.stderr


# --- secrets in the config --------------------------------------------------------------------------

def test_secrets_in_urls_and_broken_tokens_are_exit_2_without_echo(tmp_path):
    db = tmp_path / "inventory.db"
    secret = "ghp_" + "S3cr3t" * 6
    cases = {
        "url": (no_owner_config(tmp_path, db, name="url.toml",
                                extra=f'[registry]\nurl = "http://robot:{secret}@127.0.0.1:5000"\n'), {},
                "'registry.url' must not carry credentials"),
        "env": (no_owner_config(tmp_path, db, name="env.toml", extra='[github]\ntoken_env = "EDGE_TOKEN"\n'),
                {"EDGE_TOKEN": f"{secret}\r\nX-Injected: 1"},
                "environment variable EDGE_TOKEN ('github.token_env') holds a token with a line break"),
    }
    tok = tmp_path / "token"
    tok.write_bytes(f"{secret}\n{secret}\n".encode())
    tok.chmod(0o600)
    cases["file"] = (no_owner_config(tmp_path, db, name="file.toml", extra=f'[github]\ntoken_file = "{tok}"\n'),
                     {}, f"'github.token_file' {tok} holds a token with a line break (U+000A)")
    for name, (config, env, needle) in cases.items():
        proc = run_crawler("--config", str(config), "sync", env=env)
        line = one_error_line(proc, 2)
        assert needle in line and str(config) in line, (name, line)
        assert "S3cr3t" not in proc.stderr + proc.stdout, name
    assert not db.exists()


def test_an_exposed_token_file_is_warned_about_once_and_the_sync_goes_on(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("ghp_" + "x" * 36 + "\n")
    tok.chmod(0o644)
    config = no_owner_config(tmp_path, tmp_path / "inventory.db",
                             extra=f'[github]\ntoken_file = "{tok}"\n[registry]\ntoken_file = "{tok}"\n')
    proc = run_crawler("--config", str(config), "--log-format", "json", "sync")
    assert proc.returncode == 0, proc
    warnings = [line for line in proc.stderr.splitlines() if "token_file_exposed" in line]
    assert len(warnings) == 1 and str(tok) in warnings[0] and '"mode":"0644"' in warnings[0]
    assert "x" * 36 not in proc.stderr
    tok.chmod(0o600)
    proc = run_crawler("--config", str(config), "--log-format", "json", "sync")
    assert proc.returncode == 0 and "token_file_exposed" not in proc.stderr


# --- names from the API holding escape sequences; failures in the summary and `status` ---------------

EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b"           # retitle the terminal, clear it, an 8-bit CSI


def unsafe_spots(text: str) -> list[str]:
    """Where `text` holds a control character other than a line break or the
    progress line's own carriage-return + erase-line (with some context)."""
    import unicodedata
    text = text.replace("\r\x1b[2K", "\n")
    return [text[max(0, i - 40):i + 10] for i, ch in enumerate(text)
            if ch != "\n" and unicodedata.category(ch) == "Cc"]


def _terminal_safe(text: str) -> bool:
    return not unsafe_spots(text)


@pytest.fixture(scope="module")
def hostile(world, tmp_path_factory):
    """Strings from both services carrying escape sequences: a package name
    from the API (outside the registry's name grammar, so that package fails
    with its name in the reason), an image description label (stored, so
    `query` shows it), and the registry's error text for seven packages whose
    manifests it refuses (400). Synced once through the real CLI with the
    console renderer."""
    tmp = tmp_path_factory.mktemp("hostile")
    owner = world.new_owner("esc")
    b = world.builder
    image = b.push_image(owner, "good", tags=["v1"], seed=4711, description=f"shown{EVIL}")
    world.call(world.state.ensure_package, owner, f"shown{EVIL}")
    world.call(world.state.record_version, owner, f"shown{EVIL}", image.digest, tags=["v1"])
    for i in range(7):
        b.push_image(owner, f"bad{i}", tags=["v1"], seed=4720 + i)
    world.registry_proxy.inject("status", path=rf"/v2/{owner}/bad\d/manifests/", probability=1.0, status=400,
                                body={"errors": [{"code": "MANIFEST_INVALID", "message": f"denied{EVIL}",
                                                  "detail": "second line"}]})
    from tests.support import write_config
    config = write_config(world, tmp, [(owner, "org")], crawl={"retries": 0})
    proc = run_crawler("--config", str(config), "--log-format", "console", "--log-level", "info", "sync",
                       env={"GHCR_SANDBOX_TOKEN": world.token}, timeout=120)
    world.clear_faults()
    return {"owner": owner, "config": config, "db": tmp / "inventory.db", "sync": proc}


def test_the_sync_summary_lists_the_first_failures(hostile):
    proc, owner = hostile["sync"], hostile["owner"]
    lines = proc.stderr.replace("\r\x1b[2K", "\n").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("sync partial: "))
    summary = lines[at:]
    assert proc.returncode == 1 and summary[0].startswith("sync partial: 1 changed, 0 unchanged, 8 failed"), summary
    shown = summary[1:6]
    assert all(line.startswith(f"  {owner}/") and (
        ("HTTP 400" in line and "denied\\x1b]0;pwned" in line)
        or ("not a valid registry repository name" in line and "shown\\x1b]0;pwned" in line))
        for line in shown), summary
    assert summary[6] == "  … and 3 more (see `v_sync_runs`/`run_errors`)"
    assert summary[7] == "ghcr-inventory: 8 package(s) and 0 owner(s) failed" and len(summary) == 8


def test_status_shows_the_last_runs_failures(hostile):
    proc = run_crawler("status", "--db", str(hostile["db"]))
    assert proc.returncode == 0, proc
    out = proc.stdout.splitlines()
    at = out.index(next(line for line in out if line.startswith("last run ")))
    assert out[at] == "last run 1 (partial): 8 failure(s)"
    assert all(line.startswith(f"  {hostile['owner']}/") for line in out[at + 1:at + 6])
    assert out[at + 6] == "  … and 3 more (see `v_sync_runs`/`run_errors`)" and len(out) == at + 7
    assert _terminal_safe(proc.stdout) and "\\x1b]0;pwned\\x07" in proc.stdout
    proc = run_crawler("status", "--db", str(hostile["db"]), "--format", "json")   # stdout stays JSON
    import json
    assert [row["owner"] for row in json.loads(proc.stdout)] == [hostile["owner"]]
    assert "last run 1 (partial): 8 failure(s)" in proc.stderr


def test_escape_sequences_from_the_api_never_reach_the_terminal(hostile):
    import csv
    import io
    import json
    sync = hostile["sync"]
    assert unsafe_spots(sync.stderr) == [] and unsafe_spots(sync.stdout) == []
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x9b" in sync.stderr            # shown, escaped: log lines and summary
    db = str(hostile["db"])
    sql = "SELECT description FROM v_images WHERE description LIKE 'shown%'"
    for fmt in ("table", "markdown"):
        proc = run_crawler("query", "--db", db, "--format", fmt, sql)
        assert proc.returncode == 0 and _terminal_safe(proc.stdout), proc
        assert "shown\\x1b]0;pwned\\x07\\x1b[2J\\x9b" in proc.stdout
    proc = run_crawler("query", "--db", db, "--format", "json", sql)
    assert json.loads(proc.stdout) == [{"description": f"shown{EVIL}"}]      # exact data for machines
    proc = run_crawler("query", "--db", db, "--format", "csv", sql)
    assert list(csv.reader(io.StringIO(proc.stdout)))[1] == [f"shown{EVIL}"]
    # an error line quoting a name: escaped too
    proc = run_crawler("query", "--db", db, f"SELECT * FROM \"{EVIL}\"")
    line = one_error_line(proc, 2)
    assert _terminal_safe(proc.stderr) and "\\x1b]0;pwned" in line


# --- global options after the command ---------------------------------------------------------------

def test_global_options_work_after_the_command(tmp_path, capsys):
    a = no_owner_config(tmp_path, tmp_path / "a.db", name="a.toml")
    b = no_owner_config(tmp_path, tmp_path / "b.db", name="b.toml")
    # after the command: exit 0 where argparse used to say "unrecognized arguments" (2)
    assert cli.main(["sync", "--config", str(a), "--log-level", "error"]) == 0
    capsys.readouterr()
    sql = "SELECT COUNT(*) AS n FROM sync_runs"
    assert cli.main(["query", "--config", str(a), "--format", "json", "-vv", "--log-format", "json", sql]) == 0
    out, err = capsys.readouterr()
    assert out == '[\n  {\n    "n": 1\n  }\n]\n'
    assert '"event":"query_started"' in err and '"level":"debug"' in err      # -vv and json after `query`
    # before still works; given in both places the later one wins
    assert cli.main(["--config", str(a), "sync", "--config", str(b), "--log-level", "error"]) == 0
    assert (tmp_path / "b.db").exists()
    assert cli.main(["--config", str(b), "--log-format", "json", "--log-level", "error", "query",
                     "--log-level", "debug", sql]) == 0
    assert '"event":"query_started"' in capsys.readouterr().err
    assert cli.main(["--config", str(b), "--log-format", "json", "--log-level", "debug", "query",
                     "--log-level", "error", sql]) == 0
    assert "query_started" not in capsys.readouterr().err
    assert cli.main(["-vv", "--config", str(a), "--log-format", "json", "query", "--config", str(b), "-v", sql]) == 0
    out, err = capsys.readouterr()
    assert "query_started" not in err                              # the later -v (info) won over -vv
    assert out.splitlines()[2].strip() == "1"                      # b's database, synced once


@pytest.mark.parametrize("command", ["sync", "query", "report", "status", "demo", "completion"])
def test_every_command_help_works_with_global_options_either_side(command, capsys):
    for argv in ([command, "--help"], ["-v", command, "--help"], [command, "-v", "--log-format", "json", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 0, argv
        out = capsys.readouterr().out
        assert out.startswith(f"usage: {cli.PROG} {command}") and "global options" in out


# --- an unreachable http:// registry -------------------------------------------------------------------

def test_an_unreachable_registry_is_named_host_port_and_reason(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]           # closed again: nothing listens there
    config = no_owner_config(tmp_path, tmp_path / "inventory.db", extra=(
        f'[registry]\nurl = "http://127.0.0.1:{port}"\n[crawl]\nretries = 0\n'
        '[[owners]]\nname = "library"\ndiscovery = "static"\nrepositories = ["library/alpine"]\n'))
    proc = run_crawler("--config", str(config), "sync")
    assert proc.returncode == 4, proc
    assert f"cannot connect to 127.0.0.1:{port} (Connection refused)" in proc.stderr
    assert "ssl:" not in proc.stderr and "SSLContext" not in proc.stderr and "Traceback" not in proc.stderr
    conn = sqlite3.connect(tmp_path / "inventory.db")
    message = conn.execute("SELECT message FROM run_errors").fetchone()[0]
    conn.close()
    assert f"cannot connect to 127.0.0.1:{port} (Connection refused)" in message and "ssl:" not in message
