"""Issue 11: never conclude from an incomplete listing, and a failure stays
where it happened — against the real registry and the emulator behind the
fault proxy (crawler/sandbox/faults.py's listing kinds).

A listing is complete only when it ends as its protocol says (no `next`): a
Link that loops back, a page cap, a page short of its size that still links
a next one, a listing that ends before its announced last page, a malformed
entry — each is an error for that owner or package, and nothing is
concluded from it (no deletions, no tag closures). Each scenario first syncs
cleanly, then breaks the world so that a crawler concluding from the bad
listing would delete or close something, and asserts that nothing was.
"""

from __future__ import annotations

import re

import pytest

from crawler.sandbox.faults import FOREVER
from tests.reliability import Row
from tests.support import integrity_ok, last_run, rows, run_cli, run_engine, write_config

RELIABILITY = [
    Row("catalog-loop", "a `_catalog` whose `Link: rel=\"next\"` points back to a page already read",
        "that owner fails naming the loop (exit 1); no package marked deleted", test="test_catalog_link_loop"),
    Row("tags-loop", "a `tags/list` whose `Link` loops back",
        "that package fails (exit 1); none of its tags closed", test="test_tags_list_link_loop"),
    Row("packages-anomaly", "GitHub's packages listing looping, shrinking (a short page that links a next one, "
        "an end before the announced last page) or answering 400 past its page cap",
        "the owner's listing is incomplete: one error line (exit 1), the packages listed still sync, "
        "no deletion concluded", test="test_anomalous_packages_listing_concludes_nothing"),
    Row("packages-last", "GitHub's packages listing whose first page's `rel=\"last\"` points to another host "
        "or is no template of its `next` link (pages are otherwise fetched ahead from it)",
        "the `next` links are followed one by one, only to the API's host; the listing is complete and "
        "concludes its deletion", test="test_a_last_link_that_is_no_template_is_not_used"),
    Row("packages-grown", "a package added at the end of a packages listing whose last page was full: "
        "every page's body unchanged (each answers 304), only the last one's Link gained a `next`",
        "the full last page is asked again without its ETag; the new page is read and its package synced",
        test="test_a_package_added_after_a_full_last_page_is_found"),
    Row("versions-loop", "a package-versions listing whose `Link` loops back to itself",
        "that package fails; the owner's other packages commit; no tag of it closed",
        test="test_versions_listing_loop_fails_only_that_package"),
    Row("bad-entry", "one malformed entry in an owner's packages listing",
        "skipped and reported (exit 1); the others sync; no deletion concluded from that listing",
        test="test_malformed_package_entry_is_skipped_and_nothing_deleted"),
    Row("repo-403", "two packages holding the same digest, the first one's repository answering 403",
        "only the first fails; the second fetches the content in its own repository and commits",
        test="test_a_403_in_one_repository_does_not_fail_another"),
    Row("missing-child", "an index whose child manifest the registry no longer has (404), incremental and "
        "`--full`", "the index and the package's other tags committed; the gap in `v_broken_indexes`, report "
        "`broken` and the run's errors", test="test_missing_index_child_is_recorded_not_fatal"),
    Row("escape-name", "a package name from the API that is not a registry repository name (control "
        "characters)", "that package fails with one escaped line; the others sync",
        test="test_a_package_name_outside_the_grammar_fails_only_that_package"),
]


def deleted(db, owner) -> list[str]:
    return [n for (n,) in rows(db, "SELECT package FROM v_packages WHERE owner = ? AND deleted_at IS NOT NULL",
                               (owner,))]


def errors(db) -> list[str]:
    run_id = last_run(db)["id"]
    return [m for (m,) in rows(db, "SELECT message FROM run_errors WHERE run_id = ?", (run_id,))]


