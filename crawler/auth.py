"""The registry's auth challenge, decided without I/O: which scheme to
answer a `401` with, and whether our credentials may go along.

A registry's `WWW-Authenticate` says how it wants to be asked (RFC 9110
§11.6.1; distribution's "Token Authentication Specification"):

- `Bearer realm=…,service=…` (ghcr.io, distribution with `auth.token`,
  Harbor, GHES): fetch a token from the realm — with our credentials as
  Basic only when the realm's origin is trusted (the registry's, the API's,
  `registry.auth_hosts`), anonymously otherwise — and send it as Bearer.
- `Basic realm=…` (distribution with `auth.htpasswd`, zot, Artifactory,
  Nexus): send the user name and password themselves, to the registry's
  origin only (`http.py` never carries Authorization across origins).

Bearer wins when both are offered: a short-lived, scoped token exposes less
than the password. `decide` is the whole policy; `RegistryClient` carries
it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence
from urllib.parse import urlsplit

from .errors import AuthError
from .headers import Challenge

__all__ = ["Decision", "decide", "realm_credentials"]

HOW_TO_LOG_IN = ("set registry.token_file or registry.token_env (the password) with registry.username, "
                 "or registry.docker_config (a Docker config.json with an `auths` entry for this host)")


@dataclass(frozen=True, slots=True)
class Decision:
    """How to answer a challenge.

    scheme: "bearer" (a token from `realm`) or "basic" (the login itself).
    send_credentials: whether the login goes to the realm (bearer) or the
    registry (basic); False means anonymous. warning: one line for the log
    when credentials are withheld from an untrusted realm."""

    scheme: str
    realm: str | None
    service: str | None = None
    send_credentials: bool = False
    warning: str | None = None


def realm_credentials(realm: str, *, have_credentials: bool,
                      trusted: Callable[[str], bool]) -> tuple[bool, str | None]:
    """(send the login to this token realm?, the warning when it is withheld):
    a registry must not harvest the login by pointing its realm elsewhere."""
    if not have_credentials:
        return False, None
    if trusted(realm):
        return True, None
    return False, (f"token realm {urlsplit(realm).netloc} is neither the registry nor the API: credentials "
                   f"not sent; add the host to registry.auth_hosts if it is yours")


def decide(challenges: Sequence[Challenge], *, have_credentials: bool,
           trusted: Callable[[str], bool], where: str | None = None) -> Decision:
    """The answer to a registry's 401. Raises AuthError (fatal: no request
    can succeed) when the registry offers nothing we can answer: no Bearer
    realm and no Basic, a realm that is not http(s), or Basic without a
    login to send."""
    bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
    if bearer is not None:
        realm = bearer.realm
        if urlsplit(realm).scheme not in ("http", "https"):
            raise AuthError("token realm is not an http(s) URL", where=where)
        send, warning = realm_credentials(realm, have_credentials=have_credentials, trusted=trusted)
        return Decision("bearer", realm, bearer.service, send, warning)
    basic = next((c for c in challenges if c.scheme == "basic"), None)
    if basic is not None:
        if not have_credentials:
            realm = f" (realm {basic.realm!r})" if basic.realm else ""
            raise AuthError(f"the registry wants HTTP Basic credentials{realm} and none are configured: "
                            f"{HOW_TO_LOG_IN}", where=where)
        return Decision("basic", basic.realm, None, True)
    offered = ", ".join(sorted({c.scheme for c in challenges})) or "none"
    raise AuthError(f"registry answered 401 with no challenge this client can answer (offered: {offered}; "
                    f"supported: Bearer, Basic)", where=where)
