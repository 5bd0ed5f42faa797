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
    Row("broken-pipe", "the reader of `query`'s output going away (`| head`)",
        "quiet exit 141, as if killed by SIGPIPE (not mistaken for a storage failure)",
        test="test_a_reader_that_goes_away_is_a_quiet_141"),
    Row("ro-fs-read", "`query`, `report`, `status` on a database on a read-only file system",
        "they read it (`immutable=1`: SQLite cannot create its `-shm` there)",
        test="test_readers_work_on_a_read_only_file_system"),
    Row("ro-dir-read", "the same in a directory the reader cannot write (another account's database)",
        "they read it; nothing is created beside it", test="test_readers_work_in_a_directory_they_cannot_write"),
    Row("ro-dir-wal", "… while commits are still in a `-wal` beside it and no `-shm` can be made",
        "one line saying so and how to fold them in, exit 73 (an immutable read would miss them)",
        test="test_unfolded_wal_in_an_unwritable_directory_is_refused"),
    Row("db-busy", "a reader while another process holds the database locked past the 5 s busy timeout",
        "one line \"locked by another process\", exit 75 (a timer retries)",
        test="test_a_database_locked_beyond_the_busy_timeout_is_75"),
    Row("lock-symlink", "`<database>.lock` planted as a symlink (to `/etc/passwd`, say; also a FIFO, a hard "
        "link, another user's file, foreign content)",
        "never followed nor truncated: one line naming the lock file, exit 73; the target unchanged",
        test="test_a_planted_lock_symlink_is_refused_and_its_target_kept"),
    Row("ro-fs-sync", "`sync` with the database on a read-only file system",
        "one line naming the lock file and \"Read-only file system\", exit 73 (readers still work)",
        test="test_sync_on_a_read_only_file_system_is_one_line_73"),
    Row("disk-full-lock", "`sync` on a full disk", "one line \"disk is full\" naming the lock file, exit 74",
        test="test_sync_on_a_full_disk_is_one_line_74"),
    Row("parent-is-file", "`database.path` under a regular file", "one line naming it \"is not a directory\", "
        "exit 73", test="test_a_database_path_under_a_regular_file_is_one_line_73"),
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
    Row("metrics-file", "`--metrics-file` under a regular file, in an unwritable directory, on a read-only or "
        "full file system", "after the summary, one line saying the sync's results are committed, exit 73 / 74",
        test="test_metrics_file_that_cannot_be_written_is_one_line_73_or_74"),
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


# --- helpers ------------------------------------------------------------------------------

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
        quoted = " ".join(_sh(a) for a in argv)
        lines.append(f"{quoted} >{_sh(str(out / name))}.out 2>{_sh(str(out / name))}.err; "
                     f"echo $? >{_sh(str(out / name))}.rc")
    proc = subprocess.run([*prefix, "sh", "-c", "\n".join(lines)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, f"namespace setup failed: {proc.stderr}"
    return {name: Outcome(int((out / f"{name}.rc").read_text()), (out / f"{name}.out").read_text(),
                          (out / f"{name}.err").read_text()) for name in commands}


def _sh(text: str) -> str:
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


# --- read-only file system, unwritable directory -----------------------------------------------

READERS = {
    "query": ["query", "--format", "json", "SELECT status, mode FROM v_sync_runs"],
    "report": ["report", "summary", "--format", "json"],
    "status": ["status", "--format", "json"],
}


def _readers(db: Path) -> dict[str, list[str]]:
    return {name: crawler_cmd(*argv[:1], "--db", str(db), *argv[1:]) for name, argv in READERS.items()}


def _assert_readers_work(outcomes: dict[str, Outcome]) -> None:
    import json
    for name, outcome in outcomes.items():
        assert outcome.rc == 0 and "Traceback" not in outcome.err, (name, outcome)
    assert json.loads(outcomes["query"].out) == [{"status": "ok", "mode": "incremental"}]
    summary = dict((r["metric"], r["value"]) for r in json.loads(outcomes["report"].out))
    assert summary["last_sync_status"] == "ok"
    assert json.loads(outcomes["status"].out) == []          # no owners configured


def test_readers_work_on_a_read_only_file_system(tmp_path):
    db = synced_db(tmp_path)
    mnt = tmp_path / "ro"
    mnt.mkdir()
    setup = (f"mount -t tmpfs -o size=4m tmpfs {_sh(str(mnt))}; cp {_sh(str(db))} {_sh(str(mnt))}/; "
             f"mount -o remount,ro {_sh(str(mnt))}")
    outcomes = in_mount_namespace(tmp_path, setup, {
        **_readers(mnt / "inventory.db"),
        "touch": ["touch", str(mnt / "probe")],               # the mount really is read-only
    })
    touch = outcomes.pop("touch")
    assert touch.rc != 0 and "Read-only file system" in touch.err
    _assert_readers_work(outcomes)
    assert sorted(p.name for p in mnt.iterdir()) == []       # the namespace's mount is gone


def test_readers_work_in_a_directory_they_cannot_write(tmp_path):
    db = synced_db(tmp_path)
    folder = db.parent
    folder.chmod(0o555)
    try:
        prefix = without_capabilities()
        probe = subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True, text=True)
        assert probe.returncode != 0 and "Permission denied" in probe.stderr
        outcomes = {name: run_argv(argv, prefix) for name, argv in _readers(db).items()}
    finally:
        folder.chmod(0o755)
    _assert_readers_work(outcomes)
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "inventory.db", "inventory.db.lock"]


