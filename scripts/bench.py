#!/usr/bin/env python3
"""The benchmark (issue 7): request economy and speed at org scale, side by side
with what users would do instead.

    .venv/bin/python scripts/bench.py --docs docs/benchmarks.md

One run, against the sandbox world in its own process (``crawler.sandbox.remote``)
behind the latency proxy (default 20 ms per request and per new connection,
every host: registry, token endpoint, blob CDN, GitHub API):

1. cold full sync of a 1,000-package org; 2. no-op incremental; 3. incremental
after 1 % churn; 4. ``--full`` resync of the warm database — each with requests
by kind, 304s, the lower bound, wall time, images/s, peak RSS and DB size. The
crawler runs as a subprocess (``ghcr-inventory --config … sync``), so RSS and
CPU are its own (``wait4`` rusage).

The floor (issue 17): after the cold sync and the ``--full`` resync the
world's fronts hand over the requests they saw, and ``scripts/bench_floor.py``
(a bare aiohttp client, its own process) replays them; the report gives the
crawler's CPU a request against the floor's.

Side by side on a 50-package sample org: ``skopeo list-tags`` + ``skopeo
inspect --raw`` per tag (sequential, and ``xargs -P 8``), the registry-only
way (this crawler with ``crawl.tag_source = "registry"``), and this crawler —
wall time, requests and client CPU per tag (the crawler's rusage; each skopeo
process timed by bash).

Also: the cold sync of a 100-package world (memory growth), the writer alone
(the engine's writer task over ``StoreWriter.apply_packages``, synthetic results), and a py-spy profile of the
cold sync (sampled from outside at 100 Hz, ``--nonblocking``). Targets print PASS/FAIL; a miss is a finding, not an error (the
exit code is 0 unless something could not run).

PostgreSQL (``--postgres yes``, issue 14; ``scripts/bench_postgres.py``): the
cold, no-op and churn scenarios again against a real PostgreSQL server, each
right after its SQLite run on the same world (the requests must be
identical), the writer alone on PostgreSQL, and three crawlers for three
owners started together against one database beside one crawler for all
three (``--concurrent-packages`` per owner).

serve (``scripts/bench_serve.py``): event -> committed latency of ``ghcr-inventory
serve`` for single pushes and for a burst of webhook deliveries.

The world is built once into ``--state-dir`` and reused by later runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.oci.mediatypes import ACCEPT_MANIFESTS  # noqa: E402
from crawler.sandbox.remote import SAMPLE_OWNER, RemoteWorld  # noqa: E402
from crawler.sandbox.scale import ScaleSpec  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import bench_postgres  # noqa: E402
import bench_serve  # noqa: E402

TOKEN_ENV = "GHCR_BENCH_TOKEN"
MB = 1024 * 1024


# -- one crawler run ---------------------------------------------------------------------


@dataclass
class Run:
    scenario: str
    wall_s: float = 0.0                 # process start to exit
    engine_s: float = 0.0               # the run's own duration (metrics file)
    exit_code: int = 0
    status: str = ""
    requests: int = 0
    not_modified: int = 0
    lower_bound: int = 0
    by_kind: dict = field(default_factory=dict)
    world_requests: int = 0             # what the fronts saw (an independent count)
    world_by_kind: dict = field(default_factory=dict)
    packages_changed: int = 0
    packages_skipped: int = 0
    packages_failed: int = 0
    manifests_new: int = 0
    images: int = 0                     # current (package, digest) rows after the run
    tags: int = 0                       # current tags after the run
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0                  # the crawler's user + system CPU
    world_cpu_s: float = 0.0            # the world process (proxies, emulator, CDN)
    registry_cpu_s: float = 0.0         # docker-registry
    db_mb: float = 0.0
    load: tuple = ()                    # 1-minute load average before and after (other work on the machine)
    rss_timeline: list = field(default_factory=list)  # (seconds, MB) every ~2 % of the run
    profile: dict | None = None

    @property
    def ratio(self) -> float:
        return self.requests / self.lower_bound if self.lower_bound else float("nan")

    @property
    def req_per_s(self) -> float:
        return self.requests / self.engine_s if self.engine_s else 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s if self.wall_s else 0.0


def _sample_rss(pid: int, started: float, out: list) -> None:
    """VmRSS of a running process every 0.2 s, until it exits (to tell growth from a peak)."""
    path = Path(f"/proc/{pid}/status")
    while True:
        try:
            text = path.read_text()
        except OSError:
            return
        kb = next((int(l.split()[1]) for l in text.splitlines() if l.startswith("VmRSS:")), None)
        if kb is None:  # a zombie: exited, not reaped yet
            return
        out.append((round(time.perf_counter() - started, 2), round(kb / 1024, 1)))
        time.sleep(0.2)


def _thin(points: list, n: int) -> list:
    if len(points) <= n:
        return points
    step = len(points) / n
    return [points[int(i * step)] for i in range(n)] + [points[-1]]


def config_toml(info: dict, db: Path, owner: str, *, concurrency: int, tag_source: str = "auto",
                crawl: dict | None = None) -> str:
    return "\n".join([
        "[database]", f'path = "{db}"', "",
        "[github]", f'api_url = "{info["api_url"]}"', f'graphql_url = "{info["api_url"]}/graphql"',
        f'token_env = "{TOKEN_ENV}"', "",
        "[registry]", f'url = "{info["registry_url"]}"', "",
        "[crawl]", f"concurrency = {concurrency}", f'tag_source = "{tag_source}"',
        *(f"{k} = {v}" for k, v in (crawl or {}).items()), "",
        "[[owners]]", f'name = "{owner}"', 'kind = "org"', 'discovery = "rest"', "",
    ])


def db_size(db: Path) -> int:
    if hasattr(db, "size"):   # a PostgreSQL database (bench_postgres.PgInventory)
        return db.size()
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


def last_run_row(db: Path) -> dict:
    if hasattr(db, "last_run_row"):
        return db.last_run_row()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone()
        out = dict(row) if row else {}
        out["_images"] = conn.execute("SELECT COUNT(*) FROM package_digests WHERE last_seen IS NULL").fetchone()[0]
        out["_tags"] = conn.execute("SELECT COUNT(*) FROM v_tags").fetchone()[0]
        return out
    finally:
        conn.close()


def engine_seconds(metrics: Path) -> float:
    try:
        for line in metrics.read_text().splitlines():
            if line.startswith("ghcr_inventory_last_run_duration_seconds"):
                return float(line.split()[-1])
    except (OSError, ValueError):
        pass
    return 0.0


def run_crawler(world: RemoteWorld, work: Path, scenario: str, db: Path, owner: str, *, concurrency: int,
                full: bool = False, tag_source: str = "auto", profile: Path | None = None,
                crawl: dict | None = None, record: Path | None = None) -> Run:
    config = work / f"{scenario}.toml"
    config.write_text(bench_postgres.config_text(
        config_toml(world.info, db, owner, concurrency=concurrency, tag_source=tag_source, crawl=crawl), db))
    metrics = work / f"{scenario}.prom"
    argv = [str(ROOT / ".venv" / "bin" / "ghcr-inventory"), "--config", str(config), "--log-level", "warning",
            "sync", "--metrics-file", str(metrics)]
    if full:
        argv.append("--full")
    if not Path(argv[0]).exists():
        argv[0:1] = [sys.executable, "-m", "crawler"]
    env = {**os.environ, TOKEN_ENV: world.info["token"]}
    before = world.call("stats")  # forget what the fronts saw so far
    load_before = os.getloadavg()[0]
    log = open(work / f"{scenario}.log", "wb")
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    spy = None
    if profile is not None:
        spy = subprocess.Popen([py_spy(), "record", "--pid", str(proc.pid), "--rate", "100", "--nonblocking",
                                "--gil", "--format", "raw", "--output", str(profile)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    timeline: list[tuple[float, float]] = []
    sampler = threading.Thread(target=_sample_rss, args=(proc.pid, started, timeline), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    sampler.join(5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    log.close()
    if spy is not None:
        spy.wait(60)
    after = world.call("stats", **({"record": str(record)} if record else {}))
    row = last_run_row(db)
    run = Run(
        scenario=scenario, wall_s=round(wall, 3), engine_s=engine_seconds(metrics), exit_code=proc.returncode,
        status=row.get("status", "?"), requests=row.get("requests") or 0,
        not_modified=row.get("not_modified") or 0, lower_bound=row.get("lower_bound") or 0,
        by_kind=json.loads(row.get("requests_by_kind") or "{}"), world_requests=after["requests"],
        world_by_kind=after["by_kind"], packages_changed=row.get("packages_changed") or 0,
        packages_skipped=row.get("packages_skipped") or 0, packages_failed=row.get("packages_failed") or 0,
        manifests_new=row.get("manifests_new") or 0, images=row["_images"], tags=row["_tags"],
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1), cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
        world_cpu_s=round(after["world_cpu_s"] - before["world_cpu_s"], 2),
        registry_cpu_s=round(after["registry_cpu_s"] - before["registry_cpu_s"], 2),
        db_mb=round(db_size(db) / MB, 1), load=(round(load_before, 1), round(os.getloadavg()[0], 1)),
        rss_timeline=_thin(timeline, 50),
    )
    if profile is not None and profile.exists():
        run.profile = summarize_profile(profile.read_text(), seconds=run.wall_s, rate=100)
    return run


# -- the floor: a bare aiohttp client making the same requests ----------------------------------


def run_floor(world: RemoteWorld, work: Path, scenario: str, requests: Path, *, concurrency: int) -> dict:
    """Replay a crawler run's recorded requests with ``scripts/bench_floor.py``
    in its own process (``wait4`` rusage: its CPU is its own)."""
    argv = [sys.executable, str(ROOT / "scripts" / "bench_floor.py"), "--requests", str(requests),
            "--registry", world.info["registry_url"], "--api", world.info["api_url"],
            "--concurrency", str(concurrency), "--accept-manifests", ACCEPT_MANIFESTS]
    env = {**os.environ, TOKEN_ENV: world.info["token"]}
    world.call("stats")  # forget what the fronts saw so far
    started = time.perf_counter()
    out, err = work / f"floor-{scenario}.json", work / f"floor-{scenario}.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out, err = out.read_bytes(), err.read_bytes()
    after = world.call("stats")
    code = os.waitstatus_to_exitcode(status)
    result = json.loads(out) if code == 0 and out.strip() else {"requests": 0}
    if code != 0:
        print(f"bench: floor of {scenario} failed ({code}): {err.decode(errors='replace')[-500:]}",
              file=sys.stderr)
    result.update(scenario=scenario, exit_code=code, process_wall_s=round(wall, 3),
                  cpu_s=round(usage.ru_utime + usage.ru_stime, 2), world_requests=after["requests"],
                  peak_rss_mb=round(usage.ru_maxrss / 1024, 1))
    return result


def floor_of(world: RemoteWorld, work: Path, scenario: str, a, say) -> dict:
    floor = run_floor(world, work, scenario, work / f"{scenario}.requests.jsonl", concurrency=a.concurrency)
    say(f"floor of {scenario}: {floor.get('requests', 0)} requests (world saw {floor['world_requests']}), "
        f"{floor['cpu_s']:.2f} s CPU, {floor['process_wall_s']:.2f} s")
    return floor


def floor_ratio(run: dict, floor: dict) -> dict:
    """CPU per request of the crawler and of the floor, and the ratio of the two."""
    crawler = 1000 * run["cpu_s"] / run["requests"] if run["requests"] else 0.0
    bare = 1000 * floor["cpu_s"] / floor["requests"] if floor.get("requests") else 0.0
    return {"crawler_ms": round(crawler, 3), "floor_ms": round(bare, 3),
            "ratio": round(crawler / bare, 2) if bare else float("nan")}


def floor_table(r: dict) -> str:
    lines = ["| scenario | crawler requests | crawler CPU s | crawler ms/request | floor requests | floor CPU s "
             "| floor ms/request | crawler / floor |", "|---|---|---|---|---|---|---|---|"]
    for name, floor in r["floor"].items():
        run = r["scenarios"][name]
        f = floor_ratio(run, floor)
        lines.append(f"| {LABELS.get(name, name)} | {run['requests']:,} | {run['cpu_s']:.2f} | "
                     f"{f['crawler_ms']:.3f} | {floor.get('requests', 0):,} | {floor['cpu_s']:.2f} | "
                     f"{f['floor_ms']:.3f} | {f['ratio']:.2f}x |")
    return "\n".join(lines)


def floor_target(r: dict) -> "Target | None":
    floors = r.get("floor")
    if not floors:
        return None
    ratios = {name: floor_ratio(r["scenarios"][name], floor) for name, floor in floors.items()}
    ok = all(f["ratio"] <= 1.5 for f in ratios.values())
    detail = "; ".join(f"{name} {f['crawler_ms']:.3f} / {f['floor_ms']:.3f} ms a request = {f['ratio']:.2f}x"
                       for name, f in ratios.items())
    return Target("crawler CPU <= 1.5x the bare-aiohttp floor (same requests, same world)", ok, detail)


def py_spy() -> str | None:
    local = ROOT / ".venv" / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


# -- the profile ----------------------------------------------------------------------------

GROUPS = (  # (label, substring of a frame's file) — first match from the leaf up wins
    ("sqlite (aiosqlite thread)", "aiosqlite"),
    ("sqlite (aiosqlite thread)", "sqlite3"),
    ("JSON (orjson)", "orjson"),
    ("structlog logging", "structlog"),
    ("logging", "/logging/"),
    ("aiohttp client", "aiohttp/client"),
    ("aiohttp connector", "aiohttp/connector"),
    ("aiohttp streams/parsing", "aiohttp/"),
    ("yarl/multidict", "yarl/"),
    ("yarl/multidict", "multidict/"),
    ("ssl", "ssl.py"),
    ("asyncio event loop", "asyncio/"),
    ("crawler.store", "crawler/store/"),
    ("crawler.oci", "crawler/oci/"),
    ("crawler.http", "crawler/http.py"),
    ("crawler.registry", "crawler/registry.py"),
    ("crawler.github", "crawler/github.py"),
    ("crawler.engine.worker", "crawler/engine/worker.py"),
    ("crawler.engine", "crawler/engine/"),
    ("crawler (other)", "crawler/"),
)


def _frame_file(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    inner = frame.rsplit("(", 1)[-1].rstrip(")")
    return inner.rsplit(":", 1)[0]


def summarize_profile(raw: str, *, seconds: float = 0.0, rate: int = 100, top: int = 15) -> dict:
    """py-spy ``--format raw`` (``frame;frame;… count`` per line, root first) → where the time goes.

    ``self`` counts samples by leaf function; ``groups`` by the first frame
    from the leaf up that belongs to a known library or crawler module;
    ``crawler_inclusive`` counts, per crawler line, samples with it anywhere
    on the stack, ``crawler_deepest`` the innermost crawler line of each
    sample (the crawler code that led to the time spent below it).
    With ``--gil`` only GIL-holding samples are recorded, so
    ``samples / (seconds * rate)`` is how busy the interpreter was.
    """
    self_time: Counter = Counter()
    groups: Counter = Counter()
    inclusive: Counter = Counter()
    deepest: Counter = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        self_time[frames[-1]] += n
        label = "other"
        for frame in reversed(frames):
            path = _frame_file(frame)
            hit = next((g for g, needle in GROUPS if needle in path), None)
            if hit:
                label = hit
                break
        groups[label] += n
        for frame in set(frames):
            if "crawler/" in _frame_file(frame):
                inclusive[frame] += n
        deepest[next((f for f in reversed(frames) if "crawler/" in _frame_file(f)), "(no crawler frame)")] += n
    def share(counter: Counter) -> list[tuple[str, int, float]]:
        return [(k, v, round(100 * v / total, 1)) for k, v in counter.most_common(top)] if total else []
    return {
        "samples": total,
        "busy": round(total / (seconds * rate), 3) if seconds else None,
        "groups": share(groups),
        "self": share(self_time),
        "crawler_inclusive": share(inclusive),
        "crawler_deepest": share(deepest),
    }


# -- skopeo, the way users script it -----------------------------------------------------------

SKOPEO_SCRIPT = r"""#!/usr/bin/env bash
# What users script today: list each repository's tags, then inspect every tag.
# Each skopeo process runs under bash's `time` (user + system seconds appended
# to OUTDIR/cpu), so the skopeo processes' own CPU is told from the loop's.
# usage: skopeo-loop PARALLEL HOST AUTHFILE REPOS OUTDIR
set -euo pipefail
P=$1 HOST=$2 AUTH=$3 REPOS=$4 OUT=$5
: > "$OUT/cpu"
xargs -P "$P" -I{} bash -c 'TIMEFORMAT="%3U %3S"; { time skopeo list-tags --tls-verify=false --authfile "$1" "docker://$2/$3" > "$4/$(printf %s "$3" | tr / _).json" 2>>"$4/errors"; } 2>>"$4/cpu"' _ "$AUTH" "$HOST" {} "$OUT" < "$REPOS"
for f in "$OUT"/*.json; do
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("\n".join(d["Repository"].split("/",1)[1]+":"+t for t in d["Tags"]))' "$f"
done > "$OUT/refs"
xargs -P "$P" -I{} bash -c 'TIMEFORMAT="%3U %3S"; { time skopeo inspect --raw --tls-verify=false --authfile "$1" "docker://$2/$3" > /dev/null 2>>"$4/errors"; } 2>>"$4/cpu"' _ "$AUTH" "$HOST" {} "$OUT" < "$OUT/refs"
wc -l < "$OUT/refs"
"""


@dataclass
class Loop:
    name: str
    wall_s: float
    requests: int
    by_kind: dict
    refs: int
    exit_code: int
    cpu_s: float = 0.0          # every child of the loop (bash, xargs, python3, skopeo)
    skopeo_cpu_s: float = 0.0   # the skopeo processes alone (bash `time` of each)


def skopeo_loop(world: RemoteWorld, work: Path, repositories: list[str], parallel: int) -> Loop:
    name = f"skopeo-P{parallel}"
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    host = world.info["registry_url"].removeprefix("http://")
    auth = work / "skopeo-auth.json"
    secret = base64.b64encode(f"bench:{world.info['token']}".encode()).decode()
    fd = os.open(auth, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"auths": {host: {"auth": secret}}}, f)
    script = work / "skopeo-loop.sh"
    script.write_text(SKOPEO_SCRIPT)
    repos = out / "repos"
    repos.write_text("\n".join(repositories) + "\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work)}
    world.call("stats")
    cpu_before = os.times()
    started = time.perf_counter()
    proc = subprocess.Popen(["bash", str(script), str(parallel), host, str(auth), str(repos), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    usage = os.times()
    after = world.call("stats")
    refs = int(stdout.strip().splitlines()[-1]) if proc.returncode == 0 and stdout.strip() else 0
    if proc.returncode != 0:
        errors = (out / "errors").read_text(errors="replace") if (out / "errors").exists() else ""
        print(f"bench: {name} failed ({proc.returncode}): {stderr[-500:]} {errors[-500:]}", file=sys.stderr)
    cpu = (usage.children_user + usage.children_system) - (cpu_before.children_user + cpu_before.children_system)
    return Loop(name, round(wall, 2), after["requests"], after["by_kind"], refs, proc.returncode, round(cpu, 2),
                round(_timed_cpu(out / "cpu"), 2))


def _timed_cpu(path: Path) -> float:
    """The sum of bash `time` lines ("USER SYS" seconds) in `path`."""
    total = 0.0
    for line in path.read_text().splitlines() if path.exists() else ():
        try:
            total += sum(float(x) for x in line.split())
        except ValueError:   # a line that is not a `time` report
            continue
    return total


# -- the writer alone ---------------------------------------------------------------------------


def writer_bench(work: Path, packages: int, tags_per_package: int, open_store=None) -> dict:
    """The writer task and the store alone (``Writer`` over ``StoreWriter.apply_packages``), with
    synthetic results built from real manifest bytes.

    ``cold``: every tag a new image (manifest, config, labels, layers), as in a
    cold sync. ``tags``: the same packages again with every tag renamed and the
    content already stored (tag rows and package digests only), as in an
    incremental run of a package with many tags.
    """
    from crawler.oci import parse_config, parse_manifest
    from crawler.model import PackageRef, PackageResult, VersionEntry
    from crawler.sandbox import content as c
    from crawler.store import SQLiteStore

    def result(p: int, prefix: str, content: bool) -> PackageResult:
        name = f"w-{p:05d}"
        ref = PackageRef(owner="writer", name=name, repository_path=f"writer/{name}", discovery="rest",
                         visibility="public", updated_at=f"2024-01-01T00:00:0{len(prefix)}Z",
                         version_count=tags_per_package)
        manifests, configs, versions, tags = [], [], [], {}
        base = c.Blob(c.OCI_LAYER, f"base-{p}".encode())
        for t in range(tags_per_package):
            labels = {c.LABEL_SOURCE: f"https://github.com/writer/{name}", c.LABEL_REVISION: f"{p:08x}{t:032x}",
                      c.LABEL_CREATED: "2024-01-01T00:00:00Z"}
            config = c.image_config(c.Platform("linux", "amd64"), labels=labels, created="2024-01-01T00:00:00Z",
                                    diff_ids=[base.digest], media_type=c.OCI_CONFIG)
            raw = c.image_manifest(c.OCI_MANIFEST, config, [base, c.Blob(c.OCI_LAYER, f"{p}-{t}".encode())])
            digest = c.sha256(raw)
            if content:
                manifests.append(parse_manifest(raw, digest=digest))
                configs.append(parse_config(config.data, digest=config.digest))
            tag = f"{prefix}{t}"
            versions.append(VersionEntry(digest, (tag,), p * 100_000 + t, "2024-01-01T00:00:00Z",
                                         "2024-01-01T00:00:00Z"))
            tags[tag] = digest
        return PackageResult(ref=ref, versions=versions, tags=tags, manifests=manifests, configs=configs)

    cold = [result(p, "1.", True) for p in range(packages)]
    retag = [result(p, "2.", False) for p in range(packages)]

    async def go() -> dict:
        db = work / "writer.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        store = await (open_store() if open_store else SQLiteStore.open(db))
        out = {}
        try:
            owner_id = await store.writer.ensure_owner("bench.invalid", "writer", "org", "rest")
            for name, batch in (("cold", cold), ("tags", retag)):
                seconds = await _through_writer(store, owner_id, batch)
                rows = packages * tags_per_package
                out[name] = {"packages": packages, "tag_rows": rows, "seconds": round(seconds, 3),
                             "tag_rows_per_s": round(rows / seconds)}
        finally:
            await store.close()
        return out

    return asyncio.run(go())


async def _through_writer(store, owner_id: int, results: list) -> float:
    """Seconds the engine's writer task takes to commit `results`, fed as
    fast as it takes them (workers that never make it wait): its queue as
    long as a run's (`WRITE_QUEUE`), so its batches are as large as a run's."""
    from crawler.engine.run import WRITE_QUEUE
    from crawler.engine.state import Hold
    from crawler.engine.writer import Writer

    async def release(hold) -> None:
        pass

    writer = Writer(store.writer, release=release, on_applied=lambda r, a: None, size=WRITE_QUEUE)
    started = time.perf_counter()
    for r in results:
        await writer.apply_package(owner_id, r, Hold())
    await writer.close()
    return time.perf_counter() - started


def nightly_bench(a, state: Path, work: Path, say) -> dict:
    """Issue 17: one package with ``--nightly-versions`` versions (one image
    each; the org's only other package is small) that gets one new build per
    run. A cold sync, then one build read the new way (the newest pages, the
    rest from the store), then one more with ``full_listing_interval_s = 0``
    (every page, as before): the changed package's requests and versions pages."""
    versions = a.nightly_versions
    world_dir = state / f"nightly{versions}"
    say(f"world: one package of {versions:,} versions in {world_dir} (built once, then reused)")
    out: dict = {"versions": versions}
    with RemoteWorld(world_dir, packages=2, sample=0, latency_ms=a.latency_ms, connect_latency_ms=a.connect_latency_ms,
                     giant_tags=versions, giants=1, owner="nightly") as world:
        out["build_seconds"], out["built"] = world.info["build_seconds"], world.info["built"]
        db = work / "nightly.db"

        def crawl(name: str, **kw) -> dict:
            run = run_crawler(world, work, name, db, "nightly", concurrency=a.concurrency, **kw)
            say(f"{name}: {run.status}, {run.requests} requests (LB {run.lower_bound}; versions pages "
                f"{run.by_kind.get('versions', 0)}), {run.wall_s:.2f} s")
            return asdict(run)

        out["cold"] = crawl("nightly-cold")
        for n, (key, crawl_keys) in enumerate((("after", None), ("before", {"full_listing_interval_s": 0})), 1):
            out[f"{key}_build"] = world.call("nightly", round=n)["nightly"]
            out[key] = crawl(f"nightly-{key}", crawl=crawl_keys)
    return out


def churn_versions(db: Path) -> dict:
    """The last run's versions pages against what reading every page of its
    changed packages would have cost (sum of ceil(V/100), V their versions now)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        run_id, kinds = conn.execute("SELECT id, requests_by_kind FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone()
        counts = [n for (n,) in conn.execute(
            "SELECT (SELECT COUNT(*) FROM package_digests pd WHERE pd.package_id = p.id AND pd.last_seen IS NULL "
            "AND pd.version_id IS NOT NULL) FROM package_changes pc JOIN owners o ON o.name = pc.owner "
            "JOIN packages p ON p.owner_id = o.id AND p.name = pc.package WHERE pc.run_id = ?", (run_id,))]
    finally:
        conn.close()
    return {"read": json.loads(kinds or "{}").get("versions", 0), "whole": sum(max(1, -(-n // 100)) for n in counts),
            "packages": len(counts), "largest": max(counts, default=0)}


def nightly_text(r: dict | None) -> str:
    if not r:
        return "(not run)"
    rows = ["| run | versions in the package | requests (by kind) | versions pages | lower bound | wall s |",
            "|---|---|---|---|---|---|"]
    for key, label in (("cold", "cold sync"), ("after", "one new build, newest pages + store"),
                       ("before", "one new build, every page (`full_listing_interval_s = 0`)")):
        s = r[key]
        count = r.get(f"{key}_build", {}).get("versions", r["versions"])
        rows.append(f"| {label} | {count:,} | {s['requests']:,} ({_kinds(s['by_kind'])}) "
                    f"| {s['by_kind'].get('versions', 0):,} | {s['lower_bound']:,} | {s['wall_s']:.2f} |")
    return "\n".join(rows)


def nightly_targets(r: dict) -> list:
    out = []
    c = r.get("churn_versions")
    if c:
        saved = -(-c["largest"] // 100) - 1     # the nightly's pages past its first
        out.append(Target("churn: versions pages <= every page of the changed packages - the nightly's pages past "
                          "its first", c["read"] <= c["whole"] - saved,
                          f"{c['read']} versions pages; every page of the {c['packages']} changed packages: "
                          f"{c['whole']} (the largest has {c['largest']:,} versions)"))
    n = r.get("nightly")
    if n:
        after, before = n["after"]["by_kind"].get("versions", 0), n["before"]["by_kind"].get("versions", 0)
        whole = -(-n["before_build"]["versions"] // 100)
        out.append(Target(f"nightly: one new build of a {n['versions']:,}-version package costs <= 2 versions pages",
                          0 < after <= 2 and n["after"]["exit_code"] == 0,
                          f"{after} versions pages, {n['after']['requests']} requests in all; every page: {before} "
                          f"versions pages (ceil(V/100) = {whole}), {n['before']['requests']} requests"))
    return out


# -- targets and the report -------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    ok: bool
    detail: str


def targets(r: dict, a) -> list[Target]:
    out: list[Target] = []
    scen = r["scenarios"]
    counts = r["world"]["counts"][r["world"]["owner"]]
    plan_lb = plan_lower_bound(counts, scen["cold"]["by_kind"].get("graphql", 0))
    parts = ", ".join(f"{k} {s['requests']}/{s['lower_bound']}" for k, s in scen.items())
    parts += (f" (the cold bound from the world's own plan: {plan_lb:,} = discovery + versions pages + "
              f"digests + 2 x image configs (GET + CDN hop) + one token per package + GraphQL)")
    ok = all(s["lower_bound"] and s["requests"] <= 1.05 * s["lower_bound"] for s in scen.values())
    out.append(Target("requests <= 1.05 x lower bound, every scenario", ok, parts))
    noop = scen["noop"]
    only_discovery = set(noop["by_kind"]) <= {"discovery"}
    all_304 = _all_304(noop)
    out.append(Target(f"no-op: only discovery pages, all 304 (a full last page asked once more), "
                      f"< 2 s wall at {a.latency_ms:g} ms",
                      only_discovery and all_304 and noop["wall_s"] < 2.0,
                      f"kinds {noop['by_kind']}, {noop['not_modified']}/{noop['requests']} 304, "
                      f"wall {noop['wall_s']:.2f} s"))
    cold = scen["cold"]
    bound = a.concurrency * 1000 / a.latency_ms if a.latency_ms else float("inf")
    rate = cold["requests"] / cold["engine_s"] if cold["engine_s"] else 0
    cpu_share = cold["cpu_s"] / cold["engine_s"] if cold["engine_s"] else 0
    cpu_bound = cpu_share >= 0.85
    ok = rate >= 0.7 * bound
    note = f"{rate:.0f} req/s = {100 * rate / bound:.0f} % of {a.concurrency} / {a.latency_ms:g} ms = {bound:.0f} req/s"
    per_request = 1000 * cold["cpu_s"] / cold["requests"] if cold["requests"] else 0
    world_per_request = 1000 * (cold["world_cpu_s"] + cold["registry_cpu_s"]) / cold["requests"] if cold["requests"] else 0
    note += (f"; crawler CPU {100 * cpu_share:.0f} % of a core, {per_request:.2f} ms a request (its own ceiling "
             f"on one free core: {1000 / per_request if per_request else 0:,.0f} req/s); the world "
             f"{world_per_request:.2f} ms a request; load average {cold['load'][0]}-{cold['load'][1]} "
             f"on {os.cpu_count()} cores")
    if not ok and cpu_bound:
        note += " (CPU-bound: see the profile)"
    out.append(Target("cold: >= 70 % of concurrency x RTT bound (or CPU-bound, profiled)", ok or cpu_bound, note))
    side = r.get("side_by_side")
    if side:
        ours = side["ours_cold"]
        xargs = side["skopeo_P8"]
        speed = xargs["wall_s"] / ours["wall_s"] if ours["wall_s"] else 0
        out.append(Target(">= 30x faster than skopeo with xargs -P 8 (sample)", speed >= 30,
                          f"{xargs['wall_s']:.1f} s vs {ours['wall_s']:.2f} s = {speed:.1f}x"))
        reg = side["registry_cold"]
        fewer = reg["requests"] / ours["requests"] if ours["requests"] else 0
        warm = side["registry_noop"]["requests"] / max(1, side["ours_noop"]["requests"])
        out.append(Target(">= 5x fewer requests than the registry-only way (sample, cold)", fewer >= 5,
                          f"cold {reg['requests']} vs {ours['requests']} = {fewer:.2f}x; "
                          f"no-op {side['registry_noop']['requests']} vs {side['ours_noop']['requests']} = {warm:.0f}x"))
    rss = max(s["peak_rss_mb"] for s in scen.values())
    out.append(Target("peak RSS <= 150 MB", rss <= 150, f"max {rss:.0f} MB"))
    small = r.get("small_cold")
    if small:
        growth = cold["peak_rss_mb"] / small["peak_rss_mb"] - 1
        detail = f"{small['peak_rss_mb']:.0f} MB -> {cold['peak_rss_mb']:.0f} MB = {100 * growth:+.0f} %"
        same = r.get("small_cold_same_giants")
        if same:
            detail += (f"; with the same 2,000+-tag packages in both orgs: {same['peak_rss_mb']:.0f} MB -> "
                       f"{cold['peak_rss_mb']:.0f} MB = {100 * (cold['peak_rss_mb'] / same['peak_rss_mb'] - 1):+.0f} %")
        out.append(Target("RSS grows < 30 % from the 100- to the 1,000-package org", growth < 0.30, detail))
    w = r["writer"]
    out.append(Target("writer >= 10,000 tag rows/s, a new image per tag as in a cold sync (issue 17)",
                      w["cold"]["tag_rows_per_s"] >= 10_000,
                      f"{w['cold']['tag_rows_per_s']:,} tag rows/s ({w['cold']['tag_rows']:,} tags, each with "
                      f"its manifest, config, labels, layers)"))
    out.append(Target("writer >= 20,000 tag rows/s, tags only with the content stored (issue 17)",
                      w["tags"]["tag_rows_per_s"] >= 20_000,
                      f"{w['tags']['tag_rows_per_s']:,} tag rows/s ({w['tags']['tag_rows']:,} tags moved)"))
    out += wide_targets(r, a)
    pg = r.get("postgres")
    if pg:
        same = {k: (scen[k]["requests"], pg["scenarios"][k]["requests"]) for k in pg["scenarios"]}
        out.append(Target("PostgreSQL: the same requests as SQLite (cold, no-op, churn)",
                          all(a == b for a, b in same.values()) and all(
                              s["exit_code"] == 0 for s in pg["scenarios"].values()),
                          "; ".join(f"{k} {a:,} / {b:,}" for k, (a, b) in same.items())))
    out += nightly_targets(r)
    out += [t for t in (floor_target(r), skopeo_cpu_target(r)) if t is not None]
    return out


def cpu_per_tag(r: dict, s: dict) -> float:
    """Client CPU ms per tag of the sample: the crawler's own (wait4), or the skopeo processes'."""
    tags = r["world"]["counts"].get(SAMPLE_OWNER, {}).get("tags") or 0
    cpu = s.get("skopeo_cpu_s") or s.get("cpu_s") or 0.0
    return 1000 * cpu / tags if tags else 0.0


def skopeo_cpu_target(r: dict) -> "Target | None":
    side = r.get("side_by_side")
    if not side:
        return None
    ours = cpu_per_tag(r, side["ours_cold"])
    parts = []
    for key, label in (("skopeo_P1", "sequential"), ("skopeo_P8", "xargs -P 8")):
        if side.get(key):
            theirs = cpu_per_tag(r, side[key])
            parts.append(f"skopeo {label} {theirs:.1f} ms a tag ({theirs / ours if ours else 0:.1f}x ours)")
    # A comparison, not a goal: the line passes when the crawler spends less CPU a tag.
    theirs = cpu_per_tag(r, side["skopeo_P8"])
    return Target("client CPU per tag: crawler vs skopeo (sample, cold)", bool(ours) and ours < theirs,
                  f"crawler {ours:.2f} ms a tag; " + "; ".join(parts))


def wide_bench(state: Path, work: Path, a, say) -> dict:
    """The wide orgs (`ScaleSpec.wide`: many small packages over one pool
    of content), both in one world: a cold sync and a no-op of each, so
    peak RSS and the no-op's wall are compared across org size alone."""
    sizes = [n for n in (a.wide_small, a.wide) if n]
    wide_dir = state / f"wide{'-'.join(map(str, sizes))}"
    say(f"world: wide orgs of {', '.join(f'{n:,}' for n in sizes)} packages in {wide_dir}")
    out: dict = {}
    with RemoteWorld(wide_dir, packages=0, sample=0, latency_ms=a.latency_ms,
                     connect_latency_ms=a.connect_latency_ms, wide=tuple(sizes)) as world:
        out["world"] = {"counts": world.info["counts"], "build_seconds": world.info["build_seconds"],
                        "built": world.info["built"]}
        say(f"wide world ready: {'built' if world.info['built'] else 'reused'} in {world.info['build_seconds']} s")
        for n in sizes:
            db = work / f"wide{n}.db"
            for phase in ("cold", "noop"):
                run = run_crawler(world, work, f"wide{n}-{phase}", db, f"wide{n}", concurrency=a.concurrency)
                say(f"wide{n}-{phase}: {run.status}, {run.requests} requests (LB {run.lower_bound}), "
                    f"{run.wall_s:.2f} s, {run.peak_rss_mb:.0f} MB")
                out[f"{n}_{phase}"] = asdict(run)
    return out


def wide_targets(r: dict, a) -> list[Target]:
    w = r.get("wide")
    if not w or f"{getattr(a, 'wide', 0)}_cold" not in w:    # runs from before the wide orgs have none
        return []
    big, noop = w[f"{a.wide}_cold"], w[f"{a.wide}_noop"]
    rss = max(big["peak_rss_mb"], noop["peak_rss_mb"])
    out = [Target(f"peak RSS <= 150 MB at {a.wide:,} packages", rss <= 150,
                  f"cold {big['peak_rss_mb']:.0f} MB, no-op {noop['peak_rss_mb']:.0f} MB")]
    small = w.get(f"{a.wide_small}_cold")
    if small:
        growth = big["peak_rss_mb"] / small["peak_rss_mb"] - 1
        out.append(Target(f"RSS +<=10 % from {a.wide_small:,} to {a.wide:,} packages", growth <= 0.10,
                          f"cold {small['peak_rss_mb']:.0f} MB -> {big['peak_rss_mb']:.0f} MB = "
                          f"{100 * growth:+.0f} % (wide orgs: the same package shapes, only more of them)"))
    only = set(noop["by_kind"]) <= {"discovery"} and _all_304(noop)
    out.append(Target(f"no-op of {a.wide:,} packages < 2 s at {a.latency_ms:g} ms", only and noop["wall_s"] < 2.0,
                      f"{noop['requests']} discovery pages, {noop['not_modified']} 304, wall {noop['wall_s']:.2f} s, "
                      f"engine {noop['engine_s']:.2f} s; cold {big['requests']:,} requests "
                      f"(LB {big['lower_bound']:,}) in {big['wall_s']:.0f} s"))
    return out


def _all_304(noop: dict) -> bool:
    """Every discovery page answered 304, but for a full last page, which is
    asked again without its ETag (a 304 does not repeat its Link): at most
    one fresh answer, and no request beyond the lower bound."""
    return noop["requests"] - noop["not_modified"] <= 1 and noop["requests"] <= noop["lower_bound"]


def plan_lower_bound(counts: dict, graphql: int = 0) -> int:
    """A cold sync's fewest requests, from what the world holds (independent of the crawler's count)."""
    pages = -(-counts["packages"] // 100)
    return (pages + counts["versions_pages"] + counts["digests"] + 2 * counts["images"] + counts["packages"]
            + graphql)


def rss_quartiles(timeline: list) -> str:
    if not timeline:
        return "-"
    end = timeline[-1][0] or 1
    picks = []
    for q in (0.25, 0.5, 0.75, 1.0):
        point = max((p for p in timeline if p[0] <= q * end), default=timeline[0], key=lambda p: p[0])
        picks.append(f"{point[1]:.0f}")
    return " / ".join(picks)


def _kinds(by_kind: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(by_kind.items()))


def table(r: dict) -> str:
    head = ("| scenario | requests (by kind) | 304 | lower bound | req/LB | world saw | wall s | engine s "
            "| req/s | images | images/s | CPU s (crawler/world/registry) | peak RSS MB | RSS at 25/50/75/100 % MB "
            "| DB MB | load avg |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    rows = list(r["scenarios"].items())
    for key, label in (("small_cold", "cold, small org"), ("small_cold_same_giants", "cold, small org, same giants")):
        if r.get(key):
            counts = r[key.replace("cold", "world")]["counts"]
            c = next(iter(counts.values()))
            rows.append((f"{label} ({c['packages']} packages, {c['tags']:,} tags)", r[key]))
    for name, s in rows:
        ratio = s["requests"] / s["lower_bound"] if s["lower_bound"] else float("nan")
        rate = s["requests"] / s["engine_s"] if s["engine_s"] else 0
        lines.append(
            f"| {LABELS.get(name, name)} | {s['requests']:,} ({_kinds(s['by_kind'])}) | {s['not_modified']:,} "
            f"| {s['lower_bound']:,} | {ratio:.3f} | {s['world_requests']:,} | {s['wall_s']:.2f} | {s['engine_s']:.2f} "
            f"| {rate:,.0f} | {s['images']:,} | {s['images'] / s['wall_s']:,.0f} "
            f"| {s['cpu_s']:.1f} / {s['world_cpu_s']:.1f} / {s['registry_cpu_s']:.1f} | {s['peak_rss_mb']:.0f} "
            f"| {rss_quartiles(s.get('rss_timeline') or [])} | {s['db_mb']:.1f} | {'-'.join(str(x) for x in s.get('load') or ())} |")
    return "\n".join(lines)


LABELS = {"cold": "1. cold full sync", "noop": "2. no-op incremental", "churn": "3. incremental after 1 % churn",
          "full": "4. `--full` resync (warm DB)"}


def side_table(r: dict) -> str:
    side = r["side_by_side"]
    ours = side["ours_cold"]
    rows = [
        ("skopeo list-tags + inspect --raw, sequential", side.get("skopeo_P1")),
        ("skopeo list-tags + inspect --raw, xargs -P 8", side["skopeo_P8"]),
        ("registry-only way (tags/list + HEAD per tag), cold", side["registry_cold"]),
        ("registry-only way, no-op", side["registry_noop"]),
        ("ghcr-inventory, cold", ours),
        ("ghcr-inventory, no-op", side["ours_noop"]),
    ]
    lines = ["| way | wall s | requests (world saw) | by kind | time vs ours (cold) | requests vs ours (cold) "
             "| client CPU s | CPU ms a tag | CPU vs ours (cold) |",
             "|---|---|---|---|---|---|---|---|---|"]
    ours_cpu = cpu_per_tag(r, ours)
    for name, s in rows:
        if s is None:
            continue
        req = s.get("world_requests", s.get("requests"))
        kinds = s.get("world_by_kind", s.get("by_kind", {}))
        per_tag = cpu_per_tag(r, s)
        lines.append(f"| {name} | {s['wall_s']:.2f} | {req:,} | {_kinds(kinds)} | {s['wall_s'] / ours['wall_s']:.1f}x "
                     f"| {req / ours['world_requests']:.2f}x | {_client_cpu(s)} | {per_tag:.2f} "
                     f"| {per_tag / ours_cpu if ours_cpu else 0:.1f}x |")
    return "\n".join(lines)


def _client_cpu(s: dict) -> str:
    """A crawler run's CPU; a skopeo loop's skopeo processes (and, after the slash, the whole loop's)."""
    if "skopeo_cpu_s" in s:
        return f"{s['skopeo_cpu_s']:.2f} / {s['cpu_s']:.2f}"
    return f"{s['cpu_s']:.2f}"


def postgres_table(r: dict) -> str:
    pg = r["postgres"]
    head = ("| scenario | store | requests | same as SQLite | wall s | engine s | crawler CPU s | peak RSS MB "
            "| DB MB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, s_pg in pg["scenarios"].items():
        for store, s in (("SQLite", r["scenarios"][key]), ("PostgreSQL", s_pg)):
            lines.append(f"| {LABELS.get(key, key)} | {store} | {s['requests']:,} "
                         f"| {'yes' if s_pg['requests'] == r['scenarios'][key]['requests'] else 'NO'} "
                         f"| {s['wall_s']:.2f} | {s['engine_s']:.2f} | {s['cpu_s']:.1f} | {s['peak_rss_mb']:.0f} "
                         f"| {s['db_mb']:.1f} |")
    w, wp = r["writer"], pg["writer"]
    lines += ["", "| writer alone (writer task + store) | SQLite tag rows/s | PostgreSQL tag rows/s |", "|---|---|---|",
              f"| new image per tag (cold) | {w['cold']['tag_rows_per_s']:,} | {wp['cold']['tag_rows_per_s']:,} |",
              f"| tags only (content stored) | {w['tags']['tag_rows_per_s']:,} | {wp['tags']['tag_rows_per_s']:,} |"]
    c = pg.get("concurrent")
    if c:
        lines += ["", f"Three owners of {c['packages']} packages each, one PostgreSQL database:", "",
                  "| how | crawlers | exit codes | wall s | requests (world saw) | crawler CPU s (sum) "
                  "| peak RSS MB (largest) | tags | images |", "|---|---|---|---|---|---|---|---|---|"]
        for label, name in (("one_crawler", "one crawler for the three owners"),
                            ("three_crawlers", "three crawlers at once, one per owner")):
            x = c[label]
            lines.append(f"| {name} | {x['crawlers']} | {x['exit_codes']} | {x['wall_s']:.2f} "
                         f"| {x['world_requests']:,} | {x['cpu_s']:.1f} | {x['peak_rss_mb']:.0f} | {x['tags']:,} "
                         f"| {x['images']:,} |")
    return "\n".join(lines)


def profile_text(p: dict | None) -> str:
    if not p:
        return "(no profile: run with --profile py-spy and py-spy installed)"
    lines = [f"{p['samples']} samples holding the GIL at 100 Hz"
             + (f" = the interpreter busy {100 * p['busy']:.0f} % of the wall time" if p.get("busy") else ""), "",
             "| where (first known frame from the leaf up) | samples | % |", "|---|---|---|"]
    lines += [f"| {k} | {v} | {pct} |" for k, v, pct in p["groups"]]
    lines += ["", "| hottest leaf functions | samples | % |", "|---|---|---|"]
    lines += [f"| `{k}` | {v} | {pct} |" for k, v, pct in p["self"][:12]]
    lines += ["", "| innermost crawler line of each sample | samples | % |", "|---|---|---|"]
    lines += [f"| `{k}` | {v} | {pct} |" for k, v, pct in p.get("crawler_deepest", [])[:12]]
    lines += ["", "| crawler lines on the stack (inclusive) | samples | % |", "|---|---|---|"]
    lines += [f"| `{k}` | {v} | {pct} |" for k, v, pct in p["crawler_inclusive"][:12]]
    return "\n".join(lines)


def render_text(r: dict, ts: list[Target]) -> str:
    world = r["world"]
    out = [f"# ghcr-inventory benchmark — {r['when']}", "",
           f"{r['machine']}; engine {r['engine_before']}"
           + (f" -> {r['engine_after']} (changed during the run)" if r.get("engine_after") != r["engine_before"] else ""),
           "", f"World ({'built' if world['built'] else 'reused'} in {world['build_seconds']} s"
           + (f", after {world['cleanup_seconds']} s removing an older build" if world.get("cleanup_seconds") else "")
           + "): "
           + "; ".join(f"{o}: {c['packages']:,} packages, {c['tags']:,} tags, {c['digests']:,} digests, "
                       f"{c['images']:,} image configs, largest {c['max_tags']:,} tags"
                       for o, c in world["counts"].items())
           + f". Churn: {r.get('churn')}", "",
           f"Command: `{r['command']}`", "", "## Scenarios", table(r), ""]
    if r.get("floor"):
        out += ["## Crawler CPU against the bare-aiohttp floor (the same requests replayed)", floor_table(r), ""]
    if r.get("side_by_side"):
        out += [f"## Side by side ({r['args']['sample']}-package sample org)", side_table(r), ""]
    if r.get("postgres"):
        out += ["## PostgreSQL beside SQLite (the same world, one run)", postgres_table(r), ""]
    if r.get("nightly"):
        out += [f"## Nightly: one new build of a {r['nightly']['versions']:,}-version package", nightly_text(r["nightly"]), ""]
    out += ["## Targets"] + [f"- {'PASS' if t.ok else 'FAIL'}  {t.name}: {t.detail}" for t in ts]
    out += ["", "## Profile of a cold sync (py-spy --gil)", profile_text(r.get("profile")), ""]
    if r.get("serve"):
        out += ["## serve: event -> committed", bench_serve.serve_text(r.get("serve")), ""]
    return "\n".join(out)


# -- serve: event -> committed ------------------------------------------------------------------------


# -- the run ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--state-dir", default=os.environ.get("GHCR_BENCH_DIR", str(Path(tempfile.gettempdir()) / "ghcr-inventory-bench")),
                   help="where the worlds are built and kept between runs")
    p.add_argument("--packages", type=int, default=1000)
    p.add_argument("--small", type=int, default=100, help="the smaller org for the memory-growth comparison (0: skip)")
    p.add_argument("--sample", type=int, default=50, help="packages of the side-by-side sample (0: skip)")
    p.add_argument("--giant-tags", type=int, default=2000)
    p.add_argument("--giants", type=int, default=None, help="packages with --giant-tags+ tags (default 0.3 %%)")
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--connect-latency-ms", type=float, default=None, help="default: --latency-ms")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--churn", type=float, default=0.01)
    p.add_argument("--skopeo-sequential", choices=("yes", "no"), default="yes")
    p.add_argument("--profile", choices=("py-spy", "none"), default="py-spy")
    p.add_argument("--writer-packages", type=int, default=200)
    p.add_argument("--writer-tags", type=int, default=100)
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--docs", metavar="PATH", help="write the markdown report (docs/benchmarks.md)")
    p.add_argument("--from-json", metavar="PATH", help="only render the report of an earlier run's --json")
    p.add_argument("--nightly-versions", type=int, default=20_000,
                   help="versions of the nightly scenario's package (0: skip)")
    p.add_argument("--serve-singles", type=int, default=20, help="serve: single pushes timed (0: skip serve)")
    p.add_argument("--serve-burst", type=int, default=100, help="serve: events in the burst")
    p.add_argument("--serve-burst-packages", type=int, default=20, help="serve: packages the burst spans")
    p.add_argument("--serve-only", action="store_true", help="only the serve scenarios")
    p.add_argument("--postgres", choices=("yes", "no"), default="yes",
                   help="also run cold/no-op/churn, the writer and three concurrent crawlers on PostgreSQL")
    p.add_argument("--wide", type=int, default=10_000,
                   help="packages of the wide org (shared content): cold and no-op, peak RSS (0: skip)")
    p.add_argument("--wide-small", type=int, default=1_000, help="the wide org it is compared with")
    p.add_argument("--wide-only", action="store_true", help="only the wide-org scenarios")
    p.add_argument("--concurrent-packages", type=int, default=None,
                   help="packages per owner of the three-crawler comparison (default --packages / 3; 0: skip)")
    a = p.parse_args(argv)
    if a.serve_only:
        work = Path(a.state_dir) / "runs-serve"
        r = bench_serve.serve_bench(work, config_toml, latency_ms=a.latency_ms, singles=a.serve_singles,
                                    burst=a.serve_burst, burst_packages=a.serve_burst_packages)
        print(bench_serve.serve_text(r))
        if a.json:
            Path(a.json).write_text(json.dumps({"serve": r}, indent=1))
        return 0
    if a.connect_latency_ms is None:
        a.connect_latency_ms = a.latency_ms
    if a.wide_only:
        work = Path(a.state_dir) / "runs-wide"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        compile_sources()
        r = {"wide": wide_bench(Path(a.state_dir), work, a, lambda text: print(f"bench: {text}", file=sys.stderr,
                                                                                 flush=True))}
        print("\n".join(f"{'✓' if t.ok else '✗'} {t.name}: {t.detail}" for t in wide_targets(r, a)))
        if a.json:
            Path(a.json).write_text(json.dumps(r, indent=1, default=str))
        return 0
    if a.from_json:
        results = json.loads(Path(a.from_json).read_text())
        args = argparse.Namespace(**results["args"])
        ts = targets(results, args)
        text = render_text(results, ts)
        print(text)
        if a.docs:
            write_docs(Path(a.docs), results, text)
        return 0
    compile_sources()
    if a.profile == "py-spy" and py_spy() is None:
        print("bench: py-spy not found (pip install -e '.[bench]'); no profile", file=sys.stderr)
        a.profile = "none"
    state = Path(a.state_dir)
    work = state / "runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results: dict = {"engine_before": git_state(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "args": vars(a),
                     "machine": machine(), "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])}

    def say(text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)

    pg = bench_postgres.Server() if a.postgres == "yes" else None
    try:
        return _main(a, argv, state, work, results, say, pg)
    finally:
        if pg is not None:
            pg.stop()


def _main(a, argv, state, work, results, say, pg) -> int:
    world_dir = state / f"org{a.packages}-s{a.sample}-g{a.giant_tags}x{a.giants}"
    say(f"world: {a.packages} packages + {a.sample}-package sample in {world_dir} (built once, then reused)")
    with RemoteWorld(world_dir, packages=a.packages, sample=a.sample, latency_ms=a.latency_ms,
                     connect_latency_ms=a.connect_latency_ms, giant_tags=a.giant_tags, giants=a.giants) as world:
        info = world.info
        results["world"] = {"build_seconds": info["build_seconds"], "built": info["built"], "counts": info["counts"],
                            "cleanup_seconds": info.get("cleanup_seconds", 0),
                            "owner": info["owners"][0]}
        say(f"world ready: {'built' if info['built'] else 'reused'} in {info['build_seconds']} s; {info['counts']}")
        owner = info["owners"][0]
        db = work / "bench.db"
        scen: dict[str, dict] = {}

        def crawl(name: str, **kw) -> Run:
            run = run_crawler(world, work, name, kw.pop("db", db), kw.pop("owner", owner),
                              concurrency=a.concurrency, **kw)
            say(f"{name}: {run.status}, {run.requests} requests (LB {run.lower_bound}, world saw "
                f"{run.world_requests}), {run.wall_s:.2f} s, {run.peak_rss_mb:.0f} MB")
            return run

        # py-spy samples the cold sync from outside (--nonblocking: the crawler is never paused).
        spy = work / "cold.pyspy.txt" if a.profile == "py-spy" else None
        cold = crawl("cold", profile=spy, record=work / "cold.requests.jsonl")
        results["profile"], cold.profile = cold.profile, None
        scen["cold"] = asdict(cold)
        results["floor"] = {"cold": floor_of(world, work, "cold", a, say)}
        # PostgreSQL right after SQLite, on the same world: the same requests
        pg_db = pg.database("bench") if pg else None
        pg_scen: dict[str, dict] = {}
        if pg:
            pg_scen["cold"] = asdict(crawl("pg-cold", db=pg_db))
        scen["noop"] = asdict(crawl("noop"))
        if pg:
            pg_scen["noop"] = asdict(crawl("pg-noop", db=pg_db))
        results["churn"] = world.call("churn", fraction=a.churn)["churn"]
        say(f"churn: {results['churn']}")
        scen["churn"] = asdict(crawl("churn"))
        results["churn_versions"] = churn_versions(db)
        if pg:
            pg_scen["churn"] = asdict(crawl("pg-churn", db=pg_db))
            results["postgres"] = {"scenarios": pg_scen}
        scen["full"] = asdict(crawl("full", full=True, record=work / "full.requests.jsonl"))
        results["floor"]["full"] = floor_of(world, work, "full", a, say)
        results["scenarios"] = scen
        if a.sample:
            side: dict = {}
            sdb, rdb = work / "sample-ours.db", work / "sample-registry.db"
            side["ours_cold"] = asdict(crawl("sample-ours-cold", db=sdb, owner=SAMPLE_OWNER))
            side["ours_noop"] = asdict(crawl("sample-ours-noop", db=sdb, owner=SAMPLE_OWNER))
            side["registry_cold"] = asdict(crawl("sample-registry-cold", db=rdb, owner=SAMPLE_OWNER,
                                                 tag_source="registry"))
            side["registry_noop"] = asdict(crawl("sample-registry-noop", db=rdb, owner=SAMPLE_OWNER,
                                                 tag_source="registry"))
            repos = [f"{SAMPLE_OWNER}/{name}" for name in sample_names(sdb)]
            for parallel in ((1, 8) if a.skopeo_sequential == "yes" else (8,)):
                loop = skopeo_loop(world, work, repos, parallel)
                side[f"skopeo_P{parallel}"] = asdict(loop)
                say(f"{loop.name}: {loop.refs} tags inspected, {loop.requests} requests, {loop.wall_s:.1f} s")
            results["side_by_side"] = side
    if a.small:
        # The 100-package org "of the same shape" has 1 package of 2,000+ tags where the
        # 1,000-package org has 3; the second run gives it the same 3, so the
        # comparison also holds the largest packages constant and isolates org size.
        big_giants = ScaleSpec.org(a.packages, giants=a.giants).giants
        variants = [("small_cold", a.giants)]
        if ScaleSpec.org(a.small, giants=a.giants).giants != big_giants:
            variants.append(("small_cold_same_giants", big_giants))
        for key, giants in variants:
            small_dir = state / f"org{a.small}-s0-g{a.giant_tags}x{giants}"
            say(f"world: {a.small} packages in {small_dir}")
            with RemoteWorld(small_dir, packages=a.small, sample=0, latency_ms=a.latency_ms,
                             connect_latency_ms=a.connect_latency_ms, giant_tags=a.giant_tags,
                             giants=giants) as world:
                results[key.replace("cold", "world")] = {"counts": world.info["counts"],
                                                         "build_seconds": world.info["build_seconds"]}
                run = run_crawler(world, work, key, work / f"{key}.db", world.info["owners"][0],
                                  concurrency=a.concurrency)
                say(f"{key}: {run.requests} requests, {run.wall_s:.2f} s, {run.peak_rss_mb:.0f} MB")
                results[key] = asdict(run)
    if pg and a.concurrent_packages != 0:
        per_owner = a.concurrent_packages or max(1, a.packages // 3)
        conc_dir = state / f"orgs3x{per_owner}-g{a.giant_tags}x{a.giants}"
        say(f"world: three orgs of {per_owner} packages in {conc_dir}")
        with RemoteWorld(conc_dir, packages=per_owner, sample=0, latency_ms=a.latency_ms,
                         connect_latency_ms=a.connect_latency_ms, giant_tags=a.giant_tags, giants=a.giants,
                         orgs=3) as world:
            c = bench_postgres.concurrent(world, work, world.info["owners"], pg.database, config_toml,
                                          concurrency=a.concurrency)
            c["packages"] = per_owner
            results["postgres"]["concurrent"] = c
            say(f"three crawlers: {c['three_crawlers']['wall_s']} s vs one crawler {c['one_crawler']['wall_s']} s")
    if a.nightly_versions:
        results["nightly"] = nightly_bench(a, state, work, say)
    if a.wide:
        results["wide"] = wide_bench(state, work, a, say)
    if a.serve_singles:
        say(f"serve: {a.serve_singles} single pushes, a burst of {a.serve_burst} events across "
            f"{a.serve_burst_packages} packages")
        results["serve"] = bench_serve.serve_bench(work, config_toml, latency_ms=a.latency_ms,
                                                   singles=a.serve_singles, burst=a.serve_burst,
                                                   burst_packages=a.serve_burst_packages)
    say(f"writer: {a.writer_packages} packages x {a.writer_tags} tags")
    results["writer"] = writer_bench(work, a.writer_packages, a.writer_tags)
    if pg:
        results["postgres"]["writer"] = writer_bench(work, a.writer_packages, a.writer_tags,
                                                     open_store=pg.store_opener("writer"))
    results["engine_after"] = git_state()
    if results["engine_after"] != results["engine_before"]:
        say(f"warning: the engine changed during the run: {results['engine_before']} -> {results['engine_after']}")
    ts = targets(results, a)
    results["targets"] = [asdict(t) for t in ts]
    text = render_text(results, ts)
    print(text)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=str))
    if a.docs:
        write_docs(Path(a.docs), results, text)
    failed = [r for r in (results["scenarios"].values()) if r["exit_code"] != 0]
    failed += [r for r in results.get("postgres", {}).get("scenarios", {}).values() if r["exit_code"] != 0]
    return 1 if failed else 0


def compile_sources() -> None:
    """Byte-compile the crawler and the world once, as `pip install` does:
    where PYTHONDONTWRITEBYTECODE is set (this machine sets it) every
    process would compile ~50 modules from source again (0.1 s a start,
    a twentieth of the 10,000-package no-op)."""
    import compileall

    compileall.compile_dir(ROOT / "crawler", quiet=1)


def sample_names(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT DISTINCT package FROM v_packages WHERE deleted_at IS NULL "
                                           "ORDER BY package")]
    finally:
        conn.close()


def git_state() -> str:
    """The commit and a hash of uncommitted engine changes (the crawler subprocess runs the work tree)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "?"
    diff = git("diff", "HEAD", "--", "crawler", ":!crawler/sandbox", "schema.sql")
    return head + (f"+dirty:{hashlib.sha256(diff.encode()).hexdigest()[:8]}" if diff else "")


def machine() -> str:
    cpu = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}, "
            f"Python {platform.python_version()}, {subprocess.run(['skopeo', '--version'], capture_output=True, text=True).stdout.strip() if shutil.which('skopeo') else 'no skopeo'}")


def write_docs(path: Path, results: dict, text: str) -> None:
    marker = "<!-- bench:results -->"
    current = path.read_text() if path.exists() else ""
    head = current.split(marker)[0] if marker in current else current
    body = text.split("\n", 1)[1].replace("\n## ", "\n### ")
    path.write_text(head.rstrip() + f"\n\n{marker}\n## Results of one run ({results['when']})\n" + body + "\n")


if __name__ == "__main__":
    sys.exit(main())
