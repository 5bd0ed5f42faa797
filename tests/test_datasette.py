"""scripts/datasette-metadata.yaml: current with crawler/reports.py, and served
by a real Datasette over a synced sample database, every canned report and
every documented view answering what `ghcr-inventory report` answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from datasette.app import Datasette

from crawler.reports import DATABASE, REPORTS, VIEWS, datasette_metadata, datasette_yaml, run_report
from crawler.readonly import open_readonly
from tests.sampledb import synced_sample, with_repositories

METADATA = Path(__file__).resolve().parent.parent / "scripts" / "datasette-metadata.yaml"


def test_metadata_file_is_current():
    assert METADATA.read_text() == datasette_yaml(), (
        "scripts/datasette-metadata.yaml is out of date: "
        ".venv/bin/python -m crawler.reports > scripts/datasette-metadata.yaml")
    assert yaml.safe_load(METADATA.read_text()) == datasette_metadata()


@pytest.fixture(scope="module")
def db(world, sample, tmp_path_factory) -> Path:
    # A copy named inventory.db (Datasette names the database after the file),
    # with the source repositories' facts so every report has rows to show.
    path = with_repositories(synced_sample(world, tmp_path_factory), sample, tmp_path_factory.mktemp("ds"))
    assert path.stem == DATABASE
    return path


@pytest.fixture
async def datasette(db):
    ds = Datasette([str(db)], metadata=yaml.safe_load(METADATA.read_text()))
    await ds.invoke_startup()
    return ds


async def test_every_canned_report_runs_in_datasette(datasette, db):
    conn = open_readonly(db)
    try:
        for name, report in REPORTS.items():
            response = await datasette.client.get(f"/{DATABASE}/{name}.json?_shape=array&days=30")
            assert response.status_code == 200, (name, response.text[:500])
            got = response.json()
            columns, rows, _ = run_report(conn, name, days=30)
            if report.transpose:  # the summary: Datasette shows the view's one row as it is
                assert len(got) == 1 and list(got[0].items()) == rows, name
            else:
                assert [list(r.values()) for r in got] == [list(r) for r in rows], name
                assert all(list(r) == columns for r in got), name
            # One sync of a healthy sample: nothing has moved, nothing is broken
            # (tests/test_reliability_listings.py breaks an index and reads `broken`),
            # no webhook was ever received (tests/test_serve.py reads webhook-coverage).
            if name not in ("moved", "broken", "webhook-coverage"):
                assert got, f"canned query {name} returned no rows on the sample"
    finally:
        conn.close()


async def test_canned_reports_are_listed_with_their_descriptions(datasette):
    response = await datasette.client.get(f"/{DATABASE}.json")
    assert response.status_code == 200
    queries = {q["name"]: q for q in response.json()["queries"]}
    assert set(queries) == set(REPORTS)
    assert all(queries[n]["description"] == r.description for n, r in REPORTS.items())
    hidden = {t["name"] for t in response.json()["tables"] if t["hidden"]}
    assert "http_cache" in hidden


async def test_every_view_is_documented_and_browsable(datasette, db):
    conn = open_readonly(db)
    try:
        views = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    finally:
        conn.close()
    assert views - set(VIEWS) == set(), "views without a description in crawler.reports.VIEWS"
    assert set(VIEWS) - views == set(), "VIEWS describes a view schema.sql does not create"
    for view in sorted(views):
        response = await datasette.client.get(f"/{DATABASE}/{view}.json?_shape=array&_size=5")
        assert response.status_code == 200, (view, response.text[:300])
        page = await datasette.client.get(f"/{DATABASE}/{view}")
        assert page.status_code == 200 and VIEWS[view].split(":")[0].replace("'", "&#39;") in page.text, view
