"""The canned reports (`ghcr-inventory report NAME`) against known answers.

The sample world's answers are computed here in Python from the builder's
records (``SampleOrg``: what was pushed, tagged, signed, orphaned), never by
running the reports' SQL; the database is a real sync of that world. The
semantics the sample cannot show (layers shared between orphans, signed
platform images under an unsigned index, the --days window) are checked on
small hand-made inventories in in-memory SQLite.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from crawler import cli
from crawler.errors import QueryError, UsageError
from crawler.readonly import open_readonly
from crawler.reports import LARGEST_LIMIT, REPORTS, run_report
from crawler.store import apply_schema

from tests.sampledb import synced_sample, with_repositories, without_repositories

IMAGE_KINDS = ("index", "image")


# --- expectations from the sample's records ---------------------------------------

def tagged_images(sample) -> dict[tuple[str, str, str], set[str]]:
    """(owner, package, digest) of every tagged image or index -> its tags."""
    out: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for (owner, package, tag), digest in sample.tags.items():
        if sample.images[(owner, package, digest)].kind in IMAGE_KINDS:
            out[(owner, package, digest)].add(tag)
    return dict(out)


def blobs_of(image) -> set[tuple[str, int]]:
    """The blobs the registry stores for one manifest: config + non-foreign layers."""
    found = {(image.config.digest, image.config.size)} if image.config else set()
    return found | {(layer.digest, layer.size) for layer in image.layers if not layer.foreign}


def untagged_reasons(sample) -> dict[tuple[str, str, str], str]:
    """Walk from each package's tagged digests through index children and
    referrers (what a tag keeps alive); classify every other held version."""
    tagged = {(o, p, d) for (o, p, _), d in sample.tags.items()}
    describes: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for r in sample.referrers:
        describes[(r.owner, r.package, r.subject)].append(r.referrer)
    reasons: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    frontier, seen = list(tagged), set(tagged)
    while frontier:
        key = frontier.pop()
        owner, package, digest = key
        image = sample.images.get(key)
        edges = [(c.digest, "child-of-tagged-index") for c in (image.children if image else ())]
        edges += [(d, "referrer-of-tagged") for d in describes[key]]
        for child, reason in edges:
            ckey = (owner, package, child)
            reasons[ckey].add(reason)
            if ckey not in seen:
                seen.add(ckey)
                frontier.append(ckey)
    out = {}
    for key in sample.active_digests - tagged:
        found = reasons.get(key, set())
        out[key] = ("child-of-tagged-index" if "child-of-tagged-index" in found
                    else "referrer-of-tagged" if found else "orphan")
    return out


def reclaimable(sample) -> tuple[dict[tuple[str, str, str], int], int]:
    """Per orphan: bytes of its blobs no kept version uses; and the total with
    each blob counted once."""
    kept = sample.active_digests - sample.orphans
    kept_blobs = {d for key in kept for d, _ in blobs_of(sample.images[key])}
    per, free = {}, set()
    for key in sample.orphans:
        mine = {(d, s) for d, s in blobs_of(sample.images[key]) if d not in kept_blobs}
        per[key] = sum(s for _, s in mine)
        free |= mine
    return per, sum(s for _, s in free)


# --- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def db(world, tmp_path_factory):
    return synced_sample(world, tmp_path_factory)


@pytest.fixture(scope="module")
def conn(db):
    c = open_readonly(db)
    yield c
    c.close()


@pytest.fixture(scope="module")
def sourced_conn(db, sample, tmp_path_factory):
    """The synced sample with the source repositories' facts (GraphQL stage)."""
    c = open_readonly(with_repositories(db, sample, tmp_path_factory.mktemp("sourced")))
    yield c
    c.close()


def rows_as_dicts(conn, name, **kw) -> tuple[list[dict], str | None]:
    columns, rows, note = run_report(conn, name, **kw)
    return [dict(zip(columns, r)) for r in rows], note


# --- the sample world ------------------------------------------------------------------

def test_report_list_matches_the_issue():
    assert list(REPORTS) == ["unsigned", "missing-source", "stale", "orphans", "platforms", "largest",
                             "moved", "public-from-private", "broken", "unattested", "summary", "webhook-coverage"]
    assert all(r.description and "\n" not in r.description for r in REPORTS.values())
    assert all(f"FROM {r.view}" in r.sql for r in REPORTS.values())  # each report reads its view