def test_unfolded_wal_in_an_unwritable_directory_is_refused(tmp_path):
    """Commits still in -wal, no -shm and no way to create one: an immutable
    read would miss them, so the reader refuses in one line (73)."""
    db = synced_db(tmp_path)
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE sync_runs SET status = 'partial'")
    for suffix in ("", "-wal"):
        (frozen / f"inventory.db{suffix}").write_bytes(Path(f"{db}{suffix}").read_bytes())
    writer.close()
    assert (frozen / "inventory.db-wal").stat().st_size > 0
    frozen.chmod(0o555)
    try:
        outcome = run_argv(_readers(frozen / "inventory.db")["query"], without_capabilities())
    finally:
        frozen.chmod(0o755)
    line = one_error_line(outcome, 73)
    assert str(frozen / "inventory.db") in line and "inventory.db-wal holds commits" in line
    # where the directory is writable, the same files read fine and show the commit
    proc = run_crawler(*_readers(frozen / "inventory.db")["query"][3:])
    assert proc.returncode == 0 and '"partial"' in proc.stdout, proc


def test_a_database_locked_beyond_the_busy_timeout_is_75(tmp_path):
    db = synced_db(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
         "c.execute('PRAGMA locking_mode = EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE')\n"
         "c.execute('UPDATE sync_runs SET status = status')\n"
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(holder.stdout, b"locked", within_s=30)
        proc = run_crawler("query", "--db", str(db), "SELECT COUNT(*) FROM v_sync_runs")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    line = one_error_line(proc, 75)
    assert str(db) in line and "locked by another process beyond the busy timeout" in line
    assert run_crawler("query", "--db", str(db), "SELECT COUNT(*) FROM v_sync_runs").returncode == 0


# --- the lock file and the database's directory ---------------------------------------------------

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


def test_a_planted_lock_symlink_is_refused_and_its_target_kept(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root:x:0:0::/root:/bin/sh\n")
    db = tmp_path / "state" / "inventory.db"
    db.parent.mkdir()
    os.symlink(victim, f"{db}.lock")
    proc = run_crawler("--config", str(no_owner_config(tmp_path, db)), "sync")
    line = one_error_line(proc, 73)
    assert f"{db}.lock: " in line and "symbolic link" in line
    assert victim.read_text() == "root:x:0:0::/root:/bin/sh\n"
    assert not db.exists()                     # refused before the database was touched


def test_sync_on_a_read_only_file_system_is_one_line_73(tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    src = synced_db(tmp_path)
    fresh = no_owner_config(tmp_path, mnt / "new" / "inventory.db", name="fresh.toml")
    existing = no_owner_config(tmp_path, mnt / "inventory.db", name="existing.toml")
    setup = (f"mount -t tmpfs -o size=4m tmpfs {_sh(str(mnt))}; cp {_sh(str(src))} {_sh(str(mnt))}/; "
             f"mount -o remount,ro {_sh(str(mnt))}")
    outcomes = in_mount_namespace(tmp_path, setup, {
        "fresh": crawler_cmd("--config", str(fresh), "sync"),
        "existing": crawler_cmd("--config", str(existing), "sync"),
        "query": crawler_cmd("query", "--db", str(mnt / "inventory.db"), "SELECT COUNT(*) AS n FROM v_sync_runs"),
    })
    line = one_error_line(outcomes["fresh"], 73)
    assert str(mnt / "new") in line and "Read-only file system" in line
    line = one_error_line(outcomes["existing"], 73)
    assert f"{mnt / 'inventory.db'}.lock: cannot create or open for writing (Read-only file system)" in line
    assert outcomes["query"].rc == 0 and "1" in outcomes["query"].out     # and it still reads


def test_sync_on_a_full_disk_is_one_line_74(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    config = no_owner_config(tmp_path, mnt / "inventory.db")
    setup = (f"mount -t tmpfs -o size=64k tmpfs {_sh(str(mnt))}; "
             f"dd if=/dev/zero of={_sh(str(mnt / 'filler'))} bs=4096 2>/dev/null || true")
    outcomes = in_mount_namespace(tmp_path, setup, {"sync": crawler_cmd("--config", str(config), "sync")})
    line = one_error_line(outcomes["sync"], 74)
    assert str(mnt / "inventory.db") in line and "disk is full" in line and "No space left" in line


def test_a_database_path_under_a_regular_file_is_one_line_73(tmp_path):
    (tmp_path / "state").write_text("a file where a directory should be\n")
    config = no_owner_config(tmp_path, tmp_path / "state" / "inventory.db")
    line = one_error_line(run_crawler("--config", str(config), "sync"), 73)
    assert f"{tmp_path / 'state'} is not a directory" in line
    assert (tmp_path / "state").read_text() == "a file where a directory should be\n"


# --- runaway queries: --timeout, SIGINT/SIGTERM ----------------------------------------------------

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def _wait_for(stream, needle: bytes, within_s: float) -> bytes:
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


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_runaway_query_stops_on_a_signal(tmp_path, signum, code):
    db = synced_db(tmp_path)
    proc = subprocess.Popen(crawler_cmd("--log-format", "json", "--log-level", "debug", "query", "--db", str(db),
                                        "--timeout", "0", RUNAWAY),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        before = _wait_for(proc.stderr, b'"query_started"', within_s=30)
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


# --- --metrics-file ----------------------------------------------------------------------------------

COMMITTED = "the sync itself finished and its results are committed"


def _assert_run_committed(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT status FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone() == ("ok",)
    finally:
        conn.close()


def test_metrics_file_that_cannot_be_written_is_one_line_73_or_74(tmp_path):
    db = tmp_path / "inventory.db"
    config = no_owner_config(tmp_path, db)
    # a parent that is a regular file
    (tmp_path / "textfile").write_text("not a directory\n")
    proc = run_crawler("--config", str(config), "sync", "--metrics-file", str(tmp_path / "textfile" / "x.prom"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 73 and len(lines) == 2 and lines[0].startswith("sync ok:"), proc
    assert lines[1] == (f"ghcr-inventory: error: {tmp_path / 'textfile' / 'x.prom'}: cannot create the metrics "
                        f"file: {tmp_path / 'textfile'} is not a directory; {COMMITTED}")
    _assert_run_committed(db)
    # a directory this user cannot write
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        outcome = run_argv(crawler_cmd("--config", str(config), "sync", "--metrics-file", str(locked / "x.prom")),
                           without_capabilities())
    finally:
        locked.chmod(0o755)
    lines = err_lines(outcome.err)
    assert outcome.rc == 73 and len(lines) == 1, outcome
    assert "Permission denied" in lines[0] and COMMITTED in lines[0]
    # a read-only and a full file system
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    setup = (f"mount -t tmpfs -o size=1m,ro tmpfs {_sh(str(ro))}; mount -t tmpfs -o size=64k tmpfs {_sh(str(full))}; "
             f"dd if=/dev/zero of={_sh(str(full / 'filler'))} bs=4096 2>/dev/null || true")
    outcomes = in_mount_namespace(tmp_path, setup, {
        "ro": crawler_cmd("--config", str(config), "sync", "--metrics-file", str(ro / "x.prom")),
        "full": crawler_cmd("--config", str(config), "sync", "--metrics-file", str(full / "x.prom")),
    })
    for name, code, needle in (("ro", 73, "Read-only file system"), ("full", 74, "disk is full")):
        lines = err_lines(outcomes[name].err)
        assert outcomes[name].rc == code and len(lines) == 1, (name, outcomes[name])
        assert needle in lines[0] and COMMITTED in lines[0] and "Traceback" not in outcomes[name].err
    _assert_run_committed(db)


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
