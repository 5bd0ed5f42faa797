"""The sample world synced once into a database, shared by the report,
Datasette and docs tests (they only read it; a test that changes a database
works on a copy).

``synced_sample`` runs a real `ghcr-inventory sync` of the sample owners
through the CLI, once per session. ``with_repositories`` copies it and fills
the `repositories` table from the sample's repository facts where the sync
left them out, standing in for the GraphQL enrichment stage, so the reports
that need those facts can be checked against known answers either way.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crawler import cli

_cache: dict[int, Path] = {}
TOKEN_ENV = "GHCR_SANDBOX_TOKEN"


def synced_sample(world, tmp_path_factory) -> Path:
    """Path of a database (named inventory.db) holding one sync of the sample."""
    if id(world) not in _cache:
        base = tmp_path_factory.mktemp("sample-db")
        db = base / "inventory.db"
        config = base / "config.toml"
        config.write_text(world.config_toml(db, list(world.sample.owners), token_env=TOKEN_ENV,
                                            trusted_root=True))
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(TOKEN_ENV, world.token)
            code = cli.main(["--config", str(config), "--log-format", "json", "--log-level", "error", "sync"])
        assert code == 0, f"sync of the sample world exited {code}"
        _cache[id(world)] = db
    return _cache[id(world)]


def copy_db(db: Path, dest_dir: Path, name: str = "inventory.db") -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(db)
    dest = dest_dir / name
    out = sqlite3.connect(dest)
    try:
        src.backup(out)  # consistent even with a WAL beside it
    finally:
        out.close()
        src.close()
    return dest


def with_repositories(db: Path, sample, dest_dir: Path) -> Path:
    """A copy of `db` whose `repositories` table holds the sample's repository
    facts (rows the GraphQL stage already wrote are kept as they are)."""
    copy = copy_db(db, dest_dir)
    conn = sqlite3.connect(copy)
    with conn:
        conn.executemany(
            "INSERT INTO repositories (name_with_owner, archived, visibility, default_branch, head_oid, "
            "fetched_at) VALUES (?, ?, ?, ?, ?, '2026-01-01T00:00:00Z') ON CONFLICT DO NOTHING",
            [(r.full_name, int(r.archived), r.visibility, r.default_branch, r.head_oid)
             for r in sample.repositories.values()])
    conn.close()
    return copy


def without_repositories(db: Path, dest_dir: Path) -> Path:
    """A copy of `db` as if the GraphQL stage never ran."""
    copy = copy_db(db, dest_dir)
    conn = sqlite3.connect(copy)
    with conn:
        conn.execute("DELETE FROM repositories")
    conn.close()
    return copy


