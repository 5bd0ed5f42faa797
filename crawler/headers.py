"""Pure parsers for the HTTP headers the crawler acts on.

WWW-Authenticate (token auth challenges), Link (pagination), GitHub's
``x-ratelimit-*`` headers, Retry-After (header and ghcr's body form), ETag,
and the test for GitHub's secondary rate limit. No I/O: strings in, values
out; anything malformed raises :class:`~crawler.errors.ParseError` with a
one-line message.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urljoin

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from crawler.errors import ParseError

__all__ = [
    "Challenge",
    "RateLimit",
    "is_secondary_rate_limit",
    "parse_etag",
    "parse_link",
    "parse_rate_limit",
    "parse_retry_after",
    "parse_retry_after_body",
    "parse_www_authenticate",
]

# Longest wait any Retry-After may ask for. RFC 9111 §1.2.2 lets a recipient
# cap delta-seconds at 2**31; the governor decides whether to wait that long.
MAX_RETRY_AFTER = float(2**31)

_SHOW = 60  # characters of a bad value quoted in an error message


def _show(value: str) -> str:
    """Quote (a prefix of) a bad value for a one-line error message."""
    text = value if len(value) <= _SHOW else value[:_SHOW] + "…"
    return repr(text)


# --------------------------------------------------------------------------
# A small cursor over a header value (RFC 9110 §5.6 tokens, quoted strings)

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_END_OF_ELEMENT = re.compile(r"[ \t]*(?:,|\Z)")
_PARAM_AHEAD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]*=")
_WS = " \t"


def _unquoted_char(char: str) -> bool:
    """Visible, and not a delimiter of lists, parameters or quotes."""
    return char > " " and char != "\x7f" and char not in ',;"'


class _Cursor:
    """Position in a header value; every method consumes or raises ParseError."""

    __slots__ = ("text", "pos", "what")

    def __init__(self, text: str, what: str) -> None:
        self.text, self.pos, self.what = text, 0, what

    def fail(self, problem: str) -> ParseError:
        return ParseError(f"bad {self.what} header ({problem} at {self.pos}): {_show(self.text)}")

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def skip_commas(self) -> None:
        """Skip OWS and empty list elements (RFC 9110 §5.6.1 ``#rule``)."""
        self.skip_ws()
        while self.peek() == ",":
            self.pos += 1
            self.skip_ws()

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TCHAR:
            self.pos += 1
        if self.pos == start:
            raise self.fail("expected a token")
        return self.text[start : self.pos]

    def quoted(self) -> str:
        """A quoted-string with quoted-pair escapes (RFC 9110 §5.6.4)."""
        if self.peek() != '"':
            raise self.fail("expected a quoted string")
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                if self.pos >= len(self.text):
                    break
                char = self.text[self.pos]
                self.pos += 1
            if (ord(char) < 0x20 and char != "\t") or char == "\x7f":
                raise self.fail("control character in quoted string")
            out.append(char)
        raise self.fail("unterminated quoted string")

    def value(self) -> str:
        """token / quoted-string; unquoted values may hold ``:/`` (see below)."""
        if self.peek() == '"':
            return self.quoted()
        # Lenient on purpose: some registries send unquoted URLs
        # (realm=https://…), which are not tokens. Stop at the delimiters.
        start = self.pos
        while self.pos < len(self.text) and _unquoted_char(self.text[self.pos]):
            self.pos += 1
        if self.pos == start:
            raise self.fail("expected a value")
        return self.text[start : self.pos]

    def looking_at_param(self) -> bool:
        """True when the input continues with ``token BWS "="``."""
        return _PARAM_AHEAD.match(self.text, self.pos) is not None


# --------------------------------------------------------------------------
# WWW-Authenticate (RFC 9110 §11.6.1, formerly RFC 7235 §4.1)


@dataclass(frozen=True, slots=True)
class Challenge:
    """One auth challenge: ``Bearer realm="…",service="…",scope="…"``.

    ``scheme`` and parameter names are lower-cased (both are
    case-insensitive, RFC 9110 §11.1 and §11.2); values are kept as sent.
    ``token68`` holds the rare ``Scheme base64==`` form.
    """

    scheme: str
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    token68: str | None = None

    def __hash__(self) -> int:
        return hash((self.scheme, frozenset(self.params.items()), self.token68))

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")

    @property
    def error(self) -> str | None:
        return self.params.get("error")


def parse_www_authenticate(value: str | None) -> list[Challenge]:
    """All challenges in one WWW-Authenticate value, in order.

    Grammar (RFC 9110 §11.6.1): ``1#challenge`` where
    ``challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]``. Commas
    separate both challenges and parameters, so after each comma we look
    ahead: ``token =`` starts a parameter, a bare token a new challenge.
    """
    if value is None or not value.strip():
        return []
    cur = _Cursor(value, "WWW-Authenticate")
    challenges: list[Challenge] = []
    cur.skip_commas()
    while not cur.done():
        challenges.append(_challenge(cur))
        cur.skip_commas()
    return challenges


def _challenge(cur: _Cursor) -> Challenge:
    scheme = cur.token().lower()
    if cur.done() or cur.peek() == ",":
        return Challenge(scheme)
    if cur.peek() not in _WS:
        raise cur.fail("expected a space after the auth scheme")
    cur.skip_ws()
    token68 = _TOKEN68.match(cur.text, cur.pos)
    if token68 and _END_OF_ELEMENT.match(cur.text, token68.end()):
        cur.pos = token68.end()
        return Challenge(scheme, token68=token68.group())
    return Challenge(scheme, MappingProxyType(_auth_params(cur)))


def _auth_params(cur: _Cursor) -> dict[str, str]:
    params: dict[str, str] = {}
    while True:
        cur.skip_ws()
        if cur.done() or cur.peek() == ",":
            break  # a scheme with no parameters before the next challenge
        name = cur.token().lower()
        cur.skip_ws()
        if cur.peek() != "=":
            raise cur.fail("expected '=' after a parameter name")
        cur.pos += 1
        cur.skip_ws()
        if name in params:
            raise cur.fail(f"parameter {name!r} repeated")
        params[name] = cur.value()
        cur.skip_ws()
        if cur.done():
            break
        if cur.peek() != ",":
            raise cur.fail("expected ',' between parameters")
        mark = cur.pos
        cur.skip_commas()
        if cur.done() or not cur.looking_at_param():
            cur.pos = mark  # the next challenge starts here
            break
    return params


# --------------------------------------------------------------------------
# Link (RFC 8288 §3)


def parse_link(value: str | None, base_url: str) -> dict[str, str]:
    """Map each relation type to its absolute target URL.

    ``<uri>; rel="next last"`` names several relations at once (RFC 8288
    §3.3); relation types compare case-insensitively, so keys are
    lower-cased. Relative references resolve against ``base_url`` (§3.1).
    The first link wins when a relation repeats; links without ``rel`` are
    ignored. The URI is read up to ``>``, so commas inside it are safe.
    """
    if value is None or not value.strip():
        return {}
    cur = _Cursor(value, "Link")
    links: dict[str, str] = {}
    cur.skip_commas()
    while not cur.done():
        target, params = _link_value(cur)
        for rel in params.get("rel", "").split():
            links.setdefault(rel.lower(), _resolve(target, base_url, cur))
        cur.skip_commas()
    return links


def _link_value(cur: _Cursor) -> tuple[str, dict[str, str]]:
    if cur.peek() != "<":
        raise cur.fail("expected '<'")
    end = cur.text.find(">", cur.pos)
    if end < 0:
        raise cur.fail("unterminated '<'")
    target = cur.text[cur.pos + 1 : end].strip()
    if any(ch <= " " or ch in '<"\x7f' for ch in target):
        raise cur.fail("space or control character in the URI")
    cur.pos = end + 1
    params: dict[str, str] = {}
    while True:
        cur.skip_ws()
        if cur.done() or cur.peek() == ",":
            return target, params
        if cur.peek() != ";":
            raise cur.fail("expected ';' or ','")
        cur.pos += 1
        cur.skip_ws()
        name = cur.token().lower()
        cur.skip_ws()
        text = ""
        if cur.peek() == "=":
            cur.pos += 1
            cur.skip_ws()
            text = cur.value()
        # RFC 8288 §3.3: occurrences of rel after the first MUST be ignored.
        params.setdefault(name, text)


def _resolve(target: str, base_url: str, cur: _Cursor) -> str:
    try:
        return urljoin(base_url, target)
    except ValueError as exc:  # e.g. an unbalanced IPv6 bracket
        raise cur.fail(f"unusable URI ({exc})") from exc


# --------------------------------------------------------------------------
# GitHub rate-limit headers


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A server's word on a rate budget: GitHub's ``x-ratelimit-*`` headers,
    or GraphQL's ``rateLimit`` field (crawler/graphql.py), which also
    reports the query's ``cost``. ``reset`` is epoch seconds."""

    limit: int | None = None
    remaining: int | None = None
    used: int | None = None
    reset: float | None = None
    resource: str | None = None
    cost: int | None = None


# Mappings whose `get` already ignores case: no scan needed (every response).
_CASELESS = (CIMultiDict, CIMultiDictProxy)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup in any Mapping (dict, multidict, …).

    Multidicts (aiohttp) already ignore case in ``get``; a plain dict may
    hold any spelling, so fall back to a scan. The first match wins.
    """
    found = headers.get(name)
    if found is None and not isinstance(headers, _CASELESS):
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == name:
                found = value
                break
    if found is None or isinstance(found, str):
        return found
    raise ParseError(f"{name} header is not text: {found!r:.{_SHOW}}")


def _count(headers: Mapping[str, str], name: str) -> int | None:
    text = _header(headers, name)
    if text is None:
        return None
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ParseError(f"{name} header is not a non-negative integer below 10**18: {_show(text)}")
    return int(text)


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """Read ``x-ratelimit-limit/remaining/used/reset/resource``.

    None when none of them is present (registries, GHES with limits off).
    """
    numbers = {
        part: _count(headers, f"x-ratelimit-{part}")
        for part in ("limit", "remaining", "used", "reset")
    }
    resource = _header(headers, "x-ratelimit-resource")
    if resource is not None:
        resource = resource.strip() or None
    if resource is None and all(n is None for n in numbers.values()):
        return None
    return RateLimit(resource=resource, **numbers)


# --------------------------------------------------------------------------
# Retry-After (RFC 9110 §10.2.3) and HTTP-date (RFC 9110 §5.6.7)

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_TIME = r"(\d{2}):(\d{2}):(\d{2})"
_MON = r"([A-Za-z]{3})"
_IMF_FIXDATE = re.compile(rf"{_DAY}, (\d{{2}}) {_MON} (\d{{4}}) {_TIME} GMT", re.ASCII)
_RFC850 = re.compile(rf"{_LONG_DAY}, (\d{{2}})-{_MON}-(\d{{2}}) {_TIME} GMT", re.ASCII)
_ASCTIME = re.compile(rf"{_DAY} {_MON} ([ \d]\d) {_TIME} (\d{{4}})", re.ASCII)
_DELTA = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait (>= 0) from a Retry-After value; None when absent.

    Either ``delta-seconds`` or an HTTP-date (IMF-fixdate, or the obsolete
    RFC 850 and asctime forms recipients must accept). A date in the past
    means "now" (0). Fractional seconds are accepted although the grammar
    has none: some proxies send them, and rounding them away would be worse.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _DELTA.fullmatch(text):
        return min(float(text), MAX_RETRY_AFTER)
    when = _http_date(text, now)
    if when is None:
        raise ParseError(f"Retry-After is neither seconds nor an HTTP-date: {_show(text)}")
    return min(max(0.0, when - now), MAX_RETRY_AFTER)


def _http_date(text: str, now: float) -> float | None:
    """Epoch seconds of an HTTP-date, or None when ``text`` is not one."""
    if match := _IMF_FIXDATE.fullmatch(text):
        day, mon, year, hh, mm, ss = match.groups()
    elif match := _RFC850.fullmatch(text):
        day, mon, yy, hh, mm, ss = match.groups()
        year = str(_full_year(int(yy), now))
    elif match := _ASCTIME.fullmatch(text):
        mon, day, hh, mm, ss, year = match.groups()
    else:
        return None
    month = _MONTHS.get(mon.lower())
    fields = (int(year), month or 0, int(day), int(hh), int(mm), int(ss))
    if month is None or not _valid_date(*fields):
        return None
    return float(calendar.timegm(fields + (0, 0, 0)))


def _full_year(yy: int, now: float) -> int:
    """RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is past."""
    this_year = 1970 + int(now // 31_556_952)
    year = this_year - this_year % 100 + yy
    return year - 100 if year > this_year + 50 else year


def _valid_date(year: int, month: int, day: int, hh: int, mm: int, ss: int) -> bool:
    if not (1 <= month <= 12 and 1 <= year <= 9999):
        return False
    last_day = calendar.monthrange(year, month)[1]
    return 1 <= day <= last_day and hh < 24 and mm < 60 and ss < 61


# ghcr 429 bodies carry the wait in Go's time.Duration syntax:
# {"errors":[{"code":"TOOMANYREQUESTS","message":"retry-after: 880.092µs, allowed: 44000/minute"}]}
# (dependabot/cli#380, chainguard-images/images#173).
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_BODY_RETRY = re.compile(r"retry-after:[ \t]*([^\s,;\"]*)", re.IGNORECASE)


def parse_retry_after_body(text: str | bytes | None) -> float | None:
    """Seconds from ghcr's ``retry-after: 1m30.5s, allowed: …`` body text.

    Accepts the raw body (JSON or not) or just the message. None when the
    body has no ``retry-after:``; ParseError when what follows is not a
    Go duration (``time.ParseDuration`` units ns, us/µs/μs, ms, s, m, h).
    """
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    match = _BODY_RETRY.search(_error_messages(text))
    if match is None:
        return None
    return _go_duration(match.group(1))


def _error_messages(text: str) -> str:
    """The messages of an OCI error body, or ``text`` when it is not one.

    Decoding the JSON turns ``\\u00b5`` escapes back into ``µ``.
    """
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return text
    parts = [
        str(item.get(key))
        for item in errors if isinstance(item, dict)
        for key in ("message", "detail") if isinstance(item.get(key), str)
    ]
    return "\n".join(parts) if parts else text


def _go_duration(text: str) -> float:
    """Seconds in a non-negative Go duration such as ``1m30.5s`` or ``0``."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _GO_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ParseError(f"retry-after in the body is not a duration: {_show(text)}")
    return total if math.isfinite(total) and total < MAX_RETRY_AFTER else MAX_RETRY_AFTER


# --------------------------------------------------------------------------
# ETag (RFC 9110 §8.8.3)

_ETAG = re.compile(r'(W/)?"[\x21\x23-\x7e\x80-\U0010ffff]*"')
_BARE_ETAG = re.compile(r"[\x21\x23-\x2b\x2d-\x7e\x80-\U0010ffff]+")


def parse_etag(value: str | None) -> str | None:
    """Validate an ETag and return it exactly as received (minus OWS).

    ``entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE``. The value is echoed
    back in If-None-Match, so the weak prefix and quotes are kept. An
    unquoted tag (seen from some servers) is accepted when it has no
    quote, comma or whitespace, since those would break If-None-Match.
    """
    if value is None or not value.strip():
        return None
    text = value.strip(" \t")
    if _ETAG.fullmatch(text) or (not text.startswith("W/") and _BARE_ETAG.fullmatch(text)):
        return text
    raise ParseError(f"bad ETag header: {_show(text)}")


# --------------------------------------------------------------------------
# GitHub secondary rate limits


def is_secondary_rate_limit(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    """True for a GitHub secondary (abuse) rate limit response.

    GitHub answers 403 or 429 with a message naming the secondary rate
    limit, usually with Retry-After (octokit/octokit.net#2466,
    hub4j/github-api#1805: not always). Primary exhaustion is a 403/429
    with ``x-ratelimit-remaining: 0`` and is not secondary: it waits for
    ``x-ratelimit-reset`` instead. Never raises.
    """
    if status not in (403, 429):
        return False
    message = _github_message(body).lower()
    if "secondary rate limit" in message or "abuse detection" in message:
        return True
    try:
        remaining = _count(headers, "x-ratelimit-remaining")
        retry_after = _header(headers, "retry-after")
    except ParseError:
        return False
    if remaining == 0:
        return False
    return retry_after is not None


def _github_message(body: bytes | str | None) -> str:
    """GitHub's ``{"message": …}`` (or the raw text when it is not JSON)."""
    if not body:
        return ""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)
    message = doc.get("message") if isinstance(doc, dict) else None
    return message if isinstance(message, str) else ""