def test_unsigned(conn, sample):
    tagged = tagged_images(sample)
    expected = {k: tags for k, tags in tagged.items() if k not in sample.signed}
    rows, note = rows_as_dicts(conn, "unsigned")
    got = {(r["owner"], r["package"], r["digest"]): r for r in rows}
    assert set(got) == set(expected)
    assert {k: set(r["tags"].split(",")) for k, r in got.items()} == expected
    assert {k: r["tag_count"] for k, r in got.items()} == {k: len(t) for k, t in expected.items()}
    # Known answers: the signed index (webapp) and the signed image are the only signed ones,
    # and the sample's cosign signature tags and artifacts are not images.
    signed = sample.tags[("acme", "webapp", "latest")], sample.tags[("acme", "signed-app", "v1")]
    assert not set(signed) & {k[2] for k in got}
    assert len(got) == len(tagged) - 2
    assert sum(r["tag_count"] for r in rows) == sum(len(t) for t in expected.values())
    assert all(r["kind"] in IMAGE_KINDS for r in rows)
    assert note is None


def test_unsigned_flags_attestations_and_sboms(conn, sample):
    rows, _ = rows_as_dicts(conn, "unsigned")
    attested = {(r["owner"], r["package"]) for r in rows if r["attested"]}
    expected = set()
    for key in tagged_images(sample):
        if key in sample.signed:
            continue
        children = [(key[0], key[1], c.digest) for c in sample.images[key].children]
        if key in sample.attested or any(c in sample.attested for c in children):
            expected.add(key[:2])
    assert attested == expected == {("acme", "metrics-exporter")}  # buildx provenance, no signature


def test_missing_source(conn, sample):
    expected = {k: tags for k, tags in tagged_images(sample).items() if not sample.images[k].source}
    rows, note = rows_as_dicts(conn, "missing-source")
    got = {(r["owner"], r["package"], r["digest"]): set(r["tags"].split(",")) for r in rows}
    assert got == expected
    assert ("acme", "base-images/alpine") in {k[:2] for k in got}
    assert not {k[:2] for k in got} & {("acme", "webapp"), ("acme", "api")}  # indexes: label on children
    assert note is None


def test_stale_with_repository_facts(sourced_conn, sample):
    expected = {}
    for key, tags in tagged_images(sample).items():
        repo = sample.package(key[0], key[1]).repository
        revision = sample.images[key].revision
        facts = sample.repositories.get(repo)
        if revision and facts and revision != facts.head_oid:
            expected[key] = (tags, revision, facts.head_oid)
    rows, note = rows_as_dicts(sourced_conn, "stale")
    got = {(r["owner"], r["package"], r["digest"]): (set(r["tags"].split(",")), r["revision"], r["head_oid"])
           for r in rows}
    assert got == expected
    # Known answers: api gained a commit after its push; metrics-exporter carries a made-up revision.
    assert {k[:2] for k in got} == {("acme", "api"), ("acme", "metrics-exporter")}
    assert ("acme", "webapp") not in {k[:2] for k in got}  # built from the head
    assert note is None


def test_stale_degrades_clearly_without_the_graphql_stage(db, tmp_path):
    conn = open_readonly(without_repositories(db, tmp_path))
    try:
        for name in ("stale", "public-from-private"):
            columns, rows, note = run_report(conn, name)
            assert rows == [] and columns
            assert note and f"report {name}" in note and "GraphQL" in note and "v_sources" in note
    finally:
        conn.close()


def test_public_from_private(sourced_conn, sample):
    expected = {
        (p.owner, p.name): sample.repositories[p.repository].visibility
        for p in sample.packages.values()
        if p.visibility == "public" and p.repository in sample.repositories
        and sample.repositories[p.repository].visibility != "public"
    }
    rows, note = rows_as_dicts(sourced_conn, "public-from-private")
    assert {(r["owner"], r["package"]): r["repository_visibility"] for r in rows} == expected
    assert expected == {("acme", "secret-cli"): "private", ("acme", "scanner"): "internal"}
    assert note is None


def test_untagged_versions_are_classified(conn, sample):
    expected = untagged_reasons(sample)
    got = {(o, p, d): reason for o, p, d, reason in
           conn.execute("SELECT owner, package, digest, reason FROM v_untagged")}
    assert got == expected
    assert {k for k, reason in got.items() if reason == "orphan"} == set(sample.orphans)
    counts = defaultdict(int)
    for reason in got.values():
        counts[reason] += 1
    assert counts["referrer-of-tagged"] == 1  # the scan report artifact with a subject
    assert counts["child-of-tagged-index"] > 0


