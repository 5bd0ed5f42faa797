"""Issue 14's faults: the PostgreSQL store against a real server that
restarts, goes away, is locked by someone else, or is given bad settings.
Each scenario is a row of RELIABILITY asserted by the test it names
(README's table is rendered from these rows, tests/reliability.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.reliability import Row
from tests.support import (PG_PASSWORD_ENV, dump, hold_sync_lock, integrity_ok, last_run, new_pg_db, rows,
                           run_cli, write_config)

RELIABILITY = [
    Row("pg-restart", "the PostgreSQL server restarting in the middle of a sync",
        "the package in flight rolls back; the crawler reconnects (bounded), takes its owner locks again and "
        "finishes: exit 0, inventory complete", test="test_a_server_restart_mid_run_is_survived"),
    Row("pg-gone", "the PostgreSQL server going away for good mid-run",
        "after `database.reconnect_attempts` one line \"lost the connection to PostgreSQL\", exit 4; what was "
        "committed intact; the next run marks that one interrupted and finishes",
        test="test_a_server_gone_for_good_is_exit_4_with_what_was_committed"),
    Row("pg-lock-held", "a second crawler for an owner another crawler is syncing (same PostgreSQL)",
        "exit 75, one line naming the holder (pid and host); a crawler for another owner runs meanwhile",
        test="test_an_owner_being_synced_elsewhere_is_75_and_other_owners_go_on"),
    Row("pg-sigkill", "SIGKILL of a crawler holding its owners' advisory locks",
        "no lock left: the next crawler starts at once, marks the killed run interrupted, exit 0",
        test="test_sigkill_leaves_no_lock_behind"),
    Row("pg-lock-timeout", "a table another session keeps locked past `database.lock_timeout_s`",
        "one line \"the database stayed busy (… lock timeout)\", exit 75; nothing half-written",
        test="test_a_foreign_lock_past_lock_timeout_is_75"),
    Row("pg-query-timeout", "`query` on PostgreSQL past `--timeout`, or stopped by Ctrl-C",
        "the server's statement_timeout stops it: exit 124; SIGINT cancels it on the server: exit 130",
        test="test_a_runaway_query_on_postgres_stops"),
    Row("pg-password", "a password in `database.url`; both `path` and `url`; a wrong password; an unset "
        "`password_env`", "exit 2 / 2 / 3 / 2, one line, the password never echoed; at debug level it is in no "
        "log line, argv or row", test="test_postgres_credentials_are_refused_or_kept_secret"),
    Row("pg-nul", "a config label or annotation holding U+0000 (PostgreSQL's text cannot hold it; SQLite's can)",
        "stored with U+FFFD in its place; the package commits, the sync goes on, exit 0",
        test="test_a_nul_character_in_content_does_not_stop_the_postgres_store"),
    Row("pg-unreachable", "`database.url` naming a closed port, or a database that does not exist",
        "one line \"cannot connect to PostgreSQL\", exit 4 / \"does not exist\", exit 73",
        test="test_an_unreachable_server_or_missing_database_is_one_line"),
]


@pytest.fixture
def slow_org(world, env):
    """Eight packages behind a slow registry: a sync long enough to break into."""
    owner = world.new_owner("pgf")
    for n in range(8):
        world.builder.push_image(owner, f"p{n}", tags=["latest", "v1"], seed=3100 + n, layers=1)
    truth = {f"p{n}": world.tags_of(owner, f"p{n}") for n in range(8)}
    return owner, truth


@pytest.fixture
def env(world, pg_server, monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    return dict(os.environ)


def start(config, env, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "crawler", "--config", str(config), "--log-format", "json",
                             "-v", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def until(proc, needle: str) -> list[str]:
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never logged: {seen[-3:]}")


def complete(db, truth) -> None:
    """Every package present is whole (exactly the registry's tags)."""
    assert integrity_ok(db)
    for package in {p for (p,) in rows(db, "SELECT package FROM v_packages")}:
        assert dict(rows(db, "SELECT tag, digest FROM v_tags WHERE package = ?", (package,))) == truth[package]


def test_a_server_restart_mid_run_is_survived(world, pg_server, slow_org, tmp_path, env):
    owner, truth = slow_org
    db = new_pg_db(pg_server)
    world.registry_proxy.inject("latency", probability=1.0, ms=120)
    config = write_config(world, tmp_path, [(owner, "org")], db=db, crawl={"concurrency": 2})
    proc = start(config, env, "sync")
    log = until(proc, '"package_synced"')
    pg_server.restart()
    out, err = proc.communicate(timeout=120)
    log.append(err)
    assert proc.returncode == 0, err.splitlines()[-3:]
    assert "postgres_retry" in err or "postgres_reconnected" in err    # it did lose the connection
    complete(db, truth)
    assert {p for (p,) in rows(db, "SELECT package FROM v_packages")} == set(truth)
    assert last_run(db)["status"] == "ok"


def test_a_server_gone_for_good_is_exit_4_with_what_was_committed(world, pg_server, slow_org, tmp_path, env):
    owner, truth = slow_org
    db = new_pg_db(pg_server)
    world.registry_proxy.inject("latency", probability=1.0, ms=120)
    config = write_config(world, tmp_path, [(owner, "org")], db=db, crawl={"concurrency": 2})
    config.write_text(config.read_text().replace("[database]", "[database]\nreconnect_attempts = 1"))
    proc = start(config, env, "sync")
    until(proc, '"package_synced"')
    pg_server.halt()
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        pg_server.resume()
    lines = [line for line in err.splitlines() if line.startswith("ghcr-inventory: ")]
    assert proc.returncode == 4, err.splitlines()[-3:]
    assert lines and "PostgreSQL" in lines[-1] and "\n" not in lines[-1]
    committed = {p for (p,) in rows(db, "SELECT package FROM v_packages")}
    assert 0 < len(committed) < len(truth)
    complete(db, truth)
    world.clear_faults()
    assert run_cli(config, "sync") == 0
    assert [s for (s,) in rows(db, "SELECT status FROM sync_runs ORDER BY id")] == ["interrupted", "ok"]
    complete(db, truth)


def test_an_owner_being_synced_elsewhere_is_75_and_other_owners_go_on(world, pg_server, tmp_path, env, capsys):
    busy, free = world.new_owner("busy"), world.new_owner("free")
    for owner in (busy, free):
        world.builder.push_image(owner, "app", tags=["latest"], seed=3300)
    db = new_pg_db(pg_server)
    busy_cfg = write_config(world, tmp_path, [(busy, "org")], db=db, name="busy.toml")
    free_cfg = write_config(world, tmp_path, [(free, "org")], db=db, name="free.toml")
    with hold_sync_lock(db, busy_cfg):
        capsys.readouterr()
        assert run_cli(busy_cfg, "sync") == 75
        err = capsys.readouterr().err.strip().splitlines()
        assert run_cli(free_cfg, "sync") == 0        # the same database, another owner: not blocked
    assert len(err) == 1 and f"owner {busy}" in err[0] and f"pid {os.getpid()} on {socket.gethostname()}" in err[0]
    assert rows(db, "SELECT owner FROM v_packages") == [(free,)]
    assert run_cli(busy_cfg, "sync") == 0


def test_sigkill_leaves_no_lock_behind(world, pg_server, slow_org, tmp_path, env):
    owner, truth = slow_org
    db = new_pg_db(pg_server)
    world.registry_proxy.inject("latency", probability=1.0, ms=120)
    config = write_config(world, tmp_path, [(owner, "org")], db=db, crawl={"concurrency": 2})
    proc = start(config, env, "sync")
    until(proc, '"package_synced"')
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    proc.stdout.close()
    world.clear_faults()
    assert run_cli(config, "sync") == 0          # not 75: the lock died with the killed session
    assert [s for (s,) in rows(db, "SELECT status FROM sync_runs ORDER BY id")] == ["interrupted", "ok"]
    complete(db, truth)


def test_a_foreign_lock_past_lock_timeout_is_75(world, pg_server, tmp_path, env, capsys):
    owner = world.new_owner("lockto")
    world.builder.push_image(owner, "app", tags=["latest"], seed=3400)
    db = new_pg_db(pg_server)
    config = write_config(world, tmp_path, [(owner, "org")], db=db)
    config.write_text(config.read_text().replace("[database]", "[database]\nlock_timeout_s = 0.5"))
    import asyncio
    import threading

    import asyncpg
    release, ready = asyncio.Event(), threading.Event()
    loop = asyncio.new_event_loop()

    async def hold():
        conn = await asyncpg.connect(db.url, password=os.environ[PG_PASSWORD_ENV])
        async with conn.transaction():
            await conn.execute("LOCK TABLE sync_runs IN ACCESS EXCLUSIVE MODE")
            ready.set()
            await release.wait()
        await conn.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(hold(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        capsys.readouterr()
        started = time.monotonic()
        code = run_cli(config, "sync")
        elapsed = time.monotonic() - started
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ghcr-inventory: ")]
    finally:
        loop.call_soon_threadsafe(release.set)
        thread.join(10)
        loop.close()
    assert code == 75 and len(err) == 1 and "lock timeout" in err[0], err
    assert elapsed < 10
    assert integrity_ok(db) and rows(db, "SELECT COUNT(*) FROM packages") == [(0,)]
    assert run_cli(config, "sync") == 0


def test_a_runaway_query_on_postgres_stops(world, pg_server, tmp_path, env, capsys):
    db = new_pg_db(pg_server)
    config = write_config(world, tmp_path, [("nobody", "org")], db=db)
    started = time.monotonic()
    assert run_cli(config, "query", "SELECT pg_sleep(20)", "--timeout", "0.5") == 124
    assert time.monotonic() - started < 5
    assert "--timeout" in capsys.readouterr().err
    proc = start(config, env, "query", "SELECT pg_sleep(30)", "--timeout", "0")
    deadline = time.monotonic() + 20
    while not rows(db, "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'"):
        assert time.monotonic() < deadline and proc.poll() is None, "the query never started"
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and time.monotonic() - sent < 3, err
    assert "stopped by SIGINT" in err
    assert rows(db, "SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' "
                    "AND state = 'active'") == [(0,)]


def test_postgres_credentials_are_refused_or_kept_secret(world, pg_server, tmp_path, env, capsys, monkeypatch):
    owner = world.new_owner("pw")
    world.builder.push_image(owner, "app", tags=["latest"], seed=3500)
    db = new_pg_db(pg_server)
    config = write_config(world, tmp_path, [(owner, "org")], db=db)
    good = config.read_text()
    secret = pg_server.password

    def one_line(text: str) -> tuple[int, list[str]]:
        config.write_text(text)
        capsys.readouterr()
        code = run_cli(config, "sync")
        return code, capsys.readouterr().err.strip().splitlines()

    with_password = good.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")
    code, err = one_line(with_password)
    assert code == 2 and len(err) == 1 and "must not carry a password" in err[0] and secret not in err[0]
    code, err = one_line(good.replace("[database]", '[database]\npath = "x.db"'))
    assert code == 2 and len(err) == 1 and "exactly one" in err[0]
    monkeypatch.setenv("GHCR_WRONG_PG", "not-the-password-at-all")
    code, err = one_line(good.replace(PG_PASSWORD_ENV, "GHCR_WRONG_PG"))
    assert code == 3 and len(err) == 1 and "refused the credentials" in err[0]
    assert "not-the-password-at-all" not in "\n".join(err)
    code, err = one_line(good.replace(PG_PASSWORD_ENV, "GHCR_UNSET_PG"))
    assert code == 2 and len(err) == 1 and "GHCR_UNSET_PG is not set" in err[0]
    # a full sync at debug level, the password from a file: nowhere to be seen
    pwfile = tmp_path / "pg-password"
    pwfile.write_text(secret + "\n")
    pwfile.chmod(0o600)
    config.write_text(good.replace(f'password_env = "{PG_PASSWORD_ENV}"', f'password_file = "{pwfile}"'))
    clean_env = {k: v for k, v in env.items() if k != PG_PASSWORD_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "crawler", "--config", str(config), "--log-format", "json",
                             "--log-level", "debug", "sync"], env=clean_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    argv = open(f"/proc/{proc.pid}/cmdline", "rb").read()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.splitlines()[-3:]
    assert '"level":"debug"' in err
    for where in (out, err, argv.decode(errors="replace"), repr(dump(db, skip=()))):
        assert secret not in where


def test_an_unreachable_server_or_missing_database_is_one_line(world, pg_server, tmp_path, env, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    db = new_pg_db(pg_server)
    config = write_config(world, tmp_path, [("nobody", "org")], db=db)
    good = config.read_text()
    config.write_text(good.replace(f":{pg_server.port}/", f":{closed}/"))
    capsys.readouterr()
    assert run_cli(config, "sync") == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot connect to PostgreSQL" in err[0] and f":{closed}" in err[0]
    config.write_text(good.replace(f"/{db.name}\"", "/no_such_inventory\""))
    assert run_cli(config, "sync") == 73
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert run_cli(config, "status") == 73


def test_a_nul_character_in_content_does_not_stop_the_postgres_store(world, pg_server, tmp_path, env):
    owner = world.new_owner("nul")
    world.builder.push_image(owner, "odd", tags=["latest"], seed=3600, labels={"note": "before\x00after"},
                             annotations={"org.example.note": "a\x00b"})
    world.builder.push_image(owner, "plain", tags=["latest"], seed=3601)
    db = new_pg_db(pg_server)
    config = write_config(world, tmp_path, [(owner, "org")], db=db)
    assert run_cli(config, "sync") == 0
    assert {p for (p,) in rows(db, "SELECT package FROM v_packages")} == {"odd", "plain"}
    values = {v for (v,) in rows(db, "SELECT value FROM v_labels WHERE key IN ('note', 'org.example.note')")}
    assert values == {"before\ufffdafter", "a\ufffdb"}
    assert run_cli(config, "sync") == 0
    assert last_run(db)["packages_changed"] == 0       # stored once: the next run is a no-op
