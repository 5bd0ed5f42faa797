"""PostgreSQL in the benchmark (issue 14), used by scripts/bench.py.

A real server (``crawler.sandbox.pgserver``: initdb + pg_ctl on loopback) for
the run; each scenario's inventory is a database on it. The scenarios are
the SQLite ones, run against the same world right after them (so the
requests must be identical), plus three crawlers for three owners started
together against one database beside one crawler for all three owners.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.sandbox.pgserver import Database  # noqa: E402
PASSWORD_ENV = "GHCR_BENCH_PG_PASSWORD"
MB = 1024 * 1024


class PgInventory(Database):
    """One database on the benchmark's server, standing where an SQLite path would."""

    def config_lines(self) -> str:
        return super().config_lines(PASSWORD_ENV)

    def _on(self, work):
        import asyncpg

        async def go():
            conn = await asyncpg.connect(self.url, password=self.server.password)
            try:
                return await work(conn)
            finally:
                await conn.close()
        return asyncio.run(go())

    def last_run_row(self) -> dict:
        async def work(conn):
            row = await conn.fetchrow("SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1")
            out = dict(row) if row else {}
            out["_images"] = await conn.fetchval("SELECT COUNT(*) FROM package_digests WHERE last_seen IS NULL")
            out["_tags"] = await conn.fetchval("SELECT COUNT(*) FROM v_tags")
            return out
        return self._on(work)

    def size(self) -> int:
        return self._on(lambda conn: conn.fetchval("SELECT pg_database_size(current_database())"))


class Server:
    """The benchmark's PostgreSQL server; databases made on demand."""

    def __init__(self) -> None:
        from crawler.sandbox.pgserver import PostgresServer
        self.server = PostgresServer().start()
        os.environ[PASSWORD_ENV] = self.server.password
        self._made = 0

    def database(self, label: str) -> PgInventory:
        self._made += 1
        name = f"{label.replace('-', '_')}_{self._made}"
        self.server.create_database(name)
        return PgInventory(self.server, name)

    def store_opener(self, label: str):
        """An async callable opening a fresh database's store (for the writer bench)."""
        inventory = self.database(label)

        async def open_store():
            from crawler.config import DatabaseConfig
            from crawler.secret import Secret
            from crawler.store.postgres import PostgresStore
            return await PostgresStore.open(DatabaseConfig(path=None, url=inventory.url), Secret(self.server.password))
        return open_store

    def stop(self) -> None:
        self.server.stop()


def config_text(base: str, db) -> str:
    """A bench config (SQLite path) pointed at `db` when it is a PgInventory."""
    if isinstance(db, PgInventory):
        lines = [line for line in base.splitlines() if not line.startswith("path = ")]
        at = lines.index("[database]") + 1
        lines[at:at] = db.config_lines().splitlines()
        return "\n".join(lines) + "\n"
    return base


# -- several crawlers at once ---------------------------------------------------------------

def _rss_peak(pid: int, out: list) -> None:
    path = Path(f"/proc/{pid}/status")
    while True:
        try:
            kb = next((int(l.split()[1]) for l in path.read_text().splitlines() if l.startswith("VmRSS:")), None)
        except OSError:
            return
        if kb is None:
            return
        out.append(kb / 1024)
        time.sleep(0.2)


def concurrent(world, work: Path, owners: list[str], db_for, config_toml, *, concurrency: int) -> dict:
    """Three crawlers (one per owner) started together against one database,
    beside one crawler syncing the three owners in turn; `db_for(label)`
    gives a fresh inventory, `config_toml(info, db, owner)` a config."""
    out = {}
    for label, groups in (("one_crawler", [owners]), ("three_crawlers", [[o] for o in owners])):
        db = db_for(label)
        configs = []
        for n, group in enumerate(groups):
            text = config_toml(world.info, db, group[0], concurrency=concurrency)
            for extra in group[1:]:
                text += f'\n[[owners]]\nname = "{extra}"\nkind = "org"\ndiscovery = "rest"\n'
            path = work / f"{label}-{n}.toml"
            path.write_text(config_text(text, db))
            configs.append(path)
        env = {**os.environ, "GHCR_BENCH_TOKEN": world.info["token"]}
        world.call("stats")
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "crawler", "--config", str(c), "--log-level", "warning",
                                   "sync"], env=env, stdout=subprocess.DEVNULL, stderr=open(work / f"{c.stem}.log", "wb"),
                                  cwd=work) for c in configs]
        peaks = [[] for _ in procs]
        samplers = [threading.Thread(target=_rss_peak, args=(p.pid, peak), daemon=True) for p, peak in zip(procs, peaks)]
        for s in samplers:
            s.start()
        cpu = 0.0
        codes = []
        for p in procs:
            _, status, usage = os.wait4(p.pid, 0)
            codes.append(os.waitstatus_to_exitcode(status))
            cpu += usage.ru_utime + usage.ru_stime
        wall = time.perf_counter() - started
        for s in samplers:
            s.join(5)
        seen = world.call("stats")
        row = db.last_run_row() if hasattr(db, "last_run_row") else {}
        out[label] = {"crawlers": len(procs), "exit_codes": codes, "wall_s": round(wall, 2),
                      "world_requests": seen["requests"], "cpu_s": round(cpu, 2),
                      "peak_rss_mb": round(max((max(p) for p in peaks if p), default=0), 1),
                      "tags": row.get("_tags", 0), "images": row.get("_images", 0)}
    return out
