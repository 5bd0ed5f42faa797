"""Issue 4, pure units: every query document validates against GitHub's
published schema (a drift breaks the build, not a user's timer run), the
batch builder, the answer parsers, the governor's GraphQL hooks, and the
graphql discovery loop."""

from __future__ import annotations

import gc
import sqlite3
from dataclasses import astuple
from datetime import datetime, timezone

import orjson
import pytest
from graphql import parse, print_ast, validate

from crawler.errors import AuthError, DiscoveryUnsupportedError, GraphQLQueryError, HttpStatusError, ParseError
from crawler.graphql import (MAX_BATCH, GraphQLIssue, PackagesPage, GqlPackage, document,
                             document_text, is_rate_limited, packages_request, parse_body, parse_issues,
                             parse_packages_page, parse_rate_limit_field, parse_repositories, query_names,
                             repositories_request, split_full_name)
from crawler.discovery.graphql import pages as discover_graphql
from crawler.enrich import repository_row
from crawler.headers import RateLimit
from crawler.ratelimit import Governor
from crawler.sandbox.graphql_api import github_schema
from crawler.store import apply_schema
from tests.support import FakeClock


# --- the documents against GitHub's published schema --------------------------------------------

def test_every_query_document_validates_against_githubs_schema():
    names = query_names()
    assert {"packages", "repositories"} <= set(names)
    for name in names:
        errors = validate(github_schema(), parse(document_text(name)))
        assert errors == [], (name, [e.message for e in errors])


@pytest.mark.parametrize("count", [1, 2, 37, MAX_BATCH])
def test_batched_repository_documents_validate_at_every_size(count):
    names = [f"acme/repo-{i}" for i in range(count)]
    request = repositories_request(names)
    text = print_ast(request.document)
    assert validate(github_schema(), parse(text)) == []
    assert text.count(": repository(") == count
    assert request.operation_name == "SourceRepositories"
    assert request.variable_values == {k: v for i, n in enumerate(names)
                                       for k, v in ((f"owner{i}", "acme"), (f"name{i}", f"repo-{i}"))}


def test_a_batch_sends_its_document_printed_once_per_size():
    """The query text is printed once per batch size (gql would print the
    document again on every request: ~13 ms and thousands of objects in
    reference cycles for 100 aliases); what is sent is that document."""
    first = repositories_request([f"acme/a-{i}" for i in range(MAX_BATCH)])
    gc.collect()
    second = repositories_request([f"other/b-{i}" for i in range(MAX_BATCH)])
    payload = second.payload
    assert gc.collect() == 0
    assert payload["query"] is first.payload["query"]
    assert payload["query"] == print_ast(second.document)
    assert payload["operationName"] == "SourceRepositories"
    assert payload["variables"]["owner99"] == "other" and payload["variables"]["name0"] == "b-0"


def test_the_schema_check_catches_a_drift():
    """What the validation test would say if GitHub renamed a field we use."""
    drifted = document_text("repositories").replace("isArchived", "isArchivedNow")
    [error] = validate(github_schema(), parse(drifted))
    assert "isArchivedNow" in error.message


def test_batches_bind_names_as_variables_never_as_text():
    hostile = 'acme/x"){viewer{login}}'
    request = repositories_request([hostile])
    text = print_ast(request.document)
    assert "viewer" not in text and "name: $name0" in text
    assert request.variable_values == {"owner0": "acme", "name0": 'x"){viewer{login}}'}
    with pytest.raises(ValueError):
        repositories_request([])
    with pytest.raises(ValueError):
        repositories_request(["a/b"] * (MAX_BATCH + 1))


@pytest.mark.parametrize("name, ok", [
    ("acme/app", True), ("Acme/App.js", True), ("acme", False), ("acme/", False), ("/app", False),
    ("acme/app/extra", False), ("acme/my app", False), ("", False),
])
def test_split_full_name(name, ok):
    if ok:
        assert "/".join(split_full_name(name)) == name
    else:
        with pytest.raises(ValueError):
            split_full_name(name)


def test_packages_request_picks_the_operation_for_the_owner_kind():
    org = packages_request("acme", "org", None)
    user = packages_request("mona", "user", "Y3Vyc29y")
    assert (org.operation_name, user.operation_name) == ("OrganizationPackages", "UserPackages")
    assert user.variable_values == {"login": "mona", "after": "Y3Vyc29y"}
    assert org.document is document("packages")


# --- answers ---------------------------------------------------------------------------