def test_orphans_with_reclaimable_bytes(conn, sample):
    per, total = reclaimable(sample)
    rows, note = rows_as_dicts(conn, "orphans")
    got = {(r["owner"], r["package"], r["digest"]): r["reclaimable_bytes"] for r in rows}
    assert got == per
    assert len(rows) == len(sample.orphans) == 2  # the moved tag's old image; nightly's only version
    assert [r["reclaimable_bytes"] for r in rows] == sorted(per.values(), reverse=True)
    assert note == f"2 orphans; deleting them all frees {total} bytes (layers shared between orphans counted once)"
    for r in rows:
        assert r["size"] == sample.images[(r["owner"], r["package"], r["digest"])].total_size \
            - sample.images[(r["owner"], r["package"], r["digest"])].size


def test_platforms(conn, sample):
    offered: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    tagged_count: dict[tuple[str, str], int] = defaultdict(int)
    for key in tagged_images(sample):
        image = sample.images[key]
        tagged_count[key[:2]] += 1
        platforms = ({c.platform_str for c in image.children if c.kind == "image"}
                     if image.kind == "index" else {image.platform_str})
        for platform in platforms:
            offered[key[:2]][platform] += 1
    view = {(o, p, pl): (n, t) for o, p, pl, n, t in
            conn.execute("SELECT owner, package, platform, images, tagged_images FROM v_platforms")}
    assert view == {(o, p, pl): (n, tagged_count[(o, p)])
                    for (o, p), pls in offered.items() for pl, n in pls.items()}
    rows, _ = rows_as_dicts(conn, "platforms")
    by_package = {(r["owner"], r["package"]): r for r in rows}
    assert by_package[("acme", "webapp")]["platforms"] == "linux/amd64, linux/arm/v7, linux/arm64/v8"
    assert by_package[("acme", "webapp")]["platform_count"] == 3
    assert by_package[("acme", "win-agent")]["platforms"] == "windows/amd64"
    assert by_package[("acme", "many-tags")]["tagged_images"] == 3
    assert ("acme", "bundle") not in by_package  # an artifact offers no platform


def test_platforms_marks_partial_coverage():
    inv = Inventory()
    a = inv.image("sha256:" + "a1" * 32, layers=[("sha256:" + "11" * 32, 10)], platform=("linux", "amd64"))
    b = inv.image("sha256:" + "b1" * 32, layers=[("sha256:" + "22" * 32, 10)], platform=("linux", "arm64"))
    c = inv.image("sha256:" + "c1" * 32, layers=[("sha256:" + "33" * 32, 10)], platform=("linux", "amd64"))
    idx = inv.index("sha256:" + "d1" * 32, [(a, "linux/amd64"), (b, "linux/arm64")])
    inv.hold("app", idx, a, b, c)
    inv.tag("app", "2.0", idx)
    inv.tag("app", "1.0", c)
    rows, _ = rows_as_dicts(inv.conn, "platforms")
    assert rows == [{"owner": "acme", "package": "app", "platform_count": 2,
                     "platforms": "linux/amd64, linux/arm64 (1/2)", "tagged_images": 2}]


def test_largest(conn, sample):
    expected = defaultdict(set)
    for (owner, package, _), image in sample.images.items():
        expected[(owner, package)] |= blobs_of(image)
    sizes = {k: sum(s for _, s in blobs) for k, blobs in expected.items()}
    rows, note = rows_as_dicts(conn, "largest")
    assert {(r["owner"], r["package"]): r["bytes"] for r in rows} == sizes
    assert [r["bytes"] for r in rows] == sorted(sizes.values(), reverse=True)
    assert rows[0]["package"] == "webapp"
    win = sample.tagged("acme", "win-agent", "ltsc2022")
    foreign = sum(layer.size for layer in win.layers if layer.foreign)
    assert foreign and next(r for r in rows if r["package"] == "win-agent")["bytes"] == win.total_size - win.size - foreign
    assert len(rows) <= LARGEST_LIMIT and note is None


