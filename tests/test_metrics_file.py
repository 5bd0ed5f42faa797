"""`sync --metrics-file PATH`: a real sync writes node_exporter's textfile
format, atomically (a new file renamed over the old one), with the run's
counters matching what the database recorded for that run."""

from __future__ import annotations

import os
import re
import stat
import time

from crawler import cli
from tests.support import last_run

SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>-?[0-9.e+]+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, dict[tuple, float]]:
    """Prometheus text exposition format -> {name: {labels: value}}, checking
    that every sample's metric was declared with HELP and TYPE first."""
    assert text.endswith("\n")
    declared: dict[str, set[str]] = {}
    samples: dict[str, dict[tuple, float]] = {}
    for line in text.splitlines():
        if line.startswith("# "):
            kind, name, rest = line[2:].split(" ", 2)
            assert kind in ("HELP", "TYPE"), line
            declared.setdefault(name, set()).add(kind)
            if kind == "TYPE":
                assert rest in ("gauge", "counter"), line
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        assert declared.get(m["name"]) == {"HELP", "TYPE"}, f"{m['name']} sampled before HELP and TYPE"
        labels = tuple(sorted(LABEL.findall(m["labels"] or "")))
        samples.setdefault(m["name"], {})[labels] = float(m["value"])
    assert set(declared) == set(samples), "a declared metric has no sample"
    return samples


def test_metrics_file_after_real_syncs(world, sample, world_config, tmp_path):
    metrics = tmp_path / "textfile" / "ghcr_inventory.prom"
    metrics.parent.mkdir()
    metrics.write_text("stale content\n")
    held = open(metrics)  # a reader (a scrape) that has the old file open
    old_inode = os.stat(metrics).st_ino
    db = tmp_path / "inventory.db"
    base = ["--config", str(world_config), "--log-format", "json", "--log-level", "error", "sync",
            "--metrics-file", str(metrics)]

    before = time.time()
    assert cli.main(base) == 0
    after = time.time()
    # Atomic: a new file was renamed into place; the old one was never rewritten in place.
    assert os.stat(metrics).st_ino != old_inode
    assert held.read() == "stale content\n"
    held.close()
    assert sorted(os.listdir(metrics.parent)) == ["ghcr_inventory.prom"]  # no temporary file left
    assert stat.S_IMODE(os.stat(metrics).st_mode) == 0o644  # node_exporter runs as another user

    m = parse(metrics.read_text())
    run = last_run(db)
    one = lambda name: m[f"ghcr_inventory_{name}"][()]  # noqa: E731
    assert before - 1 <= one("last_run_timestamp_seconds") <= after + 1
    assert 0 < one("last_run_duration_seconds") <= after - before
    assert m["ghcr_inventory_last_run_status"] == {
        (("status", s),): (1.0 if s == "ok" else 0.0) for s in ("ok", "partial", "failed", "interrupted", "rate_limited")}
    assert one("last_run_exit_code") == 0
    assert sum(m["ghcr_inventory_last_run_requests"].values()) == run["requests"] > 0
    assert one("last_run_not_modified") == run["not_modified"]
    assert one("last_run_lower_bound") == run["lower_bound"]
    assert m["ghcr_inventory_last_run_packages"][(("outcome", "changed"),)] == len(sample.packages)
    assert m["ghcr_inventory_last_run_packages"][(("outcome", "failed"),)] == 0
    assert one("last_run_errors") == 0
    assert one("packages") == len(sample.packages)
    assert one("images") == len(sample.images)
    assert one("tags") == len(sample.tags)
    finished = time.mktime(time.strptime(run["finished_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert one("last_success_timestamp_seconds") == finished

    # A second, unchanged sync: its 304s are what the file now reports.
    assert cli.main(base) == 0
    m = parse(metrics.read_text())
    run = last_run(db)
    assert run["not_modified"] > 0
    assert m["ghcr_inventory_last_run_not_modified"][()] == run["not_modified"]
    assert sum(m["ghcr_inventory_last_run_requests"].values()) == run["requests"]
    assert m["ghcr_inventory_last_run_packages"][(("outcome", "unchanged"),)] == len(sample.packages)
    assert m["ghcr_inventory_last_run_packages"][(("outcome", "changed"),)] == 0
    assert sorted(os.listdir(metrics.parent)) == ["ghcr_inventory.prom"]
