"""GitHub REST packages API: listing an owner's container packages and a
package's versions, with Link pagination and ETag conditional requests.

Facts (docs/architecture.md "Facts"): `per_page` max 100; follow `Link rel="next"`, never build
page URLs; a package name containing '/' is sent as %2F (cli/cli#9798); a
version's `name` is its digest and `metadata.container.tags` its tags; a 304
costs nothing against the primary rate limit.

Pages are parsed by pure functions into small records; the cache keeps, per
page URL, the ETag and a compact copy of the parsed page (including its next
link, which a 304 does not repeat), so an unchanged page is never downloaded
or parsed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import quote, urlencode, urlsplit

import orjson

from .errors import AuthError, HttpStatusError, NotFoundError, ParseError
from .headers import parse_etag, parse_link
from .http import HttpClient, Response, origin, refetch_bad_bodies
from .oci import is_valid_tag, parse_digest
from .model import CacheEntry
from .secret import Secret

API_VERSION = "2022-11-28"
MAX_PAGES = 100_000


@dataclass(frozen=True, slots=True)
class GhPackage:
    id: int | None
    name: str
    visibility: str | None
    repository: str | None          # source repository full_name
    html_url: str | None
    version_count: int | None
    created_at: str | None
    updated_at: str | None


@dataclass(frozen=True, slots=True)
class GhVersion:
    id: int
    digest: str
    tags: tuple[str, ...]
    created_at: str | None
    updated_at: str | None


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple
    next_url: str | None
    cache: CacheEntry | None        # new validator to store (None when unchanged)
    not_modified: bool


# --- pure parsers ---------------------------------------------------------------

def _load_list(body: bytes, where: str) -> list:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ParseError("malformed JSON from the GitHub API", where=where) from None
    if not isinstance(data, list):
        raise ParseError(f"expected a JSON array, got {type(data).__name__}", where=where)
    return data


def _opt(obj: dict, key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ParseError(f"'{key}' should be {kind.__name__}, got {type(value).__name__}", where=where)
    return value


def parse_packages(body: bytes, *, where: str = "packages") -> list[GhPackage]:
    out = []
    for i, item in enumerate(_load_list(body, where)):
        at = f"{where} [item {i}]"
        if not isinstance(item, dict):
            raise ParseError("package entry is not an object", where=at)
        name = item.get("name")
        if not isinstance(name, str) or not name or len(name) > 512 or any(c.isspace() for c in name):
            raise ParseError(f"package has an invalid name {str(name)[:60]!r}", where=at)
        if item.get("package_type", "container") != "container":
            continue
        repo = item.get("repository")
        full_name = repo.get("full_name") if isinstance(repo, dict) else None
        out.append(GhPackage(
            id=_opt(item, "id", int, at), name=name, visibility=_opt(item, "visibility", str, at),
            repository=full_name if isinstance(full_name, str) else None,
            html_url=_opt(item, "html_url", str, at), version_count=_opt(item, "version_count", int, at),
            created_at=_opt(item, "created_at", str, at), updated_at=_opt(item, "updated_at", str, at)))
    return out


def parse_versions(body: bytes, *, where: str = "versions") -> list[GhVersion]:
    out = []
    for i, item in enumerate(_load_list(body, where)):
        at = f"{where} [item {i}]"
        if not isinstance(item, dict):
            raise ParseError("version entry is not an object", where=at)
        vid = item.get("id")
        if not isinstance(vid, int) or isinstance(vid, bool):
            raise ParseError("version has no integer 'id'", where=at)
        digest = parse_digest(item.get("name"))
        meta = item.get("metadata")
        container = meta.get("container") if isinstance(meta, dict) else None
        tags = (container.get("tags") if isinstance(container, dict) else None) or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ParseError("'metadata.container.tags' is not a list of strings", where=at)
        bad = [t for t in tags if not is_valid_tag(t)]
        if bad:
            raise ParseError(f"tag {bad[0][:60]!r} is not a valid OCI tag", where=at)
        out.append(GhVersion(vid, digest, tuple(tags), _opt(item, "created_at", str, at),
                             _opt(item, "updated_at", str, at)))
    return out


def packages_to_payload(items: list[GhPackage], next_url: str | None) -> bytes:
    return orjson.dumps({"next": next_url, "items": [list(_astuple(p)) for p in items]})


def versions_to_payload(items: list[GhVersion], next_url: str | None) -> bytes:
    return orjson.dumps({"next": next_url, "items": [[v.id, v.digest, list(v.tags), v.created_at,
                                                       v.updated_at] for v in items]})


def _astuple(p: GhPackage) -> tuple:
    return (p.id, p.name, p.visibility, p.repository, p.html_url, p.version_count, p.created_at,
            p.updated_at)


def payload_to_packages(payload: bytes) -> tuple[list[GhPackage], str | None]:
    data = orjson.loads(payload)
    return [GhPackage(*row) for row in data["items"]], data["next"]


def payload_to_versions(payload: bytes) -> tuple[list[GhVersion], str | None]:
    data = orjson.loads(payload)
    return [GhVersion(r[0], r[1], tuple(r[2]), r[3], r[4]) for r in data["items"]], data["next"]


# --- the client -----------------------------------------------------------------------

CacheLookup = Callable[[str], Awaitable[CacheEntry | None]]


class GitHubClient:
    def __init__(self, http: HttpClient, api_url: str, token: Secret | None, *,
                 cache_lookup: CacheLookup | None = None) -> None:
        self.http = http
        self.api = api_url.rstrip("/")
        self.token = token
        self.cache_lookup = cache_lookup

    def packages_url(self, owner: str, kind: str) -> str:
        base = "orgs" if kind == "org" else "users"
        query = urlencode({"package_type": "container", "per_page": 100})
        return f"{self.api}/{base}/{quote(owner, safe='')}/packages?{query}"

    def versions_url(self, owner: str, kind: str, package: str) -> str:
        base = "orgs" if kind == "org" else "users"
        query = urlencode({"state": "active", "per_page": 100})
        return (f"{self.api}/{base}/{quote(owner, safe='')}/packages/container/"
                f"{quote(package, safe='')}/versions?{query}")

    async def packages(self, owner: str, kind: str, *, conditional: bool = True) -> AsyncIterator[Page]:
        async for page in self._pages(self.packages_url(owner, kind), kind="discovery",
                                      conditional=conditional, what=f"{kind} '{owner}'",
                                      parse=parse_packages, to_payload=packages_to_payload,
                                      from_payload=payload_to_packages):
            yield page

    async def versions(self, owner: str, kind: str, package: str, *,
                       conditional: bool = True) -> AsyncIterator[Page]:
        async for page in self._pages(self.versions_url(owner, kind, package), kind="versions",
                                      conditional=conditional, what=f"package '{owner}/{package}'",
                                      parse=parse_versions, to_payload=versions_to_payload,
                                      from_payload=payload_to_versions):
            yield page

    async def _pages(self, url: str, *, kind: str, conditional: bool, what: str, parse, to_payload,
                     from_payload) -> AsyncIterator[Page]:
        seen = set()
        for _ in range(MAX_PAGES):
            seen.add(url)
            page = await self._page(url, kind=kind, conditional=conditional, what=what, parse=parse,
                                    to_payload=to_payload, from_payload=from_payload)
            yield page
            if not page.next_url:
                return
            if page.next_url in seen:
                raise ParseError("pagination Link loops back to a page already read", where=what)
            if origin(page.next_url) != origin(self.api):
                raise ParseError(f"pagination Link points to another host "
                                 f"({urlsplit(page.next_url).netloc})", where=what)
            url = page.next_url

    async def _page(self, url: str, *, kind, conditional, what, parse, to_payload, from_payload) -> Page:
        cached = await self.cache_lookup(url) if (conditional and self.cache_lookup) else None
        return await refetch_bad_bodies(
            lambda: self._page_once(url, cached, kind=kind, what=what, parse=parse, to_payload=to_payload,
                                    from_payload=from_payload),
            self.http.counters, what)

    async def _page_once(self, url: str, cached: CacheEntry | None, *, kind, what, parse, to_payload,
                         from_payload) -> Page:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if cached:
            headers["If-None-Match"] = cached.etag
        auth = f"Bearer {self.token.reveal()}" if self.token else None
        resp = await self.http.request("GET", url, kind=kind, headers=headers, auth=auth,
                                       auth_origin=self.api, max_bytes=32 * 1024 * 1024)
        where = f"{what} ({urlsplit(url).path})"
        if resp.status == 304 and cached:
            items, next_url = from_payload(cached.payload)
            return Page(tuple(items), next_url, None, True)
        check_status(resp, what)
        _check_json(resp, where)
        items = parse(resp.body, where=where)
        next_url = parse_link(resp.header("Link"), resp.url).get("next")
        etag = parse_etag(resp.header("ETag"))
        entry = CacheEntry(url, etag, to_payload(items, next_url)) if etag else None
        return Page(tuple(items), next_url, entry, False)


def _check_json(resp: Response, where: str) -> None:
    ctype = (resp.header("Content-Type") or "").split(";")[0].strip().lower()
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise ParseError(f"expected JSON from the API, got Content-Type {ctype[:60]}", where=where)


def _message(resp: Response) -> str:
    try:
        data = orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        return ""
    msg = data.get("message") if isinstance(data, dict) else None
    return f": {msg[:200]}" if isinstance(msg, str) else ""


def check_status(resp: Response, what: str) -> None:
    """Map an API status to the error a person can act on."""
    if resp.status == 200:
        return
    if resp.status == 401:
        raise AuthError(f"the GitHub API rejected the token (HTTP 401{_message(resp)}); "
                        f"check github.token_env / github.token_file", where=what)
    if resp.status == 403:
        scopes = resp.header("X-Accepted-OAuth-Scopes")
        need = f"; the endpoint needs scope {scopes}" if scopes else ""
        raise AuthError(f"forbidden (HTTP 403{_message(resp)}){need}", where=what)
    if resp.status == 404:
        raise NotFoundError(f"not found (HTTP 404{_message(resp)}); check the owner's name and kind "
                            f"(org or user) and that the token can see it", where=what)
    raise HttpStatusError(f"unexpected HTTP {resp.status}{_message(resp)}", where=what, status=resp.status)
