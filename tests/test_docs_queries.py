"""docs/queries.md: every example query runs against a synced sample world
(read-only, as `ghcr-inventory query` runs it) and answers with rows, unless
it says it may not; so none of them rots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crawler.readonly import open_readonly, run_query
from tests.sampledb import synced_sample, with_repositories

DOC = Path(__file__).resolve().parent.parent / "docs" / "queries.md"
MAY_BE_EMPTY = "-- may return no rows"
BLOCK = re.compile(r"^```sql\n(.*?)^```$", re.S | re.M)


def examples() -> list[tuple[str, str]]:
    """(question, sql) for every ```sql block; the question is the line above it."""
    text = DOC.read_text()
    out = []
    for match in BLOCK.finditer(text):
        before = [line for line in text[:match.start()].splitlines() if line.strip()]
        out.append((before[-1].strip(), match.group(1).strip()))
    return out


def test_the_doc_has_fifteen_or_more_questions_each_with_its_query():
    found = examples()
    assert len(found) >= 15
    for question, sql in found:
        assert question.endswith("?") and not question.startswith(("#", "`")), question
        assert re.search(r"\bv_\w+", sql), f"{question}: use the documented views"
    assert len({q for q, _ in found}) == len(found), "two examples ask the same question"


@pytest.fixture(scope="module")
def conn(world, sample, tmp_path_factory):
    db = with_repositories(synced_sample(world, tmp_path_factory), sample, tmp_path_factory.mktemp("docs"))
    c = open_readonly(db)
    yield c
    c.close()


@pytest.mark.parametrize("question,sql", examples(), ids=[q for q, _ in examples()])
def test_example_query_runs_on_the_sample(conn, question, sql):
    columns, rows = run_query(conn, sql)
    assert columns
    if MAY_BE_EMPTY not in sql:
        assert rows, f"{question!r} answered nothing on the sample world"
