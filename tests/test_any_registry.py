"""Issue 13, "any registry": the real distribution with htpasswd (Basic) auth
and repositories at any path — top-level (`alpine`) and nested (`a/b/c`) —
synced with a password from the environment or a Docker config.json, an
owner covering the whole registry or a prefix, and what no owner covers
reported, never skipped silently. skopeo reads the same registry with the
same credentials as a cross-check."""

from __future__ import annotations

import json
import subprocess

from tests.basicregistry import (LOGIN_FROM_ENV, PASSWORD, TEAM, WHOLE, auth_entry, basic,  # noqa: F401 (fixture)
                                 docker_config, expected_tags, registry_config, sync_team_prefix, synced_tags)
from tests.support import last_run, rows, run_cli

def test_basic_auth_with_the_password_from_the_environment(basic, tmp_path, monkeypatch):
    monkeypatch.delenv("GHCR_NO_SUCH_TOKEN", raising=False)
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    config = registry_config(tmp_path, basic, owners=WHOLE, registry=LOGIN_FROM_ENV)
    assert run_cli(config, "sync") == 0
    db = tmp_path / "inventory.db"
    # prefix = "": the whole registry, package names are full paths (top-level and nested)
    assert synced_tags(tmp_path) == expected_tags(basic)
    index = basic.pushed["a/b/c"]
    assert {d for (d,) in rows(db, "SELECT digest FROM v_images WHERE package = 'a/b/c'")} == {
        index.digest, *index.children}
    run = last_run(db)
    kinds = json.loads(run["requests_by_kind"])
    assert "token" not in kinds                       # Basic: no token endpoint at all
    assert run["requests"] >= run["lower_bound"]
    assert rows(db, "SELECT COUNT(*) FROM run_errors") == [(0,)]   # everything covered
    # a no-op run: nothing changed, the one probe is the only request above the bound
    assert run_cli(config, "sync") == 0
    again = last_run(db)
    assert (again["packages_changed"], again["packages_skipped"]) == (0, 4)
    assert again["requests"] == again["lower_bound"] + 1


def test_a_docker_config_login_and_skopeo_agree(basic, tmp_path, monkeypatch):
    monkeypatch.delenv("GHCR_NO_SUCH_TOKEN", raising=False)
    authfile = docker_config(tmp_path, {f"http://{basic.host}": auth_entry()})   # a key with a scheme
    config = registry_config(tmp_path, basic, owners=WHOLE, registry=f'docker_config = "{authfile}"')
    assert run_cli(config, "sync") == 0
    assert synced_tags(tmp_path) == expected_tags(basic)
    # skopeo, with the same file, sees the same digest
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--authfile", str(authfile),
                          f"docker://{basic.host}/alpine:3.20"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Digest"] == synced_tags(tmp_path)[("alpine", "3.20")]


def test_the_docker_config_env_directory_is_read(basic, tmp_path, monkeypatch):
    monkeypatch.delenv("GHCR_NO_SUCH_TOKEN", raising=False)
    authfile = docker_config(tmp_path, {basic.host: auth_entry()})
    monkeypatch.setenv("DOCKER_CONFIG", str(authfile.parent))
    config = registry_config(tmp_path, basic, owners=WHOLE)
    assert run_cli(config, "sync") == 0
    assert synced_tags(tmp_path) == expected_tags(basic)


def test_a_prefix_owner_then_a_second_covering_the_rest(basic, tmp_path, monkeypatch):
    db = sync_team_prefix(basic, tmp_path, monkeypatch, run_cli)
    assert synced_tags(tmp_path) == {(r.removeprefix("team/"), t): d
                                     for (r, t), d in expected_tags(basic, {"team/app", "team/tools"}).items()}
    # (what it leaves uncovered is reported: tests/test_reliability_registries.py)
    # a second owner covering the rest: nothing left to report
    both = TEAM + '[[owners]]\nname = "rest-of-it"\ndiscovery = "catalog"\nprefix = ""\nexclude = ["team/*"]\n'
    config = registry_config(tmp_path, basic, owners=both, name="both.toml", registry=LOGIN_FROM_ENV)
    assert run_cli(config, "sync") == 0
    run_id = last_run(db)["id"]
    assert rows(db, "SELECT COUNT(*) FROM run_errors WHERE run_id = ?", (run_id,)) == [(0,)]
    assert {(o, p) for o, p in rows(db, "SELECT owner, package FROM v_packages")} == {
        ("team", "app"), ("team", "tools"), ("rest-of-it", "alpine"), ("rest-of-it", "a/b/c")}


def test_check_against_a_basic_registry(basic, tmp_path, monkeypatch, capsys):
    from crawler import cli
    monkeypatch.delenv("GHCR_NO_SUCH_TOKEN", raising=False)
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    config = registry_config(tmp_path, basic, owners=WHOLE, registry=LOGIN_FROM_ENV)
    assert cli.main(["--config", str(config), "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["✓ token: no GitHub token (none needed: no owner uses the GitHub API)",
                   "✓ local: registry: catalog: answered with Basic credentials"]
    monkeypatch.setenv("REG_PASSWORD", "wrong")
    assert cli.main(["--config", str(config), "check"]) == 3
    assert "rejected the Basic credentials of user 'ci'" in capsys.readouterr().out
