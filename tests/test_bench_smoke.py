"""scripts/bench.py at tiny scale, so the benchmark cannot rot.

The real run (1,000 packages at 20 ms, minutes) is in docs/benchmarks.md; this
one builds a 6-package world (one package with 120+ tags) and a 3-package
one, runs every scenario and the side-by-side comparison once, and checks the
numbers are consistent with the world that was built; PostgreSQL's runs of
the same scenarios make the same requests as SQLite's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench_run  # noqa: E402


def test_bench_runs_every_scenario_at_tiny_scale(tmp_path):
    out = tmp_path / "bench.json"
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nhand-written notes stay\n\n<!-- bench:results -->\nold results go\n")
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--state-dir", str(tmp_path / "state"),
           "--packages", "6", "--giants", "1", "--giant-tags", "120", "--small", "3", "--sample", "2",
           "--latency-ms", "1", "--concurrency", "8", "--skopeo-sequential", "no", "--profile", "none",
           "--writer-packages", "4", "--writer-tags", "20", "--json", str(out), "--docs", str(docs),
           "--serve-singles", "2", "--serve-burst", "6", "--serve-burst-packages", "3", "--nightly-versions", "250",
           "--wide", "12", "--wide-small", "4"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(out.read_text())

    counts = r["world"]["counts"]
    scen = r["scenarios"]
    assert list(scen) == ["cold", "noop", "churn", "full"]
    for name, s in scen.items():
        assert (s["status"], s["exit_code"], s["packages_failed"]) == ("ok", 0, 0), name
        assert s["requests"] == s["world_requests"], f"{name}: the crawler's count disagrees with the world's"
        assert s["lower_bound"] > 0 and s["peak_rss_mb"] > 0 and s["db_mb"] > 0
    cold, noop, churn, full = (scen[k] for k in ("cold", "noop", "churn", "full"))
    assert (cold["tags"], cold["images"]) == (counts["bench"]["tags"], counts["bench"]["digests"])
    assert cold["by_kind"]["versions"] >= 2  # the 120-tag package pages
    assert noop["by_kind"] == {"discovery": 1} and noop["not_modified"] == 1
    c = r["churn"]
    assert churn["packages_changed"] == c["packages_changed"] + 1  # + the new package
    assert churn["tags"] == cold["tags"] + c["tags_added"] - c["tags_deleted"] - c["tags_deleted_with_package"]
    assert full["by_kind"]["manifest"] >= full["images"] and full["tags"] == churn["tags"]  # re-verified all

    side = r["side_by_side"]
    loop = side["skopeo_P8"]
    assert loop["exit_code"] == 0 and loop["refs"] == counts["sample"]["tags"]
    assert loop["by_kind"]["manifest_get"] == counts["sample"]["tags"]
    assert side["ours_cold"]["tags"] == side["registry_cold"]["tags"] == counts["sample"]["tags"]
    assert side["registry_noop"]["requests"] > side["ours_noop"]["requests"] == 1
    assert r["small_cold"]["status"] == "ok" and r["small_cold"]["images"] == r["small_world"]["counts"]["bench"]["digests"]
    assert r["writer"]["cold"]["tag_rows"] == r["writer"]["tags"]["tag_rows"] == 80

    wide = r["wide"]
    for n in (4, 12):
        cold, noop = wide[f"{n}_cold"], wide[f"{n}_noop"]
        assert (cold["status"], cold["exit_code"], cold["packages_failed"]) == ("ok", 0, 0), n
        assert cold["images"] == wide["world"]["counts"][f"wide{n}"]["digests"]
        assert noop["by_kind"] == {"discovery": 1} and noop["not_modified"] == 1 and noop["peak_rss_mb"] > 0

    serve = r["serve"]
    assert (serve["single"]["events"], serve["single"]["syncs"]) == (2, 2)
    assert (serve["burst"]["events"], serve["burst"]["syncs"], serve["burst"]["packages"]) == (6, 1, 3)
    assert serve["burst"]["requests"] >= serve["burst"]["lower_bound"] > 0 and serve["single"]["median_s"] > 0
    pg = r["postgres"]
    assert list(pg["scenarios"]) == ["cold", "noop", "churn"]
    for name, s in pg["scenarios"].items():
        assert (s["status"], s["exit_code"]) == ("ok", 0), name
        assert s["requests"] == scen[name]["requests"] == s["world_requests"], name
        assert (s["tags"], s["images"]) == (scen[name]["tags"], scen[name]["images"]), name
        assert s["peak_rss_mb"] > 0 and s["cpu_s"] > 0 and s["db_mb"] > 0
    assert pg["writer"]["cold"]["tag_rows"] == 80 and pg["writer"]["cold"]["tag_rows_per_s"] > 0
    conc = pg["concurrent"]
    assert conc["one_crawler"]["exit_codes"] == [0] and conc["three_crawlers"]["exit_codes"] == [0, 0, 0]
    assert conc["one_crawler"]["tags"] == conc["three_crawlers"]["tags"] > 0

    nightly = r["nightly"]          # issue 17: one new build reads one page, not ceil(V/100)
    assert [nightly[k]["exit_code"] for k in ("cold", "after", "before")] == [0, 0, 0]
    assert nightly["cold"]["by_kind"]["versions"] == 3 + 1 and nightly["after"]["by_kind"]["versions"] == 1  # + the small package
    assert nightly["before_build"]["versions"] == 252 and nightly["before"]["by_kind"]["versions"] == 3
    assert r["churn_versions"]["read"] == churn["by_kind"]["versions"] <= r["churn_versions"]["whole"] - 1

    # The floor replays the crawler's own requests, as the world recorded them: the world saw
    # what the floor counted, and as many as the crawler made less its POSTs (GraphQL, the
    # attestations lookups: bodies are not recorded) and its 401 probe (the floor makes its own).
    for name in ("cold", "full"):
        floor, run = r["floor"][name], scen[name]
        record = [json.loads(line) for line in (tmp_path / "state" / "runs" / f"{name}.requests.jsonl").open()]
        posts = sum(1 for x in record if x["method"] == "POST")
        probes = sum(1 for x in record if x["status"] == 401)
        assert floor["exit_code"] == 0 and floor["requests"] == floor["world_requests"], name
        assert floor["requests"] == run["requests"] - posts - probes + 1, name
        assert floor["statuses"].get("401", 0) == 1 and set(floor["statuses"]) <= {"200", "307", "401", "404"}, name
        assert floor["statuses"].get("404", 0) <= run["by_kind"].get("referrers", 0), name  # the referrers probe
        assert floor["by_kind"]["token"] == run["by_kind"]["token"] and floor["cpu_s"] > 0, name
    assert loop["skopeo_cpu_s"] > 0 and loop["cpu_s"] >= loop["skopeo_cpu_s"]
    assert "crawler / floor" in docs.read_text() and "CPU ms a tag" in docs.read_text()

    names = [t["name"] for t in r["targets"]]
    assert len(names) == 17 and all(isinstance(t["ok"], bool) for t in r["targets"])
    assert next(t for t in r["targets"] if t["name"].startswith("PostgreSQL"))["ok"]
    assert "PASS" in proc.stdout or "FAIL" in proc.stdout
    text = docs.read_text()
    assert "hand-written notes stay" in text and "old results go" not in text and "## Targets" in text
    assert "### PostgreSQL beside SQLite" in text


def test_profile_summary_groups_py_spy_stacks():
    raw = "\n".join([
        "main (crawler/cli.py:10);run (asyncio/base_events.py:1);_exchange (crawler/http.py:231);"
        "request (aiohttp/client.py:500) 30",
        "main (crawler/cli.py:10);_worker (aiosqlite/core.py:60);execute (sqlite3/x.py:1) 10",
        "main (crawler/cli.py:10);parse_manifest (crawler/oci/manifest.py:303) 10",
        "garbage line without a count",
    ])
    p = bench_run.summarize_profile(raw, seconds=1.0, rate=100)
    assert p["samples"] == 50 and p["busy"] == 0.5
    assert p["groups"][0] == ("aiohttp client", 30, 60.0)
    assert dict((k, v) for k, v, _ in p["groups"]) == {"aiohttp client": 30, "sqlite (aiosqlite thread)": 10,
                                                        "crawler.oci": 10}
    assert p["crawler_inclusive"][0] == ("main (crawler/cli.py:10)", 50, 100.0)
