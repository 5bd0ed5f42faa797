"""crawler/enrich.py as a unit, against a real SQLite store: only due
repositories are asked, in batches of MAX_BATCH, facts land in
`repositories`, unresolved names are settled, and a failure ends only its
batch (or, for a rejected token, the stage)."""

from __future__ import annotations

import sqlite3

import pytest

from crawler.enrich import enrich_sources
from crawler.errors import AuthError, GraphQLQueryError
from crawler.graphql import MAX_BATCH, GraphQLIssue, RepositoryBatch, SourceRepository
from crawler.model import PackageRef, PackageResult
from crawler.store import SQLiteStore


class FakeGraphQL:
    where = "POST https://api.example.test/graphql"

    def __init__(self, fail: dict[int, Exception] | None = None):
        self.asked: list[list[str]] = []
        self.fail = fail or {}

    async def repositories(self, names):
        self.asked.append(list(names))
        if len(self.asked) - 1 in self.fail:
            raise self.fail[len(self.asked) - 1]
        found = {n: SourceRepository(n, "R_1", n.endswith("-old"), "public", None, "main", "a" * 40)
                 for n in names if not n.endswith("ghost")}
        missing = {n: GraphQLIssue("Could not resolve", "NOT_FOUND") for n in names if n.endswith("ghost")}
        return RepositoryBatch(found, missing)


@pytest.fixture
async def store(tmp_path):
    s = await SQLiteStore.open(tmp_path / "inv.db")
    owner = await s.writer.ensure_owner("ghcr.io", "acme", "org", "rest")
    for i in range(MAX_BATCH + 20):
        repo = f"acme/src{i}" + ("-old" if i == 0 else "ghost" if i == 1 else "")
        ref = PackageRef(owner="acme", name=f"p{i}", repository_path=f"acme/p{i}", discovery="rest",
                         repository=repo)
        await s.writer.apply_package(owner, PackageResult(ref=ref, versions=[], tags={}))
    yield s
    await s.close()


async def test_asks_due_repositories_in_batches_and_stores_the_facts(store):
    client, counted = FakeGraphQL(), []
    report = await enrich_sources(client, store.reader, store.writer, registry="ghcr.io", owners=["acme"],
                                  max_age_s=3600, count_request=lambda: counted.append(1))
    assert [len(b) for b in client.asked] == [MAX_BATCH, 20] and len(counted) == 2
    assert (report.due, report.requests, report.stored, report.missing) == (MAX_BATCH + 20, 2, MAX_BATCH + 19,
                                                                           ["acme/src1ghost"])
    assert [type(p) for p in report.problems] == [GraphQLQueryError]
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT archived, head_oid FROM repositories WHERE name_with_owner = 'acme/src0-old'"
                      ).fetchone() == (1, "a" * 40)
    # Asked now, so nothing is due within the interval: a second pass asks nothing.
    again = FakeGraphQL()
    await enrich_sources(again, store.reader, store.writer, registry="ghcr.io", owners=["acme"], max_age_s=3600)
    assert again.asked == []


async def test_a_bad_batch_loses_only_itself_and_a_rejected_token_ends_the_stage(store):
    client = FakeGraphQL(fail={0: GraphQLQueryError("no data")})
    report = await enrich_sources(client, store.reader, store.writer, registry="ghcr.io", owners=["acme"],
                                  max_age_s=None)
    assert len(client.asked) == 2 and report.stored == 20
    client = FakeGraphQL(fail={0: AuthError("token rejected")})
    report = await enrich_sources(client, store.reader, store.writer, registry="ghcr.io", owners=["acme"],
                                  max_age_s=None)
    assert len(client.asked) == 1 and isinstance(report.problems[0], AuthError)
