"""Tables for the header parsers in crawler.headers."""

from __future__ import annotations

import calendar

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from crawler.errors import ParseError
from crawler.headers import (
    MAX_RETRY_AFTER,
    Challenge,
    RateLimit,
    is_secondary_rate_limit,
    parse_etag,
    parse_link,
    parse_rate_limit,
    parse_retry_after,
    parse_retry_after_body,
    parse_www_authenticate,
)

GHCR_CHALLENGE = 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull"'

# --- WWW-Authenticate --------------------------------------------------------


def test_ghcr_challenge_every_field():
    [challenge] = parse_www_authenticate(GHCR_CHALLENGE)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://ghcr.io/token"
    assert challenge.service == "ghcr.io"
    assert challenge.scope == "repository:user/image:pull"
    assert challenge.error is None
    assert challenge.token68 is None
    assert dict(challenge.params) == {
        "realm": "https://ghcr.io/token",
        "service": "ghcr.io",
        "scope": "repository:user/image:pull",
    }


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, []),
        ("", []),
        ("   ", []),
        ("Basic", [("basic", {}, None)]),
        ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"}, None)]),
        # distribution's insufficient_scope answer
        (
            'Bearer realm="https://auth.example/token",service="registry",'
            'scope="repository:a/b:pull,push",error="insufficient_scope"',
            [("bearer", {"realm": "https://auth.example/token", "service": "registry",
                         "scope": "repository:a/b:pull,push", "error": "insufficient_scope"}, None)],
        ),
        # RFC 9110 §11.6.1 example: two challenges, escapes, mixed case
        (
            'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
            [("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}, None),
             ("basic", {"realm": "simple"}, None)],
        ),
        ("BEARER REALM=x", [("bearer", {"realm": "x"}, None)]),
        ("Bearer realm = \"x\" , service = y", [("bearer", {"realm": "x", "service": "y"}, None)]),
        # token68 and a scheme without parameters before the next challenge
        ("Negotiate YIIC/+==, Basic realm=x", [("negotiate", {}, "YIIC/+=="), ("basic", {"realm": "x"}, None)]),
        ("Negotiate, Basic realm=x", [("negotiate", {}, None), ("basic", {"realm": "x"}, None)]),
        (", Basic realm=x,, ", [("basic", {"realm": "x"}, None)]),
        # unquoted URL value (not a token, accepted on purpose)
        ("Bearer realm=https://auth.example/token,service=reg", [
            ("bearer", {"realm": "https://auth.example/token", "service": "reg"}, None)]),
        ('Bearer realm=""', [("bearer", {"realm": ""}, None)]),
        # "realm=" alone is a valid token68, not a parameter without a value
        ("Bearer realm=", [("bearer", {}, "realm=")]),
        ('Bearer realm="a,b=c"', [("bearer", {"realm": "a,b=c"}, None)]),
    ],
)
def test_www_authenticate_table(header, expected):
    got = [(c.scheme, dict(c.params), c.token68) for c in parse_www_authenticate(header)]
    assert got == expected


@pytest.mark.parametrize(
    "header",
    [
        'Bearer realm="unterminated',
        'Bearer realm="x" service="y"',
        'Bearer realm="x"junk',
        "Bearer =x",
        'Bearer realm="x",realm="y"',
        "@@@",
        "Bearer realm=x;y",
        'Bearer realm="a\x01b"',
        "Bearer\trealm=x extra",
        'Bearer"realm"',
    ],
)
def test_www_authenticate_garbage(header):
    with pytest.raises(ParseError, match="WWW-Authenticate"):
        parse_www_authenticate(header)


def test_challenge_is_hashable_and_comparable():
    a = parse_www_authenticate(GHCR_CHALLENGE)[0]
    b = parse_www_authenticate(GHCR_CHALLENGE.replace("Bearer", "bearer"))[0]
    assert a == b and hash(a) == hash(b)
    assert {a, b} == {a}
    assert Challenge("basic").params == {}


# --- Link --------------------------------------------------------------------

GH = "https://api.github.com"


