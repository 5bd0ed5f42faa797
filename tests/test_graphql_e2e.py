"""Issue 4, end to end against the world through the real engine: source-
repository enrichment (cost, v_sources), its failures (bad token, rate limit,
partial errors, malformed answers) losing no data, and discovery = "graphql"
on a GHES-like world and on a github.com-like one."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest

from crawler.sandbox import World
from tests.support import FakeClock, last_run, rows, run_cli, run_engine, write_config

REFERRER_KINDS = {"signature", "attestation", "sbom"}


def github_settings(path, **settings) -> None:
    """Add keys to the config's [github] table."""
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    text = path.read_text().replace("[github]\n", "[github]\n" + lines, 1)
    path.write_text(text)


def kinds(db) -> dict:
    return json.loads(last_run(db)["requests_by_kind"])


def run_errors(db, run_id=None) -> list[tuple]:
    run_id = run_id or last_run(db)["id"]
    return rows(db, "SELECT owner, package, kind, message FROM run_errors WHERE run_id = ?", (run_id,))


def repositories(db) -> dict:
    return {r[0]: r[1:] for r in rows(db, "SELECT name_with_owner, archived, visibility, default_branch, "
                                          "head_oid, fetched_at FROM repositories")}


def small_org(world, owner, links: dict[str, str | None]) -> None:
    """Packages (name -> linked repository name or None), one tiny image
    each, pushed 16 at a time on the world's loop."""
    builder = world.builder.aio

    async def push_all():
        limit = asyncio.Semaphore(16)

        async def push(package, repo):
            async with limit:
                await builder.push_image(owner, package, tags=["latest"], layers=1, layer_size=16,
                                         repository=f"{owner}/{repo}" if repo else None)

        await asyncio.gather(*(push(p, r) for p, r in links.items()))

    world.call(push_all)


# --- the sample org: v_sources answers the three questions ------------------------------------

