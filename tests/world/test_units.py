"""Pure pieces of the world, as tables: paging, Link, ETag, challenges, GraphQL cost and cursors, clocks."""

from __future__ import annotations

import pytest
from graphql import parse
from multidict import MultiDict, MultiDictProxy

from crawler.sandbox.client import parse_challenge
from crawler.sandbox.emulator import basic_password, bearer_token, etag_matches, link_header, page_params
from crawler.sandbox.graphql_api import GitHubGraphQLError, connection, node_count
from crawler.sandbox.state import MonotonicClock, StateError, TickClock, WorldState


def q(**kw) -> MultiDictProxy:
    return MultiDictProxy(MultiDict({k: str(v) for k, v in kw.items()}))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, (1, 30)),
        ({"per_page": 100}, (1, 100)),
        ({"per_page": 500, "page": 3}, (3, 100)),
        ({"per_page": 0}, (1, 30)),
        ({"per_page": "x", "page": "y"}, (1, 30)),
        ({"page": -4}, (1, 30)),
    ],
)
def test_page_params(query, expected):
    assert page_params(q(**query)) == expected


@pytest.mark.parametrize(
    ("page", "last", "rels"),
    [
        (1, 1, []),
        (1, 3, ["next", "last"]),
        (2, 3, ["prev", "next", "last", "first"]),
        (3, 3, ["prev", "first"]),
        (9, 3, ["prev", "first"]),
    ],
)
def test_link_header_relations(page, last, rels):
    header = link_header("http://h", "/organizations/1/packages", q(package_type="container", page=page), page, last)
    got = [part.split('rel="')[1].rstrip('"') for part in header.split(", ")] if header else []
    assert got == rels
    if header:
        assert header.startswith("<http://h/organizations/1/packages?package_type=container&page=")


def test_link_prev_from_beyond_the_end_points_at_the_last_page():
    header = link_header("http://h", "/p", q(page=9), 9, 3)
    assert '<http://h/p?page=3>; rel="prev"' in header


@pytest.mark.parametrize(
    ("if_none_match", "etag", "match"),
    [
        (None, 'W/"a"', False),
        ('W/"a"', 'W/"a"', True),
        ('"a"', 'W/"a"', True),
        ('W/"b", W/"a"', 'W/"a"', True),
        ('W/"b"', 'W/"a"', False),
        ("*", 'W/"a"', True),
    ],
)
def test_etag_matching(if_none_match, etag, match):
    assert etag_matches(if_none_match, etag) is match


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("Bearer abc", "abc"), ("token abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None)],
)
def test_bearer_token(header, token):
    assert bearer_token(header) == token


def test_basic_password():
    assert basic_password("Basic eDpnaHBfMTIz") == "ghp_123"  # x:ghp_123
    assert basic_password("Basic !!!") is None
    assert basic_password("Bearer x") is None


def test_parse_challenge():
    header = 'Bearer realm="http://r/token",service="ghcr.io",scope="repository:a/b:pull"'
    assert parse_challenge(header) == {"scheme": "Bearer", "realm": "http://r/token", "service": "ghcr.io", "scope": "repository:a/b:pull"}


@pytest.mark.parametrize(
    ("query", "variables", "count"),
    [
        ("{ viewer { login } }", None, 0),
        ("{ organization(login: \"a\") { repositories(first: 10) { nodes { name } } } }", None, 10),
        ("query($n: Int) { organization(login: \"a\") { repositories(first: $n) { nodes { name } } } }", {"n": 7}, 7),
        (
            "{ organization(login: \"a\") { packages(first: 10) { nodes { versions(first: 5) { nodes { version } } } } } }",
            None,
            60,
        ),
        (
            "{ organization(login: \"a\") { ...F } } fragment F on Organization { repositories(last: 4) { totalCount } }",
            None,
            4,
        ),
    ],
)
def test_node_count(query, variables, count):
    assert node_count(parse(query), None, variables) == count


def test_connection_pages_with_cursors():
    items = list(range(7))
    first = connection(items, "things", first=3)
    assert first["nodes"] == [0, 1, 2] and first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
    second = connection(items, "things", first=3, after=first["pageInfo"]["endCursor"])
    assert second["nodes"] == [3, 4, 5] and second["pageInfo"]["hasPreviousPage"]
    third = connection(items, "things", first=3, after=second["pageInfo"]["endCursor"])
    assert third["nodes"] == [6] and not third["pageInfo"]["hasNextPage"]
    assert connection(items, "things", last=2)["nodes"] == [5, 6]
    assert first["totalCount"] == 7
    with pytest.raises(GitHubGraphQLError):
        connection(items, "things")
    with pytest.raises(GitHubGraphQLError):
        connection(items, "things", first=1, after="not-a-cursor")


def test_monotonic_clock_never_repeats_a_second():
    clock = MonotonicClock(now=lambda: 1000.4)
    assert [clock() for _ in range(3)] == [1000.0, 1001.0, 1002.0]
    ticks = TickClock(start=10, step=5)
    assert [ticks(), ticks()] == [10.0, 15.0]


def test_versions_list_newest_created_first_and_a_retag_does_not_move_one():
    """GitHub's observed order (astral-sh/uv#7458), which the crawler's
    stop rule leans on: a tag moved to an old version changes its
    updated_at, not its place; the other orders break it on purpose."""
    state = WorldState(TickClock())
    state.add_owner("acme")
    state.ensure_package("acme", "app", visibility="public")
    for n in (1, 2, 3):
        state.record_version("acme", "app", f"sha256:{n}", tags=[f"v{n}"])
    state.set_tag("acme", "app", "latest", "sha256:1")          # a retag of the oldest
    pkg = state.package("acme", "app")
    assert pkg.versions["sha256:1"].updated_at > pkg.versions["sha256:3"].updated_at
    assert [v.name for v in pkg.listed_versions()] == ["sha256:3", "sha256:2", "sha256:1"]
    state.set_version_order("acme", "app", "updated")
    assert [v.name for v in pkg.listed_versions()] == ["sha256:1", "sha256:3", "sha256:2"]
    state.set_version_order("acme", "app", "oldest")
    assert [v.name for v in pkg.listed_versions()] == ["sha256:1", "sha256:2", "sha256:3"]
    with pytest.raises(StateError):
        state.set_version_order("acme", "app", "random")


def test_state_keeps_one_holder_per_tag_and_refuses_nonsense():
    state = WorldState(TickClock())
    state.add_owner("acme")
    state.ensure_package("acme", "app", visibility="public")
    state.record_version("acme", "app", "sha256:1", tags=["latest"])
    state.record_version("acme", "app", "sha256:2", tags=["latest", "v2"])
    assert state.package("acme", "app").tag_map() == {"latest": "sha256:2", "v2": "sha256:2"}
    assert [v.name for v in state.package("acme", "app").listed_versions()] == ["sha256:2", "sha256:1"]
    with pytest.raises(StateError):
        state.add_owner("ACME")
    with pytest.raises(StateError):
        state.ensure_package("acme", "x", visibility="secret")
    with pytest.raises(StateError):
        state.set_tag("acme", "app", "t", "sha256:nope")
