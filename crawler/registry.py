"""Registry client for the OCI distribution API (ghcr.io, distribution, Harbor…).

Auth follows the registry's challenge (`crawler/auth.py` decides, without
I/O): a request answered 401 with `WWW-Authenticate: Bearer
realm=…,service=…` is retried with a token from the realm (distribution
"Token Authentication Specification"), fetched with Basic credentials or
anonymously; tokens are cached per scope until they expire and refreshed
once on a 401, and the realm/service pair is remembered in the database so
later runs go straight to the token endpoint. A registry answering
`WWW-Authenticate: Basic` (htpasswd, zot, Artifactory, Nexus) gets the
login itself on every request, sent to its own origin only; a login it
rejects ends the run (exit 3).

Credentials are sent to a token realm only when its origin is the registry's,
the GitHub API's, or listed in `registry.auth_hosts`: a registry must not be
able to harvest the token by pointing its realm elsewhere.

Every byte fetched is verified against its digest before it is returned
(`manifest.parse_manifest`/`parse_config` do it); a bad body is refetched a
couple of times (a flaky proxy) and then fails the package.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urlencode, urlsplit

import orjson
import structlog

from . import secret
from .auth import decide, realm_credentials
from .errors import (AuthError, DigestMismatchError, HttpStatusError, IncompleteListingError, NotFoundError,
                     ParseError)
from .headers import parse_etag, parse_link, parse_www_authenticate
from .http import HttpClient, Response, origin, refetch_bad_bodies
from .model import RegistryFacts
from .oci import (ACCEPT_MANIFESTS, ImageConfig, ImageIndex, ImageManifest, compute_digest, is_valid_tag,
                  parse_config, parse_digest, parse_manifest, parse_oci_error)

log = structlog.get_logger("crawler.registry")

DEFAULT_TOKEN_TTL_S = 60.0   # "tokens may come without expires_in (then 60 s)"
MAX_LISTING_PAGES = 10_000
MAX_TAGS_BODY = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HeadResult:
    status: int                 # 200 or 304
    digest: str | None
    etag: str | None
    media_type: str | None


@dataclass(frozen=True, slots=True)
class Listed:
    """A complete Link-paged listing: its names and how many pages it took
    (the registry chooses the page size: the lower bound counts pages read)."""

    names: list[str]
    pages: int


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class RegistryClient:
    def __init__(self, http: HttpClient, base_url: str, *, credentials: secret.Secret | None,
                 username: str = "ghcr-inventory", trusted_origins: set[tuple] | None = None,
                 max_manifest_bytes: int = 4 * 1024 * 1024, max_config_bytes: int = 4 * 1024 * 1024,
                 facts: RegistryFacts | None = None,
                 save_facts: Callable[[RegistryFacts], Awaitable[None]] | None = None,
                 clock: Callable[[], float] = time.time, credential_source: str = "the configured token"
                 ) -> None:
        self.http = http
        self.base = base_url.rstrip("/")
        self.host = urlsplit(self.base).netloc.lower()
        self.credentials = credentials
        self.username = username
        self.trusted = {origin(self.base)} | (trusted_origins or set())
        self.max_manifest_bytes = max_manifest_bytes
        self.max_config_bytes = max_config_bytes
        self.clock = clock
        facts = facts or RegistryFacts()
        self.realm: str | None = facts.realm
        self.service: str | None = facts.service
        self.referrers_supported: bool | None = facts.referrers
        self._save_facts = save_facts
        self._tokens: dict[str, _Token] = {}
        self._token_locks: dict[str, asyncio.Lock] = {}
        self._warned_realm = False
        self._probe_lock = asyncio.Lock()
        self._referrers_lock = asyncio.Lock()
        self._open_registry = False  # answered without a challenge: no auth needed
        self._basic = False          # answered `WWW-Authenticate: Basic`: the login on every request
        self.credential_source = credential_source
        self.token_fetches = 0

    @property
    def uses_basic(self) -> bool:
        """The registry challenged with Basic: the login goes on every request."""
        return self._basic

    @property
    def demands_tokens(self) -> bool:
        """The registry challenged for a Bearer token (one per repository
        scope, cached): only then does the lower bound count tokens."""
        return self.realm is not None

    def forget(self, repo: str) -> None:
        """Drop a repository's token and lock once its package is done. A run
        asks each repository once, so keeping them would grow with the org
        (docs/benchmarks.md, finding 4); a token still being fetched stays."""
        scope = _pull(repo)
        lock = self._token_locks.get(scope)
        if lock is None or not lock.locked():
            self._token_locks.pop(scope, None)
            self._tokens.pop(scope, None)

    # -- auth ---------------------------------------------------------------------

    async def _token(self, scope: str, *, refresh: bool = False, stale: str | None = None) -> str | None:
        """The cached token for `scope`, fetched when missing or expired. With
        `refresh`, replace the `stale` token, unless another request already did."""
        if not refresh:   # the common case, a cached token: no lock to create or take
            cached = self._tokens.get(scope)
            if cached is not None and cached.expires_at > self.clock():
                return cached.value
        lock = self._token_locks.get(scope)
        if lock is None:
            lock = self._token_locks[scope] = asyncio.Lock()
        async with lock:
            cached = self._tokens.get(scope)
            fresh = cached is not None and cached.expires_at > self.clock()
            if fresh and (not refresh or cached.value != stale):
                return cached.value
            if self.realm is None:
                return None
            token = await self._fetch_token(scope)
            self._tokens[scope] = token
            return token.value

    async def _fetch_token(self, scope: str) -> _Token:
        params = {"scope": scope}
        if self.service:
            params["service"] = self.service
        url = f"{self.realm}{'&' if '?' in self.realm else '?'}{urlencode(params)}"
        send, warning = realm_credentials(self.realm, have_credentials=self.credentials is not None,
                                          trusted=lambda realm: origin(realm) in self.trusted)
        auth = self.credentials.basic_auth(self.username) if send else None
        if warning and not self._warned_realm:
            self._warned_realm = True
            log.warning("untrusted_token_realm", realm_host=urlsplit(self.realm).netloc, hint=warning)
        where = f"token endpoint {urlsplit(self.realm).netloc} (scope {scope})"
        return await refetch_bad_bodies(lambda: self._token_once(url, auth, where), self.http.counters, where)

    async def _token_once(self, url: str, auth: str | None, where: str) -> _Token:
        self.token_fetches += 1
        resp = await self.http.request("GET", url, kind="token", auth=auth, auth_origin=self.realm,
                                       max_bytes=1024 * 1024)
        if resp.status == 401 and auth:
            raise AuthError(f"the registry's token endpoint rejected the credentials (HTTP 401"
                            f"{_detail(resp)}); check the token and its read:packages scope", where=where)
        if resp.status in (401, 403):
            raise AuthError(f"access denied (HTTP {resp.status}{_detail(resp)})"
                            + ("" if auth else "; anonymous access works only for public images"),
                            where=where, fatal=False)
        if resp.status != 200:
            raise HttpStatusError(f"unexpected HTTP {resp.status}{_detail(resp)}", where=where,
                                  status=resp.status)
        return self._parse_token(resp.body, where)

    def _parse_token(self, body: bytes, where: str) -> _Token:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ParseError("token response is not JSON", where=where) from None
        value = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise ParseError("token response has no 'token'", where=where)
        secret.register(value)
        ttl = data.get("expires_in")
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl <= 0:
            ttl = DEFAULT_TOKEN_TTL_S
        # Renew a little early so a token never expires mid-request.
        return _Token(value, self.clock() + ttl * 0.9)

    async def _learn_challenge(self, resp: Response, where: str) -> None:
        try:
            # Several WWW-Authenticate headers are one list of challenges (RFC 9110 §11.6.1).
            challenges = parse_www_authenticate(", ".join(resp.headers.getall("WWW-Authenticate", [])))
        except ParseError as exc:
            raise AuthError(f"unreadable WWW-Authenticate challenge: {exc.message}", where=where) from None
        decision = decide(challenges, have_credentials=self.credentials is not None,
                          trusted=lambda realm: origin(realm) in self.trusted, where=where)
        if decision.scheme == "basic":
            if self._basic:   # already sent the login: the registry refused it
                raise AuthError(f"the registry rejected the Basic credentials of user {self.username!r} "
                                f"from {self.credential_source} (HTTP 401{_detail(resp)})", where=where)
            self._basic = True
            return
        realm = decision.realm
        if (realm, decision.service) != (self.realm, self.service):
            self.realm, self.service = realm, decision.service
            self._tokens.clear()
            if self._save_facts:
                await self._save_facts(RegistryFacts(realm=realm, service=decision.service))

    async def request(self, method: str, path: str, *, kind: str, scope: str,
                      headers: dict | None = None, max_bytes: int = 1024 * 1024) -> Response:
        """A registry request with the challenge flow and one token refresh."""
        url = self.base + path
        if self.realm is None and not self._open_registry and not self._basic:
            # Learn the challenge once, with one request, instead of letting
            # every concurrent worker collect its own 401.
            async with self._probe_lock:
                if self.realm is None and not self._open_registry and not self._basic:
                    resp = await self._send(method, url, kind, headers, None, max_bytes)
                    if resp.status != 401:
                        self._open_registry = True
                        return resp
                    await self._learn_challenge(resp, self._where(path))
        token = await self._token(scope)
        resp = await self._send(method, url, kind, headers, token, max_bytes)
        if resp.status != 401:
            return resp
        await self._learn_challenge(resp, self._where(path))
        token = await self._token(scope, refresh=True, stale=token)
        resp = await self._send(method, url, kind, headers, token, max_bytes)
        if resp.status == 401:
            if self.credentials is None:
                raise AuthError(f"anonymous pull refused for {scope}: the image is private or does not "
                                f"exist; configure a token (github.token_env / registry.token_env)",
                                where=self._where(path), fatal=False)
            raise AuthError(f"registry refused the token for {scope}{_detail(resp)}", where=self._where(path),
                            fatal=False)
        return resp

    def _where(self, path: str) -> str:
        """Where an error happened (built only for one: requests are many)."""
        return f"{self.host}{path.split('?')[0]}"

    async def _send(self, method, url, kind, headers, token, max_bytes) -> Response:
        auth = f"Bearer {token}" if token else None
        if auth is None and self._basic and self.credentials is not None:
            auth = self.credentials.basic_auth(self.username)   # to this origin only (http.py)
        return await self.http.request(method, url, kind=kind, headers=headers, auth=auth,
                                       auth_origin=self.base, max_bytes=max_bytes)

    # -- the API --------------------------------------------------------------------

    async def tags(self, repo: str, *, page_size: int = 100, missing_ok: bool = False) -> Listed:
        """All tags of a repository, following `Link` (distribution spec
        "Listing Tags"); invalid tag names are skipped with a warning.
        `missing_ok`: distribution answers 404 NAME_UNKNOWN for a repository
        whose tags were all removed; when the catalog listed it, that means
        "no tags", not "no repository". A listing that does not end as the
        protocol says raises IncompleteListingError."""
        where = f"{self.host}/v2/{repo}/tags/list"
        listed = await self._listing(f"/v2/{repo}/tags/list?{urlencode({'n': page_size})}", key="tags",
                                     kind="tags", scope=_pull(repo), where=where, what=f"repository {repo}",
                                     missing_ok=missing_ok)
        tags = []
        for name in listed.names:
            if is_valid_tag(name):
                tags.append(name)
            else:
                log.warning("invalid_tag_skipped", repository=repo, tag=name[:140])
        return Listed(list(dict.fromkeys(tags)), listed.pages)

    async def catalog(self, *, page_size: int = 1000) -> Listed:
        """Every repository of the registry (`/v2/_catalog`, Link paging)."""
        return await self._listing(f"/v2/_catalog?{urlencode({'n': page_size})}", key="repositories",
                                   kind="catalog", scope="registry:catalog:*", where=f"{self.host}/v2/_catalog",
                                   what="catalog", missing_ok=False)

    async def _listing(self, path: str, *, key: str, kind: str, scope: str, where: str, what: str,
                       missing_ok: bool) -> Listed:
        """Follow `Link: rel="next"` to the end. Complete only when a page
        links no next one; a link back to a page already read, more than
        MAX_LISTING_PAGES pages, or an empty page that still links a next
        one is an incomplete listing (distribution-spec "Listing Tags")."""
        names: list[str] = []
        visited = {path}

        async def page_once(path: str):
            resp = await self.request("GET", path, kind=kind, scope=scope, max_bytes=MAX_TAGS_BODY)
            if resp.status == 404 and kind == "catalog":
                raise NotFoundError("this registry has no catalog API (ghcr.io has none: use "
                                    "discovery = \"rest\" or \"static\")", where=where)
            if resp.status == 404 and missing_ok:
                return resp, []
            _expect(resp, where, what=what)
            items = _json_object(resp.body, where).get(key) or []
            if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
                raise ParseError(f"'{key}' is not a list of strings", where=where)
            return resp, items

        for number in range(1, MAX_LISTING_PAGES + 1):
            resp, items = await self._verified(lambda: page_once(path), where)
            names.extend(items)
            nxt = parse_link(resp.header("Link"), resp.url).get("next")
            if not nxt:
                return Listed(names, number)
            if not items:
                raise IncompleteListingError(f"page {number} is empty but links a next page; the listing "
                                             f"is incomplete, nothing concluded from it", where=where)
            path = _path_of(nxt, self.base, where)
            if path in visited:
                raise IncompleteListingError(f"pagination Link of page {number} loops back to a page already "
                                             f"read; the listing is incomplete, nothing concluded from it",
                                             where=where)
            visited.add(path)
        raise IncompleteListingError(f"more than {MAX_LISTING_PAGES} pages; the listing is incomplete, "
                                     f"nothing concluded from it", where=where)

    async def head_manifest(self, repo: str, ref: str, *, etag: str | None = None) -> HeadResult:
        headers = {"Accept": ACCEPT_MANIFESTS}
        if etag:
            headers["If-None-Match"] = etag
        path = f"/v2/{repo}/manifests/{ref}"
        resp = await self.request("HEAD", path, kind="manifest_head", scope=_pull(repo), headers=headers)
        where = f"{self.host}{path}"
        if resp.status == 304:
            return HeadResult(304, None, parse_etag(resp.header("ETag")) or etag, None)
        _expect(resp, where, what=f"{repo}:{ref}")
        raw = resp.header("Docker-Content-Digest")
        digest = parse_digest(raw) if raw else None
        return HeadResult(200, digest, parse_etag(resp.header("ETag")), resp.header("Content-Type"))

    async def manifest(self, repo: str, ref: str, *, digest: str | None = None,
                       tag_hint: str | None = None) -> ImageManifest | ImageIndex:
        """GET a manifest and verify it. By digest: the body must hash to it.
        By tag (digest unknown): the body's own hash is its digest, and a
        Docker-Content-Digest header must agree with it."""
        path = f"/v2/{repo}/manifests/{digest or ref}"
        where = f"{self.host}{path}"

        async def once():
            resp = await self.request("GET", path, kind="manifest", scope=_pull(repo),
                                      headers={"Accept": ACCEPT_MANIFESTS},
                                      max_bytes=self.max_manifest_bytes)
            _expect(resp, where, what=f"manifest {repo}@{digest or ref}")
            expected = digest or compute_digest(resp.body)
            header = resp.header("Docker-Content-Digest")
            if header and header.strip() != expected:
                raise DigestMismatchError(f"Docker-Content-Digest {header.strip()[:80]} does not match "
                                          f"the body's digest {expected}", where=where)
            return parse_manifest(resp.body, digest=expected, content_type=resp.header("Content-Type"),
                                  tag=tag_hint)

        return await self._verified(once, where)

    async def config(self, repo: str, digest: str) -> ImageConfig:
        path = f"/v2/{repo}/blobs/{digest}"
        where = f"{self.host}{path}"

        async def once():
            resp = await self.request("GET", path, kind="config", scope=_pull(repo),
                                      max_bytes=self.max_config_bytes)
            _expect(resp, where, what=f"config blob {repo}@{digest}")
            return parse_config(resp.body, digest=digest)

        return await self._verified(once, where)

    async def referrers_of(self, repo: str, digest: str) -> list | None:
        """Descriptors of the manifests that refer to `digest`, from the OCI
        referrers API; None when the registry has no such API. The first
        answer decides for the registry and is remembered in the database,
        so ghcr.io (404) is asked once, ever."""
        if self.referrers_supported is False:
            return None
        async with self._referrers_lock:
            if self.referrers_supported is None:
                index = await self.referrers(repo, digest)
                self.referrers_supported = index is not None
                if self._save_facts:
                    await self._save_facts(RegistryFacts(referrers=self.referrers_supported))
                return list(index.manifests) if index is not None else None
        if self.referrers_supported is False:
            return None
        index = await self.referrers(repo, digest)
        return list(index.manifests) if index is not None else []

    async def referrers(self, repo: str, digest: str) -> ImageIndex | None:
        """The OCI referrers API (distribution-spec v1.1); None when the
        registry has none (ghcr.io answers 404)."""
        path = f"/v2/{repo}/referrers/{digest}"
        resp = await self.request("GET", path, kind="referrers", scope=_pull(repo),
                                  headers={"Accept": "application/vnd.oci.image.index.v1+json"},
                                  max_bytes=self.max_manifest_bytes)
        if resp.status in (404, 405, 400):
            return None
        _expect(resp, f"{self.host}{path}", what="referrers")
        index = parse_manifest(resp.body, digest=compute_digest(resp.body),
                               content_type="application/vnd.oci.image.index.v1+json")
        return index if isinstance(index, ImageIndex) else None

    async def _verified(self, once, where: str):
        return await refetch_bad_bodies(once, self.http.counters, where)


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _detail(resp: Response) -> str:
    text = parse_oci_error(resp.body)
    return f": {secret.redact(text)[:200]}" if text else ""


def _expect(resp: Response, where: str, *, what: str) -> None:
    if resp.status == 200:
        return
    if resp.status == 404:
        raise NotFoundError(f"{what} not found (HTTP 404{_detail(resp)})", where=where)
    if resp.status == 403:
        raise AuthError(f"access to {what} denied (HTTP 403{_detail(resp)})", where=where, fatal=False)
    raise HttpStatusError(f"unexpected HTTP {resp.status} for {what}{_detail(resp)}", where=where,
                          status=resp.status)


def _json_object(body: bytes, where: str) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"malformed JSON ({exc.args[0][:80] if exc.args else 'decode error'})",
                         where=where) from None
    if not isinstance(data, dict):
        raise ParseError(f"expected a JSON object, got {type(data).__name__}", where=where)
    return data


def _path_of(url: str, base: str, where: str) -> str:
    """A Link target as a path on this registry; refuse to follow it elsewhere."""
    if origin(url) != origin(base):
        raise ParseError(f"pagination Link points to another host ({urlsplit(url).netloc})", where=where)
    parts = urlsplit(url)
    base_path = urlsplit(base).path.rstrip("/")
    path = parts.path[len(base_path):] if base_path and parts.path.startswith(base_path) else parts.path
    return path + (f"?{parts.query}" if parts.query else "")

