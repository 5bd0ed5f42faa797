"""The store's supply-chain methods against real SQLite (what a second store
must do alike): which digests are due for GitHub's attestations API, that
`unknown` never overwrites a known answer, that an answer replaces the
bundles stored, and the incomplete-listing marks the planner relies on;
and, on both stores, that what is due is read in pages that add up to the
whole (keyset: past a key, at most a limit)."""

from __future__ import annotations

import dataclasses
import functools
import sqlite3

import pytest

from crawler.store import AttestationRow, SQLiteStore
from tests.test_store import image, result


@pytest.fixture
async def lite(tmp_path):
    s = await SQLiteStore.open(tmp_path / "inv.db")
    yield s
    await s.close()


def q(lite, sql, params=()):
    conn = sqlite3.connect(lite.path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def row(digest: str, n: int = 1) -> AttestationRow:
    return AttestationRow(digest, f"sha256:{n:064x}", "application/vnd.dev.sigstore.bundle.v0.3+json",
                          "https://slsa.dev/provenance/v1", 7, None, "wf", "repo", "ref", "commit", "issuer",
                          None, False, None, b"{}")


async def _package(lite, owner_id: int):
    imgs = [image(1), image(2)]
    await lite.writer.apply_package(owner_id, result("app", imgs, {"v1": imgs[0][0].digest}))
    return [m.digest for m, _ in imgs]


async def test_digests_are_due_once_then_only_when_unknown_or_young(lite):
    owner = await lite.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    a, b = await _package(lite, owner)
    due = await lite.reader.attestations_due("ghcr.io", ["acme"], young_s=3600, interval_s=3600)
    assert [(d.owner, d.kind, d.digests) for d in due] == [("acme", "org", tuple(sorted([a, b])))]
    await lite.writer.save_attestations(owner, [a], [row(a)])
    await lite.writer.mark_attestations_unknown(owner, [b], "HTTP 403")
    # a: answered now, b: unknown -> only b is due (young, but asked within the interval)
    due = await lite.reader.attestations_due("ghcr.io", ["acme"], young_s=3600, interval_s=3600)
    assert [d.digests for d in due] == [(b,)]
    # with no interval, young digests are due again; with young_s None (--full), all are
    due = await lite.reader.attestations_due("ghcr.io", ["acme"], young_s=10 ** 9, interval_s=0)
    assert due[0].digests == tuple(sorted([a, b]))
    assert (await lite.reader.attestations_due("ghcr.io", ["acme"], young_s=None, interval_s=3600))[0].digests \
        == tuple(sorted([a, b]))
    # not a GitHub owner: never asked
    other = await lite.writer.ensure_owner("ghcr.io", "lib", "org", "catalog")
    await _package(lite, other)
    assert [d.owner for d in await lite.reader.attestations_due("ghcr.io", ["acme", "lib"], young_s=None,
                                                                 interval_s=0)] == ["acme"]


async def test_unknown_never_overwrites_an_answer_and_answers_replace_bundles(lite):
    owner = await lite.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    a, b = await _package(lite, owner)
    await lite.writer.save_attestations(owner, [a, b], [row(a, 1), row(a, 2)])
    assert dict(q(lite, "SELECT digest, coverage FROM attestation_checks")) == {a: "listed", b: "none"}
    await lite.writer.mark_attestations_unknown(owner, [a, b], "HTTP 403")
    assert dict(q(lite, "SELECT digest, coverage FROM attestation_checks")) == {a: "listed", b: "none"}
    assert q(lite, "SELECT COUNT(*) FROM attestations") == [(2,)]
    await lite.writer.save_attestations(owner, [a], [row(a, 3)])
    assert q(lite, "SELECT bundle_digest FROM attestations") == [(f"sha256:{3:064x}",)]
    await lite.writer.save_attestations(owner, [a], [])
    assert dict(q(lite, "SELECT digest, coverage FROM attestation_checks"))[a] == "none"


async def test_incomplete_marks_are_cleared_by_a_commit_and_a_complete_listing(lite):
    owner = await lite.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    run = await lite.writer.begin_run("incremental", ["acme"], 1, "h")
    await lite.writer.mark_incomplete(owner, "app", run, "UnreachableError", "HTTP 500")
    await lite.writer.mark_incomplete(owner, "", run, "IncompleteListingError", "loop")
    assert sorted(q(lite, "SELECT package, kind FROM v_incomplete_listings")) == [
        ("", "IncompleteListingError"), ("app", "UnreachableError")]
    await _package(lite, owner)
    assert q(lite, "SELECT package FROM v_incomplete_listings") == [("",)]
    await lite.writer.mark_listed(owner, {"app"}, lambda name: True)
    assert q(lite, "SELECT COUNT(*) FROM incomplete_listings") == [(0,)]


async def test_what_is_due_comes_in_pages_that_add_up_to_the_whole(opened):
    owners = [await opened.writer.ensure_owner("ghcr.io", name, "org", "rest") for name in ("acme", "lib")]
    repos = {}
    for n, owner in enumerate(owners):
        for p in range(3):
            imgs = [image(100 * n + 10 * p + i) for i in range(3)]
            r = result(f"app{p}", imgs, {"v1": imgs[0][0].digest})
            r.ref = dataclasses.replace(r.ref, owner=("acme", "lib")[n], repository=f"src/repo-{n}-{p}")
            await opened.writer.apply_package(owner, r)
            repos.setdefault(n, set()).update(m.digest for m, _ in imgs)
    # a digest two packages share is due once
    shared = image(0)
    await opened.writer.apply_package(owners[0], result("twin", [shared], {"v1": shared[0].digest}))
    due = functools.partial(opened.reader.attestations_due, "ghcr.io", ["acme", "lib"], young_s=None, interval_s=0)
    whole = await due()
    assert [d.owner for d in whole] == ["acme", "lib"]
    assert [len(d.digests) for d in whole] == [9, 9] and list(whole[0].digests) == sorted(repos[0])
    pages, after = [], None
    while page := await due(after=after, limit=4):
        assert sum(len(d.digests) for d in page) <= 4
        pages.append(page)
        after = (page[-1].owner_id, page[-1].digests[-1])
    assert len(pages) == 5          # 18 digests, 4 a page
    assert [(d.owner, x) for page in pages for d in page for x in d.digests] \
        == [(d.owner, x) for d in whole for x in d.digests]
    names = await opened.reader.repositories_due("ghcr.io", ["acme", "lib"], None)
    assert names == sorted(f"src/repo-{n}-{p}" for n in range(2) for p in range(3))
    assert await opened.reader.repositories_due("ghcr.io", ["acme", "lib"], None, limit=2) == names[:2]
    assert await opened.reader.repositories_due("ghcr.io", ["acme", "lib"], None, after=names[1], limit=3) \
        == names[2:5]
    assert await opened.reader.repositories_due("ghcr.io", ["acme", "lib"], None, after=names[-1]) == []