@pytest.fixture
def token(world, monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    return world.token


# --- the registry's listings ----------------------------------------------------------------------

def test_catalog_link_loop(world, fresh_owner, tmp_path, token):
    for name in ("a", "b"):
        world.builder.push_image(fresh_owner, name, tags=["latest"])
    text = world.config_toml(tmp_path / "inventory.db", [(fresh_owner, "org")], token_env="GHCR_SANDBOX_TOKEN",
                             discovery="catalog", plain=True)
    config = tmp_path / "config.toml"
    config.write_text(text + "\n[crawl]\nbackoff_base_s = 0.001\n")
    assert run_cli(config, "sync") == 0
    db = tmp_path / "inventory.db"
    world.registry_plain_proxy.inject("loop_link", path=r"^/v2/_catalog\?", to_page="self", times=FOREVER)
    assert run_cli(config, "sync") == 1
    assert any("loops back" in e and "nothing concluded" in e for e in errors(db)), errors(db)
    assert deleted(db, fresh_owner) == []
    assert last_run(db)["packages_deleted"] == 0


def test_tags_list_link_loop(world, sample, tmp_path, token):
    many = sample.role("many_tags")
    config = write_config(world, tmp_path, [("acme", "org")], crawl={"tag_source": "registry"})
    assert run_engine(config, token, packages=[many.name]).exit_code == 0
    db = tmp_path / "inventory.db"
    before = rows(db, "SELECT COUNT(*) FROM v_tags WHERE package = ?", (many.name,))
    assert before == [(len(many.tags),)]
    world.registry_proxy.inject("loop_link", path=rf"/{many.name}/tags/list\?.*last=", to_page=1, times=FOREVER)
    summary = run_engine(config, token, packages=[many.name], full=True)
    assert summary.exit_code == 1 and summary.packages_failed == 1
    assert any("loops back" in e for e in summary.errors), summary.errors
    assert rows(db, "SELECT COUNT(*) FROM v_tags WHERE package = ?", (many.name,)) == before
    assert rows(db, "SELECT COUNT(*) FROM v_tag_history WHERE package = ? AND last_seen IS NOT NULL",
                (many.name,)) == [(0,)]


# --- GitHub's listings ---------------------------------------------------------------------------

@pytest.fixture
def big_org(world, fresh_owner):
    """250 (GitHub-side only) packages: three pages of 100."""
    names = world.builder.bulk_packages(fresh_owner, 250)
    org_id = world.call(lambda: world.state.owner(fresh_owner).id)
    return fresh_owner, org_id, names


def page_number(path: str) -> str:
    found = re.search(r"[?&]page=(\d+)", path)
    return found[1] if found else "1"


def page_path(org_id: int, page: int) -> str:
    return rf"/organizations/{org_id}/packages\?.*\bpage={page}\b"


@pytest.mark.parametrize("fault", ["loop", "short-page", "ends-early", "page-cap"])
def test_anomalous_packages_listing_concludes_nothing(world, big_org, tmp_path, token, fault):
    owner, org_id, names = big_org
    config = write_config(world, tmp_path, [(owner, "org")])
    assert run_engine(config, token).exit_code == 0
    db = tmp_path / "inventory.db"
    world.builder.delete_package(owner, names[0])         # a complete listing would delete exactly this one
    if fault == "loop":
        world.api_proxy.inject("loop_link", path=page_path(org_id, 2), to_page=1, times=FOREVER)
    elif fault == "short-page":
        world.api_proxy.inject("shrink", path=page_path(org_id, 2), keep=10, times=FOREVER)
    elif fault == "ends-early":
        world.api_proxy.inject("shrink", path=page_path(org_id, 2), keep=100, drop_next=True, times=FOREVER)
    else:
        world.set_page_cap(200)                            # page 3 (3 x 100 > 200) answers 400
    summary = run_engine(config, token, full=True)
    assert summary.exit_code == 1, summary.errors
    assert any("listing is incomplete" in e for e in summary.errors), summary.errors
    assert summary.packages_deleted == 0 and deleted(db, owner) == []
    assert summary.packages_changed + summary.packages_skipped > 0   # what was listed still synced
    assert integrity_ok(db)


def own_budget(world) -> str:
    """A token with its own rate budget: two syncs of 250 packages would eat the session token's."""
    return world.add_token(scopes=("read:packages", "repo"))


@pytest.mark.parametrize("last", ["https://elsewhere.example/organizations/{id}/packages?page=3",
                                  "/orgs/someone-else/packages?package_type=container&per_page=100&page=3"])
def test_a_last_link_that_is_no_template_is_not_used(world, big_org, tmp_path, last):
    owner, org_id, names = big_org
    token = own_budget(world)
    config = write_config(world, tmp_path, [(owner, "org")])
    assert run_engine(config, token).exit_code == 0
    world.builder.delete_package(owner, names[0])
    url = last.format(id=org_id) if last.startswith("https:") else world.api_proxy.url + last
    world.api_proxy.inject("relink", path=rf"/orgs/{owner}/packages\?", url=url, times=FOREVER)
    mark = len(world.api_proxy.log)
    summary = run_engine(config, token, full=True)
    assert summary.exit_code == 0, summary.errors
    assert summary.packages_deleted == 1 and deleted(tmp_path / "inventory.db", owner) == [names[0]]
    listing = [e.path for e in world.api_proxy.log[mark:] if "/packages?" in e.path]
    assert len(listing) == 3 and "someone-else" not in "".join(listing)   # the next links, nothing else


def test_a_no_op_costs_the_listing_pages_fetched_ahead(world, big_org, tmp_path):
    owner, org_id, _ = big_org
    token = own_budget(world)
    config = write_config(world, tmp_path, [(owner, "org")])
    assert run_engine(config, token).exit_code == 0
    mark = len(world.api_proxy.log)
    summary = run_engine(config, token)
    assert summary.exit_code == 0 and summary.packages_changed == 0
    sent = world.api_proxy.log[mark:]
    assert [e.status for e in sent] == [304, 304, 304]                  # the three pages, nothing more
    assert sorted(e.path.rsplit("page=", 1)[-1] for e in sent[1:]) == ["2", "3"]


def test_a_package_added_after_a_full_last_page_is_found(world, fresh_owner, tmp_path):
    """200 packages: two full pages, the second linking no next. A package
    added at the end of the listing leaves both bodies as they were (their
    304s stand), only page 2's Link changes, which a 304 does not repeat:
    the full last page is asked again without its ETag, and page 3 read."""
    names = world.builder.bulk_packages(fresh_owner, 200)
    token = own_budget(world)
    config = write_config(world, tmp_path, [(fresh_owner, "org")])
    assert run_engine(config, token).exit_code == 0
    mark = len(world.api_proxy.log)
    summary = run_engine(config, token)                                  # unchanged: 304, then 304 + 200
    assert summary.exit_code == 0 and summary.packages_changed == 0
    assert [e.status for e in world.api_proxy.log[mark:]] == [304, 304, 200]
    world.builder.bulk_packages(fresh_owner, 1, prefix="zz-late")
    mark = len(world.api_proxy.log)
    summary = run_engine(config, token)
    assert summary.exit_code == 0, summary.errors
    sent = [(e.status, page_number(e.path)) for e in world.api_proxy.log[mark:] if "/packages?" in e.path]
    assert sent == [(304, "1"), (304, "2"), (200, "2"), (200, "3")]
    listed = rows(tmp_path / "inventory.db", "SELECT package FROM v_packages WHERE owner = ?", (fresh_owner,))
    assert sorted(n for (n,) in listed) == sorted(names + ["zz-late-00000"])


def test_a_run_ended_in_its_listing_keeps_the_validators_of_the_pages_read(world, fresh_owner, tmp_path,
                                                                             monkeypatch):
    """The listing's validators are saved as its pages are read (every
    SAVE_PAGES pages), not only when it ends: a run that a rejected token
    ends on page 3 (the run ends, no conclusion) keeps pages 1 and 2's
    ETags, and the next run's pages 1 and 2 answer 304."""
    from crawler.engine import owner
    monkeypatch.setattr(owner, "SAVE_PAGES", 1)
    world.builder.bulk_packages(fresh_owner, 250)
    token = own_budget(world)
    config = write_config(world, tmp_path, [(fresh_owner, "org")])
    org_id = world.call(lambda: world.state.owner(fresh_owner).id)
    world.api_proxy.inject("status", path=page_path(org_id, 3), times=FOREVER, status=401)
    try:
        ended = run_engine(config, token)
    finally:
        world.api_proxy.clear()
    assert ended.exit_code == 3 and ended.status == "failed", (ended.exit_code, ended.status, ended.errors)
    mark = len(world.api_proxy.log)
    assert run_engine(config, token).exit_code == 0
    sent = [(e.status, page_number(e.path)) for e in world.api_proxy.log[mark:] if "/packages?" in e.path]
    assert sent == [(304, "1"), (304, "2"), (200, "3")]


def test_versions_listing_loop_fails_only_that_package(world, fresh_owner, tmp_path, token):
    pushed = world.builder.push_image(fresh_owner, "busy", tags=["v1"])
    world.builder.push_image(fresh_owner, "busy", tags=["v2"])
    world.builder.push_image(fresh_owner, "quiet", tags=["latest"])
    config = write_config(world, tmp_path, [(fresh_owner, "org")])
    assert run_engine(config, token).exit_code == 0
    db = tmp_path / "inventory.db"
    world.builder.untag(fresh_owner, "busy", "v1")         # a complete listing would close v1
    world.builder.push_image(fresh_owner, "quiet", tags=["next"])
    # Its one page now links back to itself: a loop (and a short page that links a next one).
    world.api_proxy.inject("loop_link", path=r"/busy/versions\?", to_page="self", times=FOREVER)
    summary = run_engine(config, token)
    assert (summary.exit_code, summary.packages_failed) == (1, 1)
    assert any("busy" in e and "listing is incomplete" in e for e in summary.errors), summary.errors
    assert rows(db, "SELECT digest FROM v_tags WHERE package = 'busy' AND tag = 'v1'") == [(pushed.digest,)]
    assert rows(db, "SELECT COUNT(*) FROM v_tags WHERE package = 'quiet'") == [(2,)]


def test_malformed_package_entry_is_skipped_and_nothing_deleted(world, fresh_owner, tmp_path, token):
    for name in ("one", "two", "three", "four"):
        world.builder.push_image(fresh_owner, name, tags=["latest"])
    config = write_config(world, tmp_path, [(fresh_owner, "org")])
    assert run_engine(config, token).exit_code == 0
    db = tmp_path / "inventory.db"
    world.builder.delete_package(fresh_owner, "four")      # gone: a complete listing would delete it
    world.builder.push_image(fresh_owner, "three", tags=["new"])
    world.api_proxy.inject("bad_item", path=rf"/orgs/{fresh_owner}/packages\?", index=0, variant="no_name",
                           times=FOREVER)
    summary = run_engine(config, token)
    assert summary.exit_code == 1
    assert any("entry skipped" in e for e in summary.errors), summary.errors
    assert deleted(db, fresh_owner) == []                 # a listing with a skipped entry concludes nothing
    assert rows(db, "SELECT tag FROM v_tags WHERE package = 'three' ORDER BY tag") == [("latest",), ("new",)]


# --- failures confined ----------------------------------------------------------------------------

def test_a_403_in_one_repository_does_not_fail_another(world, fresh_owner, tmp_path, token):
    same = dict(tags=["latest"], seed=424242, created="2026-01-01T00:00:00Z")
    first = world.builder.push_image(fresh_owner, "first", **same)
    second = world.builder.push_image(fresh_owner, "second", **same)
    assert first.digest == second.digest                   # one digest, two repositories
    world.deny_repository(fresh_owner, "first")
    # The second package lists later, so the first one fetches the shared digest (and is refused).
    world.api_proxy.inject("latency", path=r"/packages/container/second/versions", ms=400, times=FOREVER)
    config = write_config(world, tmp_path, [(fresh_owner, "org")])
    summary = run_engine(config, token)
    assert (summary.exit_code, summary.packages_failed) == (1, 1), summary.errors
    assert all("first" in e and "403" in e for e in summary.errors), summary.errors
    db = tmp_path / "inventory.db"
    assert rows(db, "SELECT tag, digest FROM v_tags WHERE package = 'second'") == [("latest", second.digest)]
    assert rows(db, "SELECT COUNT(*) FROM v_images WHERE package = 'second' AND kind = 'image'") == [(1,)]
    # Rerun: the content is stored now, so the first package needs nothing from its repository.
    again = run_engine(config, token)
    assert again.exit_code == 0, again.errors
    assert rows(db, "SELECT tag, digest FROM v_tags WHERE package = 'first'") == [("latest", first.digest)]


@pytest.mark.parametrize("full", [False, True])
def test_missing_index_child_is_recorded_not_fatal(world, fresh_owner, tmp_path, token, full):
    index = world.builder.push_index(fresh_owner, "multi", tags=["latest"], platforms=["linux/amd64", "linux/arm64"])
    solo = world.builder.push_image(fresh_owner, "multi", tags=["solo"])
    gone = index.children[1]
    world.builder.remove_manifest(fresh_owner, "multi", gone)
    config = write_config(world, tmp_path, [(fresh_owner, "org")])
    assert run_cli(config, "sync", *(["--full"] if full else [])) == 0
    db = tmp_path / "inventory.db"
    assert dict(rows(db, "SELECT tag, digest FROM v_tags WHERE package = 'multi'")) == {
        "latest": index.digest, "solo": solo.digest}
    assert rows(db, "SELECT digest, child_digest, platform FROM v_broken_indexes WHERE package = 'multi'") == [
        (index.digest, gone.digest, "linux/arm64")]
    assert rows(db, "SELECT missing_children FROM v_images WHERE package = 'multi' AND digest = ?",
                (index.digest,)) == [(1,)]
    assert any(gone.digest in e and "v_broken_indexes" in e for e in errors(db))
    # the report says it too, and a rerun keeps the fact without failing
    from crawler.readonly import open_readonly
    from crawler.reports import run_report
    conn = open_readonly(db)
    try:
        _, got, _ = run_report(conn, "broken")
    finally:
        conn.close()
    assert [(r[0], r[1], r[2]) for r in got] == [(fresh_owner, "multi", index.digest)]
    assert run_cli(config, "sync") == 0
    assert len(rows(db, "SELECT * FROM v_broken_indexes")) == 1


def test_a_package_name_outside_the_grammar_fails_only_that_package(world, fresh_owner, tmp_path, token, capsys):
    for name in ("alpha", "beta", "gamma"):
        world.builder.push_image(fresh_owner, name, tags=["latest"])
    evil = {"id": 987654, "name": "evil\x1b]0;pwned\x07\x1b[2Jname", "package_type": "container",
            "visibility": "public", "version_count": 1, "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "url": "https://api.github.com/x",
            "html_url": "https://github.com/x"}
    world.api_proxy.inject("bad_item", path=rf"/orgs/{fresh_owner}/packages\?", index=0, item=evil, times=FOREVER)
    config = write_config(world, tmp_path, [(fresh_owner, "org")])
    assert run_cli(config, "--log-format", "console", "sync") == 1
    err = capsys.readouterr().err.replace("\x1b[2K", "")   # the progress line's own clear-line code
    assert "\x1b" not in err and "\x07" not in err
    assert "not a valid registry repository name" in err
    db = tmp_path / "inventory.db"
    assert len(rows(db, "SELECT package FROM v_tags")) == 2   # the two the evil entry did not replace
