"""`ghcr-inventory check` (issue 13): every outcome against the emulator —
token kinds from their prefixes, scopes, SAML SSO, Actions' GITHUB_TOKEN on
an org, fine-grained PATs, 404 told apart by /users/{name}, the registry's
pull token, GraphQL, the rate-limit budget; exit 0 / 3 / 4; JSON; escaped
output. Plus the pure parts, and sync's 404 for an owner."""

from __future__ import annotations

import pytest

from crawler import cli
from crawler.check import parse_scopes, parse_sso, reads_packages, token_kind

ENV = "GHCR_CHECK_TOKEN"


@pytest.mark.parametrize("value, kind, accepted", [
    ("ghp_" + "a" * 36, "classic", True),
    ("github_pat_11AAAA_" + "b" * 60, "fine_grained", False),
    ("ghs_" + "c" * 36, "server_to_server", True),
    ("gho_" + "d" * 36, "oauth", True),
    ("ghu_" + "e" * 36, "user_to_server", True),
    ("ghr_" + "f" * 36, "refresh", False),
    ("0123456789abcdef0123456789abcdef01234567", "unknown", True),
])
def test_token_kind_from_its_prefix(value, kind, accepted):
    got = token_kind(value)
    assert (got.name, got.packages_api) == (kind, accepted)
    assert token_kind(None) is None and token_kind("") is None


def test_sso_and_scope_headers():
    assert parse_sso("required; url=https://github.com/orgs/acme/sso?authorization_request=X1") == \
        "https://github.com/orgs/acme/sso?authorization_request=X1"
    assert parse_sso("partial-results; organizations=21955855") is None and parse_sso(None) is None
    assert parse_scopes("read:packages, repo") == {"read:packages", "repo"} and parse_scopes("") == frozenset()
    assert parse_scopes(None) is None
    assert reads_packages(frozenset({"write:packages"})) and not reads_packages(frozenset({"repo"}))


def config_for(world, tmp_path, owners=(("acme", "org"), ("mona", "user")), *, api=None, extra=""):
    text = world.config_toml(tmp_path / "inventory.db", list(owners), token_env=ENV)
    if api:
        text = text.replace(world.api_url, api)
    path = tmp_path / "check.toml"
    path.write_text(text + "\n[crawl]\nbackoff_base_s = 0.001\nbackoff_max_s = 0.01\n" + extra)
    return path


def check(config, capsys, *args):
    code = cli.main(["--config", str(config), "--log-format", "json", "check", *args])
    out = capsys.readouterr().out
    return code, out.splitlines()


def line(lines, needle):
    found = [x for x in lines if needle in x]
    assert len(found) == 1, (needle, lines)
    return found[0]


def test_a_good_classic_token_passes_every_check(world, sample, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, world.token)
    code, lines = check(config_for(world, tmp_path), capsys)
    assert code == 0, lines
    assert all(x.startswith("✓ ") for x in lines), lines
    assert line(lines, "token:").startswith("✓ token: classic personal access token (ghp_…)")
    assert "read:packages" in line(lines, "scopes:")
    assert line(lines, "rate limit:").count("left") == 2
    acme = len(sample.packages_of("acme"))
    assert f"acme: packages listing: readable, {acme} container packages" in line(lines, "acme: packages")
    assert "answered with a pull token" in line(lines, "acme: registry")
    assert "mona: packages listing: readable, 2 container packages" in line(lines, "mona: packages")
    assert "answers as mona" in line(lines, "GraphQL")


def test_a_classic_token_without_read_packages(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, world.add_token(scopes=("repo",)))
    code, lines = check(config_for(world, tmp_path, [("acme", "org")]), capsys)
    assert code == 3
    assert line(lines, "scopes:").startswith("✗ scopes: repo: no read:packages — fix: edit the token")
    assert line(lines, "acme: packages").startswith("✗ acme: packages listing: HTTP 403")
    assert "read:packages" in line(lines, "acme: packages")


def test_a_small_budget_is_exit_4(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, world.add_token(rate_limit=20))
    code, lines = check(config_for(world, tmp_path, [("mona", "user")]), capsys)
    assert code == 4                                  # as sync: a spent budget comes back at the reset
    assert line(lines, "mona: packages").startswith("✓")   # the probes themselves still ran
    assert line(lines, "rate limit:").startswith("✗ rate limit: core 20/20 left")
    assert "crawl.rate_limit_reserve = 50" in line(lines, "rate limit:")


def test_the_registry_refusing_a_pull_and_graphql_refusing_the_token(world, sample, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, world.token)
    private = sample.role("private")
    world.deny_repository("acme", private.name)
    world.api_proxy.inject("status", path=r"^/graphql", status=403,
                           body=b'{"message":"Resource not accessible by integration"}',
                           headers={"Content-Type": "application/json"})
    extra = f'[[owners]]\nname = "acme-static"\ndiscovery = "static"\nrepositories = ["acme/{private.name}"]\n'
    code, lines = check(config_for(world, tmp_path, [("mona", "user")], extra=extra), capsys)
    assert code == 3
    assert line(lines, "acme-static: registry").startswith(f"✗ acme-static: registry: pull acme/{private.name}")
    assert line(lines, "GraphQL").startswith("✗ GraphQL enrichment: HTTP 403")


def test_text_from_the_api_is_escaped(world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, world.token)
    world.api_proxy.inject("status", path=r"^/orgs/acme/packages", status=403,
                           body=b'{"message":"evil \\u001b[31m red \\u009b"}', headers={"Content-Type": "application/json"})
    code, lines = check(config_for(world, tmp_path, [("acme", "org")]), capsys)
    assert code == 3
    text = "\n".join(lines)
    assert "\x1b" not in text and "\x9b" not in text and "evil \\x1b[31m red" in text
