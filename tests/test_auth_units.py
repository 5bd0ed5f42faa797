"""The pure parts of registry auth (issue 13): the challenge decision, the
Docker config.json parser, catalog coverage by owner and prefix."""

from __future__ import annotations

import base64
import json
import re

import pytest

from crawler.auth import decide
from crawler.config import OwnerConfig, parse_config
from crawler.discovery.coverage import package_name, uncovered, uncovered_message
from crawler.dockerconfig import normalise_host, parse_docker_config
from crawler.errors import AuthError, ConfigError, ParseError
from crawler.headers import parse_www_authenticate
from crawler.secret import redact


def trusted_only(host):
    return lambda realm: realm.startswith(host)


@pytest.mark.parametrize("header, creds, scheme, send", [
    ('Bearer realm="https://reg/token",service="reg"', True, "bearer", True),
    ('Bearer realm="https://reg/token",service="reg"', False, "bearer", False),
    ('Bearer realm="https://evil/token"', True, "bearer", False),         # untrusted realm: anonymous
    ('Basic realm="registry"', True, "basic", True),
    ('Basic realm="registry", Bearer realm="https://reg/token"', True, "bearer", True),   # Bearer wins
    ('basic', True, "basic", True),                                        # no realm at all is fine
])
def test_the_decision_per_challenge(header, creds, scheme, send):
    d = decide(parse_www_authenticate(header), have_credentials=creds, trusted=trusted_only("https://reg"))
    assert (d.scheme, d.send_credentials) == (scheme, send)
    assert (d.warning is not None) == ("evil" in header)


@pytest.mark.parametrize("header, message", [
    ('Basic realm="registry"', "wants HTTP Basic credentials (realm 'registry')"),
    ('Negotiate', "no challenge this client can answer (offered: negotiate"),
    ('', "offered: none"),
    ('Bearer realm="file:///etc/passwd"', "not an http(s) URL"),
])
def test_what_cannot_be_answered_is_fatal_and_says_why(header, message):
    with pytest.raises(AuthError, match=re.escape(message)) as err:
        decide(parse_www_authenticate(header), have_credentials=False, trusted=lambda r: True)
    assert err.value.fatal and err.value.exit_code == 3


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("key", ["127.0.0.1:5000", "http://127.0.0.1:5000", "https://127.0.0.1:5000/v2/",
                                 "127.0.0.1:5000/"])
def test_a_docker_config_key_with_or_without_scheme_and_path(key):
    found = parse_docker_config(json.dumps({"auths": {key: {"auth": b64("ci:pw:with:colons")}}}), "127.0.0.1:5000")
    assert (found.login.username, found.login.secret.reveal(), found.helper) == ("ci", "pw:with:colons", None)
    assert "pw:with:colons" not in redact("password pw:with:colons")   # registered: redacted everywhere


def test_docker_hub_keys_and_identity_tokens():
    text = json.dumps({"auths": {"https://index.docker.io/v1/": {"identitytoken": "refresh-abc123", "auth": b64("me:")}}})
    login = parse_docker_config(text, "registry-1.docker.io").login
    assert (login.username, login.secret.reveal(), login.identity_token) == ("me", "refresh-abc123", True)
    assert normalise_host("https://Index.Docker.io/v1/") == "index.docker.io"


def test_username_and_password_fields_and_other_hosts():
    text = json.dumps({"auths": {"other:1": {"auth": b64("x:y")}, "reg:1": {"username": "u", "password": "p"}}})
    assert parse_docker_config(text, "reg:1").login.username == "u"
    assert parse_docker_config(text, "absent:1").login is None


def test_credential_helpers_are_named_not_run():
    text = json.dumps({"auths": {"reg:1": {}}, "credHelpers": {"reg:1": "ecr-login"}, "credsStore": "desktop"})
    found = parse_docker_config(text, "reg:1")
    assert found.login is None and found.helper == "credHelpers: docker-credential-ecr-login"
    assert parse_docker_config(text, "else:2").helper == "credsStore: docker-credential-desktop"


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ("[]", "not a JSON object"),
    ('{"auths": []}', "'auths' is not an object"),
    ('{"auths": {"reg:1": {"auth": "%%%"}}}', "is not base64"),
    ('{"auths": {"reg:1": {"auth": "' + b64("nocolon") + '"}}}', "does not decode to 'user:password'"),
    ('{"auths": {"reg:1": {"password": "p"}}}', "no user name"),
    ('{"auths": {"reg:1": {"auth": 5}}}', "auth is not a string"),
])
def test_a_broken_docker_config_is_one_line(text, message):
    with pytest.raises(ParseError, match=message):
        parse_docker_config(text, "reg:1")


def owner(**kw) -> OwnerConfig:
    return OwnerConfig(**{"name": "acme", "discovery": "catalog", **kw})


@pytest.mark.parametrize("kw, path, name", [
    ({}, "acme/app", "app"),
    ({}, "acme", None),
    ({}, "acmecorp/app", None),
    ({"prefix": ""}, "alpine", "alpine"),
    ({"prefix": ""}, "a/b/c", "a/b/c"),
    ({"prefix": "team"}, "team/app/api", "app/api"),
    ({"prefix": "team"}, "teamcity/x", None),
    ({"prefix": "a/b"}, "a/b/c", "c"),
    ({"discovery": "static", "repositories": ("library/alpine",)}, "library/alpine", "library/alpine"),
    ({"discovery": "static", "repositories": ("acme/x",)}, "acme/x", "x"),
])
def test_which_owner_covers_which_path(kw, path, name):
    assert package_name(owner(**kw), path) == name


def test_uncovered_paths_in_listing_order_and_the_message():
    owners = [owner(), owner(name="t", prefix="team")]
    paths = ["zeta", "acme/app", "team/x", "a/b/c"] + [f"other/{i}" for i in range(6)]
    missed = uncovered(owners, paths)
    assert missed[:2] == ["zeta", "a/b/c"] and len(missed) == 8
    text = uncovered_message(missed)
    assert text.startswith("8 repositories in the catalog no configured owner covers, not synced: zeta, a/b/c, "
                           "other/0, other/1, other/2, … and 3 more")


@pytest.mark.parametrize("owners, message", [
    ('name = ""', 'to cover a whole registry, give the owner a name of your choice with discovery = "catalog" '
                  'and prefix = ""'),
    ('name = "x"\nprefix = ""', "'owners[0].prefix' is only used with discovery = \"catalog\""),
    ('name = "x"\ndiscovery = "catalog"\nprefix = 3', "'owners[0].prefix' must be a string"),
    ('name = "x"\ndiscovery = "catalog"\nprefix = "a b"', "not a repository path prefix"),
])
def test_owner_prefix_config_errors(owners, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(f"[[owners]]\n{owners}\n", source="c.toml")


def test_a_prefix_is_normalised():
    config = parse_config('[[owners]]\nname = "x"\ndiscovery = "catalog"\nprefix = "/Team/"\n', source="c.toml")
    assert config.owners[0].prefix == "team"
    config = parse_config('[[owners]]\nname = "x"\ndiscovery = "catalog"\nprefix = ""\n', source="c.toml")
    assert config.owners[0].prefix == ""
