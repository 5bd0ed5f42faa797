"""Reliability rows of issue 13 (any registry, the token doctor): a
Basic-auth registry given a wrong login or none, Docker config.json files
that cannot serve, catalog repositories no owner covers, and the tokens
`check` exists for — fine-grained PATs, Actions' GITHUB_TOKEN on an org,
SAML SSO, revoked tokens, an unreachable API, an owner's 404. Each row of
RELIABILITY is asserted by the test it names, against the real registry
(htpasswd auth) or the emulator; README's table is rendered from them."""

from __future__ import annotations

import json

from tests.basicregistry import (LOGIN_FROM_ENV, WHOLE, basic, docker_config, registry_config,  # noqa: F401 (fixture)
                                 sync_team_prefix)
from tests.reliability import Row
from tests.support import rows, run_cli
from tests.test_check import ENV, check, config_for, line
from crawler.sandbox.registry import free_port

RELIABILITY = [
    Row("basic-wrong-password", "a registry with htpasswd (Basic) auth given a wrong password",
        "exit 3, one line naming the user and where the password came from; the password in no output",
        test="test_a_wrong_password_is_exit_3_in_one_line"),
    Row("basic-no-login", "a Basic-auth registry and no login configured",
        "exit 3, one line naming the keys that give one (token_env/token_file + username, docker_config)",
        test="test_no_credentials_for_a_basic_registry_says_how_to_give_them"),
    Row("docker-config-helper", "a Docker config.json whose login is in a credential helper (credsStore)",
        "the helper is not run: one warning naming it; without another login, exit 3",
        test="test_a_credential_helper_is_named_in_one_warning"),
    Row("docker-config-broken", "a Docker config.json that is not JSON, or whose `auth` is not base64",
        "exit 2 before any request, one line naming the file; the secret never echoed",
        test="test_a_broken_docker_config_is_exit_2"),
    Row("uncovered-repositories", "catalog repositories no configured owner covers (top-level `alpine`, "
        "nested `a/b/c`)", "not synced, never silently: one `UncoveredRepositories` line in the run's errors "
        "and the log with the count and the first names; the exit code unaffected",
        test="test_repositories_no_owner_covers_are_reported"),
    Row("owner-404-told-apart", "an owner whose packages listing answers 404",
        "one `GET /users/{name}` tells which: no such account, the wrong `kind`, or no access; that owner "
        "fails (exit 1)", test="test_sync_tells_a_missing_owner_from_one_it_cannot_see"),
    Row("check-fine-grained", "`check` with a fine-grained PAT (`github_pat_`)",
        "✗ token and listing (GitHub's 403), fix: a classic PAT with read:packages; exit 3",
        test="test_a_fine_grained_pat_is_told_to_become_classic"),
    Row("check-actions-token", "`check` with an Actions `GITHUB_TOKEN` (`ghs_`) on an org",
        "✗ listing: HTTP 400 Invalid argument, fix: a classic PAT stored as a secret; exit 3",
        test="test_an_actions_github_token_cannot_list_an_org"),
    Row("check-sso", "`check` for an org enforcing SAML SSO the token is not authorized for",
        "✗ listing with the authorization URL from `X-GitHub-SSO`; exit 3",
        test="test_saml_sso_prints_the_authorization_url"),
    Row("check-404", "`check` for an owner that does not exist, or configured with the wrong kind",
        "✗ \"GitHub has no user or organization\" / \"is a User\", with the fix; exit 3",
        test="test_a_404_says_whether_the_owner_exists"),
    Row("check-revoked", "`check` with a revoked or mistyped token (401)",
        "one ✗ line, exit 3; later checks skipped; the token never shown",
        test="test_a_rejected_token_stops_at_the_first_check"),
    Row("check-unreachable", "`check` with the API refusing connections",
        "✗ naming the host and the reason, exit 4; `--format json` says the same",
        test="test_an_unreachable_api_is_exit_4_and_json_for_scripts"),
]


