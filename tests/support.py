"""Helpers for end-to-end tests: configs pointing at the world, running the
real CLI or engine, reading the database, and time that never sleeps.

The reading helpers (`rows`, `dump`, `last_run`, `integrity_ok`,
`integrity_problems`, `execute`) take either store's inventory: a `Path` (an
SQLite file) or a `PgDb` / `postgresql://` URL (a database on the test
session's PostgreSQL server). SQL is written for SQLite; PostgreSQL gets it
transpiled by the store's own rules (crawler/store/pgschema.py)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from crawler import cli
from crawler.config import load_config
from crawler.credentials import Credentials, database_password
from crawler.sandbox.pgserver import Database
from crawler.secret import Secret
from crawler.engine import Clocks, SyncOptions, run_sync

# Retries in tests: real code paths, negligible delays (and none at all when
# a FakeClock is injected through run_engine).
FAST_CRAWL = {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "concurrency": 8}


PG_PASSWORD_ENV = "GHCR_PG_PASSWORD"


async def open_inventory(db):
    """The store of a test inventory: SQLite for a path, PostgreSQL for a PgDb."""
    if isinstance(db, PgDb):
        from crawler.config import DatabaseConfig
        from crawler.store.postgres import PostgresStore
        return await PostgresStore.open(DatabaseConfig(path=None, url=db.url, lock_timeout_s=1.0),
                                        Secret(os.environ[PG_PASSWORD_ENV]))
    from crawler.store import SQLiteStore
    return await SQLiteStore.open(db)


class PgDb(Database):
    """A database on the test session's PostgreSQL server."""

    def config_lines(self) -> str:
        return super().config_lines(PG_PASSWORD_ENV)


def pg_template(server) -> str:
    """A database holding the schema, made once by the real store; tests'
    databases are copies of it (CREATE DATABASE ... TEMPLATE)."""
    name = getattr(server, "inventory_template", None)
    if name:
        return name
    from crawler.config import DatabaseConfig
    from crawler.secret import Secret
    from crawler.store.postgres import PostgresStore
    name = "inventory_template"
    server.create_database(name)

    async def prepare():
        store = await PostgresStore.open(DatabaseConfig(path=None, url=server.url(name)), Secret(server.password))
        await store.close()
    asyncio.run(prepare())
    server.inventory_template = name
    return name


_databases = iter(range(1, 1_000_000))


def new_pg_db(server, label: str = "t") -> PgDb:
    """A fresh database holding the schema (a copy of the template)."""
    name = f"{label}_{next(_databases)}"
    server.create_database(name, template=pg_template(server))
    return PgDb(server, name)


def inventory_in(store: str, tmp_path: Path, request, name: str = "inventory.db"):
    """The inventory of a test in `store`: a file under tmp_path, or a new database."""
    if store == "sqlite":
        return tmp_path / name
    return new_pg_db(request.getfixturevalue("pg_server"))


def write_config(world, tmp_path: Path, owners, *, db=None, direct: bool = False,
                 discovery: str = "rest", crawl: dict | None = None, extra: str = "",
                 token_env: str = "GHCR_SANDBOX_TOKEN", name: str = "config.toml") -> Path:
    db = db or tmp_path / "inventory.db"
    text = world.config_toml(db, list(owners), token_env=token_env, direct=direct, discovery=discovery)
    if isinstance(db, PgDb):
        text = text.replace(f'path = "{db}"', db.config_lines())
    settings = {**FAST_CRAWL, **(crawl or {})}
    text += "\n[crawl]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items()) + extra
    path = tmp_path / name
    path.write_text(text)
    return path


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def run_cli(config: Path, *args: str) -> int:
    code = cli.main(["--config", str(config), "--log-format", "json", *args])
    if "sync" in args and code in (0, 1):
        database = load_config(config).database
        if database.url or database.path.exists():
            check_books(last_run(database.url or database.path))
    return code


def check_books(run) -> None:
    """Every recorded run: a lower bound the crawler beat is not a bound."""
    requests = run["requests"] if isinstance(run, dict) else run.requests
    bound = run["lower_bound"] if isinstance(run, dict) else run.lower_bound
    assert requests >= (bound or 0), f"requests {requests} below the lower bound {bound}"