def test_largest_counts_shared_layers_once_and_stops_at_the_limit():
    inv = Inventory()
    shared = ("sha256:" + "55" * 32, 1000)
    a = inv.image("sha256:" + "a2" * 32, layers=[shared, ("sha256:" + "66" * 32, 10)])
    b = inv.image("sha256:" + "b2" * 32, layers=[shared, ("sha256:" + "77" * 32, 20)])
    inv.hold("big", a, b)
    inv.tag("big", "1", a)
    inv.tag("big", "2", b)
    for n in range(LARGEST_LIMIT + 2):
        d = inv.image(f"sha256:{n:064x}", layers=[(f"sha256:{n + 1000:064x}", n + 1)])
        inv.hold(f"small-{n}", d)
    rows, note = rows_as_dicts(inv.conn, "largest")
    assert rows[0] == {"owner": "acme", "package": "big", "bytes": 1000 + 10 + 20 + 2 * Inventory.CONFIG_SIZE,
                       "blobs": 5, "versions": 2, "tags": 2}
    assert len(rows) == LARGEST_LIMIT
    assert note and f"of {LARGEST_LIMIT + 3} packages" in note and "v_package_sizes" in note


def test_summary(conn, sample):
    tagged = tagged_images(sample)
    signed = sum(1 for k in tagged if k in sample.signed)
    attested = sum(1 for k in tagged if k in sample.attested
                   or any((k[0], k[1], c.digest) in sample.attested for c in sample.images[k].children))
    sboms = sum(1 for k in tagged if k in sample.sboms)
    _, total = reclaimable(sample)
    columns, rows, note = run_report(conn, "summary")
    assert columns == ["metric", "value"]
    got = dict(rows)
    assert {k: got[k] for k in ("owners", "packages", "tags", "images", "tagged_images", "signed_images",
                                "signed_pct", "attested_images", "sbom_images", "orphans",
                                "reclaimable_bytes", "last_sync_status")} == {
        "owners": len(sample.owners), "packages": len(sample.packages), "tags": len(sample.tags),
        "images": len(sample.images), "tagged_images": len(tagged), "signed_images": signed,
        "signed_pct": round(100 * signed / len(tagged), 1), "attested_images": attested,
        "sbom_images": sboms, "orphans": len(sample.orphans), "reclaimable_bytes": total,
        "last_sync_status": "ok"}
    assert (signed, attested, sboms) == (2, 3, 1)
    assert got["last_sync_finished"] and got["last_sync_finished"] >= got["last_sync_started"]
    assert len(rows) <= 20 and note is None  # one screen


# --- moved: two real syncs around a tag move -------------------------------------------

