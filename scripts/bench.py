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
This module runs the scenarios; ``bench_run.py`` measures one crawler run
(and the floor, the profile, the skopeo loops), ``bench_report.py``
renders the tables and targets.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.sandbox.remote import SAMPLE_OWNER, RemoteWorld  # noqa: E402
from crawler.sandbox.scale import ScaleSpec  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import bench_postgres  # noqa: E402
import bench_serve  # noqa: E402
from bench_report import render_text, targets, wide_targets  # noqa: E402
from bench_run import Run, config_toml, floor_of, py_spy, run_crawler, skopeo_loop  # noqa: E402



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
