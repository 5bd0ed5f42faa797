"""Issue 17: a changed package reads its newest versions pages, not its whole
history (crawler/engine/versions.py). The stop rule as a pure function over
the stored listing and the pages read; then end to end against the emulator
and the real registry, in both stores, with four versions a page (so a
history of 14 builds is four pages): one new build costs one page, and every
change the rule cannot vouch for — a tag moved deep, a deep deletion, a
listing failing mid-way, GitHub's order broken — ends as a whole listing or
changes nothing."""

from __future__ import annotations

import json

import pytest

from crawler.engine.versions import KnownListing, can_stop, synthesise
from crawler.model import VersionEntry
from tests.support import execute, integrity_ok, last_run, rows, run_cli, write_config


def v(n: int, *tags: str, updated: int | None = None) -> VersionEntry:
    stamp = f"2026-01-01T00:{updated if updated is not None else n:02d}:00Z"
    return VersionEntry(f"sha256:{n:064x}", tuple(tags), 1000 + n, f"2026-01-01T00:{n:02d}:00Z", stamp)


# Stored: builds 0..9, "v<n>" on each, "latest" on 9; the package's updated_at 9.
STORED = KnownListing({e.digest: e for e in [v(n, f"v{n}", *(["latest"] if n == 9 else [])) for n in range(10)]},
                      "2026-01-01T00:09:00Z")


def listing(*entries: VersionEntry) -> list[VersionEntry]:
    return list(entries)


def test_one_new_build_stops_on_the_first_page_and_the_rest_comes_from_the_store():
    read = [v(10, "v10", "latest"), v(9, "v9", updated=10), v(8, "v8"), v(7, "v7")]
    assert can_stop(STORED, read, 11, "2026-01-01T00:10:00Z")
    whole = synthesise(STORED, read)
    tags = {t: e.digest for e in whole for t in e.tags}
    assert len(whole) == 11 and tags["latest"] == v(10).digest and tags["v0"] == v(0).digest
    assert [e.tags for e in whole if e.digest == v(9).digest] == [("v9",)]


def test_no_known_version_read_yet_reads_on():
    read = [v(12, "v12"), v(11, "v11"), v(10, "v10", "latest")]
    assert not can_stop(STORED, read, 13, "2026-01-01T00:12:00Z")


def test_a_tag_lost_by_a_read_version_and_not_found_reads_on():
    """'latest' left build 9 for an unread older one (or was deleted)."""
    read = [v(9, "v9", updated=20), v(8, "v8"), v(7, "v7")]
    assert not can_stop(STORED, read, 10, "2026-01-01T00:20:00Z")
    found = read + [v(6, "v6"), v(5, "v5", "latest", updated=20)]
    assert can_stop(STORED, found, 10, "2026-01-01T00:20:00Z")
    assert {t: e.digest for e in synthesise(STORED, found) for t in e.tags}["latest"] == v(5).digest


def test_a_tag_moved_from_an_unread_version_to_a_read_one_leaves_the_unread_one():
    read = [v(10, "v10", "v0"), v(9, "v9", "latest"), v(8, "v8")]
    assert can_stop(STORED, read, 11, "2026-01-01T00:10:00Z")
    assert [e.tags for e in synthesise(STORED, read) if e.digest == v(0).digest] == [()]


def test_a_deep_deletion_or_any_count_mismatch_reads_on():
    read = [v(9, "v9", "latest"), v(8, "v8")]
    assert not can_stop(STORED, read, 9, "2026-01-01T00:09:00Z")                  # one deleted deep
    assert not can_stop(STORED, [v(10, "v10")] + read, 10, "2026-01-01T00:10:00Z")  # + one new
    assert not can_stop(STORED, read, None, "2026-01-01T00:09:00Z")


def test_an_updated_at_newer_than_every_change_read_reads_on():
    """A retag or a new tag deeper than the pages read moves the package's
    updated_at past everything read."""
    read = [v(10, "v10"), v(9, "v9", "latest"), v(8, "v8")]
    assert not can_stop(STORED, read, 11, "2026-01-01T00:30:00Z")
    assert not can_stop(STORED, read, 11, "yesterday")
    assert not can_stop(STORED, read, 11, None)
    assert not can_stop(STORED, read[1:], 10, "2026-01-01T00:30:00Z")          # nothing read changed
    assert can_stop(STORED, read[1:], 10, "2026-01-01T00:09:00Z")              # updated_at as stored