def test_a_wrong_password_is_exit_3_in_one_line(basic, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REG_PASSWORD", "not-the-password")
    config = registry_config(tmp_path, basic, owners=WHOLE, registry=LOGIN_FROM_ENV)
    assert run_cli(config, "sync") == 3
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ghcr-inventory: ")]
    assert len(lines) == 1, err
    assert "rejected the Basic credentials of user 'ci'" in lines[0]
    assert "registry.token_env REG_PASSWORD" in lines[0]
    assert "not-the-password" not in err and "Traceback" not in err


def test_no_credentials_for_a_basic_registry_says_how_to_give_them(basic, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GHCR_NO_SUCH_TOKEN", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    config = registry_config(tmp_path, basic, owners=WHOLE)
    assert run_cli(config, "sync") == 3
    err = capsys.readouterr().err
    assert "wants HTTP Basic credentials (realm 'sandbox-basic')" in err
    assert "registry.docker_config" in err


def test_a_credential_helper_is_named_in_one_warning(basic, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GHCR_NO_SUCH_TOKEN", raising=False)
    authfile = docker_config(tmp_path, {basic.host: {}}, credsStore="desktop")
    config = registry_config(tmp_path, basic, owners=WHOLE, registry=f'docker_config = "{authfile}"')
    assert run_cli(config, "sync") == 3          # the helper is not run: no login
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "docker_config_helper_ignored" in line]
    assert len(warnings) == 1 and "docker-credential-desktop" in warnings[0]


def test_a_fine_grained_pat_is_told_to_become_classic(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, world.add_token(kind="fine_grained", scopes=()))
    code, lines = check(config_for(world, tmp_path, [("acme", "org")]), capsys)
    assert code == 3
    assert line(lines, "token:").startswith("✗ token: fine-grained personal access token (github_pat_…)")
    listing = line(lines, "acme: packages")
    assert "HTTP 403: Resource not accessible by personal access token" in listing
    assert "classic personal access token with the read:packages scope" in listing
    assert not any("scopes:" in x for x in lines)          # fine-grained tokens report no scopes


def test_an_actions_github_token_cannot_list_an_org(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, world.add_token(kind="actions", login="github-actions[bot]", scopes=()))
    code, lines = check(config_for(world, tmp_path), capsys)
    assert code == 3
    assert "cannot list an organization's packages" in line(lines, "token:")
    acme = line(lines, "acme: packages")
    assert acme.startswith("✗ acme: packages listing: HTTP 400: Invalid argument (an Actions GITHUB_TOKEN")
    assert "store a classic PAT with read:packages as a secret" in acme
    assert line(lines, "mona: packages").startswith("✓")     # a user's listing works


def test_saml_sso_prints_the_authorization_url(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, world.add_token(scopes=("read:packages",), sso_blocked=["acme"]))
    code, lines = check(config_for(world, tmp_path), capsys)
    assert code == 3
    acme = line(lines, "acme: packages")
    assert "(the org enforces SAML SSO)" in acme
    assert "fix: authorize the token for the org's SAML SSO: https://github.com/orgs/acme/sso?authorization_request=" \
        in acme
    assert line(lines, "mona: packages").startswith("✓")


def test_a_404_says_whether_the_owner_exists(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, world.token)
    code, lines = check(config_for(world, tmp_path, [("no-such-org", "org"), ("mona", "org")]), capsys)
    assert code == 3
    assert "GitHub has no user or organization 'no-such-org' — fix: check owners.name" in \
        line(lines, "no-such-org:")
    assert "'mona' is a User — fix: set kind = \"user\"" in line(lines, "mona:")


def test_a_rejected_token_stops_at_the_first_check(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, "ghp_" + "0" * 36)
    code, lines = check(config_for(world, tmp_path), capsys)
    assert code == 3
    assert lines[-1].startswith("✗ token: GitHub rejected it (HTTP 401: Bad credentials)")
    assert not any("acme" in x for x in lines)
    assert "0" * 36 not in "\n".join(lines)


def test_an_unreachable_api_is_exit_4_and_json_for_scripts(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, world.token)
    config = config_for(world, tmp_path, [("acme", "org")], api=f"http://127.0.0.1:{free_port()}")
    code, lines = check(config, capsys, "--format", "json")
    assert code == 4
    doc = json.loads("\n".join(lines))
    assert doc["ok"] is False and doc["exit_code"] == 4
    api = [c for c in doc["checks"] if c["unreachable"]]
    assert api and "cannot connect to 127.0.0.1" in api[0]["detail"]


def test_sync_tells_a_missing_owner_from_one_it_cannot_see(world, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, world.token)
    config = config_for(world, tmp_path, [("ghost-org", "org"), ("mona", "org")])
    assert run_cli(config, "sync") == 1
    messages = dict(rows(tmp_path / "inventory.db", "SELECT owner, message FROM run_errors"))
    assert "not found (HTTP 404): GitHub has no user or organization named 'ghost-org'" in messages["ghost-org"]
    assert "'mona' is a User, not an org: set kind = \"user\"" in messages["mona"]


def test_a_broken_docker_config_is_exit_2(basic, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GHCR_NO_SUCH_TOKEN", raising=False)
    path = tmp_path / "config.json"
    for text, needle in (("{not json", "not valid JSON"),
                         ('{"auths": {"%s": {"auth": "%%%%c2VjcmV0"}}}' % basic.host, "is not base64")):
        path.write_text(text)
        config = registry_config(tmp_path, basic, owners=WHOLE, registry=f'docker_config = "{path}"')
        assert run_cli(config, "sync") == 2
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if x.startswith("ghcr-inventory: ")]
        assert len(lines) == 1 and needle in lines[0] and str(path) in lines[0], err
        assert "c2VjcmV0" not in err


def test_repositories_no_owner_covers_are_reported(basic, tmp_path, monkeypatch, capsys):
    db = sync_team_prefix(basic, tmp_path, monkeypatch, run_cli)
    (kind, message), = rows(db, "SELECT kind, message FROM run_errors")
    assert kind == "UncoveredRepositories"
    assert message.startswith("2 repositories in the catalog no configured owner covers, not synced: a/b/c, alpine")
    err = capsys.readouterr().err
    assert "uncovered_repositories" in err
    assert "  team: 2 repositories in the catalog" in err          # the summary shows it
