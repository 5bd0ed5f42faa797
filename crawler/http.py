"""The one HTTP client every stage uses: per-host concurrency slots, the
rate-limit governor, retries with jittered backoff, redirects that never carry
Authorization to another origin, body caps, counters, and one structured log
event per exchange (never a header value, never a query string).

Layering (after httpx): request -> _attempts (retry, rate-limit waits) ->
_follow (redirects, auth stripping) -> _exchange (one aiohttp round trip).
aiohttp errors are translated here and nowhere else.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import re
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping
from urllib.parse import urljoin, urlsplit

import aiohttp
import structlog
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from . import logs
from .errors import HttpStatusError, ParseError, RateLimitedError, UnreachableError
from .ratelimit import Governor

log = structlog.get_logger("crawler.http")

RETRY_STATUSES = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
MAX_RATE_LIMIT_WAITS = 8
BODY_RETRIES = 2   # refetches of a body that failed to parse or verify


def origin(url: str) -> tuple[str, str, int]:
    return _origin_of(urlsplit(url))


def _origin_of(parts) -> tuple[str, str, int]:
    return _netloc_origin(parts.scheme, parts.netloc)


@functools.lru_cache(maxsize=256)
def _netloc_origin(scheme: str, netloc: str) -> tuple[str, str, int]:
    # A run talks to a handful of hosts; urllib's hostname/port properties
    # parse the netloc again on every access, so remember them per netloc.
    parts = urlsplit(f"{scheme}://{netloc}")
    port = parts.port or (443 if scheme == "https" else 80)
    return (scheme, (parts.hostname or "").lower(), port)


# The origins credentials belong to are a few base URLs, asked once per request.
_cached_origin = functools.lru_cache(maxsize=64)(origin)


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.lower()


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: CIMultiDictProxy
    body: bytes
    url: str                      # the final URL, after redirects

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(slots=True)
class Counters:
    """What a run spent, for the run record and the benchmark."""

    requests: Counter = field(default_factory=Counter)     # by kind
    not_modified: int = 0
    faults: Counter = field(default_factory=Counter)       # by fault type
    bytes: int = 0
    redirects: int = 0

    @property
    def total(self) -> int:
        return sum(self.requests.values())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 4
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        # "equal jitter": half fixed, half random, so retries spread out.
        step = min(self.max_s, self.base_s * (2 ** attempt))
        return step / 2 + rng() * step / 2


class _Transient(Exception):
    """A failure worth retrying; `fault` names it for the counters."""

    def __init__(self, fault: str, detail: str) -> None:
        super().__init__(detail)
        self.fault = fault
        self.detail = detail


class HttpClient:
    def __init__(self, *, timeout_s: float = 30.0, concurrency: int = 16,
                 retry: RetryPolicy = RetryPolicy(), reserve: int = 50, max_wait_s: float = 900.0,
                 insecure_hosts: frozenset[str] = frozenset(),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random,
                 user_agent: str = "ghcr-inventory/0.1") -> None:
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.retry = retry
        self.reserve = reserve
        self.max_wait_s = max_wait_s
        self.insecure_hosts = insecure_hosts
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.user_agent = user_agent
        self.counters = Counters()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._governors: dict[str, Governor] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None    # made at the first https request (loading the CA store costs ~0.3 s)

    async def __aenter__(self) -> "HttpClient":
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=self.concurrency,
                                         ttl_dns_cache=300, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=min(self.timeout_s, 10)),
            headers={"User-Agent": self.user_agent})
        # aiohttp silently retries an idempotent request once when a reused
        # connection was reset; our policy retries, paces and counts every
        # fault instead, so switch its private retry off (harmless if renamed).
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def governor(self, key: str) -> Governor:
        gov = self._governors.get(key)
        if gov is None:
            gov = Governor(key, reserve=self.reserve, max_wait_s=self.max_wait_s,
                           sleep=self.sleep, clock=self.clock)
            self._governors[key] = gov
        return gov

    def budgets(self) -> dict[str, tuple[int, int | None]]:
        """(remaining, limit) of every rate budget a server announced, by governor."""
        return {key: (gov.rate_limit.remaining, gov.rate_limit.limit) for key, gov in self._governors.items()
                if gov.rate_limit.remaining is not None}

    def _slot(self, host: str) -> asyncio.Semaphore:
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = asyncio.Semaphore(self.concurrency)
        return slot

    async def request(self, method: str, url: str, *, kind: str,
                      headers: Mapping[str, str] | None = None,
                      auth: str | None = None, auth_origin: str | None = None,
                      body: bytes | None = None, max_bytes: int = 8 * 1024 * 1024,
                      governor_key: str | None = None) -> Response:
        """One logical request. `auth` (an Authorization value) is sent only to
        `auth_origin` (default: the URL's own origin), never after a redirect
        to another origin. Retries transient failures of GET/HEAD (and of
        other methods when they are known idempotent, e.g. GraphQL queries)."""
        parts = urlsplit(url)   # once: every hop below needs it, and splitting is not cheap
        host = parts.netloc.lower()
        gov = self.governor(governor_key or host)
        rate_waits = 0
        attempt = 0
        while True:
            await gov.before_request()
            try:
                async with self._slot(host):
                    resp = await self._follow(method, url, parts, kind=kind, headers=headers, auth=auth,
                                              auth_origin=auth_origin or url, body=body,
                                              max_bytes=max_bytes)
            except _Transient as exc:
                self.counters.faults[exc.fault] += 1
                if attempt >= self.retry.retries:
                    raise UnreachableError(f"{exc.detail} (gave up after {attempt + 1} attempts)",
                                           where=_where(method, url)) from None
                await self._backoff(attempt, method, url, exc.fault)
                attempt += 1
                continue
            penalty = gov.observe(resp.status, resp.headers, resp.body)
            if penalty is not None:
                self.counters.faults[f"http_{resp.status}_rate_limited"] += 1
                rate_waits += 1
                if rate_waits > MAX_RATE_LIMIT_WAITS:
                    raise RateLimitedError(f"still rate limited after {rate_waits - 1} waits",
                                           where=_where(method, url))
                log.warning("rate_limited", host=host, status=resp.status,
                            wait_s=round(penalty, 3), kind=kind)
                continue  # before_request() sleeps until blocked_until
            if resp.status in RETRY_STATUSES:
                self.counters.faults[f"http_{resp.status}"] += 1
                if attempt >= self.retry.retries:
                    raise UnreachableError(f"HTTP {resp.status} (gave up after {attempt + 1} attempts)",
                                           where=_where(method, url))
                await self._backoff(attempt, method, url, f"http_{resp.status}")
                attempt += 1
                continue
            return resp

    async def _backoff(self, attempt: int, method: str, url: str, fault: str) -> None:
        delay = self.retry.delay(attempt, self.rng)
        log.info("retry", method=method, host=host_of(url), path=urlsplit(url).path,
                 fault=fault, attempt=attempt + 1, delay_s=round(delay, 3))
        await self.sleep(delay)

    async def _follow(self, method: str, url: str, parts, *, kind: str, headers, auth: str | None,
                      auth_origin: str, body: bytes | None, max_bytes: int) -> Response:
        """`parts` is `urlsplit(url)` of the first hop."""
        allowed = _cached_origin(auth_origin)
        for hop in range(MAX_REDIRECTS + 1):
            if hop:
                parts = urlsplit(url)
            send = CIMultiDict(headers) if headers else CIMultiDict()
            if auth and _origin_of(parts) == allowed:
                send["Authorization"] = auth
            resp = await self._exchange(method, url, parts, kind=kind if hop == 0 else "redirect",
                                        headers=send, body=body, max_bytes=max_bytes)
            location = resp.headers.get("Location")
            if resp.status not in REDIRECT_STATUSES or not location:
                return resp
            self.counters.redirects += 1
            url = urljoin(url, location)
            scheme = urlsplit(url).scheme
            if scheme not in ("http", "https"):
                raise ParseError(f"redirect to a non-HTTP URL {scheme}:…", where=_where(method, url))
            if resp.status == 303:
                method, body = "GET", None
        raise ParseError(f"more than {MAX_REDIRECTS} redirects", where=_where(method, url))

    def _ssl_for(self, parts) -> ssl.SSLContext | bool:
        if parts.scheme != "https":
            return True                 # aiohttp's default; no TLS on this hop
        if _origin_of(parts)[1] in self.insecure_hosts:
            return False
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _exchange(self, method: str, url: str, parts, *, kind: str, headers: CIMultiDict,
                        body: bytes | None, max_bytes: int) -> Response:
        """One round trip; `parts` is `urlsplit(url)`, split once by the caller."""
        assert self._session is not None, "HttpClient used outside `async with`"
        host = parts.netloc.lower()
        ssl_ctx = self._ssl_for(parts)
        started = time.perf_counter()
        self.counters.requests[kind] += 1
        try:
            async with self._session.request(method, URL(url, encoded=True), headers=headers,
                                             data=body, allow_redirects=False, ssl=ssl_ctx) as resp:
                data = b"" if method == "HEAD" else await _read_capped(resp, max_bytes, url)
                result = Response(resp.status, resp.headers, data, url)
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            raise UnreachableError(f"TLS failure: {exc.__class__.__name__}", where=host) from None
        except aiohttp.ClientPayloadError as exc:
            raise _Transient("truncated", f"body cut short ({_short(exc)})") from None
        except aiohttp.ClientConnectorError as exc:
            raise _Transient("connect", _cannot_connect(exc)) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise _Transient("reset", f"connection reset ({_short(exc)})") from None
        except asyncio.TimeoutError:
            raise _Transient("timeout", f"no answer within {self.timeout_s:g}s") from None
        except aiohttp.ClientResponseError as exc:
            raise _Transient("protocol", f"bad HTTP response ({_short(exc)})") from None
        except aiohttp.ClientError as exc:
            raise _Transient("client", f"{exc.__class__.__name__}: {_short(exc)}") from None
        except ValueError as exc:   # aiohttp refuses control characters in the request (header injection)
            raise HttpStatusError(f"refused to send the request: {_short(exc)}", where=_where(method, url)) from None
        self.counters.bytes += len(result.body)
        if result.status == 304:
            self.counters.not_modified += 1
        if logs.enabled(logging.DEBUG):
            log.debug("http", method=method, host=host, path=parts.path, status=result.status,
                      ms=round((time.perf_counter() - started) * 1000, 1), kind=kind,
                      cached=result.status == 304, bytes=len(result.body))
        return result


async def refetch_bad_bodies(once: Callable[[], Awaitable], counters: Counters, where: str,
                             retries: int = BODY_RETRIES):
    """Run `once` (fetch + parse/verify) again when the body was bad: a proxy
    that truncated or garbled one answer should cost a refetch, not the
    package. A body still bad after `retries` refetches fails for real."""
    for attempt in range(retries + 1):
        try:
            return await once()
        except ParseError as exc:
            counters.faults["bad_body"] += 1
            if attempt == retries:
                if exc.where is None:  # pure parsers do not know the URL; say where
                    raise type(exc)(exc.message, where=where) from exc
                raise
            log.info("refetch_bad_body", where=where, error=exc.message, attempt=attempt + 1)
    raise AssertionError("unreachable")  # pragma: no cover


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int, url: str) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise ParseError(f"body of {declared} bytes exceeds the {max_bytes}-byte limit",
                         where=_where(resp.method, url))
    if declared is not None:
        # aiohttp's parser ends the body at the declared length (and fails a
        # shorter one with ClientPayloadError), so it cannot pass the cap:
        # one read instead of a loop of chunks.
        return await resp.read()
    chunks, total = [], 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > max_bytes:
            raise ParseError(f"body exceeds the {max_bytes}-byte limit", where=_where(resp.method, url))
        chunks.append(chunk)
    return b"".join(chunks)


def _where(method: str, url: str) -> str:
    parts = urlsplit(url)
    return f"{method} {parts.scheme}://{parts.netloc}{parts.path}"


# aiohttp's connector errors print their SSL context's repr
# ("ssl:<ssl.SSLContext object at 0x7f…>", or "ssl:default"): noise, never a reason.
_SSL_NOISE = re.compile(r"\s*ssl:(?:<[^>]*>|\S+)")


def _short(exc: BaseException) -> str:
    text = _SSL_NOISE.sub("", str(exc)) or exc.__class__.__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _cannot_connect(exc: aiohttp.ClientConnectorError) -> str:
    """`cannot connect to HOST:PORT (Connection refused)` from the OSError
    aiohttp wraps: asyncio words a refusal "Connect call failed ('127.0.0.1',
    8080)", so the reason comes from the errno; a DNS failure keeps its own
    text ("Name or service not known")."""
    os_error = getattr(exc, "os_error", None)
    code = getattr(os_error, "errno", None)
    if isinstance(os_error, socket.gaierror) or not isinstance(code, int) or code <= 0:
        reason = getattr(os_error, "strerror", None) or _short(os_error or exc)
    else:
        reason = os.strerror(code)
    host, port = getattr(exc, "host", None), getattr(exc, "port", None)
    if not host:
        return f"cannot connect ({reason})"
    return f"cannot connect to {f'[{host}]' if ':' in host else host}:{port} ({reason})"