class FakeClock:
    """Injected time: sleeping advances the clock instead of waiting."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def run_engine(config_path: Path, token: str | None, *, full: bool = False, clock: FakeClock | None = None,
               owners=(), packages=(), stop: asyncio.Event | None = None):
    config = load_config(config_path)
    secret = Secret(token) if token else None
    creds = Credentials(github=secret, registry=secret,
                        database=database_password(config.database, config.source))
    clocks = Clocks(sleep=clock.sleep, clock=clock.clock) if clock else Clocks()
    options = SyncOptions(full=full, owners=tuple(owners), packages=tuple(packages))
    summary = asyncio.run(run_sync(config, creds, options, clocks=clocks, stop=stop))
    check_books(summary)
    return summary


def _pg_url(db) -> str | None:
    if isinstance(db, PgDb):
        return db.url
    text = str(db)
    return text if text.startswith("postgresql://") else None


def _on_pg(url: str, work):
    """Run `work(conn)` on a new session to `url` (the server's password from the env)."""
    import asyncpg

    async def go():
        conn = await asyncpg.connect(url, password=os.environ[PG_PASSWORD_ENV])
        try:
            return await work(conn)
        finally:
            await conn.close()
    return asyncio.run(go())


def _pg_args(sql: str, params) -> tuple[str, list]:
    from crawler.store.pgschema import transpile
    pgsql, names = transpile(sql)
    return pgsql, [params[n] for n in names] if isinstance(params, dict) else list(params)


def rows(db, sql: str, params=()) -> list[tuple]:
    url = _pg_url(db)
    if url:
        from crawler.store.pgreadonly import _value
        pgsql, args = _pg_args(sql, params)
        return [tuple(_value(v) for v in r) for r in _on_pg(url, lambda c: c.fetch(pgsql, *args))]
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def execute(db, sql: str, params=()) -> None:
    """A write behind the crawler's back (to corrupt or age rows), committed."""
    url = _pg_url(db)
    if url:
        pgsql, args = _pg_args(sql, params)
        _on_pg(url, lambda c: c.execute(pgsql, *args))
        return
    conn = sqlite3.connect(db)
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


# Portable checks of what the store's transactions promise, on either store.
INTEGRITY_CHECKS = {
    "package without its owner": "SELECT p.id FROM packages p LEFT JOIN owners o ON o.id = p.owner_id "
                                 "WHERE o.id IS NULL",
    "tag without its package": "SELECT t.id FROM tags t LEFT JOIN packages p ON p.id = t.package_id "
                               "WHERE p.id IS NULL",
    "digest without its package": "SELECT d.digest FROM package_digests d LEFT JOIN packages p "
                                  "ON p.id = d.package_id WHERE p.id IS NULL",
    "error without its run": "SELECT e.run_id FROM run_errors e LEFT JOIN sync_runs r ON r.id = e.run_id "
                             "WHERE r.id IS NULL",
    "tag whose digest has no manifest": "SELECT t.digest FROM tags t LEFT JOIN manifests m "
                                        "ON m.digest = t.digest WHERE t.last_seen IS NULL AND m.digest IS NULL",
    "half-written package (a current tag's digest not held)": (
        "SELECT t.id FROM tags t LEFT JOIN package_digests d ON d.package_id = t.package_id "
        "AND d.digest = t.digest AND d.last_seen IS NULL WHERE t.last_seen IS NULL AND d.digest IS NULL"),
    "index children without their index": "SELECT c.parent_digest FROM manifest_children c LEFT JOIN manifests m "
                                          "ON m.digest = c.parent_digest WHERE m.digest IS NULL",
    "layers without their manifest": "SELECT l.manifest_digest FROM layers l LEFT JOIN manifests m "
                                     "ON m.digest = l.manifest_digest WHERE m.digest IS NULL",
    "two current spans of one tag": "SELECT package_id, tag FROM tags WHERE last_seen IS NULL "
                                    "GROUP BY package_id, tag HAVING COUNT(*) > 1",
}


def integrity_problems(db) -> dict[str, list]:
    """Each broken promise with up to five offending rows (empty: none)."""
    found = {}
    for what, sql in INTEGRITY_CHECKS.items():
        bad = rows(db, sql + " LIMIT 5")
        if bad:
            found[what] = bad
    return found


def integrity_ok(db) -> bool:
    if not _pg_url(db) and rows(db, "PRAGMA integrity_check") != [("ok",)]:
        return False
    return not integrity_problems(db)


def view_differences(want_db, got_db, masked: dict[str, set[str]] | None = None) -> dict[str, tuple]:
    """Every view of `want_db` (SQLite) read row by row, ordered, from both
    inventories: {view: (first differing rows)} where they differ; `masked`
    leaves columns out. Returns also the views that held rows (key None)."""
    out, filled = {}, []
    views = [n for (n,) in rows(want_db, "SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name")]
    for view in views:
        columns = [c[1] for c in rows(want_db, f'PRAGMA table_info("{view}")')]
        shown = [c for c in columns if c not in (masked or {}).get(view, ())]
        order = ", ".join(str(i + 1) for i in range(len(shown)))
        sql = f"SELECT {', '.join(shown)} FROM {view} ORDER BY {order}"
        want, got = rows(want_db, sql), rows(got_db, sql)
        if want:
            filled.append(view)
        if want != got:
            out[view] = (len(want), len(got), next(((w, g) for w, g in zip(want, got) if w != g), None))
    out[None] = filled
    return out


def _tables(db) -> list[str]:
    if _pg_url(db):
        return [t for (t,) in rows(db, "SELECT table_name FROM information_schema.tables "
                                       "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")]
    return [t for (t,) in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")]


def dump(db, *, skip=("sync_runs", "run_errors")) -> dict[str, list]:
    """Every row of every table (but the run log), for before/after comparisons."""
    return {t: sorted(map(repr, rows(db, f'SELECT * FROM "{t}"'))) for t in _tables(db) if t not in skip}


@contextmanager
def hold_sync_lock(db, config: Path):
    """Hold what a sync of `config`'s owners must take, as another sync
    would: the SQLite lock file, or each owner's PostgreSQL advisory lock on
    a session (in a thread of its own) named like a crawler's."""
    url = _pg_url(db)
    if not url:
        from crawler.lock import SyncLock
        with SyncLock(db):
            yield
        return
    import threading

    import asyncpg

    from crawler.engine.wiring import registry_host
    from crawler.store.pgconnect import lock_key, session_label
    cfg = load_config(config)
    keys = [lock_key(registry_host(cfg), o.name) for o in cfg.owners]
    loop = asyncio.new_event_loop()
    ready, done = threading.Event(), asyncio.Event()

    async def hold():
        conn = await asyncpg.connect(url, password=os.environ[PG_PASSWORD_ENV],
                                     server_settings={"application_name": session_label()})
        try:
            for key in keys:
                assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
            ready.set()
            await done.wait()
        finally:
            await conn.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(hold(),), daemon=True)
    thread.start()
    assert ready.wait(10), "could not take the advisory locks"
    try:
        yield
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(10)
        loop.close()


def last_run(db) -> dict:
    url = _pg_url(db)
    if url:
        return dict(_on_pg(url, lambda c: c.fetchrow("SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1")))
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone())
    finally:
        conn.close()


class StepClock:
    """Injected time the test moves by hand: `sleep` returns only once
    `advance` has moved the clock past its deadline (debounce windows and
    retry backoff, driven step by step without waiting)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._tick: asyncio.Event | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        deadline = self.now + seconds
        while self.now < deadline:
            if self._tick is None:
                self._tick = asyncio.Event()
            await self._tick.wait()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        tick, self._tick = self._tick, None
        if tick is not None:
            tick.set()


async def until(predicate, *, within_s: float = 30.0, what: str = "condition"):
    """Wait (bounded) until `predicate()` is truthy; return its value."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what}")
        await asyncio.sleep(0.02)