@pytest.mark.parametrize(
    ("header", "base", "expected"),
    [
        (None, GH, {}),
        ("", GH, {}),
        # GitHub REST: org packages, pages addressed by organization id
        (
            f'<{GH}/organizations/123/packages?package_type=container&per_page=100&page=2>; rel="next", '
            f'<{GH}/organizations/123/packages?package_type=container&per_page=100&page=7>; rel="last"',
            f"{GH}/orgs/acme/packages?package_type=container&per_page=100",
            {
                "next": f"{GH}/organizations/123/packages?package_type=container&per_page=100&page=2",
                "last": f"{GH}/organizations/123/packages?package_type=container&per_page=100&page=7",
            },
        ),
        (
            f'<{GH}/organizations/123/packages?page=1>; rel="prev", '
            f'<{GH}/organizations/123/packages?page=1>; rel="first"',
            GH,
            {"prev": f"{GH}/organizations/123/packages?page=1", "first": f"{GH}/organizations/123/packages?page=1"},
        ),
        # registry tags/list: relative reference, resolved against the request URL
        (
            '</v2/acme/app/tags/list?last=v1.2&n=100>; rel="next"',
            "https://ghcr.io/v2/acme/app/tags/list?n=100",
            {"next": "https://ghcr.io/v2/acme/app/tags/list?last=v1.2&n=100"},
        ),
        ("<?page=3>; rel=next", "https://h/x/y?page=2", {"next": "https://h/x/y?page=3"}),
        ("<../z>; rel=up", "https://h/x/y/", {"up": "https://h/x/z"}),
        # several relation types in one rel, case-insensitive
        ('<https://h/p2>; rel="Next LAST"', GH, {"next": "https://h/p2", "last": "https://h/p2"}),
        # commas inside the URI; other params; rel not first
        ('<https://h/s?q=a,b>; title="x, y"; rel="next"', GH, {"next": "https://h/s?q=a,b"}),
        # first link wins for a repeated rel; repeated rel param: first wins
        ("<https://h/1>; rel=next, <https://h/2>; rel=next", GH, {"next": "https://h/1"}),
        ("<https://h/1>; rel=next; rel=last", GH, {"next": "https://h/1"}),
        # link without rel is ignored; bare parameter without value
        ("<https://h/1>; crossorigin, <https://h/2>; rel=next", GH, {"next": "https://h/2"}),
        (" , <https://h/1> ; rel = \"next\" ,", GH, {"next": "https://h/1"}),
    ],
)
def test_link_table(header, base, expected):
    assert parse_link(header, base) == expected


@pytest.mark.parametrize(
    "header",
    [
        "https://h/1; rel=next",
        "<https://h/1; rel=next",
        "<https://h/1> rel=next",
        "<https://h/ 1>; rel=next",
        '<https://h/1>; rel="next',
        "<https://h/1>; =next",
        "<http://[::1/x>; rel=next",
    ],
)
def test_link_garbage(header):
    with pytest.raises(ParseError, match="Link"):
        parse_link(header, GH)


# --- rate limit -----------------------------------------------------------------

GITHUB_HEADERS = {
    "x-ratelimit-limit": "5000",
    "x-ratelimit-remaining": "4987",
    "x-ratelimit-used": "13",
    "x-ratelimit-reset": "1717171717",
    "x-ratelimit-resource": "core",
}


def test_rate_limit_github_headers():
    assert parse_rate_limit(GITHUB_HEADERS) == RateLimit(
        limit=5000, remaining=4987, used=13, reset=1717171717, resource="core")


@pytest.mark.parametrize(
    "headers",
    [
        {k.upper(): v for k, v in GITHUB_HEADERS.items()},
        {k.title(): v for k, v in GITHUB_HEADERS.items()},
        CIMultiDict({k.title(): v for k, v in GITHUB_HEADERS.items()}),
        CIMultiDictProxy(CIMultiDict({k.upper(): v for k, v in GITHUB_HEADERS.items()})),  # aiohttp's
        {k: f"  {v} " for k, v in GITHUB_HEADERS.items()},
    ],
)
def test_rate_limit_any_case_any_mapping(headers):
    assert parse_rate_limit(headers) == RateLimit(5000, 4987, 13, 1717171717, "core")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"content-type": "application/json"}, None),
        ({"X-RateLimit-Remaining": "0"}, RateLimit(remaining=0)),
        ({"x-ratelimit-resource": "graphql"}, RateLimit(resource="graphql")),
        ({"x-ratelimit-resource": "  "}, None),
    ],
)
def test_rate_limit_partial(headers, expected):
    assert parse_rate_limit(headers) == expected


@pytest.mark.parametrize("value", ["-1", "5000.0", "abc", "", "1e3", "+5", "١٢", "9" * 40])
def test_rate_limit_not_an_integer(value):
    with pytest.raises(ParseError, match="x-ratelimit-remaining"):
        parse_rate_limit({"x-ratelimit-remaining": value})


def test_rate_limit_non_text_value():
    with pytest.raises(ParseError, match="not text"):
        parse_rate_limit({"x-ratelimit-limit": 5000})


# --- Retry-After ------------------------------------------------------------------

NOW = float(calendar.timegm((1994, 11, 6, 8, 49, 30, 0, 0, 0)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("120", 120.0),
        (" 60 ", 60.0),
        ("1.5", 1.5),
        ("9" * 30, MAX_RETRY_AFTER),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 7.0),  # IMF-fixdate
        ("Sunday, 06-Nov-94 08:49:37 GMT", 7.0),  # obsolete RFC 850
        ("Sun Nov  6 08:49:37 1994", 7.0),  # asctime
        ("Sun, 06 Nov 1994 08:00:00 GMT", 0.0),  # in the past: now
        ("Mon, 07 Nov 1994 08:49:30 GMT", 86400.0),
    ],
)
def test_retry_after_table(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    "value",
    ["-5", "soon", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 31 Feb 1994 08:49:37 GMT",
     "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT", "1,5", "٣"],
)
def test_retry_after_garbage(value):
    with pytest.raises(ParseError, match="Retry-After"):
        parse_retry_after(value, now=NOW)


