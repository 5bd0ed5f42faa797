"""`ghcr-inventory demo`: the main job end to end against the local sandbox.

Starts the world (the real CNCF registry with token auth behind a
ghcr-shaped front, and the GitHub API emulator), pushes the sample org, syncs
it twice (cold, then a no-op that costs only 304s), and shows what the
database answers. Everything stays on 127.0.0.1; the tokens are the
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

from .config import Credentials, parse_config
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
        _show(db, out)
        print(f"\ndatabase: {db}\ntry: ghcr-inventory query --db {db} "
              f"\"SELECT package, platform, size FROM v_images WHERE kind = 'image'\"", file=out)
        return code
    finally:
        shutil.rmtree(workdir / "world", ignore_errors=True)


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
