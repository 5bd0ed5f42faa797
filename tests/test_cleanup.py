"""Issue 16 B: `plan-cleanup`, a planner that deletes nothing. On a tricky
corpus pushed to the real registry (multi-arch indexes with buildx
attestations, cosign .sig/.sbom tags, SBOM referrers, indexes sharing their
children, one digest under several tags, a moved tag leaving a signed
version behind) every proposed deletion is checked: no kept tag loses a
manifest, a child or its signature — first on the plan, then for real, by
deleting what it proposes and syncing again. The pure planner is also
checked on random packages (hypothesis), and refuses a package whose last
listing was incomplete."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crawler.cleanup
from crawler import cli
from crawler.cleanup.plan import Link, PackageRows, Version, check_plan, plan_package
from crawler.cleanup.policy import Policy, parse_policy_options, policy_for
from crawler.config import parse_config
from crawler.errors import InternalError, UsageError
from crawler.sandbox.sample import BUNDLE_TYPE
from tests.support import rows, run_cli

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
SPDX_TYPE = "application/spdx+json"
EAGER = ["--policy", "keep_newest_tagged=1", "--policy", "keep_tags=stable", "--policy", "delete_tagged=true",
         "--policy", "tagged_older_than_days=0", "--policy", "untagged_older_than_days=0"]


def policy(**kw) -> Policy:
    base = dict(keep_newest_tagged=1, keep_tags=("stable",), delete_untagged=True, untagged_older_than_days=0,
                delete_tagged=True, tagged_older_than_days=0)
    return Policy(**{**base, **kw})


# --- the policy ----------------------------------------------------------------------------

def test_policy_layers_defaults_overrides_and_the_command_line():
    config = parse_config('[cleanup]\nkeep_newest_tagged = 3\n'
                          '[[cleanup.overrides]]\nowner = "acme"\nkeep_tags = ["v*"]\n'
                          '[[cleanup.overrides]]\nowner = "acme"\npackage = "web*"\nkeep_newest_tagged = 20\n')
    assert policy_for(config.cleanup, "other", "x").keep_newest_tagged == 3
    web = policy_for(config.cleanup, "ACME", "webapp")
    assert (web.keep_newest_tagged, web.keep_tags, web.delete_tagged) == (20, ("v*",), False)
    cli_options = parse_policy_options(["keep_newest_tagged=1", "delete-tagged=yes", "keep_tags=a,b*"])
    top = policy_for(config.cleanup, "acme", "webapp", cli_options)
    assert (top.keep_newest_tagged, top.delete_tagged, top.keep_tags) == (1, True, ("a", "b*"))


@pytest.mark.parametrize("option", ["nonsense", "keep=1", "keep_newest_tagged=-1", "keep_newest_tagged=x",
                                    "delete_tagged=maybe", "keep_tags=a[", "untagged_older_than_days=nan"])
def test_a_bad_policy_option_is_a_usage_error(option):
    with pytest.raises(UsageError) as err:
        parse_policy_options([option])
    assert "--policy" in str(err.value)


@pytest.mark.parametrize("text,needle", [
    ('[cleanup]\nkeep_newst_tagged = 1\n', "cleanup.keep_newst_tagged"),
    ('[cleanup]\nkeep_newest_tagged = "3"\n', "must be an integer"),
    ('[cleanup]\nuntagged_older_than_days = -1\n', "must not be negative"),
    ('[[cleanup.overrides]]\npackage = "x"\n', "cleanup.overrides[0].owner"),
    ('[[cleanup.overrides]]\nowner = "a"\ncolour = 1\n', "cleanup.overrides[0].colour"),
])
def test_bad_cleanup_config_names_the_key(text, needle):
    with pytest.raises(UsageError) as err:
        parse_config(text, source="c.toml")
    assert needle in str(err.value) and "c.toml" in str(err.value)


# --- the pure planner ----------------------------------------------------------------------

def d(n: int) -> str:
    return f"sha256:{n:064x}"


def at(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_index_kept_keeps_its_children_and_signatures_and_a_going_one_takes_its_own():
    versions = (Version(d(1), 1, at(5), "index", ("stable",)), Version(d(2), 2, at(50), "index", ("old",)),
                Version(d(3), 3, at(50), "image"), Version(d(4), 4, at(50), "image"),
                Version(d(5), 5, at(50), "signature", (f"sha256-{'0' * 63}2.sig",)),
                Version(d(6), 6, at(50), "signature", (f"sha256-{'0' * 63}1.sig",)))
    links = (Link(d(1), d(3), "child"), Link(d(2), d(3), "child"), Link(d(2), d(4), "child"),
             Link(d(2), d(5), "signature"), Link(d(1), d(6), "signature"))
    rows_ = PackageRows("acme", "org", "app", "private", versions, links,
                        {d(3): (("sha256:l3", 30),), d(4): (("sha256:l4", 40), ("sha256:l3", 30))})
    plan = plan_package(rows_, policy(), NOW)
    assert {p.digest for p in plan.proposals} == {d(2), d(4), d(5)}        # never d(3): d(1) still needs it
    assert plan.bytes == 40 and [p.depth for p in plan.proposals] == [0, 1, 1]
    assert all(p.caveat is None for p in plan.proposals)


def test_a_refused_package_proposes_nothing():
    rows_ = PackageRows("acme", "org", "app", "public", (Version(d(1), 1, at(50), "image"),), (),
                        refused="this package's last sync was incomplete")
    assert plan_package(rows_, policy(), NOW).proposals == ()


def test_check_plan_refuses_a_plan_that_breaks_a_kept_tag():
    rows_ = PackageRows("acme", "org", "app", None, (Version(d(1), 1, at(1), "index", ("v1",)),
                                                     Version(d(2), 2, at(1), "image")),
                        (Link(d(1), d(2), "child"),))
    with pytest.raises(InternalError):
        check_plan(rows_, {d(2)})


KINDS = ["index", "image", "signature", "attestation", "sbom", "artifact", None]


@st.composite
def packages(draw):
    n = draw(st.integers(1, 12))
    versions = tuple(Version(d(i), draw(st.one_of(st.none(), st.integers(1, 10**6))) if i % 7 else i,
                             at(draw(st.integers(0, 100))), draw(st.sampled_from(KINDS)),
                             tuple(sorted(set(draw(st.lists(st.sampled_from(["latest", "stable", "v1", "v2",
                                                                              "sha256-x.sig"]), max_size=2))))))
                     for i in range(n))
    links = tuple(Link(d(a), d(b), draw(st.sampled_from(["child", "signature", "attestation", "sbom", "referrer"])))
                  for a, b in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=15))
                  if a < b)            # content addressing: no cycles
    return PackageRows("acme", "org", "app", draw(st.sampled_from(["public", "private"])), versions, links)


@settings(max_examples=200, deadline=None)
@given(packages(), st.integers(0, 3), st.booleans(), st.integers(0, 60), st.integers(0, 60))
def test_no_plan_ever_takes_what_a_kept_tag_reaches(pkg, newest, delete_tagged, untagged_days, tagged_days):
    p = policy(keep_newest_tagged=newest, delete_tagged=delete_tagged, untagged_older_than_days=untagged_days,
               tagged_older_than_days=tagged_days)
    plan = plan_package(pkg, p, NOW)
    going = {x.digest for x in plan.proposals} | set(plan.unlisted)
    assert_kept_tags_whole(pkg, going)
    # A going digest's followers go with it unless something kept holds them.
    for link in pkg.links:
        if link.parent in going:
            assert link.child in going or link.child in plan.kept, link


def assert_kept_tags_whole(pkg: PackageRows, going: set[str]) -> None:
    """No kept tag loses its manifest, a child, a signature, attestation or SBOM."""
    below: dict[str, set[str]] = {}
    for link in pkg.links:
        below.setdefault(link.parent, set()).add(link.child)
    for v in pkg.versions:
        if v.tags and v.digest not in going:
            todo, seen = [v.digest], set()
            while todo:
                cur = todo.pop()
                assert cur not in going, f"kept tag {v.tags} would lose {cur}"
                seen.add(cur)
                todo += [c for c in below.get(cur, ()) if c not in seen]


# --- the tricky corpus, end to end against the sandbox ---------------------------------------

@pytest.fixture
def corpus(world, fresh_owner, tmp_path, monkeypatch):
    """Pushed to the real registry, synced once; plan-cleanup's clock 30 days on."""
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    monkeypatch.setattr(crawler.cleanup, "clock", lambda: datetime.now(timezone.utc) + timedelta(days=30))
    o, b = fresh_owner, world.builder
    older = b.push_index(o, "app", tags=["0.9"], attestations=True, platforms=["linux/amd64", "linux/arm64"])
    b.push_cosign(o, "app", older, "sig")
    b.push_artifact(o, "app", artifact_type=SPDX_TYPE, subject=older)               # an SBOM referrer
    old = b.push_index(o, "app", tags=["1.0"], attestations=True, platforms=["linux/amd64", "linux/arm64"],
                       annotations={"v": "1"}, seed=77)
    new = b.push_index(o, "app", tags=["2.0", "latest", "stable"], attestations=True,   # shares old's children
                       platforms=["linux/amd64", "linux/arm64"], annotations={"v": "2"}, seed=77)
    for index in (old, new):
        b.push_cosign(o, "app", index, "sig")
    b.push_cosign(o, "app", new, "sbom")
    b.push_artifact(o, "app", artifact_type=BUNDLE_TYPE, subject=new)
    moved = b.push_image(o, "app", tags=["edge"])
    b.push_cosign(o, "app", moved, "sig")
    b.push_image(o, "app", tags=["edge"])                                             # edge moves on
    b.push_image(o, "team/tool", tags=["v1"])
    b.push_image(o, "team/tool")                                                      # an orphan, nested name
    config = tmp_path / "config.toml"
    config.write_text(world.config_toml(tmp_path / "inventory.db", [(o, "org")], token_env="GHCR_SANDBOX_TOKEN"))
    assert run_cli(config, "sync") == 0
    return {"owner": o, "config": config, "db": tmp_path / "inventory.db", "older": older, "old": old, "new": new,
            "moved": moved}