@pytest.fixture(scope="module")
def sample_db(world, sample, tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("sources")
    monkeypatch_module.setenv("GHCR_GQL_TOKEN", world.token)
    config = write_config(world, tmp, sample.owners, token_env="GHCR_GQL_TOKEN")
    assert run_cli(config, "sync") == 0
    return tmp / "inventory.db", config


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def expected_revision(sample, owner, package, digest):
    image = sample.images[(owner, package, digest)]
    return image.revision or next((c.revision for c in image.children if c.revision), None)


def test_v_sources_has_a_row_per_current_tag_with_the_repositorys_facts(sample, sample_db):
    db, _ = sample_db
    got = {(o, p, t): rest for o, p, t, *rest in rows(
        db, "SELECT owner, package, tag, digest, repository, archived, visibility, default_branch, head_oid, "
            "image_revision, at_head FROM v_sources")}
    expected = {}
    for (owner, package, tag), digest in sample.tags.items():
        pkg = sample.package(owner, package)
        if pkg.repository is None or sample.images[(owner, package, digest)].kind in REFERRER_KINDS:
            continue
        repo = sample.repositories[pkg.repository]
        revision = expected_revision(sample, owner, package, digest)
        at_head = None if revision is None else int(revision == repo.head_oid)
        expected[(owner, package, tag)] = [digest, pkg.repository, int(repo.archived), repo.visibility,
                                           repo.default_branch, repo.head_oid, revision, at_head]
    assert got == expected
    assert {r[4] for r in got.values()} >= {"main", "trunk"}


def test_v_sources_answers_which_images_are_not_at_head(sample, sample_db):
    db, _ = sample_db
    stale = {p for (p,) in rows(db, "SELECT DISTINCT package FROM v_sources WHERE at_head = 0")}
    fresh = {p for (p,) in rows(db, "SELECT DISTINCT package FROM v_sources WHERE at_head = 1")}
    assert sample.roles["revision_stale"][1] in stale                   # api: its repo moved on
    assert sample.roles["revision_matches_head"][1] in fresh            # webapp
    assert stale == {"api", "metrics-exporter"}
    assert not stale & fresh
    matching = {(o, p) for o, p, _ in sample.revision_matches_head}
    assert {(sample.owner, p) for p in fresh} <= matching


def test_v_sources_answers_which_images_come_from_archived_repos(sample, sample_db):
    db, _ = sample_db
    got = set(rows(db, "SELECT DISTINCT owner, package, repository FROM v_sources WHERE archived = 1"))
    archived = {name for name, facts in sample.repositories.items() if facts.archived}
    role = sample.role("archived_repo")
    assert got == {(role.owner, role.name, role.repository)}
    assert role.repository in archived


def test_v_sources_answers_which_private_repos_publish_public_images(sample, sample_db):
    db, _ = sample_db
    got = set(rows(db, "SELECT DISTINCT package, repository FROM v_sources "
                       "WHERE visibility = 'private' AND package_visibility = 'public'"))
    role = sample.role("public_from_private_repo")
    assert got == {(role.name, role.repository)}
    assert sample.repositories[role.repository].private


def test_the_sample_enrichment_is_one_graphql_request_and_in_the_lower_bound(sample, sample_db):
    db, _ = sample_db
    run = last_run(db)
    assert kinds(db)["graphql"] == 1
    assert run["errors"] == 0 and run["status"] == "ok"
    assert run["requests"] <= run["lower_bound"] * 1.05 + 1
    linked = {p.repository for p in sample.packages.values() if p.repository}
    assert set(repositories(db)) == linked


# --- request economy: 250 repositories ------------------------------------------------------

def test_250_repositories_cost_3_requests_and_a_noop_run_none(world, fresh_owner, tmp_path, monkeypatch):
    owner = fresh_owner
    b = world.builder
    for i in range(250):
        b.create_repository(owner, f"svc-{i:03d}", archived=(i % 50 == 0))
    small_org(world, owner, {f"svc-{i:03d}": f"svc-{i:03d}" for i in range(250)})
    monkeypatch.setenv("GHCR_GQL_TOKEN", world.token)
    config = write_config(world, tmp_path, [(owner, "org")], token_env="GHCR_GQL_TOKEN",
                          crawl={"concurrency": 16})
    db = tmp_path / "inventory.db"
    before = len(world.emulator.graphql_log)

    assert run_cli(config, "sync") == 0
    first = rows(db, "SELECT requests_by_kind, lower_bound, requests, errors FROM v_sync_runs "
                     "ORDER BY id DESC LIMIT 1")[0]
    assert json.loads(first[0])["graphql"] == 3 <= 3
    assert first[3] == 0 and first[2] <= first[1] * 1.05 + 1
    calls = world.emulator.graphql_log[before:]
    assert len(calls) == 3 and all(c.ok for c in calls)
    assert sorted(len(c.variables) // 2 for c in calls) == [50, 100, 100]
    repos = repositories(db)
    assert len(repos) == 250 and sum(r[0] for r in repos.values()) == 5
    assert rows(db, "SELECT COUNT(*), COUNT(head_oid), SUM(at_head IS NULL) FROM v_sources") == [(250, 250, 250)]

    assert run_cli(config, "sync") == 0                          # no-op: discovery pages only, all 304
    run = last_run(db)
    assert set(kinds(db)) == {"discovery"} and run["requests"] == run["not_modified"]
    assert len(world.emulator.graphql_log) == before + 3

    # A repository whose facts grew older than github.enrich_interval_s is asked again, alone.
    rows_changed = _execute(db, "UPDATE repositories SET fetched_at = '2000-01-01T00:00:00Z' "
                                "WHERE name_with_owner = ?", (f"{owner}/svc-007",))
    assert rows_changed == 1
    b.push_commit(f"{owner}/svc-007")
    assert run_cli(config, "sync") == 0
    assert kinds(db)["graphql"] == 1
    assert world.emulator.graphql_log[-1].variables == {"owner0": owner, "name0": "svc-007"}
    head = world.call(lambda: world.state.repository(f"{owner}/svc-007").head_oid)
    assert repositories(db)[f"{owner}/svc-007"][3] == head


def _execute(db, sql, params=()) -> int:
    conn = sqlite3.connect(db)
    try:
        with conn:
            return conn.execute(sql, params).rowcount
    finally:
        conn.close()


def test_enrichment_can_be_turned_off(world, fresh_owner, tmp_path, monkeypatch):
    world.builder.create_repository(fresh_owner, "src")
    small_org(world, fresh_owner, {"app": "src"})
    monkeypatch.setenv("GHCR_GQL_TOKEN", world.token)
    config = write_config(world, tmp_path, [(fresh_owner, "org")], token_env="GHCR_GQL_TOKEN")
    github_settings(config, enrich=False)
    assert run_cli(config, "sync") == 0
    db = tmp_path / "inventory.db"
    assert "graphql" not in kinds(db) and repositories(db) == {}
    assert rows(db, "SELECT repository, head_oid, at_head FROM v_sources") == [(f"{fresh_owner}/src", None, None)]


# --- failures: clear messages, no lost data -------------------------------------------------

@pytest.fixture
def two_repos(world, fresh_owner, tmp_path):
    """An org with a public and a private source repository, one public
    package from each, synced and enriched once with the world's token."""
    b = world.builder
    b.create_repository(fresh_owner, "open")
    b.create_repository(fresh_owner, "hidden", visibility="private", archived=True)
    small_org(world, fresh_owner, {"from-open": "open", "from-hidden": "hidden"})
    config = write_config(world, tmp_path, [(fresh_owner, "org")], token_env="UNUSED")
    github_settings(config, enrich_interval_s=0)                  # every run asks again
    db = tmp_path / "inventory.db"
    summary = run_engine(config, world.token)
    assert summary.exit_code == 0 and summary.errors == []
    facts = repositories(db)
    assert {n: f[:4] for n, f in facts.items()} == {
        f"{fresh_owner}/open": (0, "public", "main", world.call(lambda: world.state.repository(
            f"{fresh_owner}/open").head_oid)),
        f"{fresh_owner}/hidden": (1, "private", "main", world.call(lambda: world.state.repository(
            f"{fresh_owner}/hidden").head_oid)),
    }
    return fresh_owner, config, db


def packages_and_tags(db) -> list[tuple]:
    return rows(db, "SELECT package, tag, digest FROM v_tags ORDER BY package, tag")


def test_partial_errors_keep_the_valid_data_and_the_old_facts(world, two_repos):
    owner, config, db = two_repos
    before = repositories(db)
    tags = packages_and_tags(db)
    outsider = world.add_token(owners=["somebody-else"])       # cannot see the private repository
    world.builder.push_commit(f"{owner}/open")
    summary = run_engine(config, outsider)
    assert summary.exit_code == 0 and summary.status == "ok"
    [(err_owner, err_package, kind, message)] = run_errors(db)
    assert (err_owner, err_package, kind) == (None, None, "GraphQLQueryError")
    assert f"repository {owner}/hidden not resolved: NOT_FOUND: Could not resolve to a Repository" in message
    assert "\n" not in message
    after = repositories(db)
    assert after[f"{owner}/hidden"][:4] == before[f"{owner}/hidden"][:4]    # facts kept
    assert after[f"{owner}/hidden"][4] >= before[f"{owner}/hidden"][4]      # marked as asked
    new_head = world.call(lambda: world.state.repository(f"{owner}/open").head_oid)
    assert after[f"{owner}/open"][3] == new_head != before[f"{owner}/open"][3]  # the valid part stored
    assert packages_and_tags(db) == tags
    assert kinds(db)["graphql"] == 1


def test_a_rejected_token_is_recorded_and_the_packages_stay(world, two_repos):
    owner, config, db = two_repos
    before, tags = repositories(db), packages_and_tags(db)
    injected = world.api_proxy.injected["status"]
    world.api_proxy.inject("status", path="^/graphql", status=401, times=10,
                           body={"message": "Bad credentials",
                                 "documentation_url": "https://docs.github.com/graphql"})
    summary = run_engine(config, world.token)
    assert summary.exit_code == 0
    [(_, _, kind, message)] = run_errors(db)
    assert kind == "AuthError"
    assert "the GraphQL API rejected the token (401 Bad credentials)" in message and world.token not in message
    assert last_run(db)["errors"] == 1 and summary.errors == [message]
    assert repositories(db) == before and packages_and_tags(db) == tags
    assert world.api_proxy.injected["status"] == injected + 1      # a 401 is not retried
    assert kinds(db)["graphql"] == 1


def test_graphql_discovery_with_an_unknown_token_fails_with_exit_3(ghes, tmp_path):
    world, owner = ghes
    config = write_config(world, tmp_path, [(owner, "org")], discovery="graphql", token_env="UNUSED")
    summary = run_engine(config, "ghp_" + "0" * 36)
    assert summary.exit_code == 3 and summary.status == "failed"
    assert "the GraphQL API rejected the token (401 Bad credentials)" in summary.message
    assert rows(tmp_path / "inventory.db", "SELECT COUNT(*) FROM packages") == [(0,)]


def test_an_exhausted_graphql_budget_stops_enrichment_cleanly(world, two_repos):
    owner, config, db = two_repos
    before, tags = repositories(db), packages_and_tags(db)
    spent = world.add_token(graphql_limit=0)
    clock = FakeClock(start=time.time())
    summary = run_engine(config, spent, clock=clock)
    assert summary.exit_code == 0 and summary.status == "ok"
    [(_, _, kind, message)] = run_errors(db)
    assert kind == "RateLimitedError"
    assert ":graphql: rate limited by the server; waiting" in message
    assert "would exceed crawl.max_wait_s=900; retry after" in message
    assert clock.sleeps == []                                       # gave up instead of sleeping an hour
    assert json.loads(last_run(db)["faults"]) == {"graphql_rate_limited": 1}
    assert repositories(db) == before and packages_and_tags(db) == tags


def test_a_rate_limited_answer_is_waited_out_when_the_budget_allows(world, two_repos):
    owner, config, db = two_repos
    config.write_text(config.read_text().replace("[crawl]\n", "[crawl]\nmax_wait_s = 7200\n", 1))
    spent = world.add_token(graphql_limit=0)

    class ResettingClock(FakeClock):
        async def sleep(self, seconds):
            await super().sleep(seconds)
            if seconds > 60:    # the hour passes: GitHub resets the budget

                def reset():
                    world.state.token(spent).graphql.limit = 5000
                world.call(reset)

    clock = ResettingClock(start=time.time())
    world.builder.push_commit(f"{owner}/open")
    summary = run_engine(config, spent, clock=clock)
    assert summary.exit_code == 0 and summary.errors == []
    assert any(3000 < s <= 3602 for s in clock.sleeps)            # until x-ratelimit-reset, not longer
    assert kinds(db)["graphql"] == 2                                # the refused request and its retry
    new_head = world.call(lambda: world.state.repository(f"{owner}/open").head_oid)
    assert repositories(db)[f"{owner}/open"][3] == new_head


def test_a_secondary_rate_limit_is_waited_out_through_the_governor(world, two_repos):
    owner, config, db = two_repos
    world.api_proxy.inject("secondary_limit", path="^/graphql", retry_after=42)
    clock = FakeClock(start=time.time())
    summary = run_engine(config, world.token, clock=clock)
    assert summary.exit_code == 0 and summary.errors == []
    assert 42 in [round(s) for s in clock.sleeps]
    assert json.loads(last_run(db)["faults"]).get("http_403_rate_limited") == 1
    assert kinds(db)["graphql"] == 2 and len(repositories(db)) == 2


def test_a_malformed_answer_is_a_parse_error_and_loses_nothing(world, two_repos):
    owner, config, db = two_repos
    before, tags = repositories(db), packages_and_tags(db)
    world.api_proxy.inject("malformed_json", path="^/graphql")
    summary = run_engine(config, world.token)
    assert summary.exit_code == 0
    [(_, _, kind, message)] = run_errors(db)
    assert kind == "ParseError" and "not JSON" in message
    assert repositories(db) == before and packages_and_tags(db) == tags


# --- discovery = "graphql" ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ghes(tmp_path_factory):
    """A world whose GraphQL still lists container packages (like some GHES)."""
    with World(tmp_path_factory.mktemp("ghes"), graphql_lists_containers=True) as w:
        b = w.builder
        b.create_owner("corp", "org")
        b.create_repository("corp", "service")
        b.create_repository("corp", "old", archived=True)
        head = w.call(lambda: w.state.repository("corp/service").head_oid)
        b.push_image("corp", "service", tags=["latest", "1.0"], layers=1, layer_size=32,
                     repository="corp/service", revision=head)
        b.push_index("corp", "tools/multi", tags=["edge"], platforms=["linux/amd64", "linux/arm64"],
                     repository="corp/old")
        b.push_image("corp", "loose", tags=["v1"], layers=1, layer_size=32)
        yield w, "corp"


def test_graphql_discovery_lists_packages_on_a_server_that_still_answers(ghes, tmp_path):
    world, owner = ghes
    config = write_config(world, tmp_path, [(owner, "org")], discovery="graphql", token_env="UNUSED")
    db = tmp_path / "inventory.db"
    summary = run_engine(config, world.token)
    assert summary.exit_code == 0 and summary.errors == []
    expected = {(p.name, p.repository, p.version_count) for p in world.call(world.state.packages_of, owner)}
    assert set(rows(db, "SELECT package, repository, version_count FROM v_packages")) == expected
    got_tags = {(p, t): d for p, t, d in rows(db, "SELECT package, tag, digest FROM v_tags")}
    assert got_tags == {(p, t): d for p in ("service", "tools/multi", "loose")
                        for t, d in world.tags_of(owner, p).items()}
    by_kind = kinds(db)
    assert "discovery" not in by_kind and by_kind["graphql"] == 2      # one packages page + one enrichment
    sources = set(rows(db, "SELECT package, tag, archived, at_head FROM v_sources"))
    assert sources == {("service", "latest", 0, 1), ("service", "1.0", 0, 1), ("tools/multi", "edge", 1, None)}
    assert rows(db, "SELECT discovery FROM owners") == [("graphql",)]

    again = run_engine(config, world.token)                          # incremental: nothing deleted
    assert again.exit_code == 0 and again.packages_deleted == 0
    assert kinds(db).get("graphql") == 1                             # the listing only; no enrichment due


def test_graphql_discovery_on_github_com_names_the_fix_and_deletes_nothing(world, fresh_owner, tmp_path):
    small_org(world, fresh_owner, {"app": None, "worker": None})
    rest = write_config(world, tmp_path, [(fresh_owner, "org")], token_env="UNUSED")
    assert run_engine(rest, world.token).exit_code == 0
    db = tmp_path / "inventory.db"
    assert rows(db, "SELECT COUNT(*) FROM v_packages WHERE deleted_at IS NULL") == [(2,)]

    gql = write_config(world, tmp_path, [(fresh_owner, "org")], discovery="graphql", token_env="UNUSED",
                       name="graphql.toml")
    summary = run_engine(gql, world.token)
    assert summary.exit_code == 1 and summary.status == "partial"
    [(err_owner, package, kind, message)] = run_errors(db)
    assert (err_owner, package, kind) == (fresh_owner, None, "DiscoveryUnsupportedError")
    assert f"GraphQL lists no container packages for '{fresh_owner}'" in message
    assert 'set discovery = "rest" for this owner' in message and "\n" not in message
    assert rows(db, "SELECT COUNT(*) FROM v_packages WHERE deleted_at IS NULL") == [(2,)]
    assert summary.packages_deleted == 0
