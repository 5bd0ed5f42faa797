"""One measured crawler run of scripts/bench.py and what is measured beside
it: the crawler as a subprocess (wait4 rusage, an RSS timeline, its run row
and metrics), the bare-aiohttp floor replaying its requests
(scripts/bench_floor.py), the py-spy profile's summary, and the skopeo
loops of the side-by-side comparison."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.oci.mediatypes import ACCEPT_MANIFESTS  # noqa: E402
from crawler.sandbox.remote import RemoteWorld  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import bench_postgres  # noqa: E402

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