# -- end to end -------------------------------------------------------------------------------------

BUILDS = 14          # four pages of four


@pytest.fixture
def nightly(world, fresh_owner, tmp_path, monkeypatch, db):
    """`app` with 14 builds (n0 oldest … n13 `latest`), synced once, whole."""
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    monkeypatch.setattr("crawler.github.PER_PAGE", 4)
    b = world.builder
    digests = [b.push_image(fresh_owner, "app", tags=[f"n{i}", "latest"], seed=500 + i).digest
               for i in range(BUILDS)]
    config = write_config(world, tmp_path, [(fresh_owner, "org")], db=db)
    assert run_cli(config, "sync") == 0
    assert versions_pages(db) == 4
    return fresh_owner, config, db, digests


def versions_pages(db) -> int:
    return json.loads(last_run(db)["requests_by_kind"]).get("versions", 0)


def stored_tags(db) -> dict[str, str]:
    return dict(rows(db, "SELECT tag, digest FROM v_tags WHERE package = 'app'"))


def live_digests(db) -> set[str]:
    return {d for (d,) in rows(db, "SELECT digest FROM package_digests WHERE last_seen IS NULL")}


def full_listed_at(db) -> str | None:
    return rows(db, "SELECT full_listed_at FROM packages WHERE name = 'app'")[0][0]


def assert_as_the_world(world, owner, db) -> None:
    assert stored_tags(db) == world.tags_of(owner, "app")
    pkg = world.package(owner, "app")
    assert live_digests(db) == {d for d, ver in pkg.versions.items() if not ver.deleted}
    assert integrity_ok(db)


def test_one_new_build_costs_one_versions_page(world, nightly):
    owner, config, db, _ = nightly
    b = world.builder
    stamp = full_listed_at(db)
    for n in (14, 15):
        b.push_image(owner, "app", tags=[f"n{n}", "latest"], seed=600 + n)
        assert run_cli(config, "sync") == 0
        assert versions_pages(db) == 1
        assert_as_the_world(world, owner, db)
    assert full_listed_at(db) == stamp          # only a whole listing moves it
    execute(db, "UPDATE packages SET full_listed_at = ?", ("2000-01-01T00:00:00Z",))
    b.push_image(owner, "app", tags=["n16", "latest"], seed=616)
    assert run_cli(config, "sync") == 0
    assert versions_pages(db) == 5              # the last whole listing is a day old: 17 versions, whole
    assert full_listed_at(db) >= stamp > "2000"     # stamped again (second resolution: maybe the same)
    assert_as_the_world(world, owner, db)


def test_a_tag_moved_to_a_deep_version_reads_down_to_it(world, nightly):
    owner, config, db, digests = nightly
    world.builder.tag(owner, "app", "latest", digests[5])     # page 3 of 4
    assert run_cli(config, "sync") == 0
    assert versions_pages(db) == 3
    assert_as_the_world(world, owner, db)
    assert rows(db, "SELECT digest FROM v_tag_history WHERE package = 'app' AND tag = 'latest' "
                    "AND last_seen IS NOT NULL") == [(digests[13],)]


def test_a_new_tag_on_a_deep_version_alone_is_read_whole(world, nightly):
    owner, config, db, digests = nightly
    world.builder.tag(owner, "app", "pinned", digests[1])     # moves no read version: rule 4
    assert run_cli(config, "sync") == 0
    assert versions_pages(db) == 4
    assert_as_the_world(world, owner, db)


def test_a_new_deep_tag_hidden_by_a_newer_build_is_recorded_by_the_next_whole_listing(world, nightly):
    """The one change no rule sees; the interval bounds how late it is recorded."""
    owner, config, db, digests = nightly
    b = world.builder
    b.tag(owner, "app", "pinned", digests[1])
    b.push_image(owner, "app", tags=["n14", "latest"], seed=601)
    assert run_cli(config, "sync") == 0
    assert versions_pages(db) == 1 and "pinned" not in stored_tags(db)
    assert run_cli(config, "sync") == 0                         # unchanged, whole listing not yet due
    assert versions_pages(db) == 0
    execute(db, "UPDATE packages SET full_listed_at = ?", ("2000-01-01T00:00:00Z",))
    assert run_cli(config, "sync") == 0                         # due: listed whole though unchanged
    assert versions_pages(db) == 4                              # 15 versions
    assert_as_the_world(world, owner, db)
    assert run_cli(config, "sync") == 0                         # and stamped: not again
    assert versions_pages(db) == 0


