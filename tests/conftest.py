"""Shared fixtures: one sandbox world per session, with the sample org pushed once.

- ``world``   — a started ``crawler.sandbox.World`` (emulator validating every REST
  body, real registry, fault proxies, CDN) holding the sample; session-scoped.
- ``sample``  — its ``SampleOrg`` expectations.
- ``fresh_owner`` — a new empty org for tests that mutate (keeps the sample intact).
- ``http``    — an aiohttp session for raw requests.
- ``world_config`` — a ghcr-inventory config file for the sample owners at the
  world's fronts; the token is in ``$GHCR_SANDBOX_TOKEN``.
- ``pg_server`` — one real PostgreSQL server for the session (``initdb`` +
  ``pg_ctl``, as the ``postgres`` user when run as root), its password in
  ``$GHCR_PG_PASSWORD``; ``pg_db`` — a fresh database on it per test (a copy
  of a template that already holds the schema).
- ``store`` — parametrised over ``sqlite`` and ``postgres``; ``db`` — the
  test's inventory in that store (a ``Path`` or a ``tests.support.PgDb``),
  to pass to ``write_config(..., db=db)`` and the reading helpers.

After every test that used the world: its faults are cleared and the emulator's
OpenAPI violations must be empty (the check fails the test that caused them).
"""

from __future__ import annotations

import aiohttp
import pytest
import pytest_asyncio

from crawler.sandbox import World, build_sample_org
from tests.support import PG_PASSWORD_ENV, inventory_in, new_pg_db, open_inventory, pg_template


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("world"), validate=True)
    w.start()
    try:
        build_sample_org(w)
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="session")
def pg_server():
    import os

    from crawler.sandbox.pgserver import PostgresServer
    server = PostgresServer().start()
    os.environ[PG_PASSWORD_ENV] = server.password
    try:
        pg_template(server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_db(pg_server):
    return new_pg_db(pg_server)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request):
    if request.param == "postgres":
        request.getfixturevalue("pg_server")   # up (and its password exported) before the test starts
    return request.param


@pytest.fixture
def db(store, tmp_path, request):
    return inventory_in(store, tmp_path, request)


@pytest.fixture
async def opened(db):
    """The store of `db` (SQLite or PostgreSQL), opened for one test."""
    s = await open_inventory(db)
    yield s
    await s.close()


@pytest.fixture(scope="session")
def sample(world):
    return world.sample


@pytest.fixture
def fresh_owner(world):
    """A new org nobody else uses: push into it freely."""
    return world.new_owner("t")


@pytest.fixture
def world_config(world, tmp_path, monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    path = tmp_path / "config.toml"
    owners = list(world.sample.owners)
    path.write_text(world.config_toml(tmp_path / "inventory.db", owners, token_env="GHCR_SANDBOX_TOKEN"))
    return path


@pytest_asyncio.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(autouse=True)
def _world_hygiene(request):
    yield
    if "world" not in request.fixturenames:
        return
    w = request.getfixturevalue("world")
    w.clear_faults()
    w.emulator.tamper = None
    violations = list(w.emulator.violations)
    w.emulator.violations.clear()
    assert not violations, f"emulator served bodies that break GitHub's OpenAPI: {violations[:5]}"
