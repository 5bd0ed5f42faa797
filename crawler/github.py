"""GitHub REST packages API: listing an owner's container packages and a
package's versions, with Link pagination and ETag conditional requests.

Facts (docs/architecture.md "Facts"): `per_page` max 100; follow `Link rel="next"`, never build
page URLs (the packages listing fetches pages ahead from its `rel="last"`
URL, but uses each only once the page before it linked exactly that URL); a package name containing '/' is sent as %2F (cli/cli#9798); a
version's `name` is its digest and `metadata.container.tags` its tags; a 304
costs nothing against the primary rate limit.

Pages are parsed by pure functions into small records; the cache keeps, per
page URL, the ETag and a compact copy of the parsed page (including its next
link, which a 304 does not repeat), so an unchanged page is never downloaded
or parsed twice — except a full page whose copy links no next: an entry
added at the end of the listing leaves its body (and ETag) as it was but
gives it a next page, so it is asked again without the ETag. A listing the
caller stops early (crawler/engine/versions.py) leaves the later pages'
entries as they were: each still pairs an ETag with the payload of the one
response that carried it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import orjson

from .errors import AuthError, HttpStatusError, IncompleteListingError, NotFoundError, ParseError
from .headers import parse_etag, parse_link
from .http import HttpClient, Response, origin, refetch_bad_bodies
from .oci import is_valid_tag, parse_digest
from .model import CacheEntry
from .secret import Secret

API_VERSION = "2022-11-28"
PER_PAGE = 100                  # the most GitHub gives; every page but the last is full
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
class Parsed:
    """One page's body, parsed: its records, the entries skipped as
    malformed (one reason each), and how many entries the body held."""

    items: tuple
    skipped: tuple[str, ...] = ()
    count: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple
    next_url: str | None
    cache: CacheEntry | None        # new validator to store (None when unchanged)
    not_modified: bool
    skipped: tuple[str, ...] = ()   # malformed entries left out (the listing is then incomplete)
    count: int = 0                  # entries the page held
    last_url: str | None = None     # rel="last": where the listing says it ends
    requests: int = 1               # 2 when a full last page's 304 was asked again (`GitHubClient._pages`)


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


def parse_packages(body: bytes, *, where: str = "packages") -> Parsed:
    """An owner's packages page. A malformed entry is skipped with its
    reason (the other packages still sync; the listing is then incomplete,
    so no deletion is concluded from it); a body that is not a JSON array
    raises ParseError."""
    entries = _load_list(body, where)
    out, skipped = [], []
    for i, item in enumerate(entries):
        at = f"{where} [item {i}]"
        try:
            package = _package(item, at)
        except ParseError as exc:
            skipped.append(str(exc))
            continue
        if package is not None:
            out.append(package)
    return Parsed(tuple(out), tuple(skipped), len(entries))


def _package(item: Any, at: str) -> GhPackage | None:
    if not isinstance(item, dict):
        raise ParseError("package entry is not an object", where=at)
    name = item.get("name")
    if not isinstance(name, str) or not name or len(name) > 512 or any(c.isspace() for c in name):
        raise ParseError(f"package has an invalid name {str(name)[:60]!r}", where=at)
    if item.get("package_type", "container") != "container":
        return None
    repo = item.get("repository")
    full_name = repo.get("full_name") if isinstance(repo, dict) else None
    return GhPackage(
        id=_opt(item, "id", int, at), name=name, visibility=_opt(item, "visibility", str, at),
        repository=full_name if isinstance(full_name, str) else None,
        html_url=_opt(item, "html_url", str, at), version_count=_opt(item, "version_count", int, at),
        created_at=_opt(item, "created_at", str, at), updated_at=_opt(item, "updated_at", str, at))


def parse_package(body: bytes, *, where: str = "package") -> Parsed:
    """One package (`GET …/packages/container/NAME`): the same record as a
    listing entry; an entry that is not a container package yields none."""
    try:
        item = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ParseError("malformed JSON from the GitHub API", where=where) from None
    package = _package(item, where)
    return Parsed((package,) if package is not None else (), (), 1)


def parse_versions(body: bytes, *, where: str = "versions") -> Parsed:
    """A package's versions page; any malformed entry fails the page (a
    package is synced whole or not at all)."""
    entries = _load_list(body, where)
    out = []
    for i, item in enumerate(entries):
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
    return Parsed(tuple(out), (), len(entries))


# The compact payload cached per page URL: what a 304 stands for.

def packages_to_payload(parsed: Parsed, next_url: str | None, last_url: str | None = None) -> bytes:
    return _payload([list(_astuple(p)) for p in parsed.items], parsed, next_url, last_url)


def versions_to_payload(parsed: Parsed, next_url: str | None, last_url: str | None = None) -> bytes:
    return _payload([[v.id, v.digest, list(v.tags), v.created_at, v.updated_at] for v in parsed.items],
                    parsed, next_url, last_url)


def _payload(rows: list, parsed: Parsed, next_url: str | None, last_url: str | None) -> bytes:
    return orjson.dumps({"next": next_url, "last": last_url, "items": rows, "skipped": list(parsed.skipped),
                         "count": parsed.count})


def _astuple(p: GhPackage) -> tuple:
    return (p.id, p.name, p.visibility, p.repository, p.html_url, p.version_count, p.created_at,
            p.updated_at)


def payload_to_packages(payload: bytes) -> tuple[Parsed, str | None, str | None]:
    data = orjson.loads(payload)
    return _parsed([GhPackage(*row) for row in data["items"]], data), data["next"], data.get("last")


def payload_to_versions(payload: bytes) -> tuple[Parsed, str | None, str | None]:
    data = orjson.loads(payload)
    versions = [GhVersion(r[0], r[1], tuple(r[2]), r[3], r[4]) for r in data["items"]]
    return _parsed(versions, data), data["next"], data.get("last")


def _parsed(items: list, data: dict) -> Parsed:
    # Payloads cached before "skipped"/"count" existed held only valid items.
    return Parsed(tuple(items), tuple(data.get("skipped") or ()), data.get("count", len(items)))


# --- the client -----------------------------------------------------------------------

CacheLookup = Callable[[str], Awaitable[CacheEntry | None]]


class GitHubClient:
    def __init__(self, http: HttpClient, api_url: str, token: Secret | None, *,
                 cache_lookup: CacheLookup | None = None, page_window: int = 1) -> None:
        self.http = http
        self.page_window = page_window  # packages listing pages fetched at once (1: one by one)
        self.api = api_url.rstrip("/")
        self.token = token
        self.cache_lookup = cache_lookup
        # Versions a page (PER_PAGE, read here so a test can list 100 versions
        # as 25 pages without pushing 10,000 images).
        self.per_page = PER_PAGE

    def packages_url(self, owner: str, kind: str, *, per_page: int = PER_PAGE) -> str:
        base = "orgs" if kind == "org" else "users"
        query = urlencode({"package_type": "container", "per_page": per_page})
        return f"{self.api}/{base}/{quote(owner, safe='')}/packages?{query}"

    def package_url(self, owner: str, kind: str, package: str) -> str:
        base = "orgs" if kind == "org" else "users"
        return f"{self.api}/{base}/{quote(owner, safe='')}/packages/container/{quote(package, safe='')}"

    async def package(self, owner: str, kind: str, package: str, *, conditional: bool = True) -> Page:
        """One package by name (ETag-conditional like a listing page)."""
        return await self._page(self.package_url(owner, kind, package), kind="discovery",
                                conditional=conditional, what=f"package '{owner}/{package}'",
                                parse=parse_package, to_payload=packages_to_payload,
                                from_payload=payload_to_packages, number=1)

    def versions_url(self, owner: str, kind: str, package: str) -> str:
        base = "orgs" if kind == "org" else "users"
        query = urlencode({"state": "active", "per_page": self.per_page})
        return (f"{self.api}/{base}/{quote(owner, safe='')}/packages/container/"
                f"{quote(package, safe='')}/versions?{query}")

    async def get(self, url: str, *, kind: str) -> Response:
        """One authenticated GET of the API, no paging and no cache (`check`'s
        probes, the owner lookup); the caller reads the status."""
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        auth = f"Bearer {self.token.reveal()}" if self.token else None
        return await self.http.request("GET", url, kind=kind, headers=headers, auth=auth, auth_origin=self.api,
                                       max_bytes=1024 * 1024)

    async def owner_type(self, name: str) -> str | None:
        """'User' or 'Organization' for an account that exists, None when
        `GET /users/{name}` answers 404: one cheap request that tells "does
        not exist" from "this token cannot see it" after a listing's 404."""
        where = f"account '{name}'"
        resp = await self.get(f"{self.api}/users/{quote(name, safe='')}", kind="owner")
        if resp.status == 404:
            return None
        check_status(resp, where)
        try:
            data = orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            raise ParseError("malformed JSON from the GitHub API", where=where) from None
        kind = data.get("type") if isinstance(data, dict) else None
        return kind if isinstance(kind, str) else "unknown"

    async def packages(self, owner: str, kind: str, *, conditional: bool = True) -> AsyncIterator[Page]:
        async for page in self._pages(self.packages_url(owner, kind), kind="discovery",
                                      conditional=conditional, what=f"{kind} '{owner}'",
                                      parse=parse_packages, to_payload=packages_to_payload,
                                      from_payload=payload_to_packages, per_page=PER_PAGE,
                                      window=self.page_window):
            yield page

    async def versions(self, owner: str, kind: str, package: str, *,
                       conditional: bool = True) -> AsyncIterator[Page]:
        async for page in self._pages(self.versions_url(owner, kind, package), kind="versions",
                                      conditional=conditional, what=f"package '{owner}/{package}'",
                                      parse=parse_versions, to_payload=versions_to_payload,
                                      from_payload=payload_to_versions, per_page=self.per_page):
            yield page

    async def _pages(self, url: str, *, kind: str, conditional: bool, what: str, parse, to_payload,
                     from_payload, per_page: int = PER_PAGE, window: int = 1) -> AsyncIterator[Page]:
        """Every page, in order. The listing is complete only when a page
        links no next one; anything else (a link back, another host, a page
        short of `per_page` that links a next one, an end before the page
        announced as `last`, the page cap) raises IncompleteListingError
        after the pages read. A full page answered 304 whose cached copy
        links no next is asked again unconditionally (see `fetch`). With
        `window` > 1 and a first page whose
        `rel="last"` is a usable template, up to `window` pages are fetched
        ahead (`_ahead`); otherwise `Link: rel="next"` is followed one page
        at a time, exactly as given."""
        async def fetch(page_url: str, number: int) -> Page:
            ask = partial(self._page, page_url, kind=kind, what=what, parse=parse, to_payload=to_payload,
                          from_payload=from_payload, number=number)
            page = await ask(conditional=conditional)
            if page.not_modified and page.next_url is None and page.count >= per_page:
                # A 304 repeats the body, not the Link: a full last page may
                # have gained a next page since (an entry added at the end)
                # while its own body stayed the same. Only a fresh answer says.
                page = replace(await ask(conditional=False), requests=2)
            return page

        chain = _Chain(self.api, what, url, per_page)
        first = await fetch(url, 1)
        template = _PageTemplate.of(first, self.api) if window > 1 else None
        pages = (self._ahead(fetch, chain, first, template, window) if template
                 else self._follow(fetch, chain, first))
        async for page in pages:
            yield page

    async def _follow(self, fetch, chain: "_Chain", page: Page) -> AsyncIterator[Page]:
        """From `chain`'s current page on, one request at a time: each next
        URL is the one the previous page's Link gave."""
        while True:
            yield page
            next_url = chain.next_of(page)
            if next_url is None:
                return
            page = await fetch(chain.advance(next_url), chain.number)

    async def _ahead(self, fetch, chain: "_Chain", page: Page, template: "_PageTemplate",
                     window: int) -> AsyncIterator[Page]:
        """Pages 2..last fetched up to `window` at a time from the `last`
        URL's template, yielded in order. The rule "follow rel=next" holds in
        effect: a page is used only once the page before it linked exactly
        its URL; where a Link differs (the listing grew, or GitHub spells a
        URL otherwise) the pages fetched ahead are dropped and `_follow`
        goes on from that Link; the anomalies `chain.next_of` refuses stay
        errors. A prefetched page's error surfaces only in its turn.

        How far ahead adapts to the reader (`depth`, 2 up to `window`): it
        doubles while the reader waits for its next page (a no-op skips a
        page in a query: its pages cost little more than pages / window
        round trips) and halves while a page waits long for the reader
        (`HELD_S`: a cold sync's workers take a page in seconds, and pages
        fetched far ahead would only be held, 100 packages each;
        docs/benchmarks.md finding 17)."""
        ahead: dict[int, asyncio.Task[Page]] = {}
        done_at: dict[int, float] = {}
        loop = asyncio.get_running_loop()
        shallowest = min(2, window)
        depth = shallowest

        def schedule(k: int) -> None:
            ahead[k] = task = asyncio.ensure_future(fetch(template.url(k), k))
            task.add_done_callback(lambda _: done_at.__setitem__(k, loop.time()))

        try:
            while True:
                yield page
                next_url = chain.next_of(page)
                if next_url is None:
                    return
                number = chain.number + 1
                if number > template.last or next_url != template.url(number):
                    break
                for k in range(number, min(number + depth, template.last + 1)):
                    if k not in ahead:
                        schedule(k)
                chain.advance(next_url)
                waited = not ahead[number].done()
                page = await ahead[number]
                del ahead[number]     # only once done: a walk cancelled while waiting still drops it
                held = loop.time() - done_at.pop(number, loop.time())
                if waited:
                    depth = min(window, depth * 2)
                elif held > HELD_S:
                    depth = max(shallowest, depth // 2)
        finally:
            await _drop(ahead.values())
        async for page in self._follow(fetch, chain, await fetch(chain.advance(next_url), chain.number)):
            yield page

    async def _page(self, url: str, *, kind, conditional, what, parse, to_payload, from_payload,
                    number: int) -> Page:
        cached = await self.cache_lookup(url) if (conditional and self.cache_lookup) else None
        return await refetch_bad_bodies(
            lambda: self._page_once(url, cached, kind=kind, what=what, parse=parse, to_payload=to_payload,
                                    from_payload=from_payload, number=number),
            self.http.counters, what)

    async def _page_once(self, url: str, cached: CacheEntry | None, *, kind, what, parse, to_payload,
                         from_payload, number: int) -> Page:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if cached:
            headers["If-None-Match"] = cached.etag
        auth = f"Bearer {self.token.reveal()}" if self.token else None
        resp = await self.http.request("GET", url, kind=kind, headers=headers, auth=auth,
                                       auth_origin=self.api, max_bytes=32 * 1024 * 1024)
        where = f"{what} ({urlsplit(url).path})"
        if resp.status == 304 and cached:
            parsed, next_url, last_url = from_payload(cached.payload)
            return Page(parsed.items, next_url, None, True, parsed.skipped, parsed.count, last_url)
        if resp.status == 400 and number > 1:
            # GitHub refuses pages past 10,000 results (page * per_page > 10000).
            raise _incomplete(f"GitHub refused page {number} (HTTP 400{_message(resp)}); it lists at most "
                              f"10,000 entries", what)
        check_status(resp, what)
        _check_json(resp, where)
        parsed = parse(resp.body, where=where)
        links = parse_link(resp.header("Link"), resp.url)
        next_url, last_url = links.get("next"), links.get("last")
        etag = parse_etag(resp.header("ETag"))
        entry = CacheEntry(url, etag, to_payload(parsed, next_url, last_url)) if etag else None
        return Page(parsed.items, next_url, entry, False, parsed.skipped, parsed.count, last_url)


def _incomplete(reason: str, what: str) -> IncompleteListingError:
    return IncompleteListingError(f"{reason}; the listing is incomplete, nothing concluded from it", where=what)


# A page fetched ahead that waited this long for its reader says the reader,
# not the API, sets the pace: fetch less far ahead (`GitHubClient._ahead`).
HELD_S = 0.5


class _Chain:
    """Where a listing's walk is (the URL and number of the page last
    fetched, every URL fetched, the `last` announced) and the checks every
    page's `next` Link must pass, whichever way the pages are fetched."""

    def __init__(self, api: str, what: str, url: str, per_page: int = PER_PAGE) -> None:
        self.api, self.what, self.per_page = api, what, per_page
        self.url, self.number = url, 1
        self.seen = {url}
        self.announced: str | None = None

    def next_of(self, page: Page) -> str | None:
        """The page after the current one, or None where the listing ends
        properly; IncompleteListingError for any other end."""
        number, what = self.number, self.what
        if not page.next_url:
            if self.announced and not _same_page(self.url, self.announced):
                raise _incomplete(f"the listing ended on page {number} before the page its Link "
                                  f"announced as last", what)
            return None
        if page.count < self.per_page:
            raise _incomplete(f"page {number} holds {page.count} of {self.per_page} entries but links a "
                              f"next page", what)
        if page.next_url in self.seen:
            raise _incomplete(f"the pagination Link of page {number} loops back to a page already read", what)
        if origin(page.next_url) != origin(self.api):
            raise _incomplete(f"the pagination Link of page {number} points to another host "
                              f"({urlsplit(page.next_url).netloc})", what)
        if number >= MAX_PAGES:
            raise _incomplete(f"more than {MAX_PAGES} pages", what)
        self.announced = page.last_url or self.announced
        return page.next_url

    def advance(self, url: str) -> str:
        self.url, self.number = url, self.number + 1
        self.seen.add(url)
        return url


@dataclass(frozen=True, slots=True)
class _PageTemplate:
    """A listing's page URLs built from its first page's `rel="last"`: that
    URL with only the value of its one `page` parameter changed."""

    before: str
    after: str
    last: int

    @classmethod
    def of(cls, first: Page, api: str) -> "_PageTemplate | None":
        """The template, or None (follow the Links one by one) unless `last`
        is on the API's origin, has exactly one decimal `page` parameter
        past 1, and the first page's `next` is exactly its page 2."""
        last_url, next_url = first.last_url, first.next_url
        if not last_url or not next_url or origin(last_url) != origin(api) or "#" in last_url:
            return None
        base, sep, query = last_url.partition("?")
        params = query.split("&") if sep else []
        at = [i for i, p in enumerate(params) if p.startswith("page=")]
        if len(at) != 1 or not params[at[0]][5:].isdigit() or not params[at[0]][5:].isascii():
            return None
        last = int(params[at[0]][5:])
        template = cls(f"{base}?{'&'.join(params[:at[0]] + [''])}page=",
                       "".join("&" + p for p in params[at[0] + 1:]), last)
        if not 2 <= last <= MAX_PAGES or template.url(2) != next_url:
            return None
        return template

    def url(self, number: int) -> str:
        return f"{self.before}{number}{self.after}"


async def _drop(tasks) -> None:
    """Cancel pages fetched ahead that will not be used, and wait for them
    (their errors are no one's: the page before them ended the walk)."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _same_page(url: str, other: str) -> bool:
    """Two links to one page: GitHub's links differ at most in how the
    query is spelled, so compare their `page` numbers when both have one."""
    a, b = parse_qs(urlsplit(url).query).get("page"), parse_qs(urlsplit(other).query).get("page")
    if a and b:
        return a == b
    return url == other


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
        raise NotFoundError(f"not found (HTTP 404{_message(resp)}): it does not exist or this token cannot "
                            f"see it; check the owner's name and kind (org or user)", where=what)
    raise HttpStatusError(f"unexpected HTTP {resp.status}{_message(resp)}", where=what, status=resp.status)