def test_moved_between_two_real_syncs(world, fresh_owner, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    config = tmp_path / "config.toml"
    config.write_text(world.config_toml(tmp_path / "inventory.db", [(fresh_owner, "org")],
                                        token_env="GHCR_SANDBOX_TOKEN"))
    first = world.builder.push_image(fresh_owner, "app", tags=["latest", "stable"])
    sync = ["--config", str(config), "--log-format", "json", "--log-level", "error", "sync"]
    assert cli.main(sync) == 0
    capsys.readouterr()
    assert cli.main(["--config", str(config), "report", "moved"]) == 0
    assert "1 successful sync" in capsys.readouterr().err  # a move needs two syncs to be seen

    second = world.builder.push_image(fresh_owner, "app", tags=["latest"])
    assert cli.main(sync) == 0
    capsys.readouterr()
    assert cli.main(["--config", str(config), "report", "moved", "--days", "1", "--format", "json"]) == 0
    out = capsys.readouterr()
    moves = json.loads(out.out)
    assert [(m["package"], m["tag"], m["from_digest"], m["to_digest"]) for m in moves] == [
        ("app", "latest", first.digest, second.digest)]
    assert out.err == ""
    conn = open_readonly(tmp_path / "inventory.db")
    try:
        orphans, _ = rows_as_dicts(conn, "orphans")
        assert orphans == []  # `stable` still holds the first image
    finally:
        conn.close()


def test_moved_window_follows_days():
    inv = Inventory()
    now = datetime.now(timezone.utc)
    stamp = lambda days: (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    d = [inv.image(f"sha256:{n:064x}", layers=[]) for n in range(4)]
    inv.hold("app", *d)
    inv.tag("app", "recent", d[0], first_seen=stamp(40), last_seen=stamp(2))
    inv.tag("app", "recent", d[1], first_seen=stamp(2))
    inv.tag("app", "old", d[2], first_seen=stamp(60), last_seen=stamp(30))
    inv.tag("app", "old", d[3], first_seen=stamp(30))
    inv.tag("app", "same", d[0], first_seen=stamp(50), last_seen=stamp(3))  # deleted and re-created
    inv.tag("app", "same", d[0], first_seen=stamp(1))                          # on the same digest
    for days, tags in ((7, ["recent"]), (45, ["recent", "old"]), (1, [])):
        rows, _ = rows_as_dicts(inv.conn, "moved", days=days)
        assert [r["tag"] for r in rows] == tags, days
    assert rows_as_dicts(inv.conn, "moved", days=7)[0][0]["from_digest"] == d[0]
    with pytest.raises(UsageError):
        run_report(inv.conn, "moved", days=-1)


# --- semantics on hand-made inventories ----------------------------------------------

def test_signed_index_counts_and_signed_children_alone_do_not():
    inv = Inventory()
    a, b = (inv.image(f"sha256:{n:064x}", layers=[]) for n in (1, 2))
    signed_index = inv.index("sha256:" + "e1" * 32, [(a, "linux/amd64")])
    index_with_signed_child = inv.index("sha256:" + "e2" * 32, [(b, "linux/amd64")])
    sig1, sig2 = (inv.image(f"sha256:{n:064x}", layers=[], kind="signature") for n in (3, 4))
    inv.hold("app", signed_index, index_with_signed_child, a, b, sig1, sig2)
    inv.tag("app", "one", signed_index)
    inv.tag("app", "two", index_with_signed_child)
    inv.refer(signed_index, sig1, "signature")
    inv.refer(b, sig2, "signature")
    rows, _ = rows_as_dicts(inv.conn, "unsigned")
    assert [r["tags"] for r in rows] == ["two"]
    reasons = dict(inv.conn.execute("SELECT digest, reason FROM v_untagged"))
    assert reasons == {a: "child-of-tagged-index", b: "child-of-tagged-index",
                       sig1: "referrer-of-tagged", sig2: "referrer-of-tagged"}


def test_reclaimable_bytes_count_shared_layers_once():
    inv = Inventory()
    shared_with_kept = ("sha256:" + "0a" * 32, 500)
    shared_by_orphans = ("sha256:" + "0b" * 32, 300)
    kept = inv.image("sha256:" + "f1" * 32, layers=[shared_with_kept, ("sha256:" + "0c" * 32, 7)])
    o1 = inv.image("sha256:" + "f2" * 32, layers=[shared_with_kept, shared_by_orphans, ("sha256:" + "0d" * 32, 11)])
    o2 = inv.image("sha256:" + "f3" * 32, layers=[shared_by_orphans, ("sha256:" + "0e" * 32, 13)])
    foreign = inv.image("sha256:" + "f4" * 32, layers=[("sha256:" + "0f" * 32, 900)], foreign=True)
    orphan_child = inv.image("sha256:" + "f5" * 32, layers=[("sha256:" + "1a" * 32, 17)])
    orphan_index = inv.index("sha256:" + "f6" * 32, [(orphan_child, "linux/amd64")])
    inv.hold("app", kept, o1, o2, foreign, orphan_child, orphan_index)
    inv.tag("app", "latest", kept)
    rows, note = rows_as_dicts(inv.conn, "orphans")
    cfg = Inventory.CONFIG_SIZE
    got = {r["digest"]: r["reclaimable_bytes"] for r in rows}
    assert got == {o1: 300 + 11 + cfg, o2: 300 + 13 + cfg, foreign: cfg, orphan_child: 17 + cfg, orphan_index: 0}
    total = 300 + 11 + 13 + 17 + 4 * cfg  # 300 once; the foreign layer is not the registry's
    assert note == f"5 orphans; deleting them all frees {total} bytes (layers shared between orphans counted once)"
    assert dict(run_report(inv.conn, "summary")[1])["reclaimable_bytes"] == total
    reasons = dict(inv.conn.execute("SELECT digest, reason FROM v_untagged"))
    assert reasons[orphan_child] == "orphan"  # a child of an orphaned index is an orphan too


def test_unknown_report_and_old_database_are_clear_errors():
    inv = Inventory()
    with pytest.raises(UsageError, match="unknown report 'nope'; reports: unsigned"):
        run_report(inv.conn, "nope")
    inv.conn.execute("DROP VIEW v_summary")
    with pytest.raises(QueryError, match="lacks its view.*sync with this version"):
        run_report(inv.conn, "summary")


# --- the CLI --------------------------------------------------------------------------

def test_cli_report_list_and_formats(db, sample, capsys):
    assert cli.main(["report", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(REPORTS)
    assert all(REPORTS[line.split()[0]].description in line for line in listed)

    assert cli.main(["report", "unsigned", "--db", str(db), "--format", "json"]) == 0
    unsigned = json.loads(capsys.readouterr().out)
    expected = {k for k in tagged_images(sample) if k not in sample.signed}
    assert {(r["owner"], r["package"], r["digest"]) for r in unsigned} == expected

    assert cli.main(["report", "summary", "--db", str(db), "--format", "csv"]) == 0
    csv_out = capsys.readouterr().out.splitlines()
    assert csv_out[0] == "metric,value" and f"packages,{len(sample.packages)}" in csv_out

    assert cli.main(["report", "orphans", "--db", str(db), "--format", "markdown"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("| owner | package | digest |") and out.out.count("\n") == 2 + len(sample.orphans)
    assert "2 orphans; deleting them all frees" in out.err

    assert cli.main(["report", "nope", "--db", str(db)]) == 2
    assert "unknown report 'nope'" in capsys.readouterr().err


def test_cli_report_stale_says_why_it_is_empty(db, tmp_path, capsys):
    bare = without_repositories(db, tmp_path)
    assert cli.main(["report", "stale", "--db", str(bare)]) == 0
    out = capsys.readouterr()
    assert "(0 rows)" in out.out
    assert "no source-repository facts yet" in out.err


# --- a tiny hand-made inventory --------------------------------------------------------

class Inventory:
    """An in-memory inventory written row by row (owner `acme`)."""

    CONFIG_SIZE = 100

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        apply_schema(self.conn)
        self.conn.execute("INSERT INTO owners (id, registry, name, kind, discovery, first_seen) "
                          "VALUES (1, 'ghcr.io', 'acme', 'org', 'rest', '2026-01-01T00:00:00Z')")
        self.packages: dict[str, int] = {}

    def image(self, digest: str, *, layers, platform=("linux", "amd64"), kind: str = "image",
              foreign: bool = False) -> str:
        config = "sha256:c" + digest[8:][:63]
        self.conn.execute(
            "INSERT INTO manifests (digest, media_type, kind, size, content_size, config_digest, config_size, "
            "layer_count, os, architecture, fetched_at) VALUES (?, 'application/vnd.oci.image.manifest.v1+json', ?, "
            "500, ?, ?, ?, ?, ?, ?, '2026-01-01T00:00:00Z')",
            (digest, kind, self.CONFIG_SIZE + sum(s for _, s in layers), config, self.CONFIG_SIZE, len(layers),
             *platform))
        for pos, (layer, size) in enumerate(layers):
            self.conn.execute("INSERT INTO layers VALUES (?, ?, ?, 'application/vnd.oci.image.layer.v1.tar+gzip', ?, ?)",
                              (digest, pos, layer, size, '["https://example.invalid/l"]' if foreign else None))
        return digest

    def index(self, digest: str, children) -> str:
        self.conn.execute(
            "INSERT INTO manifests (digest, media_type, kind, size, fetched_at) "
            "VALUES (?, 'application/vnd.oci.image.index.v1+json', 'index', 300, '2026-01-01T00:00:00Z')", (digest,))
        for pos, (child, platform) in enumerate(children):
            os_, arch = platform.split("/")[:2]
            self.conn.execute(
                "INSERT INTO manifest_children (parent_digest, position, child_digest, media_type, size, platform, "
                "os, architecture) VALUES (?, ?, ?, 'application/vnd.oci.image.manifest.v1+json', 500, ?, ?, ?)",
                (digest, pos, child, platform, os_, arch))
        return digest

    def package(self, name: str) -> int:
        if name not in self.packages:
            cur = self.conn.execute("INSERT INTO packages (owner_id, name, visibility, first_seen) "
                                    "VALUES (1, ?, 'public', '2026-01-01T00:00:00Z')", (name,))
            self.packages[name] = cur.lastrowid
        return self.packages[name]

    def hold(self, package: str, *digests: str) -> None:
        pid = self.package(package)
        self.conn.executemany("INSERT INTO package_digests (package_id, digest, first_seen) "
                              "VALUES (?, ?, '2026-01-01T00:00:00Z')", [(pid, d) for d in digests])

    def tag(self, package: str, tag: str, digest: str, *, first_seen: str = "2026-01-01T00:00:00Z",
            last_seen: str | None = None) -> None:
        self.conn.execute("INSERT INTO tags (package_id, tag, digest, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)",
                          (self.package(package), tag, digest, first_seen, last_seen))

    def refer(self, subject: str, referrer: str, kind: str) -> None:
        self.conn.execute("INSERT INTO referrers VALUES (?, ?, ?, NULL, 'cosign-tag')", (subject, referrer, kind))
