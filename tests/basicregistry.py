"""The Basic-auth registry of the sandbox, shared by the "any registry"
tests: a module-scoped fixture pushing top-level (`alpine`), nested (`a/b/c`)
and prefixed (`team/…`) repositories, configs pointing at it, Docker
config.json files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.support import rows

USER, PASSWORD = "ci", "s3cret-Basic-pw"


@pytest.fixture(scope="module")
def basic(world):
    reg = world.basic_registry({USER: PASSWORD})
    pushed = {
        "alpine": reg.push_image("alpine", tags=["3.20", "latest"]),
        "a/b/c": reg.push_index("a/b/c", tags=["v1"]),
        "team/app": reg.push_image("team/app", tags=["1.0"]),
        "team/tools": reg.push_image("team/tools", tags=["edge"], platform="linux/arm64"),
    }
    reg.pushed = pushed
    return reg


def registry_config(tmp_path, basic, *, owners: str, registry: str = "", name: str = "basic.toml"):
    text = (f'[database]\npath = "{tmp_path / "inventory.db"}"\n'
            f'[github]\ntoken_env = "GHCR_NO_SUCH_TOKEN"\n'
            f'[registry]\nurl = "{basic.url}"\n{registry}\n'
            f'[crawl]\nbackoff_base_s = 0.001\nconcurrency = 4\n{owners}')
    path = tmp_path / name
    path.write_text(text)
    return path


WHOLE = '[[owners]]\nname = "local"\ndiscovery = "catalog"\nprefix = ""\n'


def expected_tags(basic, paths=None) -> dict:
    return {(p.repository, t): p.digest for p in basic.pushed.values() for t in p.tags
            if paths is None or p.repository in paths}


def synced_tags(tmp_path) -> dict:
    return {(p, t): d for p, t, d in rows(tmp_path / "inventory.db", "SELECT package, tag, digest FROM v_tags")}


def docker_config(tmp_path, entry: dict, **extra) -> Path:
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"auths": entry, **extra}))
    path.chmod(0o600)
    return path


def auth_entry(user=USER, password=PASSWORD) -> dict:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


# [registry] lines: the password from $REG_PASSWORD, the user from the config
LOGIN_FROM_ENV = f'username = "{USER}"\ntoken_env = "REG_PASSWORD"'
TEAM = '[[owners]]\nname = "team"\ndiscovery = "catalog"\nprefix = "team"\n'


def sync_team_prefix(basic, tmp_path, monkeypatch, run_cli) -> Path:
    """Sync the owner covering `team/…` only; returns the database."""
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    config = registry_config(tmp_path, basic, owners=TEAM, registry=LOGIN_FROM_ENV)
    assert run_cli(config, "sync") == 0
    return tmp_path / "inventory.db"
