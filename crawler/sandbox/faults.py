"""Fault injection on demand: which faults exist, which request gets one, and how it is sent.

A ``FaultTable`` holds rules (``kind``, a path regex, a method, ``times`` or a
seeded ``probability``); servers ask it for the rules matching each request. The
``emit_*`` helpers put a fault on the wire with aiohttp: canned error replies,
a connection reset (RST), a body cut short after its ``Content-Length``, broken
JSON, a wrong ``Docker-Content-Digest``, flipped bytes, anomalous listings.

``times`` None with ``probability`` None means once; ``times=FOREVER`` keeps a
rule until ``clear()`` without drawing from the seeded generator.

Kinds (params in brackets):

- ``latency`` [ms] — delay, then answer normally
- ``status`` [status=503, body, headers] — a canned error reply
- ``retry_after`` [seconds=1, status=429] — 429 with a ``Retry-After`` header
- ``retry_after_body`` — 429 with only ghcr's body text ("retry-after: 880µs, …")
- ``secondary_limit`` [retry_after] — GitHub's 403 secondary-rate-limit body
- ``denied`` [message] — 403 with the OCI error body ``DENIED`` (a registry
  refusing one repository: aim the path regex at ``/v2/<repo>/(manifests|blobs|tags)/``,
  or use ``World.deny_repository``)
- ``reset`` — close the connection without a response
- ``truncate`` [keep=0.5] — full ``Content-Length``, then part of the body, close
- ``malformed_json`` — 200 with a body that is not JSON
- ``wrong_digest`` — a ``Docker-Content-Digest`` that is not the body's
- ``corrupt_body`` — flip bytes of the body, keep every header

Listing kinds spoil one page of a paged listing: a GitHub REST listing (a JSON
array paged by ``page``, ``Link`` with absolute URLs), the registry's
``_catalog`` (``{"repositories": […]}``) or ``tags/list`` (``{"tags": […]}``),
both paged by ``n``/``last`` with a relative ``Link``. They fire only on a 2xx
GET whose body is such a listing (other answers leave the rule pending); a
weak ``ETag`` is recomputed for the spoiled body, so a conditional request
never revives the honest page.

- ``loop_link`` [to_page=1 | "first" | "self", url] — the page's ``rel="next"``
  points back to page ``to_page`` (added if the page had none: a listing that
  never ends). GitHub: the next URL with ``page=to_page``; registry: page 1 is
  ``?n=N`` (no ``last``), page k the ``last`` cursor ending page k-1. ``self``
  is the page just served; ``url`` sets the next target verbatim.
- ``shrink`` [keep=half, drop_next=False] — only the first ``keep`` items; the
  ``Link`` stays as it was (items skipped silently), or with ``drop_next`` loses
  ``next`` and ``last`` (the listing looks finished)
- ``relink`` [rel="last", url] — the page's ``rel`` link set to ``url``
  verbatim (added at the end if the page had none), the others kept
- ``bad_item`` [index=0, variant="no_name", item] — one item replaced by an
  invalid one, the others intact. Variants for objects (GitHub packages or
  versions): ``no_name`` (``name`` removed), ``bad_name`` (whitespace and
  control characters), ``wrong_types`` (``id`` a string, ``name`` a number,
  ``version_count`` a string), ``not_object`` (a bare string); for strings
  (tags, repositories): ``no_name`` → ``""``, ``bad_name`` → ``"bad tag\t\x07"``,
  ``wrong_types`` → ``12345``, ``not_object`` → ``{"tag": 1}``. ``item`` is any
  JSON value to put there instead. On the API front the emulator validated the
  honest body before the proxy spoiled it, so no OpenAPI violation is recorded.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

import orjson
from aiohttp import web
from multidict import CIMultiDict

PRE_KINDS = frozenset({"status", "retry_after", "retry_after_body", "secondary_limit", "denied", "reset"})
LISTING_KINDS = frozenset({"loop_link", "shrink", "bad_item", "relink"})
BODY_KINDS = frozenset({"truncate", "malformed_json", "wrong_digest", "corrupt_body"}) | LISTING_KINDS
KINDS = frozenset({"latency"}) | PRE_KINDS | BODY_KINDS
FOREVER = math.inf  # ``times=FOREVER``: fire on every matching request until cleared
BAD_ITEM_VARIANTS = ("no_name", "bad_name", "wrong_types", "not_object")

GHCR_429_BODY = {"errors": [{"code": "TOOMANYREQUESTS", "message": "retry-after: 880µs, allowed: 44000/minute"}]}
SECONDARY_LIMIT_BODY = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID 5A4D:0:0:0:0.",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
    "status": "403",
}


@dataclass
class Fault:
    """One injection rule; ``times`` None with ``probability`` None means once."""

    kind: str
    path: re.Pattern
    method: str | None
    times: int | float | None  # float only for FOREVER
    probability: float | None
    params: dict = field(default_factory=dict)
    fired: int = 0
    fired_on: object = field(default=None, repr=False, compare=False)  # the request a server already spent it on

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path.search(target) is not None

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


class FaultTable:
    """Thread-safe fault rules (tests inject from their thread; servers read on the world loop)."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()

    def inject(
        self,
        kind: str,
        path: str = ".*",
        method: str | None = None,
        times: int | float | None = None,
        probability: float | None = None,
        **params,
    ) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(KINDS)}")
        if kind == "bad_item" and "item" not in params and params.get("variant", "no_name") not in BAD_ITEM_VARIANTS:
            raise ValueError(f"unknown bad_item variant {params['variant']!r}; one of {BAD_ITEM_VARIANTS}")
        if kind == "relink" and not isinstance(params.get("url"), str):
            raise ValueError("relink needs url, the link's new target")
        if kind == "loop_link" and "url" not in params:
            to_page = params.get("to_page", 1)
            if to_page not in ("first", "self") and not (isinstance(to_page, int) and to_page >= 1):
                raise ValueError(f"loop_link to_page must be a page number >= 1, 'first' or 'self', not {to_page!r}")
        if times is None and probability is None:
            times = 1
        fault = Fault(kind, re.compile(path), method, times, probability, dict(params))
        with self._lock:
            self._rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    def pick(self, method: str, target: str) -> tuple[list[Fault], Fault | None]:
        """(latency rules that fire, the first other rule that fires) for one request.

        A body fault is only *offered* here; the caller confirms with ``fire``
        once the upstream answer was one it can spoil (2xx).
        """
        latency: list[Fault] = []
        chosen: Fault | None = None
        with self._lock:
            for fault in self._rules:
                if fault.exhausted or not fault.matches(method, target):
                    continue
                if fault.kind != "latency" and chosen is not None:
                    continue
                if fault.probability is not None and self.rng.random() >= fault.probability:
                    continue
                if fault.kind == "latency":
                    latency.append(fault)
                    self._fire_locked(fault)
                else:
                    chosen = fault
                    if fault.kind in PRE_KINDS:
                        self._fire_locked(fault)
            self._rules = [f for f in self._rules if not f.exhausted]
        return latency, chosen

    def fire(self, fault: Fault) -> None:
        with self._lock:
            self._fire_locked(fault)
            self._rules = [f for f in self._rules if not f.exhausted]

    def _fire_locked(self, fault: Fault) -> None:
        fault.fired += 1
        self.injected[fault.kind] += 1


