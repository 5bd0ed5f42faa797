"""A ghcr-shaped fault proxy, and the blob "CDN" host it redirects to.

``FaultProxy`` forwards every request to an upstream (the registry or the GitHub
emulator) keeping ``Authorization`` and ``Host``, so URLs the upstream builds
(upload locations, ``Link``) point back through the proxy. On demand it injects
faults (see ``faults``). With ``ghcr=True`` it also makes distribution 2.8 look
like ghcr.io:

- ``tags/list`` is paged 100 at a time honouring ``n``/``last`` with a ``Link``
  ``rel="next"`` (distribution 2.8 ignores both and sends no Link);
- ``/v2/<name>/referrers/<digest>`` and ``/v2/_catalog`` answer 404 (ghcr has
  neither; microsoft/vscode-docker#1525);
- ``/token`` is served on the registry host (forwarded to the emulator) and the
  registry's ``WWW-Authenticate`` realm is rewritten to it, like
  ``realm="https://ghcr.io/token"``;
- blob GETs answer ``307`` to a second host (``BlobCdn``) that serves the bytes
  and records every request's headers: Authorization must never reach it;
- registry tokens can be expired on demand (``revoked_upto``): distribution 2.8
  accepts a token up to 60 s past its ``exp``, too long for a test to wait, so
  the front answers such a token with the registry's own 401 challenge.

Without ``ghcr`` (the world's "plain" registry front) distribution answers as
itself, ``_catalog`` included. The listing faults (``loop_link``, ``shrink``,
``bad_item``) spoil a listing page after the upstream (or the ghcr pager)
answered; ``loop_link`` to a registry page k > 1 asks the upstream for the
first k-1 pages' items to find that page's ``last`` cursor.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp
import jwt
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from .faults import (
    BODY_KINDS,
    LISTING_KINDS,
    Fault,
    FaultTable,
    abort_connection,
    decode_listing,
    listing_applies,
    listing_items,
    parse_link,
    pre_fault_response,
    send,
    spoil_body,
    spoil_listing,
    with_page,
)

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailers",
        "Transfer-Encoding",
        "Upgrade",
    )
)

_TAGS_LIST = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_REFERRERS = re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[a-z0-9]+:[a-f0-9]+)$")
_REALM = re.compile(r'realm="[^"]*"')
TAGS_PAGE = 100


@dataclass(frozen=True)
class Exchange:
    """One request the proxy answered; ``status`` None when the connection was reset."""

    method: str
    path: str  # raw path with query, as the client sent it
    status: int | None
    fault: str | None


@dataclass(frozen=True)
class CdnRequest:
    method: str
    path: str
    headers: dict[str, str]


def _oci_error(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


def bindable(host: str) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
        return True
    except OSError:
        return False


class _Server:
    """An aiohttp server with one catch-all handler, on a loopback address."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:  # pragma: no cover - abstract
        raise NotImplementedError


class BlobCdn(_Server):
    """The second host blob GETs are redirected to (like pkg-containers.githubusercontent.com).

    Binds 127.0.0.2 when the system allows it (a different host, not just a
    different port), else 127.0.0.1. Records every request's headers in
    ``requests``; faults can be injected here too.
    """

    def __init__(self, host: str | None = None, *, seed: int = 0) -> None:
        super().__init__(host or ("127.0.0.2" if bindable("127.0.0.2") else "127.0.0.1"))
        self.faults = FaultTable(seed)
        self.requests: list[CdnRequest] = []
        self._blobs: dict[str, tuple[bytes, str, float | None]] = {}

    @property
    def injected(self) -> Counter:
        return self.faults.injected

    def inject(self, kind: str, path: str = ".*", method: str | None = None, **kw) -> Fault:
        return self.faults.inject(kind, path, method, **kw)

    def clear(self) -> None:
        self.faults.clear()

    @property
    def saw_authorization(self) -> bool:
        return any("authorization" in (k.lower() for k in r.headers) for r in self.requests)

    def put(
        self, digest: str, data: bytes, content_type: str = "application/octet-stream", *, truncate_keep: float | None = None
    ) -> str:
        """Store blob bytes; return a signed-looking URL that serves them (cut short if asked)."""
        key = secrets.token_hex(8)
        self._blobs[key] = (data, content_type, truncate_keep)
        return f"{self.url}/ghcr1/blobs/{digest}?sig={key}&se={int(asyncio.get_running_loop().time())}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(CdnRequest(request.method, request.raw_path, dict(request.headers)))
        latency, fault = self.faults.pick(request.method, request.raw_path)
        for f in latency:
            await asyncio.sleep(float(f.params.get("ms", 100)) / 1000)
        if fault is not None and fault.kind == "reset":
            abort_connection(request)
            return web.Response(status=500)
        if fault is not None and fault.kind not in BODY_KINDS:
            status, headers, body = pre_fault_response(fault)
            return await send(request, status, headers, body)
        stored = self._blobs.get(request.rel_url.query.get("sig", ""))
        if stored is None or request.method not in ("GET", "HEAD"):
            return web.Response(status=404, text="BlobNotFound")
        data, content_type, truncate_keep = stored
        headers = CIMultiDict({"Content-Type": content_type, "Content-Length": str(len(data))})
        if truncate_keep is not None and request.method == "GET":
            return await send(request, 200, headers, data, truncate_keep=truncate_keep)
        if fault is not None and fault.kind not in LISTING_KINDS:  # blobs are no listings
            self.faults.fire(fault)
            if fault.kind == "truncate":
                return await send(request, 200, headers, data, truncate_keep=float(fault.params.get("keep", 0.5)))
            headers, data = spoil_body(fault, headers, data)
        return await send(request, 200, headers, data)


