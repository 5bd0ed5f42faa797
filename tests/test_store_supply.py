"""The store's supply-chain methods against real SQLite (what a second store
must do alike): which digests are due for GitHub's attestations API, that
`unknown` never overwrites a known answer, that an answer replaces the
bundles stored, and the incomplete-listing marks the planner relies on."""

from __future__ import annotations

import sqlite3

import pytest

from crawler.store import AttestationRow, SQLiteStore
from tests.test_store import image, result


@pytest.fixture
async def store(tmp_path):
    s = await SQLiteStore.open(tmp_path / "inv.db")
    yield s
    await s.close()


def q(store, sql, params=()):
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def row(digest: str, n: int = 1) -> AttestationRow:
    return AttestationRow(digest, f"sha256:{n:064x}", "application/vnd.dev.sigstore.bundle.v0.3+json",
                          "https://slsa.dev/provenance/v1", 7, None, "wf", "repo", "ref", "commit", "issuer",
                          None, False, None, b"{}")


async def _package(store, owner_id: int):
    imgs = [image(1), image(2)]
    await store.writer.apply_package(owner_id, result("app", imgs, {"v1": imgs[0][0].digest}))
    return [m.digest for m, _ in imgs]


async def test_digests_are_due_once_then_only_when_unknown_or_young(store):
    owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    a, b = await _package(store, owner)
    due = await store.reader.attestations_due("ghcr.io", ["acme"], young_s=3600, interval_s=3600)
    assert [(d.owner, d.kind, d.digests) for d in due] == [("acme", "org", tuple(sorted([a, b])))]
    await store.writer.save_attestations(owner, [a], [row(a)])
    await store.writer.mark_attestations_unknown(owner, [b], "HTTP 403")
    # a: answered now, b: unknown -> only b is due (young, but asked within the interval)
    due = await store.reader.attestations_due("ghcr.io", ["acme"], young_s=3600, interval_s=3600)
    assert [d.digests for d in due] == [(b,)]
    # with no interval, young digests are due again; with young_s None (--full), all are
    due = await store.reader.attestations_due("ghcr.io", ["acme"], young_s=10 ** 9, interval_s=0)
    assert due[0].digests == tuple(sorted([a, b]))
    assert (await store.reader.attestations_due("ghcr.io", ["acme"], young_s=None, interval_s=3600))[0].digests \
        == tuple(sorted([a, b]))
    # not a GitHub owner: never asked
    other = await store.writer.ensure_owner("ghcr.io", "lib", "org", "catalog")
    await _package(store, other)
    assert [d.owner for d in await store.reader.attestations_due("ghcr.io", ["acme", "lib"], young_s=None,
                                                                 interval_s=0)] == ["acme"]


async def test_unknown_never_overwrites_an_answer_and_answers_replace_bundles(store):
    owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    a, b = await _package(store, owner)
    await store.writer.save_attestations(owner, [a, b], [row(a, 1), row(a, 2)])
    assert dict(q(store, "SELECT digest, coverage FROM attestation_checks")) == {a: "listed", b: "none"}
    await store.writer.mark_attestations_unknown(owner, [a, b], "HTTP 403")
    assert dict(q(store, "SELECT digest, coverage FROM attestation_checks")) == {a: "listed", b: "none"}
    assert q(store, "SELECT COUNT(*) FROM attestations") == [(2,)]
    await store.writer.save_attestations(owner, [a], [row(a, 3)])
    assert q(store, "SELECT bundle_digest FROM attestations") == [(f"sha256:{3:064x}",)]
    await store.writer.save_attestations(owner, [a], [])
    assert dict(q(store, "SELECT digest, coverage FROM attestation_checks"))[a] == "none"


async def test_incomplete_marks_are_cleared_by_a_commit_and_a_complete_listing(store):
    owner = await store.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    run = await store.writer.begin_run("incremental", ["acme"], 1, "h")
    await store.writer.mark_incomplete(owner, "app", run, "UnreachableError", "HTTP 500")
    await store.writer.mark_incomplete(owner, "", run, "IncompleteListingError", "loop")
    assert sorted(q(store, "SELECT package, kind FROM v_incomplete_listings")) == [
        ("", "IncompleteListingError"), ("app", "UnreachableError")]
    await _package(store, owner)
    assert q(store, "SELECT package FROM v_incomplete_listings") == [("",)]
    await store.writer.mark_listed(owner, {"app"}, lambda name: True)
    assert q(store, "SELECT COUNT(*) FROM incomplete_listings") == [(0,)]