# -- putting faults on the wire ------------------------------------------------------


def abort_connection(request: web.Request) -> None:
    """Reset the client's connection: SO_LINGER 0 makes close() send RST, not FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def pre_fault_response(fault: Fault) -> tuple[int, CIMultiDict, bytes]:
    """The canned reply of a PRE kind other than ``reset``."""
    p = fault.params
    headers = CIMultiDict({"Content-Type": "application/json"})
    if fault.kind == "status":
        status = int(p.get("status", 503))
        body = p.get("body", {"errors": [{"code": "UNAVAILABLE", "message": f"injected {status}"}]})
        for k, v in (p.get("headers") or {}).items():
            headers[k] = v
    elif fault.kind == "retry_after":
        status = int(p.get("status", 429))
        headers["Retry-After"] = str(p.get("seconds", 1))
        body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "rate limit exceeded"}]}
    elif fault.kind == "retry_after_body":
        status, body = 429, GHCR_429_BODY
    elif fault.kind == "secondary_limit":
        status, body = 403, SECONDARY_LIMIT_BODY
        if p.get("retry_after") is not None:
            headers["Retry-After"] = str(p["retry_after"])
    elif fault.kind == "denied":
        # distribution's errcode.ErrorCodeDenied, as ghcr sends it for a package the token may not read.
        status = 403
        message = p.get("message", "requested access to the resource is denied")
        body = {"errors": [{"code": "DENIED", "message": message, "detail": None}]}
        headers["Docker-Distribution-Api-Version"] = "registry/2.0"
    else:
        raise ValueError(fault.kind)
    data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else orjson.dumps(body))
    return status, headers, data


def spoil_body(fault: Fault, headers: CIMultiDict, body: bytes) -> tuple[CIMultiDict, bytes]:
    """Apply a body kind other than ``truncate`` (which needs the wire)."""
    headers = CIMultiDict(headers)
    if fault.kind == "malformed_json":
        body = fault.params.get("body", b'{"errors": [{"code": "UNKNOWN", "message": "half a docu')
        if isinstance(body, str):
            body = body.encode()
    elif fault.kind == "wrong_digest":
        wrong = "sha256:" + hashlib.sha256(b"not the body" + body).hexdigest()
        headers["Docker-Content-Digest"] = fault.params.get("digest", wrong)
    elif fault.kind == "corrupt_body":
        if body:
            data = bytearray(body)
            for i in range(len(data) // 2, min(len(data), len(data) // 2 + 4)):
                data[i] ^= 0xFF
            body = bytes(data)
        else:
            body = b"\xff"
    return headers, body


# -- anomalous listings ----------------------------------------------------------------

_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


def parse_link(header: str | None) -> list[tuple[str, str]]:
    """``<u1>; rel="next", <u2>; rel="last"`` → [(u1, "next"), (u2, "last")] (the sandbox's own shapes only)."""
    return _LINK.findall(header or "")


def format_link(links: list[tuple[str, str]]) -> str:
    return ", ".join(f'<{url}>; rel="{rel}"' for url, rel in links)


def decode_listing(body: bytes):
    """The decoded body if it is a listing page (a JSON array, or ``tags``/``repositories`` lists), else None."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return doc if listing_items(doc) is not None else None


def listing_items(doc) -> list | None:
    """The list of items inside a decoded listing page (the list object itself, to edit in place)."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        for key in ("tags", "repositories"):
            if isinstance(doc.get(key), list):
                return doc[key]
    return None


def listing_applies(fault: Fault, doc) -> bool:
    """Whether a listing kind can spoil this page (``bad_item`` needs its index to exist)."""
    items = listing_items(doc)
    if items is None:
        return False
    if fault.kind == "bad_item":
        index = int(fault.params.get("index", 0))
        return -len(items) <= index < len(items)
    return True


def with_page(url: str, page: int) -> str:
    """A GitHub page URL with its ``page`` query parameter set (others kept, in order)."""
    base, _, query = url.partition("?")
    items = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "page"] + [("page", str(page))]
    return f"{base}?{urlencode(items)}"


