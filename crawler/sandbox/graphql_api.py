"""GitHub's GraphQL API over the world's state, executed by graphql-core against GitHub's own schema.

Documents are parsed and validated against the published SDL
(``reference/github-graphql-schema.graphql``), so a query the crawler sends here
would also validate on github.com. Resolvers cover what the crawler asks:
``rateLimit``, ``viewer``, ``organization``/``user``/``repositoryOwner``
(``repositories``, ``packages``), ``repository``, ``node``/``nodes``. Errors take
GitHub's shape: validation failures carry ``extensions.code``; resolver failures
carry a top-level ``type`` (``NOT_FOUND``, ``MISSING_PAGINATION_BOUNDARIES``…).

GitHub removed container packages from GraphQL (changelog 2022-08-18): on
github.com ``packages(packageType: DOCKER)`` answers an empty connection. With
``lists_containers=True`` the emulator behaves like a GHES that still lists them.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    build_schema,
    execute,
    parse,
    validate,
)
from graphql.language import FieldNode, FragmentSpreadNode, InlineFragmentNode, OperationDefinitionNode

from .openapi import reference_text
from .state import Owner, Package, Repository, Token, WorldState, iso

SCHEMA_FILE = "github-graphql-schema.graphql"
MAX_PAGE = 100


@functools.cache
def github_schema() -> GraphQLSchema:
    """GitHub's published schema, built once per process (~1 s)."""
    schema = build_schema(reference_text(SCHEMA_FILE), assume_valid_sdl=True)
    # GitHub's published SDL has duplicate fields and deprecated interface
    # implementations that graphql-core's strict schema validator rejects,
    # while GitHub's own server accepts them; mark the schema as already
    # validated so documents can be validated and executed against it.
    schema._validation_errors = []  # noqa: SLF001
    return schema


class GitHubGraphQLError(Exception):
    """A resolver failure carrying GitHub's top-level error ``type``."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_


@dataclass
class Context:
    state: WorldState
    token: Token
    lists_containers: bool


# -- validation error codes -------------------------------------------------

_CODES = (
    ("Cannot query field", "undefinedField"),
    ("Unknown argument", "argumentNotAccepted"),
    ("Unknown type", "undefinedType"),
    ("is required, but it was not provided", "missingRequiredArguments"),
    ("is never used", "variableNotUsed"),
    ("is not defined", "variableNotDefined"),
    ("must have a selection of subfields", "selectionMismatch"),
    ("must not have a selection", "selectionMismatch"),
    ("cannot represent", "argumentLiteralsIncompatible"),
    ("Expected value of type", "argumentLiteralsIncompatible"),
    ("Unknown fragment", "undefinedFragment"),
)


def _validation_code(message: str) -> str:
    return next((code for needle, code in _CODES if needle in message), "validationError")


def _format_error(err: GraphQLError) -> dict:
    body = err.formatted
    out: dict[str, Any] = {}
    original = err.original_error
    if isinstance(original, GitHubGraphQLError):
        out["type"] = original.type
    if body.get("path") is not None:
        out["path"] = body["path"]
    if body.get("locations"):
        out["locations"] = body["locations"]
    if body.get("extensions"):
        out["extensions"] = body["extensions"]
    out["message"] = body["message"]
    return out


# -- cost ---------------------------------------------------------------------


def node_count(document, operation_name: str | None, variables: dict | None) -> int:
    """GitHub's ``nodeCount``: Σ over connections of (product of enclosing ``first``/``last``)."""
    variables = variables or {}
    fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    op = next((o for o in ops if operation_name is None or (o.name and o.name.value == operation_name)), None)
    if op is None:
        return 0

    def arg_value(field: FieldNode, name: str) -> int | None:
        for arg in field.arguments or ():
            if arg.name.value == name:
                node = arg.value
                if node.kind == "variable":
                    value = variables.get(node.name.value)
                    return int(value) if isinstance(value, int) else None
                if node.kind == "int_value":
                    return int(node.value)
        return None

    def walk(selection_set, multiplier: int, seen: frozenset) -> int:
        total = 0
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                size = arg_value(sel, "first") or arg_value(sel, "last")
                inner = multiplier * size if size else multiplier
                if size:
                    total += inner
                total += walk(sel.selection_set, inner, seen)
            elif isinstance(sel, InlineFragmentNode):
                total += walk(sel.selection_set, multiplier, seen)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                frag = fragments.get(sel.name.value)
                if frag is not None:
                    total += walk(frag.selection_set, multiplier, seen | {sel.name.value})
        return total

    return walk(op.selection_set, 1, frozenset())