def _body(obj) -> bytes:
    return orjson.dumps(obj)


@pytest.mark.parametrize("status, body, error, text", [
    (401, _body({"message": "Bad credentials"}), AuthError, "rejected the token (401 Bad credentials)"),
    (403, _body({"message": "Resource protected by organization SAML enforcement."}), AuthError, "403"),
    (502, b"<html>bad gateway</html>", HttpStatusError, "HTTP 502"),
    (200, b'{"data": {"x": 1', ParseError, "not JSON"),
    (200, _body({"message": "hello"}), ParseError, "without 'data' or 'errors'"),
    (200, _body({"errors": {"message": "x"}}), ParseError, "'errors' is not a list"),
    (200, _body({"data": [1]}), ParseError, "'data' is not an object"),
    (200, b"[]", ParseError, "without 'data' or 'errors'"),
])
def test_parse_body_turns_answers_into_errors(status, body, error, text):
    with pytest.raises(error) as info:
        parse_body(status, body, "POST https://api.github.com/graphql")
    assert text in str(info.value)
    assert str(info.value).startswith("POST https://api.github.com/graphql: ")
    if status == 401:
        assert info.value.fatal and info.value.exit_code == 3
    if status == 403:
        assert not info.value.fatal


def test_parse_body_keeps_data_with_errors():
    answer = parse_body(200, _body({"data": {"r0": None}, "errors": [{"type": "NOT_FOUND", "message": "m"}]}), "w")
    assert answer["data"] == {"r0": None} and answer["errors"][0]["type"] == "NOT_FOUND"


def test_parse_issues_reads_githubs_shapes():
    issues = parse_issues([
        {"type": "NOT_FOUND", "path": ["r1"], "locations": [{"line": 3, "column": 3}],
         "message": "Could not resolve to a Repository with the name 'acme/ghost'."},
        {"extensions": {"code": "undefinedField"}, "message": "Field 'nope' doesn't exist on type 'User'"},
        {"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."},
        "odd",
    ])
    assert [i.type for i in issues] == ["NOT_FOUND", "undefinedField", "RATE_LIMITED", None]
    assert str(issues[0]) == "r1: NOT_FOUND: Could not resolve to a Repository with the name 'acme/ghost'."
    assert is_rate_limited(issues) and not is_rate_limited(issues[:2])
    assert is_rate_limited([GraphQLIssue("You have exceeded a secondary rate limit.")])


def test_rate_limit_field():
    info = parse_rate_limit_field({"rateLimit": {"limit": 5000, "cost": 1, "remaining": 4321,
                                                 "resetAt": "2024-01-01T01:00:00Z"}})
    assert (info.limit, info.cost, info.remaining, info.resource) == (5000, 1, 4321, "graphql")
    assert info.reset == datetime(2024, 1, 1, 1, tzinfo=timezone.utc).timestamp()
    assert parse_rate_limit_field({"rateLimit": None}) is None          # GHES with limits off
    with pytest.raises(ParseError):
        parse_rate_limit_field({"rateLimit": {"remaining": "many"}})
    with pytest.raises(ParseError):
        parse_rate_limit_field({"rateLimit": {"remaining": 1, "resetAt": "soon"}})


REPO = {"id": "R_kgDOAAAA", "nameWithOwner": "acme/app", "isArchived": True, "isPrivate": True,
        "visibility": "INTERNAL", "pushedAt": "2024-05-01T00:00:00Z",
        "defaultBranchRef": {"name": "trunk", "target": {"oid": "a" * 40}}}


def test_parse_repositories_keeps_the_valid_part_of_a_partial_answer():
    names = ["acme/app", "acme/ghost", "acme/empty", "acme/quiet"]
    data = {"rateLimit": None, "r0": REPO, "r1": None, "r3": None,
            "r2": {**REPO, "nameWithOwner": "acme/empty", "isArchived": False, "visibility": None,
                   "isPrivate": False, "defaultBranchRef": None}}
    issue = GraphQLIssue("Could not resolve to a Repository with the name 'acme/ghost'.", "NOT_FOUND", ("r1",))
    batch = parse_repositories(data, names, [issue])
    assert astuple(repository_row(batch.found["acme/app"], "acme/app")) == (
        "acme/app", "R_kgDOAAAA", True, "internal", "2024-05-01T00:00:00Z", "trunk", "a" * 40)
    assert astuple(repository_row(batch.found["acme/empty"], "acme/empty")) == (
        "acme/empty", "R_kgDOAAAA", False, "public", "2024-05-01T00:00:00Z", None, None)
    assert batch.missing == {"acme/ghost": issue, "acme/quiet": None}