def _plan(config, capsys, *args) -> tuple[int, list[dict], str]:
    code = cli.main(["--config", str(config), "plan-cleanup", "--format", "json", *EAGER, *args])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def _package_rows(db, owner: str, package: str) -> PackageRows:
    from crawler.cleanup.load import load_packages
    from crawler.readonly import open_readonly
    conn = open_readonly(db)
    try:
        return next(r for r in load_packages(conn, [owner], [package]))
    finally:
        conn.close()


def test_the_plan_never_breaks_a_kept_tag_on_the_tricky_corpus(world, corpus, capsys):
    c = corpus
    code, plan, err = _plan(c["config"], capsys)
    assert code == 0 and "nothing was deleted" in err
    app = {p["digest"]: p for p in plan if p["package"] == "app"}
    new, old, older = c["new"], c["old"], c["older"]
    # The kept index (stable, latest, 2.0), its children, attestation manifests, signature and SBOMs stay.
    kept = {new.digest} | {ch.digest for ch in new.children}
    assert not kept & set(app)
    # 1.0 goes, with its signature, but not its children: 2.0 lists the very same ones.
    assert old.digest in app and not {ch.digest for ch in old.children} & set(app)
    assert app[old.digest]["tags"] == "1.0" and "tagged" in app[old.digest]["reason"]
    # 0.9 goes whole: children, buildx attestations, cosign signature, SBOM referrer.
    older_all = {older.digest} | {ch.digest for ch in older.children}
    assert older_all <= set(app)
    signatures = [p for p in app.values() if p["kind"] == "signature"]
    assert len(signatures) == 3 and all(p["tags"].endswith(".sig") for p in signatures)  # 0.9's, 1.0's, moved's
    assert c["moved"].digest in app and "untagged" in app[c["moved"].digest]["reason"]
    assert any(p["package"] == "team/tool" for p in plan)
    # Every proposal, checked against what the inventory knows.
    for name in ("app", "team/tool"):
        assert_kept_tags_whole(_package_rows(c["db"], c["owner"], name),
                               {p["digest"] for p in plan if p["package"] == name})
    assert sum(p["bytes"] for p in app.values()) > 0 and all(p["version_id"] for p in plan)
    assert all(p["caveat"] and "5,000" in p["caveat"] for p in plan)    # the builder's packages are public


