"""`ghcr-inventory demo`: the main job end to end against the local sandbox.

Starts the world (the real CNCF registry with token auth behind a
ghcr-shaped front, and the GitHub API emulator), pushes the sample org, syncs
it twice (cold, then a no-op that costs only 304s), runs `serve` while a new
tag is pushed (the emulator's webhook makes it queryable seconds later), and
shows what the database answers. Everything stays on 127.0.0.1; the tokens are the
sandbox's own fake ones and never appear on a command line.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from .config import parse_config
from .credentials import Credentials
from .output import render
from .secret import Secret
from .engine import RunSummary, run_sync
from .readonly import open_readonly

SAMPLE_QUERY = ("SELECT package, tag, kind, substr(digest, 1, 19) AS digest FROM v_tags "
                "WHERE owner = 'acme' AND package IN ('webapp', 'team/app/api') ORDER BY package, tag")


def _line(label: str, s: RunSummary, seconds: float) -> str:
    return (f"{label}: {s.status}, {s.packages_changed} changed, {s.packages_skipped} unchanged, "
            f"{s.packages_failed} failed; {s.requests} requests ({s.not_modified} answered 304, "
            f"lower bound {s.lower_bound}) in {seconds:.1f}s")


def run_demo(db: Path | None = None, out=None) -> int:
    out = out or sys.stdout
    try:
        from .sandbox.sample import build_sample_org
        from .sandbox.world import World
    except ImportError as exc:  # pragma: no cover - the [sandbox] extra is missing
        from .errors import UsageError
        raise UsageError(f"the demo needs the sandbox extra: pip install -e '.[sandbox]' ({exc})") from None
    workdir = Path(tempfile.mkdtemp(prefix="ghcr-inventory-demo-"))
    db = (db or workdir / "inventory.db").resolve()
    try:
        with World(workdir / "world", validate=False) as world:
            print(f"sandbox: registry {world.registry_url} (CNCF distribution, token auth, ghcr-shaped "
                  f"front), GitHub API emulator {world.api_url}", file=out)
            sample = build_sample_org(world)
            print(f"sample: {len(sample.packages)} packages of {', '.join(o for o, _ in sample.owners)} "
                  f"pushed to the registry and registered with the emulator", file=out)
            config_path = workdir / "ghcr-inventory.toml"
            config_path.write_text(world.config_toml(db, owners=list(sample.owners), trusted_root=True))
            config = parse_config(config_path.read_text(), source=str(config_path), base_dir=workdir)
            token = Secret(world.token)
            creds = Credentials(github=token, registry=token)
            code = 0
            for label in ("sync 1 (cold)", "sync 2 (nothing changed)"):
                started = time.monotonic()
                summary = asyncio.run(run_sync(config, creds))
                print(_line(label, summary, time.monotonic() - started), file=out)
                code = max(code, summary.exit_code)
            print(asyncio.run(_serve_demo(world, config, creds, db)), file=out)
        _show(db, out)
        print(f"\ndatabase: {db}\ntry: ghcr-inventory query --db {db} "
              f"\"SELECT package, platform, size FROM v_images WHERE kind = 'image'\"", file=out)
        return code
    finally:
        shutil.rmtree(workdir / "world", ignore_errors=True)


DEMO_SECRET = "demo-webhook-secret-" + "0" * 16   # the sandbox's own, like its tokens
DEMO_PACKAGE, DEMO_TAG = "webapp", "2.0.0-demo"


async def _serve_demo(world, config, creds, db: Path) -> str:
    """`serve` on a loopback port with the emulator's webhook pointed at it:
    push a new tag of a linked package and time until v_tags shows it."""
    from dataclasses import replace
    from .serve import serve
    config = replace(config, serve=replace(config.serve, listen="127.0.0.1:0", debounce_s=0.5,
                                           reconcile_interval_s=0))
    stop, urls = asyncio.Event(), []
    task = asyncio.create_task(serve(config, creds, Secret(DEMO_SECRET), stop=stop, ready=urls.append))
    try:
        while not urls and not task.done():
            await asyncio.sleep(0.02)
        if task.done():
            task.result()
        await asyncio.to_thread(world.add_webhook, urls[0] + "/webhook", DEMO_SECRET, owner="acme")
        runs = _runs(db)
        started = time.monotonic()
        await asyncio.to_thread(world.builder.push_image, "acme", DEMO_PACKAGE, tags=[DEMO_TAG],
                                repository="acme/webapp")
        seconds = await _until_tagged(db, started)
        syncs = _runs(db) - runs
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    if seconds is None:
        return f"serve: acme/{DEMO_PACKAGE}:{DEMO_TAG} was not queryable within 30s (see the serve log)"
    return (f"serve: pushed acme/{DEMO_PACKAGE}:{DEMO_TAG}; its webhook made it queryable {seconds:.1f}s "
            f"later ({syncs} targeted sync{'s' if syncs != 1 else ''})")


def _runs(db: Path) -> int:
    conn = open_readonly(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM sync_runs").fetchone()[0]
    finally:
        conn.close()


async def _until_tagged(db: Path, started: float, within_s: float = 30.0) -> float | None:
    sql = "SELECT 1 FROM v_tags WHERE owner = 'acme' AND package = ? AND tag = ?"
    while time.monotonic() - started < within_s:
        conn = open_readonly(db)
        try:
            if conn.execute(sql, (DEMO_PACKAGE, DEMO_TAG)).fetchone():
                return time.monotonic() - started
        finally:
            conn.close()
        await asyncio.sleep(0.05)
    return None


def _show(db: Path, out) -> None:
    conn = open_readonly(db)
    try:
        print(f"\n$ ghcr-inventory query \"{SAMPLE_QUERY}\"", file=out)
        cur = conn.execute(SAMPLE_QUERY)
        out.write(render("table", [d[0] for d in cur.description], cur.fetchall()))
        try:
            from .reports import run_report
        except ImportError:
            return
        columns, rows, _ = run_report(conn, "summary")
        print("\n$ ghcr-inventory report summary", file=out)
        out.write(render("table", columns, rows))
    except sqlite3.Error as exc:
        print(f"(could not query the demo database: {exc})", file=out)
    finally:
        conn.close()
