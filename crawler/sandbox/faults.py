"""Fault injection on demand: which faults exist, which request gets one, and how it is sent.

A ``FaultTable`` holds rules (``kind``, a path regex, a method, ``times`` or a
seeded ``probability``); servers ask it for the rules matching each request. The
``emit_*`` helpers put a fault on the wire with aiohttp: canned error replies,
a connection reset (RST), a body cut short after its ``Content-Length``, broken
JSON, a wrong ``Docker-Content-Digest``, flipped bytes.

Kinds (params in brackets):

- ``latency`` [ms] — delay, then answer normally
- ``status`` [status=503, body, headers] — a canned error reply
- ``retry_after`` [seconds=1, status=429] — 429 with a ``Retry-After`` header
- ``retry_after_body`` — 429 with only ghcr's body text ("retry-after: 880µs, …")
- ``secondary_limit`` [retry_after] — GitHub's 403 secondary-rate-limit body
- ``reset`` — close the connection without a response
- ``truncate`` [keep=0.5] — full ``Content-Length``, then part of the body, close
- ``malformed_json`` — 200 with a body that is not JSON
- ``wrong_digest`` — a ``Docker-Content-Digest`` that is not the body's
- ``corrupt_body`` — flip bytes of the body, keep every header
"""

from __future__ import annotations

import hashlib
import random
import re
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from multidict import CIMultiDict

PRE_KINDS = frozenset({"status", "retry_after", "retry_after_body", "secondary_limit", "reset"})
BODY_KINDS = frozenset({"truncate", "malformed_json", "wrong_digest", "corrupt_body"})
KINDS = frozenset({"latency"}) | PRE_KINDS | BODY_KINDS

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
    times: int | None
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
        times: int | None = None,
        probability: float | None = None,
        **params,
    ) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(KINDS)}")
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
