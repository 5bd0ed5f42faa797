"""The GraphQL stage: GitHub's GraphQL API on gql, paced by the engine's
rate-limit governor, and pure parsers for what its queries answer.

Two users: the enrichment of the packages' source repositories
(crawler/enrich.py) and `discovery = "graphql"` (crawler/discovery/graphql.py,
the legacy `packages` connection some GHES servers still answer).

Transport. gql's AIOHTTPTransport opens its own aiohttp session, with its
own connection pool and none of our retry or redirect rules, and turns a 403
into an exception that drops the body (where GitHub names a secondary rate
limit); it exposes the last headers but not the status of a 200. So the gql
`Client` here runs on `GitHubTransport`, a gql AsyncTransport whose POST
goes through the engine's HttpClient. That keeps one of everything: one
governor for GitHub's separate GraphQL budget (`HOST:graphql`), fed by the
`x-ratelimit-*` headers, by the `rateLimit { cost remaining resetAt }` field
every query selects, and by GitHub's 200-with-`RATE_LIMITED` answers; one
request counter (`http.counters.requests["graphql"]`); the same per-host
slots, retries of 5xx/resets, redirect rules and structured log line as every
other request. gql supplies the documents (GraphQLRequest: parse, print,
operation name, variables; a batch's text is printed once per batch size,
`PrintedRequest`) and the session API; the documents live in
crawler/queries/*.graphql and a test validates each against GitHub's
published schema.

Answers (errors from crawler/errors.py):
  401                         AuthError (fatal): the token was rejected
  403 (not a rate limit)      AuthError (not fatal): scope or SSO
  403/429 rate limits         waited out by HttpClient + governor
  200, `type: RATE_LIMITED`   governor.refuse(), then retried; RateLimitedError
                              when the wait would exceed crawl.max_wait_s
  200, data and `errors`      the data is kept; each error is logged on one
                              line and returned as a GraphQLIssue
  200, `errors` and no data   GraphQLQueryError
  a body that is not GraphQL  ParseError
The token travels only in the Authorization header, which HttpClient sends
to the GraphQL origin alone; it is never logged (crawler.secret).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Sequence

import orjson
import structlog
from gql import Client, GraphQLRequest
from gql.transport.async_transport import AsyncTransport
from gql.transport.exceptions import TransportQueryError
from graphql import ExecutionResult
from graphql.language import (ArgumentNode, DocumentNode, FieldNode, NameNode, OperationDefinitionNode,
                              SelectionSetNode, VariableDefinitionNode, VariableNode, parse, print_ast)

from .errors import (AuthError, GraphQLQueryError, HttpStatusError, ParseError,
                     RateLimitedError)
from .headers import RateLimit
from .http import MAX_RATE_LIMIT_WAITS, HttpClient, host_of
from .secret import Secret

log = structlog.get_logger("crawler.graphql")

MAX_BATCH = 100             # aliases per enrichment request (GitHub's node limit is far above)
RATE_LIMITED_TYPES = frozenset({"RATE_LIMITED"})
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


# --- documents ------------------------------------------------------------------

def query_names() -> list[str]:
    """Every document in crawler/queries (without the .graphql suffix)."""
    folder = resources.files("crawler").joinpath("queries")
    return sorted(p.name[:-len(".graphql")] for p in folder.iterdir() if p.name.endswith(".graphql"))


@functools.cache
def document_text(name: str) -> str:
    return resources.files("crawler").joinpath("queries", f"{name}.graphql").read_text(encoding="utf-8")


@functools.cache
def document(name: str) -> DocumentNode:
    return parse(document_text(name))


def split_full_name(full_name: str) -> tuple[str, str]:
    """'OWNER/NAME' -> ('OWNER', 'NAME'); ValueError for anything else."""
    owner, sep, name = full_name.partition("/")
    if not sep or not owner or not name or "/" in name or any(c.isspace() for c in full_name):
        raise ValueError(f"not an OWNER/NAME repository name: {full_name!r}")
    return owner, name


class PrintedRequest(GraphQLRequest):
    """A GraphQLRequest whose query text was printed once, ahead: gql's
    `payload` prints the document on every request, and printing a
    100-alias document costs ~13 ms and leaves ~3,500 objects in reference
    cycles that outlive the young GC generations (10,000 repositories'
    enrichment grew the peak RSS by ~25 MB; docs/benchmarks.md, finding 16)."""

    def __init__(self, document: DocumentNode, text: str, **kwargs: Any) -> None:
        super().__init__(document, **kwargs)
        self.text = text

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": self.text}
        if self.operation_name:
            payload["operationName"] = self.operation_name
        if self.variable_values:
            payload["variables"] = self.variable_values
        if self.extensions:
            payload["extensions"] = self.extensions
        return payload


def repositories_request(names: Sequence[str]) -> GraphQLRequest:
    """The SourceRepositories operation with its `r0` field repeated as
    r0..rN-1, one OWNER/NAME each (bound as variables, never spliced in)."""
    if not 1 <= len(names) <= MAX_BATCH:
        raise ValueError(f"between 1 and {MAX_BATCH} repositories per request, not {len(names)}")
    variables = {}
    for i, full_name in enumerate(names):
        owner, name = split_full_name(full_name)
        variables[f"owner{i}"], variables[f"name{i}"] = owner, name
    doc, text, operation = _repositories_document(len(names))
    return PrintedRequest(doc, text, variable_values=variables, operation_name=operation)


@functools.lru_cache(maxsize=4)
def _repositories_document(count: int) -> tuple[DocumentNode, str, str]:
    """The batch document for `count` repositories and its text: the same
    for every batch of that size (the names are variables), so a run builds
    and prints one per size it uses (100, and the last batch's)."""
    doc = document("repositories")
    op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    template = next(s for s in op.selection_set.selections
                    if isinstance(s, FieldNode) and s.alias is not None and s.alias.value == "r0")
    per_field = {a.value.name.value for a in template.arguments if isinstance(a.value, VariableNode)}
    if per_field != {"owner0", "name0"}:
        raise ValueError(f"repositories.graphql: r0 must take $owner0 and $name0, not {sorted(per_field)}")
    shared_defs = [d for d in op.variable_definitions if d.variable.name.value not in per_field]
    field_defs = [d for d in op.variable_definitions if d.variable.name.value in per_field]
    fields, defs = [], list(shared_defs)
    for i in range(count):
        def renamed(var: str) -> str:       # owner0 -> owner7
            return f"{var.rstrip('0123456789')}{i}"

        args = []
        for arg in template.arguments:
            if isinstance(arg.value, VariableNode):
                arg = ArgumentNode(name=arg.name, value=VariableNode(name=NameNode(value=renamed(arg.value.name.value))))
            args.append(arg)
        fields.append(FieldNode(alias=NameNode(value=f"r{i}"), name=template.name, arguments=tuple(args),
                                directives=(), selection_set=template.selection_set))
        for d in field_defs:
            var = VariableNode(name=NameNode(value=renamed(d.variable.name.value)))
            defs.append(VariableDefinitionNode(variable=var, type=d.type, default_value=d.default_value,
                                               directives=()))
    kept = tuple(s for s in op.selection_set.selections if s is not template)
    batch_op = OperationDefinitionNode(operation=op.operation, name=op.name, directives=(),
                                       variable_definitions=tuple(defs),
                                       selection_set=SelectionSetNode(selections=kept + tuple(fields)))
    batch_doc = DocumentNode(definitions=tuple(batch_op if d is op else d for d in doc.definitions))
    return batch_doc, print_ast(batch_doc), op.name.value


def packages_request(login: str, kind: str, after: str | None) -> GraphQLRequest:
    operation = "OrganizationPackages" if kind == "org" else "UserPackages"
    return GraphQLRequest(document("packages"), variable_values={"login": login, "after": after},
                          operation_name=operation)


# --- wire values and their pure parsers ------------------------------------------

@dataclass(frozen=True, slots=True)
class GraphQLIssue:
    """One entry of an answer's `errors` array."""

    message: str
    type: str | None = None
    path: tuple = ()

    def __str__(self) -> str:
        where = ".".join(str(p) for p in self.path)
        return " ".join(x for x in (f"{where}:" if where else "", f"{self.type}:" if self.type else "",
                                    self.message) if x)


@dataclass(frozen=True, slots=True)
class Answer:
    data: dict
    issues: tuple[GraphQLIssue, ...]
    rate: RateLimit | None


@dataclass(frozen=True, slots=True)
class SourceRepository:
    name_with_owner: str
    node_id: str | None
    archived: bool | None
    visibility: str | None          # public | private | internal
    pushed_at: str | None
    default_branch: str | None      # None for an empty repository
    head_oid: str | None


@dataclass(frozen=True, slots=True)
class RepositoryBatch:
    found: dict[str, SourceRepository]        # requested OWNER/NAME -> facts
    missing: dict[str, GraphQLIssue | None]   # requested OWNER/NAME -> why (None: null, no error)


@dataclass(frozen=True, slots=True)
class GqlPackage:
    node_id: str | None
    name: str
    repository: str | None          # nameWithOwner
    version_count: int | None


@dataclass(frozen=True, slots=True)
class PackagesPage:
    packages: tuple[GqlPackage, ...]
    total: int | None
    has_next: bool
    end_cursor: str | None


def _typed(obj: dict, key: str, kind: type | tuple, where: str, *, required: bool = False) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise ParseError(f"'{key}' is missing", where=where)
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ParseError(f"'{key}' has the wrong type ({type(value).__name__})", where=where)
    return value


def _epoch(stamp: str | None, where: str) -> float | None:
    if stamp is None:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        raise ParseError(f"'resetAt' is not a timestamp: {stamp[:40]!r}", where=where) from None


def parse_body(status: int, body: bytes, where: str) -> dict:
    """A GraphQL HTTP answer -> its JSON object, or the error it stands for."""
    if status == 401:
        raise AuthError(f"the GraphQL API rejected the token (401 {_message(body) or 'Unauthorized'}); "
                        f"check github.token_env / github.token_file", where=where, fatal=True)
    if status == 403:
        raise AuthError(f"the GraphQL API refused access (403 {_message(body) or 'Forbidden'}): the token "
                        f"lacks a scope or SSO authorization", where=where, fatal=False)
    if status != 200:
        raise HttpStatusError(f"HTTP {status} from the GraphQL API: {_message(body) or 'no message'}",
                              where=where, status=status)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ParseError("the GraphQL API answered with a body that is not JSON", where=where) from None
    if not isinstance(data, dict) or not ("data" in data or "errors" in data):
        raise ParseError("the GraphQL API answered JSON without 'data' or 'errors'", where=where)
    if data.get("errors") is not None and not isinstance(data["errors"], list):
        raise ParseError("'errors' is not a list", where=where)
    if data.get("data") is not None and not isinstance(data["data"], dict):
        raise ParseError("'data' is not an object", where=where)
    return data


def _message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    message = data.get("message") if isinstance(data, dict) else None
    return message[:200] if isinstance(message, str) else ""


def parse_issues(errors: Sequence[Any] | None) -> tuple[GraphQLIssue, ...]:
    out = []
    for err in errors or ():
        if not isinstance(err, dict):
            out.append(GraphQLIssue(str(err)[:300]))
            continue
        message = err.get("message")
        extensions = err.get("extensions")
        kind = err.get("type") or (extensions.get("code") if isinstance(extensions, dict) else None)
        path = err.get("path")
        out.append(GraphQLIssue(message[:300] if isinstance(message, str) else "error without a message",
                                kind if isinstance(kind, str) else None,
                                tuple(path) if isinstance(path, list) else ()))
    return tuple(out)


def is_rate_limited(issues: Sequence[GraphQLIssue]) -> bool:
    return any(i.type in RATE_LIMITED_TYPES or "secondary rate limit" in i.message.lower() for i in issues)


def parse_rate_limit_field(data: dict, where: str = "rateLimit") -> RateLimit | None:
    """GraphQL's `rateLimit { limit cost remaining resetAt }`; None when the
    server has limits off (GHES answers null)."""
    raw = data.get("rateLimit")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ParseError("'rateLimit' is not an object", where=where)
    remaining = _typed(raw, "remaining", int, where, required=True)
    return RateLimit(limit=_typed(raw, "limit", int, where), remaining=remaining,
                     reset=_epoch(_typed(raw, "resetAt", str, where), where), resource="graphql",
                     cost=_typed(raw, "cost", int, where))


def parse_repository(node: dict, where: str) -> SourceRepository:
    if not isinstance(node, dict):
        raise ParseError("repository is not an object", where=where)
    visibility = _typed(node, "visibility", str, where)
    private = _typed(node, "isPrivate", bool, where)
    if visibility is not None:
        visibility = visibility.lower()
    elif private is not None:
        visibility = "private" if private else "public"
    branch = _typed(node, "defaultBranchRef", dict, where) or {}
    target = _typed(branch, "target", dict, where) or {}
    return SourceRepository(
        name_with_owner=_typed(node, "nameWithOwner", str, where, required=True),
        node_id=_typed(node, "id", str, where), archived=_typed(node, "isArchived", bool, where),
        visibility=visibility, pushed_at=_typed(node, "pushedAt", str, where),
        default_branch=_typed(branch, "name", str, where), head_oid=_typed(target, "oid", str, where))


def parse_repositories(data: dict, names: Sequence[str],
                       issues: Sequence[GraphQLIssue] = ()) -> RepositoryBatch:
    """The answer to repositories_request(names): alias r<i> is names[i]."""
    by_alias = {str(i.path[0]): i for i in issues if i.path}
    found, missing = {}, {}
    for i, name in enumerate(names):
        node = data.get(f"r{i}")
        if node is None:
            missing[name] = by_alias.get(f"r{i}")
        else:
            found[name] = parse_repository(node, f"repository {name}")
    return RepositoryBatch(found, missing)


def parse_packages_page(data: dict, where: str = "packages") -> PackagesPage:
    owner = data.get("owner")
    if owner is None:
        raise GraphQLQueryError("the owner was not found", where=where)
    conn = _typed(owner, "packages", dict, where, required=True) if isinstance(owner, dict) else None
    if conn is None:
        raise ParseError("'owner' is not an object", where=where)
    info = _typed(conn, "pageInfo", dict, where) or {}
    nodes = _typed(conn, "nodes", list, where) or []
    packages = []
    for n, node in enumerate(nodes):
        at = f"{where} [node {n}]"
        if not isinstance(node, dict):
            continue                      # a package the token may not see comes back null
        name = _typed(node, "name", str, at, required=True)
        if not name or len(name) > 512 or any(c.isspace() for c in name):
            raise ParseError(f"package has an invalid name {name[:60]!r}", where=at)
        repo = _typed(node, "repository", dict, at) or {}
        versions = _typed(node, "versions", dict, at) or {}
        packages.append(GqlPackage(_typed(node, "id", str, at), name, _typed(repo, "nameWithOwner", str, at),
                                   _typed(versions, "totalCount", int, at)))
    has_next = bool(_typed(info, "hasNextPage", bool, where))
    cursor = _typed(info, "endCursor", str, where)
    if has_next and not cursor:
        raise ParseError("hasNextPage without an endCursor", where=where)
    return PackagesPage(tuple(packages), _typed(conn, "totalCount", int, where), has_next, cursor)


# --- the transport and the client ------------------------------------------------------

class GitHubTransport(AsyncTransport):
    """A gql transport that POSTs through the engine's HttpClient (see the
    module docstring): one governor, one counter, the same retry rules."""

    def __init__(self, http: HttpClient, url: str, token: Secret | None, governor_key: str) -> None:
        self.http = http
        self.url = url
        self.token = token
        self.governor_key = governor_key
        self.governor = http.governor(governor_key)
        self.where = f"POST {url.split('?', 1)[0]}"

    async def connect(self) -> None:       # the engine owns the HttpClient's session
        return None

    async def close(self) -> None:
        return None

    def subscribe(self, request: GraphQLRequest):
        raise NotImplementedError("GitHub's GraphQL API has no subscriptions")

    async def execute(self, request: GraphQLRequest, *args, **kwargs) -> ExecutionResult:
        body = orjson.dumps(request.payload)
        auth = f"Bearer {self.token.reveal()}" if self.token is not None else None
        for _ in range(MAX_RATE_LIMIT_WAITS + 1):
            resp = await self.http.request("POST", self.url, kind="graphql", headers=HEADERS, auth=auth,
                                           body=body, governor_key=self.governor_key)
            answer = parse_body(resp.status, resp.body, self.where)
            issues = parse_issues(answer.get("errors"))
            if not answer.get("data") and is_rate_limited(issues):
                wait = self.governor.refuse()
                self.http.counters.faults["graphql_rate_limited"] += 1
                log.warning("rate_limited", host=host_of(self.url), status=resp.status, kind="graphql",
                            wait_s=round(wait, 3), error=str(issues[0]))
                continue                    # the next request's before_request() waits (or gives up)
            return ExecutionResult(data=answer.get("data"), errors=answer.get("errors") or None,
                                   extensions=answer.get("extensions"))
        raise RateLimitedError(f"GraphQL still rate limited after {MAX_RATE_LIMIT_WAITS} waits",
                               where=self.where)


class GraphQLClient:
    """GitHub's GraphQL API for the crawler: gql documents over GitHubTransport."""

    def __init__(self, http: HttpClient, url: str, token: Secret | None) -> None:
        self.url = url
        self.transport = GitHubTransport(http, url, token, f"{host_of(url)}:graphql")
        self.governor = self.transport.governor
        # No execute_timeout: HttpClient times each request, and a governor
        # wait for the rate limit may rightly last longer than any timeout.
        self.client = Client(transport=self.transport, execute_timeout=None)

    @property
    def where(self) -> str:
        return self.transport.where

    async def execute(self, request: GraphQLRequest) -> Answer:
        """One query. Partial data is returned with its issues (each logged);
        an answer with no data at all raises GraphQLQueryError."""
        async with self.client as session:
            try:
                result = await session.execute(request, get_execution_result=True)
                data, errors = result.data, None
            except TransportQueryError as exc:    # gql's way to hand over data + errors
                data, errors = exc.data, exc.errors
        issues = parse_issues(errors)
        for issue in issues:
            log.warning("graphql_error", operation=request.operation_name, type=issue.type,
                        path=".".join(map(str, issue.path)) or None, message=issue.message)
        if not data:
            first = issues[0] if issues else GraphQLIssue("an answer with neither data nor errors")
            more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
            raise GraphQLQueryError(f"{request.operation_name}: {first}{more}", where=self.where,
                                    types=tuple(i.type for i in issues if i.type))
        rate = parse_rate_limit_field(data, self.where)
        if rate is not None:
            self.governor.note(rate)
        return Answer(data, issues, rate)

    async def repositories(self, names: Sequence[str]) -> RepositoryBatch:
        """Facts about up to MAX_BATCH repositories (OWNER/NAME) in one request."""
        answer = await self.execute(repositories_request(names))
        return parse_repositories(answer.data, names, answer.issues)

    async def packages_page(self, login: str, kind: str, after: str | None) -> PackagesPage:
        answer = await self.execute(packages_request(login, kind, after))
        return parse_packages_page(answer.data, f"{self.where} ({login} packages)")