def test_running_the_plan_leaves_every_kept_tag_whole(world, corpus, capsys):
    c, o = corpus, corpus["owner"]
    db = c["db"]
    before = dict(((p, t), (dg, s, a, sb)) for p, t, dg, s, a, sb in rows(
        db, "SELECT t.package, t.tag, t.digest, i.signed, i.attested, i.sbom FROM v_tags t "
            "LEFT JOIN v_tagged_images i ON i.owner = t.owner AND i.package = t.package AND i.digest = t.digest"))
    code, plan, _ = _plan(c["config"], capsys)
    going = {(p["package"], p["digest"]) for p in plan}
    assert code == 0 and going
    for package, digest in sorted(going, key=lambda x: [p["digest"] for p in plan].index(x[1])):
        world.builder.delete_version(o, package, digest)       # what running the script does
    assert run_cli(c["config"], "sync") == 0
    after = dict(((p, t), (dg, s, a, sb)) for p, t, dg, s, a, sb in rows(
        db, "SELECT t.package, t.tag, t.digest, i.signed, i.attested, i.sbom FROM v_tags t "
            "LEFT JOIN v_tagged_images i ON i.owner = t.owner AND i.package = t.package AND i.digest = t.digest"))
    lost = {k for k, v in before.items() if before[k][0] in {dg for _, dg in going}}
    assert {k: v for k, v in before.items() if k not in lost} == after      # same digest, still signed/attested
    assert rows(db, "SELECT COUNT(*) FROM v_broken_indexes") == [(0,)]
    # Nothing left to propose under the same policy.
    assert _plan(c["config"], capsys)[1] == []