class FaultProxy(_Server):
    """Forward to ``upstream``; inject faults; optionally look like ghcr.io."""

    def __init__(
        self,
        upstream: str,
        *,
        ghcr: bool = False,
        token_upstream: str | None = None,
        cdn: BlobCdn | None = None,
        seed: int = 0,
        latency_ms: float = 0.0,
        connect_latency_ms: float = 0.0,
        host: str = "127.0.0.1",
        name: str = "proxy",
        service: str = "ghcr.io",
    ) -> None:
        super().__init__(host)
        self.service = service
        self.upstream = upstream.rstrip("/")
        self.ghcr = ghcr
        self.token_upstream = token_upstream.rstrip("/") if token_upstream else None
        self.cdn = cdn
        self.latency_ms = latency_ms
        self.connect_latency_ms = connect_latency_ms
        self.name = name
        self.faults = FaultTable(seed)
        self.log: list[Exchange] = []
        # Callbacks (method, path, status) after each forwarded exchange.
        self.on_exchange: list[Callable[[str, str, int], None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._seen_connections: set[int] = set()
        self.revoked_upto = 0  # registry JWTs with jti "sandbox-<n>", n <= this, get 401
        # ghcr lists an existing package without tags as {"tags": []} where
        # distribution says 404 NAME_UNKNOWN; this tells the proxy which exist.
        self.known_repository: Callable[[str], bool] | None = None

    # -- public surface ---------------------------------------------------------

    def inject(
        self,
        kind: str,
        path: str = ".*",
        method: str | None = None,
        times: int | None = None,
        probability: float | None = None,
        **params,
    ) -> Fault:
        """Add a fault rule: ``path`` is a regex searched in the raw path+query."""
        return self.faults.inject(kind, path, method, times, probability, **params)

    def clear(self) -> None:
        """Remove every fault rule (counts and the log stay)."""
        self.faults.clear()

    @property
    def injected(self) -> Counter:
        return self.faults.injected

    def reset_log(self) -> None:
        self.log.clear()
        self.faults.injected.clear()

    async def start(self, port: int = 0) -> str:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return await super().start(port)

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- request handling -------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        target = request.raw_path
        await self._plain_latency(request)
        latency, fault = self.faults.pick(request.method, target)
        for f in latency:
            await asyncio.sleep(float(f.params.get("ms", 100)) / 1000)
        if fault is not None and fault.kind == "reset":
            self.log.append(Exchange(request.method, target, None, "reset"))
            abort_connection(request)
            return web.Response(status=500)  # never reaches the client
        if fault is not None and fault.kind not in BODY_KINDS:
            status, headers, body = pre_fault_response(fault)
            self.log.append(Exchange(request.method, target, status, fault.kind))
            return await send(request, status, headers, body)

        status, headers, body = await self._answer(request, fault)
        applied: str | None = None
        truncate = None
        if fault is not None and fault.fired_on is request:  # spent on the CDN copy of a blob
            applied, fault.fired_on = fault.kind, None
        elif fault is not None and fault.kind in LISTING_KINDS:
            spoiled = await self._spoil_listing(request, fault, status, headers, body)
            if spoiled is not None:
                self.faults.fire(fault)
                applied = fault.kind
                headers, body = spoiled
        elif fault is not None and 200 <= status < 300 and request.method != "HEAD":
            self.faults.fire(fault)
            applied = fault.kind
            if fault.kind == "truncate":
                truncate = float(fault.params.get("keep", 0.5))
            else:
                headers, body = spoil_body(fault, headers, body)
        self.log.append(Exchange(request.method, target, status, applied))
        for callback in self.on_exchange:
            callback(request.method, target, status)
        return await send(request, status, headers, body, truncate_keep=truncate)

    async def _plain_latency(self, request: web.Request) -> None:
        delay = self.latency_ms
        transport = request.transport
        if self.connect_latency_ms and transport is not None and id(transport) not in self._seen_connections:
            self._seen_connections.add(id(transport))
            delay += self.connect_latency_ms
        if delay:
            await asyncio.sleep(delay / 1000)

    async def _answer(self, request: web.Request, fault: Fault | None) -> tuple[int, CIMultiDict, bytes]:
        path = request.raw_path.split("?", 1)[0]
        if self.ghcr:
            if path == "/token" and self.token_upstream:
                return await self._forward(request, self.token_upstream)
            if path == "/v2/_catalog":
                return 404, CIMultiDict({"Content-Type": "application/json"}), _oci_error("NOT_FOUND", "404 page not found")
            if _REFERRERS.match(path):
                return 404, CIMultiDict({"Content-Type": "application/json"}), _oci_error("NOT_FOUND", "404 page not found")
            if path.startswith("/v2/") and self._revoked(request):
                return self._challenge(request, path)
            if request.method == "GET" and _TAGS_LIST.match(path):
                return await self._tags_page(request, _TAGS_LIST.match(path)["name"])
            if request.method == "GET" and self.cdn is not None and _BLOB.match(path):
                return await self._blob_redirect(request, _BLOB.match(path)["digest"], fault)
        status, headers, body = await self._forward(request, self.upstream)
        if self.ghcr and "WWW-Authenticate" in headers:
            realm = f'realm="{request.scheme}://{request.host}/token"'
            headers["WWW-Authenticate"] = _REALM.sub(realm, headers["WWW-Authenticate"], count=1)
        return status, headers, body

    def _revoked(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self.revoked_upto:
            return False
        try:
            jti = jwt.decode(token, options={"verify_signature": False}).get("jti", "")
            return int(str(jti).rsplit("-", 1)[1]) <= self.revoked_upto
        except (jwt.PyJWTError, ValueError, IndexError):
            return False

    def _challenge(self, request: web.Request, path: str) -> tuple[int, CIMultiDict, bytes]:
        """The 401 distribution gives an expired token, with the realm on this host."""
        params = [f'realm="{request.scheme}://{request.host}/token"', f'service="{self.service}"']
        match = re.match(r"^/v2/(?P<name>.+)/(?:manifests|blobs|tags)/", path)
        if match:
            actions = "pull" if request.method in ("GET", "HEAD") else "pull,push"
            params.append(f'scope="repository:{match["name"]}:{actions}"')
        headers = CIMultiDict({"Content-Type": "application/json; charset=utf-8"})
        headers["WWW-Authenticate"] = "Bearer " + ",".join(params)
        headers["Docker-Distribution-Api-Version"] = "registry/2.0"
        return 401, headers, _oci_error("UNAUTHORIZED", "authentication required")

    async def _forward(self, request: web.Request, base: str, target: str | None = None) -> tuple[int, CIMultiDict, bytes]:
        assert self._session is not None
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "content-length")
        data = await request.read() if request.can_read_body else None
        url = URL(base + (target or request.raw_path), encoded=True)
        try:
            async with self._session.request(
                request.method, url, headers=headers, data=data, allow_redirects=False, skip_auto_headers=("Accept-Encoding",)
            ) as resp:
                body = await resp.read()
                out = CIMultiDict((k, v) for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP)
                return resp.status, out, body
        except aiohttp.ClientError as exc:
            return 502, CIMultiDict({"Content-Type": "text/plain"}), f"bad gateway: {exc}".encode()

    async def _tags_page(self, request: web.Request, name: str) -> tuple[int, CIMultiDict, bytes]:
        """ghcr's tags/list: sorted, ``n`` per page (default and max 100), ``last`` exclusive."""
        status, headers, body = await self._forward(request, self.upstream, f"/v2/{name}/tags/list")
        if status == 404 and b"NAME_UNKNOWN" in body and self.known_repository and self.known_repository(name):
            status, body = 200, json.dumps({"name": name, "tags": []}).encode()
        if status != 200:
            if "WWW-Authenticate" in headers:
                realm = f'realm="{request.scheme}://{request.host}/token"'
                headers["WWW-Authenticate"] = _REALM.sub(realm, headers["WWW-Authenticate"], count=1)
            return status, headers, body
        tags = sorted(json.loads(body).get("tags") or [])
        query = dict(parse_qsl(request.raw_path.partition("?")[2]))
        try:
            n = int(query.get("n", TAGS_PAGE))
        except ValueError:
            n = TAGS_PAGE
        n = max(0, min(n, TAGS_PAGE))
        if query.get("last"):
            tags = [t for t in tags if t > query["last"]]
        page = tags[:n]
        out = CIMultiDict({"Content-Type": "application/json", "Docker-Distribution-Api-Version": "registry/2.0"})
        if len(tags) > n and page:
            out["Link"] = f'</v2/{name}/tags/list?{urlencode({"last": page[-1], "n": n}, quote_via=quote)}>; rel="next"'
        return 200, out, json.dumps({"name": name, "tags": page}).encode()

    # -- anomalous listings (faults.LISTING_KINDS) ---------------------------------------

    async def _spoil_listing(
        self, request: web.Request, fault: Fault, status: int, headers: CIMultiDict, body: bytes
    ) -> tuple[CIMultiDict, bytes] | None:
        """The spoiled page, or None when this answer is no listing page (the rule stays pending)."""
        if request.method != "GET" or not 200 <= status < 300:
            return None
        doc = decode_listing(body)
        if doc is None or not listing_applies(fault, doc):
            return None
        target = await self._loop_target(request, fault, headers, doc) if fault.kind == "loop_link" else None
        return spoil_listing(fault, headers, doc, target)

    async def _loop_target(self, request: web.Request, fault: Fault, headers: CIMultiDict, doc) -> str:
        """Where a ``loop_link`` sends ``next``: an earlier page of the same listing."""
        p = fault.params
        if p.get("url"):
            return str(p["url"])
        to_page = 1 if p.get("to_page", 1) == "first" else p.get("to_page", 1)
        if isinstance(doc, list):  # GitHub: numbered pages, absolute URLs
            here = f"{request.scheme}://{request.host}{request.raw_path}"
            if to_page == "self":
                return here
            links = {rel: url for url, rel in parse_link(headers.get("Link"))}
            base = links.get("next") or links.get("first") or links.get("prev") or links.get("last") or here
            return with_page(base, to_page)
        # The registry: cursor pages (``n``, exclusive ``last``), relative URLs.
        path = request.raw_path.split("?", 1)[0]
        if to_page == "self":
            return request.raw_path
        n = self._page_size(request, headers, path)
        if to_page == 1:
            return path if n is None else f"{path}?n={n}"
        n = n or max(1, len(listing_items(doc) or ()))
        # Page k starts after the last item of the first k-1 pages (both listings are sorted).
        status, _, body = await self._forward(request, self.upstream, f"{path}?n={(to_page - 1) * n}")
        earlier = sorted(listing_items(decode_listing(body) or []) or []) if status == 200 else []
        if not earlier:
            return f"{path}?n={n}"
        cursor = earlier[min(len(earlier), (to_page - 1) * n) - 1]
        return f"{path}?{urlencode({'last': cursor, 'n': n}, quote_via=quote)}"

    def _page_size(self, request: web.Request, headers: CIMultiDict, path: str) -> int | None:
        """The ``n`` this registry page was served with (None: unpaged)."""
        raw = request.rel_url.query.get("n")
        if raw is None:
            for url, rel in parse_link(headers.get("Link")):
                if rel == "next":
                    raw = dict(parse_qsl(url.partition("?")[2])).get("n")
        ghcr_tags = self.ghcr and _TAGS_LIST.match(path) is not None
        try:
            n = int(raw) if raw is not None else (TAGS_PAGE if ghcr_tags else None)
        except ValueError:
            n = TAGS_PAGE if ghcr_tags else None
        if n is not None and ghcr_tags:
            n = max(1, min(n, TAGS_PAGE))
        return n

    async def _blob_redirect(self, request: web.Request, digest: str, fault: Fault | None) -> tuple[int, CIMultiDict, bytes]:
        status, headers, body = await self._forward(request, self.upstream)
        if status != 200:
            if "WWW-Authenticate" in headers:
                realm = f'realm="{request.scheme}://{request.host}/token"'
                headers["WWW-Authenticate"] = _REALM.sub(realm, headers["WWW-Authenticate"], count=1)
            return status, headers, body
        assert self.cdn is not None
        truncate = None
        if fault is not None and fault.kind in ("corrupt_body", "malformed_json", "truncate"):
            # The bytes live on the CDN host: spoil them there.
            if fault.kind == "truncate":
                truncate = float(fault.params.get("keep", 0.5))
            else:
                _, body = spoil_body(fault, headers, body)
            self.faults.fire(fault)
            fault.fired_on = request
        location = self.cdn.put(digest, body, headers.get("Content-Type", "application/octet-stream"), truncate_keep=truncate)
        out = CIMultiDict({"Location": location, "Content-Type": "text/html; charset=utf-8"})
        out["Docker-Distribution-Api-Version"] = "registry/2.0"
        return 307, out, f'<a href="{location}">Temporary Redirect</a>.\n'.encode()
