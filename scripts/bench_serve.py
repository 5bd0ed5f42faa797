"""The `serve` scenarios of scripts/bench.py: `ghcr-inventory serve` (a
subprocess) against an in-process world whose emulator delivers signed
webhooks — event -> committed latency for single pushes and for a burst,
requests per event, and the targeted syncs' lower bound."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN_ENV = "GHCR_BENCH_TOKEN"


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def serve_bench(work: Path, config_toml: Callable[..., str], *, latency_ms: float, singles: int, burst: int,
                burst_packages: int) -> dict:
    """``ghcr-inventory serve`` (a subprocess) against an in-process world whose
    emulator delivers signed webhooks: event -> committed latency (median, p99,
    from the server's own ``event_synced`` lines) for ``singles`` pushes one at
    a time, and for a burst of ``burst`` events across ``burst_packages``
    packages (one push each, within one debounce window); requests per event
    and the targeted syncs' lower bound (what one sync of those packages costs)."""
    from crawler.sandbox import World

    secret = "bench-webhook-secret-" + "0" * 16
    out: dict = {"latency_ms": latency_ms}
    base = work / "serve"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    with World(base / "world", validate=False, api_latency_ms=latency_ms, registry_latency_ms=latency_ms) as world:
        owner = "hooks"
        world.builder.create_owner(owner)
        world.builder.create_repository(owner, "src")
        names = [f"p{i:02d}" for i in range(max(burst_packages, 1))]
        for name in names:
            world.builder.push_image(owner, name, tags=["v0"], repository=f"{owner}/src")
        db = base / "inventory.db"
        env = {**os.environ, TOKEN_ENV: world.token, "GHCR_INVENTORY_WEBHOOK_SECRET": secret}

        def config(debounce_s: float, name: str) -> Path:
            path = base / name
            path.write_text(config_toml({"api_url": world.api_url, "registry_url": world.registry_url}, db, owner,
                                        concurrency=16) +
                            f'\n[serve]\nlisten = "127.0.0.1:0"\ndebounce_s = {debounce_s}\nreconcile_interval_s = 0\n')
            return path

        subprocess.run([sys.executable, "-m", "crawler", "--config", str(config(1, "sync.toml")), "sync"], env=env,
                       cwd=ROOT, check=True, capture_output=True, timeout=600)

        def phase(label: str, debounce_s: float, pushes: list[tuple[str, str]]) -> dict:
            log = base / f"{label}.log"
            proc = subprocess.Popen([sys.executable, "-m", "crawler", "--config", str(config(debounce_s, f"{label}.toml")),
                                     "--log-format", "json", "serve"], env=env, cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
            try:
                url = _wait_line(log, b'"serve_listening"', proc)["url"]
                hook = world.add_webhook(url + "/webhook", secret, owner=owner)
                first_run = _count(db, "SELECT COALESCE(MAX(id), 0) FROM sync_runs")
                events_before = _count(db, "SELECT COUNT(*) FROM events")
                started = time.perf_counter()
                for package, tag in pushes:
                    world.builder.push_image(owner, package, tags=[tag], repository=f"{owner}/src")
                    if label == "single":
                        want = _count(db, "SELECT COUNT(*) FROM events")
                        _wait(lambda: _count(db, "SELECT COUNT(*) FROM events WHERE state != 'pending'") >= want)
                total = _count(db, "SELECT COUNT(*) FROM events") - events_before
                _wait(lambda: _count(db, "SELECT COUNT(*) FROM events WHERE state = 'pending'") == 0)
                wall = time.perf_counter() - started
                world.remove_webhook(hook.id)
            finally:
                proc.send_signal(15)
                proc.wait(60)
            latencies = [r["latency_s"] for r in _log_lines(log, b'"event_synced"')]
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                runs = conn.execute("SELECT COUNT(*), COALESCE(SUM(requests), 0), COALESCE(SUM(lower_bound), 0), "
                                    "COALESCE(SUM(packages_changed), 0) FROM sync_runs WHERE id > ?",
                                    (first_run,)).fetchone()
            finally:
                conn.close()
            return {"events": total, "syncs": runs[0], "requests": runs[1], "lower_bound": runs[2],
                    "packages_changed": runs[3], "requests_per_event": round(runs[1] / total, 2) if total else 0,
                    "median_s": _percentile(latencies, 0.5), "p99_s": _percentile(latencies, 0.99),
                    "max_s": round(max(latencies), 3) if latencies else 0, "wall_s": round(wall, 2),
                    "debounce_s": debounce_s}

        if singles:
            out["single"] = phase("single", 0.2, [(names[0], f"s{i}") for i in range(singles)])
        if burst:
            per = [(names[i % len(names)], f"b{i}") for i in range(burst)]
            out["burst"] = phase("burst", 5.0, per)    # the whole burst (~2 s of pushes) falls in one window
            out["burst"]["packages"] = len({p for p, _ in per})
    return out


def _count(db: Path, sql: str, params=()) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def _wait(predicate, within_s: float = 300.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("bench: serve did not sync the events in time")
        time.sleep(0.02)


def _log_lines(log: Path, needle: bytes) -> list[dict]:
    return [json.loads(line) for line in log.read_bytes().splitlines() if needle in line]


def _wait_line(log: Path, needle: bytes, proc: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = _log_lines(log, needle)
        if lines:
            return lines[-1]
        if proc.poll() is not None:
            raise RuntimeError(f"bench: serve exited {proc.returncode}: {log.read_text()[-500:]}")
        time.sleep(0.05)
    raise RuntimeError("bench: serve did not start")


def serve_text(r: dict | None) -> str:
    if not r:
        return "(not run)"
    rows = ["| scenario | events | syncs | requests | lower bound | requests/event | median | p99 | debounce |",
            "|---|---|---|---|---|---|---|---|---|"]
    for key, label in (("single", "single pushes, one at a time"), ("burst", "burst")):
        x = r.get(key)
        if x:
            what = label if key == "single" else f"burst of {x['events']} events across {x['packages']} packages"
            rows.append(f"| {what} | {x['events']} | {x['syncs']} | {x['requests']} | {x['lower_bound']} | "
                        f"{x['requests_per_event']} | {x['median_s']} s | {x['p99_s']} s | {x['debounce_s']} s |")
    return "\n".join(rows) + f"\n\n({r['latency_ms']} ms per request on every host; latency = event received -> " \
        "its package committed, including the debounce window.)"
