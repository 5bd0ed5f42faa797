"""Helpers for end-to-end tests: configs pointing at the world, running the
real CLI or engine, reading the database, and time that never sleeps."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from crawler import cli
from crawler.config import Credentials, load_config
from crawler.secret import Secret
from crawler.engine import Clocks, SyncOptions, run_sync

# Retries in tests: real code paths, negligible delays (and none at all when
# a FakeClock is injected through run_engine).
FAST_CRAWL = {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "concurrency": 8}


def write_config(world, tmp_path: Path, owners, *, db: Path | None = None, direct: bool = False,
                 discovery: str = "rest", crawl: dict | None = None, extra: str = "",
                 token_env: str = "GHCR_SANDBOX_TOKEN", name: str = "config.toml") -> Path:
    db = db or tmp_path / "inventory.db"
    text = world.config_toml(db, list(owners), token_env=token_env, direct=direct, discovery=discovery)
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
        db = load_config(config).database.path
        if db.exists():
            check_books(last_run(db))
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
    creds = Credentials(github=secret, registry=secret)
    clocks = Clocks(sleep=clock.sleep, clock=clock.clock) if clock else Clocks()
    options = SyncOptions(full=full, owners=tuple(owners), packages=tuple(packages))
    summary = asyncio.run(run_sync(config, creds, options, clocks=clocks, stop=stop))
    check_books(summary)
    return summary


def rows(db: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def integrity_ok(db: Path) -> bool:
    return rows(db, "PRAGMA integrity_check") == [("ok",)]


def dump(db: Path, *, skip=("sync_runs", "run_errors")) -> dict[str, list]:
    """Every row of every table (but the run log), for before/after comparisons."""
    tables = [t for (t,) in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'") if t not in skip]
    return {t: sorted(map(repr, rows(db, f'SELECT * FROM "{t}"'))) for t in tables}


def last_run(db: Path) -> dict:
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