def bad_item(item, variant: str):
    """An invalid stand-in for one listing item (see ``bad_item`` in the module docstring)."""
    if isinstance(item, dict):
        item = dict(item)
        if variant == "no_name":
            item.pop("name", None)
        elif variant == "bad_name":
            item["name"] = "bad name\t\x07 \n"
        elif variant == "wrong_types":
            item.update(id=str(item.get("id", "1")), name=12345)
            if "version_count" in item:
                item["version_count"] = "many"
        elif variant == "not_object":
            item = "garbage"
        return item
    return {"no_name": "", "bad_name": "bad tag\t\x07", "wrong_types": 12345, "not_object": {"tag": 1}}[variant]


def spoil_listing(fault: Fault, headers: CIMultiDict, doc, loop_target: str | None = None) -> tuple[CIMultiDict, bytes]:
    """Apply a listing kind to a decoded page; ``loop_target`` is the URL ``loop_link`` points ``next`` at."""
    headers = CIMultiDict(headers)
    items = listing_items(doc)
    assert items is not None
    p = fault.params
    links = parse_link(headers.get("Link"))
    if fault.kind == "loop_link":
        assert loop_target is not None
        rels = [rel for _, rel in links]
        at = rels.index("next") if "next" in rels else (rels.index("prev") + 1 if "prev" in rels else 0)
        links = [link for link in links if link[1] != "next"]
        links.insert(min(at, len(links)), (loop_target, "next"))
    elif fault.kind == "shrink":
        keep = int(p.get("keep", len(items) // 2))
        del items[max(0, keep):]
        if p.get("drop_next"):
            links = [link for link in links if link[1] not in ("next", "last")]
    elif fault.kind == "relink":
        rel = p.get("rel", "last")
        at = next((i for i, link in enumerate(links) if link[1] == rel), len(links))
        links[at:at + 1] = [(p["url"], rel)]
    elif fault.kind == "bad_item":
        index = int(p.get("index", 0))
        items[index] = p["item"] if "item" in p else bad_item(items[index], p.get("variant", "no_name"))
    else:
        raise ValueError(fault.kind)
    headers.popall("Link", None)
    if links:
        headers["Link"] = format_link(links)
    body = orjson.dumps(doc)
    if headers.get("ETag", "").startswith("W/"):
        headers["ETag"] = f'W/"{hashlib.sha256(body).hexdigest()}"'
    return headers, body


async def send(
    request: web.Request, status: int, headers: CIMultiDict, body: bytes, *, truncate_keep: float | None = None
) -> web.StreamResponse:
    """Send a reply; with ``truncate_keep`` promise the whole body but send only a part, then close."""
    headers = CIMultiDict(headers)
    headers.popall("Transfer-Encoding", None)
    if request.method == "HEAD":
        # Keep the upstream's Content-Length: a HEAD tells the size of the GET.
        return web.Response(status=status, headers=headers)
    headers.popall("Content-Length", None)
    if truncate_keep is None:
        return web.Response(status=status, body=body, headers=headers)
    keep = max(0, min(len(body) - 1, int(len(body) * truncate_keep)))
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[:keep])
    # close() flushes what was written, then FIN: the client sees a short body.
    if request.transport is not None:
        request.transport.close()
    return response