def test_a_renamed_repository_is_stored_under_the_name_packages_link_to():
    batch = parse_repositories({"r0": {**REPO, "nameWithOwner": "acme/app-renamed"}}, ["acme/app"])
    assert batch.found["acme/app"].name_with_owner == "acme/app-renamed"
    assert repository_row(batch.found["acme/app"], "acme/app").name_with_owner == "acme/app"


def test_parse_repositories_rejects_a_malformed_node():
    with pytest.raises(ParseError, match="repository acme/app"):
        parse_repositories({"r0": {**REPO, "isArchived": "yes"}}, ["acme/app"])
    with pytest.raises(ParseError, match="'nameWithOwner' is missing"):
        parse_repositories({"r0": {"id": "x"}}, ["acme/app"])


def _page(nodes, has_next=False, cursor=None, total=None):
    return {"owner": {"packages": {"totalCount": total if total is not None else len(nodes),
                                   "pageInfo": {"hasNextPage": has_next, "endCursor": cursor},
                                   "nodes": nodes}}}


def test_parse_packages_page():
    page = parse_packages_page(_page([
        {"id": "P_1", "name": "team/app", "packageType": "DOCKER", "repository": {"nameWithOwner": "acme/app"},
         "versions": {"totalCount": 7}},
        None,                                              # one the token may not see
        {"id": "P_2", "name": "loose", "packageType": "DOCKER", "repository": None,
         "versions": {"totalCount": 1}},
    ], has_next=True, cursor="Y3Vy", total=250))
    assert page == PackagesPage((GqlPackage("P_1", "team/app", "acme/app", 7),
                                 GqlPackage("P_2", "loose", None, 1)), 250, True, "Y3Vy")
    with pytest.raises(ParseError, match="hasNextPage without an endCursor"):
        parse_packages_page(_page([], has_next=True))
    with pytest.raises(ParseError, match="invalid name"):
        parse_packages_page(_page([{"name": "two words"}]))
    with pytest.raises(GraphQLQueryError, match="owner was not found"):
        parse_packages_page({"owner": None})


# --- the governor's GraphQL hooks ---------------------------------------------------------

def test_the_rate_limit_field_feeds_the_governor_and_a_refusal_blocks_it():
    clock = FakeClock()
    gov = Governor("api.github.com:graphql", reserve=50, sleep=clock.sleep, clock=clock.clock)
    gov.note(RateLimit(limit=5000, remaining=4000, reset=clock.now + 600, resource="graphql"))
    assert gov.delay() == (0.0, "")
    gov.note(RateLimit(remaining=40, reset=clock.now + 600))            # below the reserve
    wait, why = gov.delay()
    assert wait == pytest.approx(601) and "40 of 5000" in why
    assert gov.refuse() == pytest.approx(601)                          # RATE_LIMITED: until the reset
    assert gov.blocked_until == pytest.approx(clock.now + 601)


def test_a_refusal_without_a_known_reset_backs_off_like_a_secondary_limit():
    clock = FakeClock()
    gov = Governor("h:graphql", sleep=clock.sleep, clock=clock.clock)
    assert gov.refuse() == 60.0
    assert gov.refuse() == 120.0
    gov.note(RateLimit())                                                # nothing said: nothing changes
    assert gov.rate_limit.remaining is None


# --- discovery = "graphql" -------------------------------------------------------------

class PagedClient:
    where = "POST https://ghes.example/api/graphql"

    def __init__(self, pages):
        self.pages = pages
        self.calls = []

    async def packages_page(self, login, kind, after):
        self.calls.append((login, kind, after))
        return self.pages[len(self.calls) - 1]


class Owner:
    name, kind = "Corp", "org"


class Listing:
    pages = 0


async def test_discovery_follows_the_cursor_and_counts_pages():
    pages = [PackagesPage((GqlPackage("P1", "App", "corp/app", 3),), 2, True, "c1"),
             PackagesPage((GqlPackage("P2", "team/tool", None, 1),), 2, False, None)]
    client, listing = PagedClient(pages), Listing()
    got = [refs async for refs in discover_graphql(Owner(), listing, client)]
    assert client.calls == [("Corp", "org", None), ("Corp", "org", "c1")]
    assert listing.pages == 2
    [[first], [second]] = got
    assert (first.name, first.repository_path, first.discovery, first.repository, first.version_count) == \
        ("App", "corp/app", "graphql", "corp/app", 3)
    assert second.repository_path == "corp/team/tool" and second.repository is None