def test_the_script_deletes_by_version_id_with_escaped_names(world, corpus, capsys):
    c = corpus
    code = cli.main(["--config", str(c["config"]), "plan-cleanup", "--format", "script", *EAGER])
    out = capsys.readouterr().out
    deletes = [line for line in out.splitlines() if line.startswith("gh api")]
    assert code == 0 and out.startswith("#!/bin/sh") and deletes
    assert all(line.startswith(f"gh api -X DELETE /orgs/{c['owner']}/packages/container/") for line in deletes)
    assert any("/packages/container/team%2Ftool/versions/" in line for line in deletes)
    ids = [line.rsplit("/", 1)[1] for line in deletes]
    assert all(i.isdigit() for i in ids) and len(set(ids)) == len(ids)
    # Parents first: 0.9's index comes before its children.
    order = [line for line in out.splitlines() if line.startswith("# ") and " sha256:" in line]
    assert order.index(next(x for x in order if c["older"].digest in x)) < \
        order.index(next(x for x in order if c["older"].children[0].digest in x))


def test_nothing_is_proposed_under_the_default_policy_for_fresh_images(world, corpus, capsys, monkeypatch):
    monkeypatch.setattr(crawler.cleanup, "clock", lambda: datetime.now(timezone.utc))
    code = cli.main(["--config", str(corpus["config"]), "plan-cleanup"])
    out = capsys.readouterr()
    assert code == 0 and "(0 rows)" in out.out and "0 versions" in out.err


def test_an_owner_whose_last_sync_did_not_finish_is_refused(world, corpus, capsys):
    conn = sqlite3.connect(corpus["db"])
    with conn:
        conn.execute("UPDATE sync_runs SET status = 'interrupted' WHERE id = (SELECT MAX(id) FROM sync_runs)")
    conn.close()
    code, plan, err = _plan(corpus["config"], capsys)
    assert code == 0 and plan == []
    assert err.count("the owner's last listing was incomplete") == 2 and "interrupted" in err
