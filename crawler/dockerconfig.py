"""Docker's `config.json` as a credential source: the pure parser.

Where users keep registry logins (`docker login`, `podman login --authfile`,
`skopeo login`). An entry lives under `auths`, keyed by the registry's host
(`127.0.0.1:5000`), sometimes with a scheme or a path (`https://ghcr.io`,
Docker Hub's historical `https://index.docker.io/v1/`), and holds either
`auth` (base64 of `user:password`), or `username` + `password`, or an
`identitytoken` (an OAuth refresh token some registries hand out; it is
used as the password towards the token endpoint).

Credential helpers (`credsStore`, `credHelpers`) run programs; they are out
of scope, and `helper` names the one that applies so the caller can say so
in one warning. Text in, a small frozen value out; nothing is logged or
read here (the file is read by `config.py`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from .errors import ParseError
from .secret import Secret, register

__all__ = ["DockerLogin", "Lookup", "normalise_host", "parse_docker_config"]

# Docker Hub answers under several names; `docker login` writes the v1 key.
DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})


@dataclass(frozen=True, slots=True)
class DockerLogin:
    """One `auths` entry: the user name and the secret (password or identity token)."""

    username: str
    secret: Secret
    identity_token: bool = False


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the file holds for one host: a login, and/or the credential
    helper that would have answered (not run: out of scope)."""

    login: DockerLogin | None
    helper: str | None = None


def normalise_host(key: str) -> str:
    """`https://Index.Docker.io/v1/` -> `index.docker.io`; `127.0.0.1:5000` stays."""
    key = key.strip()
    netloc = urlsplit(key).netloc if "://" in key else key.split("/", 1)[0]
    return netloc.lower()


def _aliases(host: str) -> frozenset[str]:
    host = normalise_host(host)
    return DOCKER_HUB if host in DOCKER_HUB else frozenset({host})


def parse_docker_config(text: str | bytes, host: str) -> Lookup:
    """The login `text` (a config.json) holds for `host` (`host[:port]`)."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON ({exc.args[0][:80] if exc.args else 'decode error'})") from None
    if not isinstance(data, dict):
        raise ParseError("not a JSON object")
    wanted = _aliases(host)
    helper = _helper(data, wanted)
    auths = data.get("auths")
    auths = {} if auths is None else auths
    if not isinstance(auths, dict):
        raise ParseError("'auths' is not an object")
    for key, entry in auths.items():
        if normalise_host(key) in wanted:
            login = _login(entry, key)
            if login is not None:
                return Lookup(login, helper)
    return Lookup(None, helper)


def _helper(data: dict, wanted: frozenset[str]) -> str | None:
    helpers = data.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if normalise_host(key) in wanted and isinstance(name, str) and name:
                return f"credHelpers: docker-credential-{name}"
    store = data.get("credsStore")
    if isinstance(store, str) and store:
        return f"credsStore: docker-credential-{store}"
    return None


def _login(entry: object, key: str) -> DockerLogin | None:
    """An entry's login; None for an empty one (`{}`: a helper holds it)."""
    if not isinstance(entry, dict):
        raise ParseError(f"auths[{key!r}] is not an object")
    username = _text(entry, "username", key)
    identity = _text(entry, "identitytoken", key)
    password = _text(entry, "password", key)
    blob = _text(entry, "auth", key)
    if blob:
        register(blob)
        try:
            decoded = base64.b64decode(blob, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ParseError(f"auths[{key!r}].auth is not base64 of 'user:password'") from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise ParseError(f"auths[{key!r}].auth does not decode to 'user:password'")
        username, password = username or user, password or secret
    if identity:
        return DockerLogin(username or "<token>", Secret(identity), identity_token=True)
    if password:
        if not username:
            raise ParseError(f"auths[{key!r}] has a password but no user name")
        return DockerLogin(username, Secret(password))
    return None


def _text(entry: dict, field: str, key: str) -> str:
    value = entry.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ParseError(f"auths[{key!r}].{field} is not a string")
    return value
