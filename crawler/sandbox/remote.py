"""A scale world in its own process, driven over stdin/stdout JSON lines.

The benchmark runs the world (emulator, fault proxies, CDN, and the registry
as its child) in a separate process so it does not share the crawler's CPU
or GIL::

    python -m crawler.sandbox scale --dir DIR --packages 1000 --sample 50 --latency-ms 20

builds (or reuses) the orgs in ``DIR`` (``scale.prepare``), starts the world
behind the latency proxies, prints one JSON line (URLs, the sandbox token,
build time and counts), then answers one JSON line per command line:

- ``{"op": "churn", "fraction": 0.01}`` — ``scale.churn`` on the main org
- ``{"op": "nightly", "round": 1}`` — ``scale.nightly_build``: one new
  release of the main org's first giant
- ``{"op": "stats"}`` — requests the fronts saw since the last ``stats``
  (by kind), and the CPU seconds of the world process and of the registry;
  with ``"record": PATH`` also writes them, one JSON line each (front,
  method, path with query, status), for the benchmark's bare-client floor
  (``scripts/bench_floor.py``) to replay
- ``{"op": "stop"}`` (or end of input) — stop and exit

``RemoteWorld`` is the client side: it starts the process, reads the first
line and sends commands.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
from collections import Counter
from pathlib import Path

from . import scale

SAMPLE_OWNER = "sample"
_MANIFEST = re.compile(r"^/v2/.+/manifests/")
_TAGS = re.compile(r"^/v2/.+/tags/list")
_BLOB = re.compile(r"^/v2/.+/blobs/")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, help="world directory (storage + scale.json), reused across runs")
    parser.add_argument("--owner", default="bench", help="the main org's login")
    parser.add_argument("--packages", type=int, default=1000, help="packages in the main org")
    parser.add_argument("--giants", type=int, default=None, help="packages with --giant-tags+ tags (default: 0.3 %%)")
    parser.add_argument("--giant-tags", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=50, help="packages of the side-by-side org 'sample' (0: none)")
    parser.add_argument("--orgs", type=int, default=1, help="orgs shaped like the main one: OWNER, OWNER2, …")
    parser.add_argument("--wide", type=int, nargs="*", default=[],
                        help="orgs 'wideN' of N small packages sharing one pool of content")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added per request, every host")
    parser.add_argument("--connect-latency-ms", type=float, default=20.0, help="added per new connection")


def specs_from(args) -> list[scale.ScaleSpec]:
    specs = [scale.ScaleSpec.org(args.packages, owner=args.owner, giants=args.giants, giant_tags=args.giant_tags)]
    specs += [scale.ScaleSpec.org(args.packages, owner=f"{args.owner}{n}", giants=args.giants,
                                  giant_tags=args.giant_tags) for n in range(2, getattr(args, "orgs", 1) + 1)]
    if not args.packages:
        specs = []        # a world of wide orgs only
    specs += [scale.ScaleSpec.wide(n, owner=f"wide{n}") for n in getattr(args, "wide", [])]
    if args.sample:
        specs.append(scale.ScaleSpec.org(args.sample, owner=SAMPLE_OWNER, giants=0))
    return specs


def classify(method: str, path: str) -> str:
    """A request kind a person reads: token, ping, tags, manifest_head, manifest_get, blob, …"""
    path = path.split("?", 1)[0]
    if path == "/token":
        return "token"
    if path in ("/v2", "/v2/"):
        return "ping"
    if _TAGS.match(path):
        return "tags"
    if _MANIFEST.match(path):
        return "manifest_head" if method == "HEAD" else "manifest_get"
    if _BLOB.match(path):
        return "blob"
    if "/versions" in path:
        return "versions"
    if path.endswith("/packages"):
        return "packages"
    return "other"


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def serve(args) -> int:
    from .state import TickClock
    from .world import World

    specs = specs_from(args)
    layout = scale.prepare(args.dir, specs)
    world = World(
        args.dir,
        validate=False,
        clock=TickClock(),
        registry_latency_ms=args.latency_ms,
        registry_connect_latency_ms=args.connect_latency_ms,
        api_latency_ms=args.latency_ms,
        api_connect_latency_ms=args.connect_latency_ms,
        registry_log_level="error",
    )
    with world:
        world.call(scale.register, world.state, layout)
        if args.latency_ms:
            # The blob host (ghcr's CDN) is a third host at the same distance.
            world.cdn.inject("latency", times=10**12, ms=args.latency_ms)
        world.reset_logs()
        info = {k: v for k, v in world.describe().items() if k != "admin_token"}
        # One bench run replays an org many times within the emulator's hour (cold, its floor
        # replay, PostgreSQL, the resync and its replay, churn, the side by side): ~6,000 API
        # requests for the 1,000-package org, and a wide org's cold sync alone asks one versions
        # page per package (10,100 at 10,000), past a classic PAT's 5,000 an hour. The bench's
        # token has 100,000 an hour, so no scenario ends rate_limited; each counts its own requests.
        info["token"] = world.add_token(login="bench-runner", scopes=("read:packages", "repo"), rate_limit=100_000)
        info.update(owners=[s.owner for s in specs], build_seconds=layout.seconds, built=layout.built,
                    cleanup_seconds=layout.cleanup_seconds,
                    counts=layout.stats(), pid=os.getpid(), registry_pid=world.registry._proc.pid)  # noqa: SLF001
        _reply(info)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                command = json.loads(line)
                op = command.get("op")
                if op == "stop":
                    _reply({"ok": True})
                    break
                if op == "churn":
                    summary = world.call(scale.churn, world.state, args.dir, layout, specs[0],
                                         fraction=float(command.get("fraction", 0.01)),
                                         round_no=int(command.get("round", 1)))
                    _reply({"ok": True, "churn": summary})
                elif op == "nightly":
                    summary = world.call(scale.nightly_build, world.state, args.dir, layout, specs[0],
                                         round_no=int(command.get("round", 1)))
                    _reply({"ok": True, "nightly": summary})
                elif op == "stats":
                    _reply({"ok": True, **world.call(_stats, world, command.get("record"))})
                else:
                    _reply({"ok": False, "error": f"unknown op {op!r}"})
            except Exception as exc:  # noqa: BLE001 - report to the driver, keep serving
                _reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return 0


def _stats(world, record: str | None = None) -> dict:
    """Requests each front saw since the last call (then forgotten), and CPU used so far."""
    if record:
        _record(world, Path(record))
    by_kind: Counter = Counter()
    for exchange in world.registry_proxy.log:
        by_kind[classify(exchange.method, exchange.path)] += 1
    for exchange in world.api_proxy.log:
        by_kind[classify(exchange.method, exchange.path)] += 1
    cdn = len(world.cdn.requests)
    by_kind["cdn_blob"] += cdn
    not_modified = sum(1 for e in (*world.registry_proxy.log, *world.api_proxy.log) if e.status == 304)
    world.registry_proxy.reset_log()
    world.api_proxy.reset_log()
    world.cdn.requests.clear()
    # The CDN keeps every redirected blob's bytes for its URL; forget them between runs.
    world.cdn._blobs.clear()  # noqa: SLF001
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests": sum(by_kind.values()),
        "by_kind": dict(sorted(by_kind.items())),
        "not_modified": not_modified,
        "world_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "registry_cpu_s": round(_cpu_of(world.registry._proc.pid), 2),  # noqa: SLF001
    }


def _record(world, path: Path) -> None:
    """Each of the registry and API fronts' requests in arrival order. The CDN's are
    left out: their URLs are minted per redirect, so a replay follows the
    registry's redirect instead of repeating them."""
    with path.open("w") as out:
        for front, proxy in (("registry", world.registry_proxy), ("api", world.api_proxy)):
            for e in proxy.log:
                out.write(json.dumps({"front": front, "method": e.method, "path": e.path,
                                      "status": e.status}) + "\n")