def test_deep_deletions_are_read_whole_and_closed(world, nightly):
    owner, config, db, digests = nightly
    b = world.builder
    b.delete_version(owner, "app", digests[2])
    assert run_cli(config, "sync") == 0
    assert versions_pages(db) == 4
    assert_as_the_world(world, owner, db)
    b.delete_version(owner, "app", digests[3])
    b.push_image(owner, "app", tags=["n14", "latest"], seed=602)
    assert run_cli(config, "sync") == 0
    assert versions_pages(db) == 4                              # 14 - 2 + 1 = 13 versions: four pages
    assert_as_the_world(world, owner, db)


def test_a_listing_failing_mid_way_changes_nothing(world, nightly):
    owner, config, db, digests = nightly
    world.builder.tag(owner, "app", "latest", digests[5])
    before = rows(db, "SELECT tag, digest, first_seen, last_seen FROM tags ORDER BY id")
    world.api_proxy.inject("status", path=r"/packages/container/app/versions\?.*page=2", probability=1.0,
                           status=500)
    assert run_cli(config, "sync") != 0
    assert last_run(db)["packages_failed"] == 1
    assert rows(db, "SELECT tag, digest, first_seen, last_seen FROM tags ORDER BY id") == before
    world.clear_faults()
    assert run_cli(config, "sync") == 0
    assert_as_the_world(world, owner, db)


@pytest.mark.parametrize("order", ["oldest", "updated"])
def test_github_listing_in_another_order_still_ends_right(world, nightly, order):
    """The order is an observation, not a contract: broken, the rules fail
    and the listing is read whole, or they hold and the picture is right."""
    owner, config, db, digests = nightly
    b = world.builder
    world.call(world.state.set_version_order, owner, "app", order)
    b.push_image(owner, "app", tags=["n14", "latest"], seed=603)
    b.tag(owner, "app", "n9", digests[2])
    assert run_cli(config, "sync") == 0
    assert versions_pages(db) == (4 if order == "oldest" else 2)   # "updated": page 1 is all changes
    assert_as_the_world(world, owner, db)


def test_interval_zero_and_full_always_read_every_page(world, nightly, tmp_path):
    owner, config, db, _ = nightly
    world.builder.push_image(owner, "app", tags=["n14", "latest"], seed=604)
    assert run_cli(config, "sync", "--full") == 0
    assert versions_pages(db) == 4
    (tmp_path / "always").mkdir()
    always = write_config(world, tmp_path / "always", [(owner, "org")], db=db,
                          crawl={"full_listing_interval_s": 0})
    world.builder.push_image(owner, "app", tags=["n15", "latest"], seed=605)
    assert run_cli(always, "sync") == 0
    assert versions_pages(db) == 4
    assert_as_the_world(world, owner, db)


def test_an_inventory_of_schema_1_gains_the_stamp_and_lists_whole_once(world, nightly, store):
    """packages.full_listed_at came with schema 2: an older inventory is
    migrated (both stores), and having no stamp, lists whole once."""
    owner, config, db, _ = nightly
    if store == "sqlite":
        for (view,) in rows(db, "SELECT name FROM sqlite_master WHERE type = 'view'"):
            execute(db, f'DROP VIEW "{view}"')
    else:
        execute(db, "COMMENT ON TABLE schema_version IS 'older'")    # not this fingerprint: DDL wanted
    execute(db, "ALTER TABLE packages DROP COLUMN full_listed_at")
    execute(db, "UPDATE schema_version SET version = 1")
    b = world.builder
    b.push_image(owner, "app", tags=["n14", "latest"], seed=620)
    assert run_cli(config, "sync") == 0
    assert rows(db, "SELECT version FROM schema_version") == [(2,)]
    assert versions_pages(db) == 4 and full_listed_at(db) is not None
    b.push_image(owner, "app", tags=["n15", "latest"], seed=621)
    assert run_cli(config, "sync") == 0
    assert versions_pages(db) == 1
    assert_as_the_world(world, owner, db)