def test_retry_after_rfc850_two_digit_year_is_recent_past():
    now = float(calendar.timegm((2025, 1, 1, 0, 0, 0, 0, 0, 0)))
    assert parse_retry_after("Thursday, 01-Jan-25 00:01:00 GMT", now=now) == 60.0


GHCR_429 = (
    b'{"errors":[{"code":"TOOMANYREQUESTS",'
    b'"message":"retry-after: 880.092\xc2\xb5s, allowed: 44000/minute"}]}'
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GHCR_429, 880.092e-6),
        (GHCR_429.decode(), 880.092e-6),
        # the JSON may escape the micro sign
        ('{"errors":[{"code":"TOOMANYREQUESTS","message":"retry-after: 3\\u00b5s, allowed: 1/minute"}]}', 3e-6),
        ("toomanyrequests: retry-after: 1.16676ms, allowed: 44000/minute", 1.16676e-3),
        ("TOOMANYREQUESTS: retry-after: 10.305464ms, allowed: 2000/minute", 10.305464e-3),
        ("retry-after: 333.939671ms", 0.333939671),
        ("Retry-After: 5s", 5.0),
        ("retry-after: 880us", 880e-6),
        ("retry-after: 7\u03bcs", 7e-6),  # Greek mu, also accepted by Go
        ("retry-after: 250ns", 250e-9),
        ("retry-after: 2m", 120.0),
        ("retry-after: 1h", 3600.0),
        ("retry-after: 1m30.5s", 90.5),
        ("retry-after: 1h2m3s4ms", 3723.004),
        ("retry-after: .5s", 0.5),
        ("retry-after: 0", 0.0),
        ("retry-after: 99999999999999h", MAX_RETRY_AFTER),
        (None, None),
        (b"", None),
        (b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}', None),
        (b"\xff\xfe not utf-8", None),
    ],
)
def test_retry_after_body_table(body, expected):
    got = parse_retry_after_body(body)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    "body",
    ["retry-after: soon", "retry-after: 5", "retry-after: -1s", "retry-after: 5x", "retry-after: 1s2",
     "retry-after: ,", "retry-after: 1e3s"],
)
def test_retry_after_body_garbage(body):
    with pytest.raises(ParseError, match="retry-after"):
        parse_retry_after_body(body)


# --- ETag ----------------------------------------------------------------------------

DIGEST_ETAG = '"sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        (DIGEST_ETAG, DIGEST_ETAG),  # distribution: Etag: "<digest>"
        ('W/"abc123"', 'W/"abc123"'),  # GitHub REST: weak ETags
        (' "x" ', '"x"'),
        ('""', '""'),
        ("abc123", "abc123"),  # unquoted, echoed as received
    ],
)
def test_etag_table(value, expected):
    assert parse_etag(value) == expected


@pytest.mark.parametrize("value", ['"abc', 'W/abc', 'w/"abc"', '"a"b"', "a b", "a,b", '"a\x01"', 'W/ "a"'])
def test_etag_garbage(value):
    with pytest.raises(ParseError, match="ETag"):
        parse_etag(value)


# --- secondary rate limits -------------------------------------------------------------

SECONDARY_BODY = (
    b'{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",'
    b'"documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}'
)
PRIMARY_BODY = b'{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com"}'


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (403, {"retry-after": "60"}, SECONDARY_BODY, True),
        (429, {}, SECONDARY_BODY, True),  # GitHub does not always send Retry-After
        (403, {"Retry-After": "30", "x-ratelimit-remaining": "4000"}, b"", True),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1717171717"}, PRIMARY_BODY, False),
        (429, {"x-ratelimit-remaining": "0", "retry-after": "60"}, PRIMARY_BODY, False),
        (403, {"x-ratelimit-remaining": "0"}, SECONDARY_BODY, True),  # the message says so
        (403, {}, b'{"message":"Resource not accessible by integration"}', False),
        (403, {}, b'{"message":"You have triggered an abuse detection mechanism."}', True),
        (200, {"retry-after": "60"}, SECONDARY_BODY, False),
        (500, {}, SECONDARY_BODY, False),
        (403, {"retry-after": "60"}, b"<html>secondary rate limit</html>", True),
        (403, {"x-ratelimit-remaining": "junk", "retry-after": "1"}, b"", False),
        (403, {}, b"\xff", False),
    ],
)
def test_is_secondary_rate_limit(status, headers, body, expected):
    assert is_secondary_rate_limit(status, headers, body) is expected