async def test_discovery_on_a_server_without_containers_names_the_fix():
    client, listing = PagedClient([PackagesPage((), 0, False, None)]), Listing()
    with pytest.raises(DiscoveryUnsupportedError) as info:
        [refs async for refs in discover_graphql(Owner(), listing, client)]
    message = str(info.value)
    assert "GraphQL lists no container packages for 'Corp'" in message
    assert 'set discovery = "rest"' in message and "\n" not in message
    with pytest.raises(DiscoveryUnsupportedError, match="needs a GitHub token"):
        [refs async for refs in discover_graphql(Owner(), listing, None)]


# --- v_sources on a hand-made database ---------------------------------------------------------

def test_v_sources_compares_revisions_and_leaves_unknowns_null():
    conn = sqlite3.connect(":memory:")
    apply_schema(conn)
    head = "0123456789abcdef0123456789abcdef01234567"
    conn.executescript(f"""
        INSERT INTO owners (id, registry, name, kind, discovery, first_seen)
             VALUES (1, 'ghcr.io', 'acme', 'org', 'rest', 't');
        INSERT INTO packages (id, owner_id, name, visibility, repository, first_seen)
             VALUES (1, 1, 'app', 'public', 'acme/app', 't'), (2, 1, 'plain', 'public', NULL, 't'),
                    (3, 1, 'gone', 'public', 'acme/app', 't');
        UPDATE packages SET deleted_at = 't' WHERE id = 3;
        INSERT INTO repositories (name_with_owner, archived, visibility, default_branch, head_oid, fetched_at)
             VALUES ('acme/app', 0, 'private', 'main', '{head}', 't');
        INSERT INTO manifests (digest, media_type, kind, size, revision, fetched_at) VALUES
             ('sha256:full', 'm', 'image', 1, '{head.upper()}', 't'),
             ('sha256:short', 'm', 'image', 1, '{head[:7]}', 't'),
             ('sha256:tiny', 'm', 'image', 1, '{head[:4]}', 't'),
             ('sha256:old', 'm', 'image', 1, 'ffffffffffffffffffffffffffffffffffffffff', 't'),
             ('sha256:none', 'm', 'image', 1, NULL, 't'),
             ('sha256:index', 'm', 'index', 1, NULL, 't'),
             ('sha256:child', 'm', 'image', 1, '{head}', 't'),
             ('sha256:sig', 'm', 'signature', 1, NULL, 't');
        INSERT INTO manifest_children (parent_digest, position, child_digest, media_type, size)
             VALUES ('sha256:index', 0, 'sha256:child', 'm', 1);
        INSERT INTO tags (package_id, tag, digest, first_seen) VALUES
             (1, 'full', 'sha256:full', 't'), (1, 'short', 'sha256:short', 't'), (1, 'tiny', 'sha256:tiny', 't'),
             (1, 'old', 'sha256:old', 't'), (1, 'none', 'sha256:none', 't'), (1, 'multi', 'sha256:index', 't'),
             (1, 'unfetched', 'sha256:unknown', 't'), (1, 'sha256-abc.sig', 'sha256:sig', 't'),
             (2, 'latest', 'sha256:full', 't'), (3, 'latest', 'sha256:full', 't');
        INSERT INTO tags (package_id, tag, digest, first_seen, last_seen)
             VALUES (1, 'moved', 'sha256:old', 't', 't');
    """)
    got = {r[0]: r[1:] for r in conn.execute(
        "SELECT tag, image_revision, at_head, visibility, package_visibility FROM v_sources "
        "WHERE package = 'app'")}
    assert {t: v[1] for t, v in got.items()} == {"full": 1, "short": 1, "tiny": 0, "old": 0, "none": None,
                                                 "multi": 1, "unfetched": None}
    assert got["multi"][0] == head and got["full"][2:] == ("private", "public")
    assert conn.execute("SELECT COUNT(*) FROM v_sources WHERE package IN ('plain', 'gone')").fetchone() == (0,)
    columns = [d[0] for d in conn.execute("SELECT * FROM v_sources").description]
    assert columns[:9] == ["owner", "package", "repository", "archived", "visibility", "default_branch",
                           "head_oid", "image_revision", "at_head"]