def _reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class RemoteWorld:
    """Start ``python -m crawler.sandbox scale …`` and talk to it. Use as a context manager."""

    def __init__(self, directory: str | Path, *, packages: int, sample: int = 50, latency_ms: float = 20.0,
                 connect_latency_ms: float = 20.0, giants: int | None = None, giant_tags: int = 2000,
                 owner: str = "bench", python: str = sys.executable, start_timeout_s: float = 600,
                 orgs: int = 1, wide: tuple[int, ...] = ()) -> None:
        self.dir = Path(directory)
        self.argv = [python, "-m", "crawler.sandbox", "scale", "--dir", str(self.dir), "--owner", owner,
                     "--packages", str(packages), "--sample", str(sample), "--latency-ms", str(latency_ms),
                     "--connect-latency-ms", str(connect_latency_ms), "--giant-tags", str(giant_tags)]
        if giants is not None:
            self.argv += ["--giants", str(giants)]
        if orgs > 1:
            self.argv += ["--orgs", str(orgs)]
        if wide:
            self.argv += ["--wide", *map(str, wide)]
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def __enter__(self) -> "RemoteWorld":
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / "world.log", "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                     text=True, bufsize=1)
        log.close()
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            tail = (self.dir / "world.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the world did not start; {self.dir / 'world.log'}: {tail}")
        self.info = json.loads(line)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, op: str, **kw) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the world exited (code {self.proc.poll()}); see {self.dir / 'world.log'}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"world op {op}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None and proc.stdin is not None:
                proc.stdin.write(json.dumps({"op": "stop"}) + "\n")
                proc.stdin.flush()
                proc.stdin.close()
            proc.wait(60)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            proc.kill()
            proc.wait()
