"""Issue 5: SIGKILL at any instant leaves a consistent database.

A real sync runs as a subprocess and is killed at a random point of its own
log stream (debug level: one line per HTTP exchange, per commit...), so the
kills land all over the pipeline without any sleeping. After every kill the
database must pass integrity_check, hold no half-written package (any package
present has exactly the registry's tags, all of whose content is stored), and
the next run must mark the killed one interrupted and finish the job without
refetching what was committed. Both stores (the `store` parameter): for
PostgreSQL the kill also drops the owner's advisory lock with its session."""

import os
import random
import signal
import subprocess
import sys

import pytest

from tests.support import integrity_ok, inventory_in, last_run, rows, write_config

KILLS = 50
PER_DATABASE = 8


@pytest.fixture(scope="module")
def kill_org(world):
    owner = world.new_owner("kill")
    b = world.builder
    for n in range(16):
        b.push_image(owner, f"img{n}", tags=["latest", f"v{n}"], seed=500 + n, layers=1, layer_size=64)
    for n in range(6):
        idx = b.push_index(owner, f"multi{n}", tags=["latest"], seed=600 + n, attestations=n % 2 == 0,
                           platforms=("linux/amd64", "linux/arm64", "linux/arm/v7"))
        if n % 3 == 0:
            b.push_cosign(owner, f"multi{n}", idx.digest, kind="sig")
    b.push_image(owner, "team/nested/app", tags=["1.0"], seed=700)
    return owner


def start(config, env):
    return subprocess.Popen([sys.executable, "-m", "crawler", "--config", str(config), "--log-format", "json",
                             "--log-level", "debug", "sync"], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)


def assert_consistent(db, truth):
    if not db.exists():
        return
    assert integrity_ok(db)
    present = {p for (p,) in rows(db, "SELECT package FROM v_packages")}
    for package in present:
        tags = dict(rows(db, "SELECT tag, digest FROM v_tags WHERE package = ?", (package,)))
        assert tags == truth[package], f"{package} is half-written"
    missing = rows(db, "SELECT digest FROM package_digests WHERE digest NOT IN (SELECT digest FROM manifests)")
    assert missing == []
    assert len(rows(db, "SELECT id FROM sync_runs WHERE status = 'running'")) <= 1


def test_sigkill_at_random_points(world, kill_org, tmp_path, store, request):
    owner = kill_org
    truth = {name: world.tags_of(owner, name) for name in
             [f"img{n}" for n in range(16)] + [f"multi{n}" for n in range(6)] + ["team/nested/app"]}
    env = dict(os.environ, GHCR_SANDBOX_TOKEN=world.token)
    rng = random.Random(20261122)
    kills, round_no, lines_seen = 0, 0, []
    while kills < KILLS:
        round_no += 1
        db = inventory_in(store, tmp_path, request, name=f"round{round_no}.db")
        config = write_config(world, tmp_path, [(owner, "org")], db=db, name=f"round{round_no}.toml",
                              crawl={"concurrency": 4})
        budget = 180  # log lines a cold run of this org writes, roughly
        for _ in range(PER_DATABASE):
            proc = start(config, env)
            cut = rng.randint(0, budget)
            n = 0
            for n, _line in enumerate(proc.stderr):
                if n >= cut:
                    break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
            if proc.returncode == -signal.SIGKILL:
                kills += 1
                lines_seen.append(cut)
                budget = max(4, budget - cut // 2)   # the next run has less left to do
            else:
                budget = max(2, n - 1)               # it finished first: aim earlier
            assert_consistent(db, truth)
        stored = {d for (d,) in rows(db, "SELECT digest FROM manifests")} if db.exists() else set()
        proc = start(config, env)
        log = proc.stderr.read()
        assert proc.wait() == 0, [l for l in log.splitlines() if "error" in l][-5:]
        assert_consistent(db, truth)
        assert {p for (p,) in rows(db, "SELECT package FROM v_packages")} == set(truth)
        statuses = [s for (s,) in rows(db, "SELECT status FROM sync_runs ORDER BY id")]
        assert statuses[-1] == "ok" and set(statuses[:-1]) <= {"interrupted", "ok"}
        final = last_run(db)
        fetched = final["manifests_new"]
        assert fetched == len({d for (d,) in rows(db, "SELECT digest FROM manifests")} - stored)
        assert final["requests"] <= final["lower_bound"] + 1   # +1: a first challenge if none was stored
    assert kills >= KILLS
    assert len(set(lines_seen)) > KILLS // 2   # kills spread over the run, not one spot