# -- connections ----------------------------------------------------------------


def _cursor(index: int) -> str:
    return base64.b64encode(f"cursor:v2:{index}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.b64decode(cursor.encode()).decode()
        return int(text.rsplit(":", 1)[1])
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise GitHubGraphQLError("INVALID_CURSOR_ARGUMENTS", f"`{cursor}` does not appear to be a valid cursor.") from exc


def connection(items: list, name: str, *, first=None, after=None, last=None, before=None, **_ignored) -> dict:
    """A GitHub connection with GitHub's pagination rules (first/last required, ≤ 100)."""
    if first is None and last is None:
        raise GitHubGraphQLError(
            "MISSING_PAGINATION_BOUNDARIES",
            f"You must provide a `first` or `last` value to properly paginate the `{name}` connection.",
        )
    for arg, value in (("first", first), ("last", last)):
        if value is not None and value > MAX_PAGE:
            raise GitHubGraphQLError(
                "EXCESSIVE_PAGINATION",
                f"Requesting {value} records on the `{name}` connection exceeds the `{arg}` limit of {MAX_PAGE} records.",
            )
    indexed = list(enumerate(items))
    start = _decode_cursor(after)
    if start is not None:
        indexed = [(i, x) for i, x in indexed if i > start]
    end = _decode_cursor(before)
    if end is not None:
        indexed = [(i, x) for i, x in indexed if i < end]
    window = indexed
    if first is not None:
        window = window[: max(first, 0)]
    if last is not None:
        window = window[-last:] if last > 0 else []
    return {
        "nodes": [x for _, x in window],
        "edges": [{"cursor": _cursor(i), "node": x} for i, x in window],
        "totalCount": len(items),
        "pageInfo": {
            "hasNextPage": bool(window) and window[-1][0] < len(items) - 1,
            "hasPreviousPage": bool(window) and window[0][0] > 0,
            "startCursor": _cursor(window[0][0]) if window else None,
            "endCursor": _cursor(window[-1][0]) if window else None,
        },
    }


# -- object types -----------------------------------------------------------------


class CommitNode:
    __typename = "Commit"

    def __init__(self, repo: Repository) -> None:
        self.id = f"C_{repo.node_id}_{repo.head_oid[:12]}"
        self.oid = repo.head_oid
        self.abbreviatedOid = repo.head_oid[:7]
        self.committedDate = iso(repo.committed_at)
        self.url = f"https://github.com/{repo.full_name}/commit/{repo.head_oid}"
        self.message = "sandbox commit"


class RefNode:
    def __init__(self, repo: Repository) -> None:
        self.id = f"REF_{repo.node_id}"
        self.name = repo.default_branch
        self.prefix = "refs/heads/"
        self.target = CommitNode(repo)


class RepositoryNode:
    __typename = "Repository"

    def __init__(self, ctx: Context, repo: Repository) -> None:
        self._ctx = ctx
        self._repo = repo
        self.id = repo.node_id
        self.databaseId = repo.id
        self.name = repo.name
        self.nameWithOwner = repo.full_name
        self.isArchived = repo.archived
        self.isPrivate = repo.private
        self.isFork = False
        self.isDisabled = False
        self.visibility = repo.visibility.upper()
        self.pushedAt = iso(repo.pushed_at)
        self.createdAt = iso(repo.created_at)
        self.updatedAt = iso(repo.pushed_at)
        self.description = repo.description
        self.url = f"https://github.com/{repo.full_name}"
        self.resourcePath = f"/{repo.full_name}"

    def owner(self, info) -> "OwnerNode":
        return owner_node(self._ctx, self._ctx.state.owner(self._repo.owner))

    def defaultBranchRef(self, info) -> RefNode:  # noqa: N802 (GraphQL field name)
        return RefNode(self._repo)

    def packages(self, info, **args) -> dict:
        pkgs = [p for p in _visible_packages(self._ctx, self._repo.owner) if p.repository == self._repo.full_name]
        return connection(_filter_packages(self._ctx, pkgs, **args), "packages", **args)


class PackageVersionNode:
    __typename = "PackageVersion"

    def __init__(self, ctx: Context, pkg: Package, name: str, version_id: int) -> None:
        self.id = f"PV_kwDO{version_id}"
        self.version = name
        self.platform = None
        self.preRelease = False
        self.summary = None
        self.readme = None
        self.statistics = {"downloadsTotalCount": 0}


class PackageNode:
    __typename = "Package"

    def __init__(self, ctx: Context, pkg: Package) -> None:
        self._ctx = ctx
        self._pkg = pkg
        self.id = pkg.node_id
        self.name = pkg.name
        self.packageType = "DOCKER"
        self.statistics = {"downloadsTotalCount": pkg.downloads}

    def _versions(self) -> list[PackageVersionNode]:
        return [PackageVersionNode(self._ctx, self._pkg, v.name, v.id) for v in self._pkg.listed_versions()]

    def repository(self, info):
        repo = self._ctx.state.repository(self._pkg.repository) if self._pkg.repository else None
        if repo is None or not self._ctx.state.can_see_repository(self._ctx.token, repo):
            return None
        return RepositoryNode(self._ctx, repo)

    def latestVersion(self, info):  # noqa: N802
        versions = self._versions()
        return versions[0] if versions else None

    def version(self, info, version: str):
        return next((v for v in self._versions() if v.version == version), None)

    def versions(self, info, **args) -> dict:
        return connection(self._versions(), "versions", **args)


class OwnerNode:
    """Common fields of Organization and User."""

    def __init__(self, ctx: Context, owner: Owner) -> None:
        self._ctx = ctx
        self._owner = owner
        self.id = owner.node_id
        self.databaseId = owner.id
        self.login = owner.login
        self.name = owner.name
        self.url = f"https://github.com/{owner.login}"
        self.resourcePath = f"/{owner.login}"

    def avatarUrl(self, info, size=None):  # noqa: N802
        return f"https://avatars.githubusercontent.com/u/{self._owner.id}?v=4"

    def repositories(self, info, isArchived=None, privacy=None, visibility=None, **args) -> dict:  # noqa: N803
        state = self._ctx.state
        repos = [
            r
            for r in sorted(state.repositories.values(), key=lambda r: r.id)
            if r.owner.lower() == self._owner.login.lower() and state.can_see_repository(self._ctx.token, r)
        ]
        if isArchived is not None:
            repos = [r for r in repos if r.archived == isArchived]
        if privacy is not None:
            repos = [r for r in repos if r.private == (privacy == "PRIVATE")]
        if visibility is not None:
            repos = [r for r in repos if r.visibility.upper() == visibility]
        return connection([RepositoryNode(self._ctx, r) for r in repos], "repositories", **args)

    def repository(self, info, name: str, followRenames=True):  # noqa: N803
        repo = self._ctx.state.repository(f"{self._owner.login}/{name}")
        if repo is None or not self._ctx.state.can_see_repository(self._ctx.token, repo):
            return None
        return RepositoryNode(self._ctx, repo)

    def packages(self, info, **args) -> dict:
        pkgs = _visible_packages(self._ctx, self._owner.login)
        return connection(_filter_packages(self._ctx, pkgs, **args), "packages", **args)


class OrganizationNode(OwnerNode):
    __typename = "Organization"


class UserNode(OwnerNode):
    __typename = "User"


def owner_node(ctx: Context, owner: Owner | None):
    if owner is None:
        return None
    return OrganizationNode(ctx, owner) if owner.kind == "org" else UserNode(ctx, owner)


def _visible_packages(ctx: Context, owner: str) -> list[Package]:
    return [p for p in ctx.state.packages_of(owner) if ctx.state.can_read_package(ctx.token, p)]


def _filter_packages(ctx: Context, pkgs: list[Package], *, packageType=None, names=None, repositoryId=None, **_) -> list:  # noqa: N803
    # github.com: containers left GraphQL, so DOCKER (or no type) lists nothing here.
    if not ctx.lists_containers or packageType not in (None, "DOCKER"):
        return []
    if names:
        wanted = {n for n in names if n is not None}
        pkgs = [p for p in pkgs if p.name in wanted]
    if repositoryId:
        repo = ctx.state.node(repositoryId)
        pkgs = [p for p in pkgs if isinstance(repo, Repository) and p.repository == repo.full_name]
    return [PackageNode(ctx, p) for p in pkgs]


class Root:
    def __init__(self, ctx: Context, cost: int, nodes: int) -> None:
        self._ctx = ctx
        self._cost = cost
        self._nodes = nodes

    def rateLimit(self, info, dryRun=False):  # noqa: N802, N803
        budget = self._ctx.token.graphql
        return {
            "limit": budget.limit,
            "cost": self._cost,
            "remaining": budget.remaining,
            "used": budget.used,
            "resetAt": iso(budget.reset_at),
            "nodeCount": self._nodes,
        }

    def viewer(self, info):
        state, token = self._ctx.state, self._ctx.token
        owner = state.owner(token.login)
        if owner is None or owner.kind != "user":
            owner = Owner(token.login, "user", token.user_id, f"U_sandbox{token.user_id}")
        return UserNode(self._ctx, owner)

    def organization(self, info, login: str):
        owner = self._ctx.state.owner(login)
        if owner is None or owner.kind != "org":
            raise GitHubGraphQLError("NOT_FOUND", f"Could not resolve to an Organization with the login of '{login}'.")
        return OrganizationNode(self._ctx, owner)

    def user(self, info, login: str):
        owner = self._ctx.state.owner(login)
        if owner is None or owner.kind != "user":
            raise GitHubGraphQLError("NOT_FOUND", f"Could not resolve to a User with the login of '{login}'.")
        return UserNode(self._ctx, owner)

    def repositoryOwner(self, info, login: str):  # noqa: N802
        return owner_node(self._ctx, self._ctx.state.owner(login))

    def repository(self, info, owner: str, name: str, followRenames=True):  # noqa: N803
        repo = self._ctx.state.repository(f"{owner}/{name}")
        if repo is None or not self._ctx.state.can_see_repository(self._ctx.token, repo):
            raise GitHubGraphQLError("NOT_FOUND", f"Could not resolve to a Repository with the name '{owner}/{name}'.")
        return RepositoryNode(self._ctx, repo)

    def _node(self, global_id: str):
        ctx = self._ctx
        obj = ctx.state.node(global_id)
        if isinstance(obj, Repository) and ctx.state.can_see_repository(ctx.token, obj):
            return RepositoryNode(ctx, obj)
        if isinstance(obj, Owner):
            return owner_node(ctx, obj)
        if isinstance(obj, Package) and ctx.state.can_read_package(ctx.token, obj):
            return PackageNode(ctx, obj)
        return GitHubGraphQLError("NOT_FOUND", f"Could not resolve to a node with the global id of '{global_id}'")

    def node(self, info, id: str):  # noqa: A002
        found = self._node(id)
        if isinstance(found, Exception):
            raise found
        return found

    def nodes(self, info, ids: list[str]):
        if len(ids) > MAX_PAGE:
            raise GitHubGraphQLError("EXCESSIVE_PAGINATION", f"You may not request more than {MAX_PAGE} ids at once.")
        # An Exception as a list item becomes null there plus an error at its path.
        return [self._node(i) for i in ids]


# -- entry point ---------------------------------------------------------------------


@dataclass(frozen=True)
class GraphQLCall:
    """One document the emulator received (for tests that check what a client sent)."""

    query: str
    variables: dict | None
    operation_name: str | None
    login: str
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_document(query: str) -> list[dict]:
    """GitHub-shaped errors for a document that does not parse or validate ([] if it does)."""
    try:
        document = parse(query)
    except GraphQLSyntaxError as err:
        loc = [{"line": l.line, "column": l.column} for l in (err.locations or [])]
        return [{"message": f"Parse error: {err.message}", "locations": loc, "extensions": {"code": "parseError"}}]
    errors = validate(github_schema(), document)
    return [
        {
            "path": ["query"],
            "extensions": {"code": _validation_code(e.message)},
            "locations": [{"line": l.line, "column": l.column} for l in (e.locations or [])],
            "message": _github_wording(e.message),
        }
        for e in errors
    ]


_UNDEFINED_FIELD = re.compile(r"^Cannot query field '([^']+)' on type '([^']+)'\.")


def _github_wording(message: str) -> str:
    """graphql-core's message in GitHub's words where they differ in a known way."""
    match = _UNDEFINED_FIELD.match(message)
    if match:
        return f"Field '{match[1]}' doesn't exist on type '{match[2]}'"
    return message


def run_query(state: WorldState, token: Token, query: str, variables: dict | None, operation_name: str | None, *, lists_containers: bool) -> tuple[dict, bool]:
    """Execute one request; returns (response body, whether it was charged)."""
    static_errors = check_document(query)
    if static_errors:
        return {"errors": static_errors}, False
    document = parse(query)
    budget = token.graphql
    budget.refresh(state.wall())
    if budget.remaining < 1:
        return {
            "data": None,
            "errors": [{"type": "RATE_LIMITED", "code": "graphql_rate_limit", "message": f"API rate limit exceeded for user ID {token.user_id}."}],
        }, False
    cost = 1
    budget.charge(cost)
    ctx = Context(state, token, lists_containers)
    result = execute(
        github_schema(),
        document,
        root_value=Root(ctx, cost, node_count(document, operation_name, variables)),
        context_value=ctx,
        variable_values=variables,
        operation_name=operation_name,
    )
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [_format_error(e) for e in result.errors]
    body["data"] = result.data
    return body, True
