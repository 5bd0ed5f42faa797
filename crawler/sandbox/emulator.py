"""The GitHub emulator: REST packages API, GraphQL and the registry token endpoint, on loopback.

One aiohttp server answering like api.github.com (and ghcr.io's ``/token``):

- REST ``/orgs|users/{owner}/packages…``, ``/user/packages…`` and the
  ``/organizations/{id}`` and ``/user/{id}`` forms GitHub puts in ``Link``
  headers. Paths are routed on the *raw* path so a package name containing ``/``
  is found only when sent as ``%2F`` (cli/cli#9798). ``page``/``per_page``
  (default 30, max 100), weak ``ETag`` on every 200 and ``304`` on a matching
  ``If-None-Match`` (not charged), ``x-ratelimit-*`` from a real per-token
  budget, GitHub's 401/403/404 bodies.
- The pagination cap: a packages listing answers ``400`` once ``page ×
  per_page`` (per_page after clamping) exceeds ``page_cap`` (GitHub's 10,000;
  the OpenAPI documents this 400 on the packages listings, without a body
  schema). A versions listing has no cap: its OpenAPI documents no 400, and
  cleanup tools page through 60,000-version packages (600 pages). The body is GitHub's error shape (``message``,
  ``documentation_url``, ``status``). Tests may lower ``page_cap`` to reach it
  in a few requests (``World.set_page_cap``; ``World.clear_faults`` restores it).
- GraphQL ``POST /graphql`` (see ``graphql_api``).
- ``GET /token``: registry JWTs (``tokens.TokenSigner``) granting what the
  GitHub token may do, like ``https://ghcr.io/token``.

With ``validate=True`` every JSON body served is checked against the published
OpenAPI; violations accumulate in ``violations`` (tests assert it stays empty).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote, urlencode

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from . import attest_api, graphql_api, render
from .openapi import Violation, validate_body
from .state import Owner, Package, Token, WorldState, iso
from .tokens import Access, TokenSigner

DOCS = "https://docs.github.com/rest/packages/packages"
PAGE_CAP = 10_000  # GitHub: "per_page multiplied by page cannot be greater than 10000"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
INTERNAL_HEADER = "X-Sandbox-Internal"  # marks the builder's own token requests

_USER_ROUTE = re.compile(r"^/users/(?P<user>[^/]+)$")
SSO_MESSAGE = ("Resource protected by organization SAML enforcement. You must grant your Personal Access token "
               "access to this organization.")
FINE_GRAINED_MESSAGE = "Resource not accessible by personal access token"
_PACKAGES_ROUTE = re.compile(
    r"^(?:/orgs/(?P<org>[^/]+)|/organizations/(?P<org_id>\d+)|/users/(?P<user>[^/]+)|/user/(?P<user_id>\d+)|/user)"
    r"/packages(?:/(?P<type>[^/]+)/(?P<name>[^/]+)(?P<versions>/versions(?:/(?P<vid>[^/]+))?)?)?$"
)


@dataclass(frozen=True)
class ApiExchange:
    method: str
    path: str  # raw path with query
    status: int
    login: str | None


@dataclass(frozen=True)
class TokenGrant:
    login: str | None  # None: anonymous
    requested: tuple[str, ...]
    granted: tuple[Access, ...]
    internal: bool


class _Reply(Exception):
    """Short-circuit a REST handler with a status and body."""

    def __init__(self, status: int, body: Any, headers: dict | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer X`` or ``token X`` (GitHub accepts both)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return None


def basic_password(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        _, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password or None


def etag_of(body: bytes) -> str:
    return f'W/"{hashlib.sha256(body).hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(c.strip().removeprefix("W/") == bare for c in if_none_match.split(","))


def page_params(query: MultiDictProxy) -> tuple[int, int]:
    """(page, per_page) with GitHub's defaults: per_page 30, at most 100."""
    try:
        per_page = int(query.get("per_page", 30))
    except ValueError:
        per_page = 30
    per_page = 30 if per_page < 1 else min(per_page, 100)
    try:
        page = max(1, int(query.get("page", 1)))
    except ValueError:
        page = 1
    return page, per_page


def link_header(base: str, path: str, query: MultiDictProxy, page: int, last_page: int) -> str | None:
    """GitHub's ``Link`` header (prev, next, last, first as they apply)."""

    def url(number: int) -> str:
        items = [(k, v) for k, v in query.items() if k != "page"] + [("page", str(number))]
        return f"{base}{path}?{urlencode(items)}"

    links = []
    if page > 1:
        links.append(f'<{url(min(page - 1, last_page))}>; rel="prev"')
    if page < last_page:
        links.append(f'<{url(page + 1)}>; rel="next"')
        links.append(f'<{url(last_page)}>; rel="last"')
    if page > 1:
        links.append(f'<{url(1)}>; rel="first"')
    return ", ".join(links) or None


class Emulator:
    """The GitHub API emulator server. Construct, ``await start()``, ``await stop()``."""

    def __init__(
        self,
        state: WorldState,
        signer: TokenSigner,
        *,
        validate: bool = False,
        graphql_lists_containers: bool = False,
        token_ttl_s: int = 300,
        token_expires_in: bool = True,
        page_cap: int = PAGE_CAP,
        host: str = "127.0.0.1",
    ) -> None:
        self.state = state
        self.signer = signer
        self.validate = validate
        self.graphql_lists_containers = graphql_lists_containers
        self.token_ttl_s = token_ttl_s
        self.token_expires_in = token_expires_in
        self.page_cap = page_cap  # page × per_page beyond this answers 400 (GitHub: 10,000)
        self.host = host
        self.violations: list[Violation] = []
        self.graphql_log: list[graphql_api.GraphQLCall] = []
        self.token_log: list[TokenGrant] = []
        self.log: list[ApiExchange] = []
        # Test hook: (OpenAPI path template, decoded 200 body) -> body actually served.
        # What it returns is validated like any body, so a test that breaks a body
        # on purpose must clear ``violations`` itself; the API front's ``bad_item``
        # fault spoils a listing *after* validation and records none.
        self.tamper: Callable[[str, Any], Any] | None = None
        self._request_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # -- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def token_requests(self) -> int:
        """Token requests from clients (the builder's own are not counted)."""
        return sum(1 for g in self.token_log if not g.internal)

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset_logs(self) -> None:
        self.graphql_log.clear()
        self.token_log.clear()
        self.log.clear()

    # -- dispatch --------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        if path == "/token":
            response = self._token(request)
        elif path == "/graphql":
            response = await self._graphql(request)
        elif path == "/rate_limit" and request.method == "GET":
            response = self._rate_limit(request)
        elif _USER_ROUTE.match(path) and request.method == "GET":
            response = self._user(request, unquote(_USER_ROUTE.match(path)["user"]))
        elif attest_api.ROUTE.match(path) and request.method == "POST":
            response = await self._attestations(request, attest_api.ROUTE.match(path))
        else:
            response = self._rest(request, path)
        if request.headers.get(INTERNAL_HEADER) != "builder":
            token = self.state.token(bearer_token(request.headers.get("Authorization")))
            self.log.append(ApiExchange(request.method, request.raw_path, response.status, token.login if token else None))
        return response

    def _common_headers(self) -> dict:
        n = next(self._request_ids)
        return {
            "x-github-request-id": f"5A4D:{n:05X}:{n * 7919 % 0xFFFFF:05X}:{n * 104729 % 0xFFFFFF:06X}:6720A1B0",
            "x-github-api-version-selected": "2022-11-28",
            "x-github-media-type": "github.v3; format=json",
            "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
            "Server": "github.com",
        }

    @staticmethod
    def _rate_headers(token: Token, resource: str) -> dict:
        budget = token.rest if resource == "core" else token.graphql
        return {
            "x-ratelimit-limit": str(budget.limit),
            "x-ratelimit-remaining": str(budget.remaining),
            "x-ratelimit-used": str(budget.used),
            "x-ratelimit-reset": str(int(budget.reset_at)),
            "x-ratelimit-resource": resource,
        }

    def _json(self, status: int, body: Any, headers: dict) -> web.Response:
        data = orjson.dumps(body)
        return web.Response(status=status, body=data, headers=headers, content_type="application/json", charset="utf-8")

    # -- REST --------------------------------------------------------------------

    def _rest(self, request: web.Request, path: str) -> web.StreamResponse:
        headers = self._common_headers()
        match = _PACKAGES_ROUTE.match(path)
        template = _template(match) if match else None
        doc = DOCS
        value = bearer_token(request.headers.get("Authorization"))
        if value is None:
            return self._served(request, template, 401, render.error_json("Requires authentication", doc, 401), headers)
        token = self.state.token(value)
        if token is None:
            return self._served(request, template, 401, render.error_json("Bad credentials", "https://docs.github.com/rest", 401), headers)
        if token.reports_scopes:  # fine-grained, app and Actions tokens have permissions, not scopes
            headers["x-oauth-scopes"] = ", ".join(sorted(token.scopes))
        headers["x-accepted-oauth-scopes"] = "read:packages"
        budget = token.rest
        budget.refresh(self.state.wall())
        if budget.remaining < 1:
            headers.update(self._rate_headers(token, "core"))
            body = render.error_json(
                f"API rate limit exceeded for user ID {token.user_id}. If you reach out to GitHub Support for help, "
                f"please include the request ID {headers['x-github-request-id']}.",
                RATE_DOCS,
                403,
            )
            return self._served(request, template, 403, body, headers)
        try:
            if match is None or request.method != "GET":
                raise _Reply(404, render.error_json("Not Found", "https://docs.github.com/rest", 404))
            self._refuse_by_token_kind(match, token, _docs_anchor(match))
            if token.reports_scopes and not token.has_scope("read:packages"):
                raise _Reply(403, render.error_json("You need at least read:packages scope to list packages.", doc, 403))
            status, body, extra = self._packages(request, match, token)
        except _Reply as reply:
            status, body, extra = reply.status, reply.body, reply.headers
        headers.update(extra)
        if template is not None and self.tamper is not None and status == 200:
            body = self.tamper(template, body)
        data = orjson.dumps(body)
        if status == 200:
            etag = etag_of(data)
            headers["ETag"] = etag
            headers["Cache-Control"] = "private, max-age=60, s-maxage=60"
            if etag_matches(request.headers.get("If-None-Match"), etag):
                # A 304 to a conditional request is not charged (GitHub docs,
                # "Use conditional requests if appropriate").
                headers.update(self._rate_headers(token, "core"))
                return web.Response(status=304, headers=headers)
        budget.charge(1)
        headers.update(self._rate_headers(token, "core"))
        return self._served(request, template, status, body, headers, data)

    @staticmethod
    def _refuse_by_token_kind(match: re.Match, token: Token, docs: str) -> None:
        """What GitHub answers the packages API for tokens it does not serve
        there (docs/architecture.md "Facts"): an org enforcing SAML SSO the token is not
        authorized for (403 + ``X-GitHub-SSO``), a fine-grained PAT (403), an
        Actions ``GITHUB_TOKEN`` listing an org's packages (400 "Invalid argument")."""
        org = unquote(match["org"]) if match["org"] else None
        if org is not None and org.lower() in token.sso_blocked:
            url = f"https://github.com/orgs/{org}/sso?authorization_request=SANDBOX{token.user_id}"
            raise _Reply(403, render.error_json(SSO_MESSAGE, docs, 403), {"X-GitHub-SSO": f"required; url={url}"})
        if token.kind == "fine_grained":
            raise _Reply(403, render.error_json(FINE_GRAINED_MESSAGE, docs, 403))
        if token.kind == "actions" and org is not None and match["type"] is None:
            raise _Reply(400, render.error_json("Invalid argument", docs, 400))

    async def _attestations(self, request: web.Request, match: re.Match) -> web.Response:
        """``POST /orgs|users/{owner}/attestations/bulk-list`` (see ``attest_api``): request and
        answer validated against the vendored OpenAPI, charged like any REST call."""
        headers = self._common_headers()
        template = attest_api.template(match)
        token = self.state.token(bearer_token(request.headers.get("Authorization")))
        if token is None:
            return self._json(401, render.error_json("Bad credentials", "https://docs.github.com/rest", 401), headers)
        budget = token.rest
        budget.refresh(self.state.wall())
        budget.charge(1)
        headers.update(self._rate_headers(token, "core"))
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._json(400, render.error_json("Problems parsing JSON", attest_api.DOCS, 400), headers)
        api = f"{request.scheme}://{request.host}"
        status, answer, extra, violations = attest_api.bulk_list(self.state, token, match, body,
                                                                 request.rel_url.query, api)
        headers.update(extra)
        if self.validate:
            self.violations.extend(violations)
            self.violations.extend(validate_body(template, "post", status, answer))
        return self._json(status, answer, headers)

    def _served(self, request, template, status, body, headers, data: bytes | None = None) -> web.Response:
        if self.validate and template is not None:
            self.violations.extend(validate_body(template, "get", status, body))
        data = orjson.dumps(body) if data is None else data
        return web.Response(status=status, body=data, headers=headers, content_type="application/json", charset="utf-8")

    def _owner_of(self, match: re.Match, token: Token) -> tuple[Owner, str]:
        """The owner a route names and the path prefix GitHub's Link headers use for it."""
        state = self.state
        if match["org"] is not None or match["org_id"] is not None:
            owner = state.owner(unquote(match["org"])) if match["org"] else state.owner_by_id(int(match["org_id"]))
            if owner is None or owner.kind != "org":
                raise _Reply(404, render.error_json("Not Found", DOCS + "#list-packages-for-an-organization", 404))
            return owner, f"/organizations/{owner.id}"
        if match["user"] is not None or match["user_id"] is not None:
            owner = state.owner(unquote(match["user"])) if match["user"] else state.owner_by_id(int(match["user_id"]))
            if owner is None or owner.kind != "user":
                raise _Reply(404, render.error_json("Not Found", DOCS + "#list-packages-for-a-user", 404))
            return owner, f"/user/{owner.id}"
        owner = state.owner(token.login)
        if owner is None or owner.kind != "user":
            owner = Owner(token.login, "user", token.user_id, f"U_sandbox{token.user_id}")
        return owner, "/user"

    def _packages(self, request: web.Request, match: re.Match, token: Token) -> tuple[int, Any, dict]:
        owner, link_prefix = self._owner_of(match, token)
        api = f"{request.scheme}://{request.host}"
        query = request.rel_url.query
        if match["type"] is None:
            package_type = query.get("package_type")
            if package_type is None:
                raise _Reply(422, render.error_json('Invalid request.\n\n"package_type" wasn\'t supplied.', DOCS, 422))
            pkgs = self.state.readable_packages(owner.login, token)
            if package_type != "container":
                pkgs = []
            if query.get("visibility"):
                pkgs = [p for p in pkgs if p.visibility == query["visibility"]]
            page_items, link = self._page(pkgs, query, api, f"{link_prefix}/packages", _docs_anchor(match))
            body = [self._package_json(p, owner, api) for p in page_items]
            return 200, body, {"Link": link} if link else {}
        name = unquote(match["name"])
        pkg = self.state.package(owner.login, name)
        if match["type"] != "container" or pkg is None or not self.state.can_read_package(token, pkg):
            raise _Reply(404, render.error_json("Package not found.", DOCS, 404))
        if match["versions"] is None:
            return 200, self._package_json(pkg, owner, api), {}
        if match["vid"] is not None:
            version = next((v for v in pkg.versions.values() if str(v.id) == match["vid"]), None)
            if version is None:
                raise _Reply(404, render.error_json("Package version not found.", DOCS, 404))
            return 200, render.version_json(version, pkg, owner, api), {}
        deleted = query.get("state", "active") == "deleted"
        versions = pkg.listed_versions(deleted=deleted)
        path = f"{link_prefix}/packages/container/{render.quote_name(pkg.name)}/versions"
        page_items, link = self._page(versions, query, api, path, _docs_anchor(match), capped=False)
        body = [render.version_json(v, pkg, owner, api) for v in page_items]
        return 200, body, {"Link": link} if link else {}

    def _page(self, items: list, query: MultiDictProxy, api: str, link_path: str, docs: str, *,
              capped: bool = True) -> tuple[list, str | None]:
        page, per_page = page_params(query)
        if capped and page * per_page > self.page_cap:
            message = f"The value of `per_page` multiplied by `page` cannot be greater than {self.page_cap}."
            raise _Reply(400, render.error_json(message, docs, 400))
        last_page = max(1, math.ceil(len(items) / per_page))
        chosen = items[(page - 1) * per_page : page * per_page]
        return chosen, link_header(api, link_path, query, page, last_page)

    def _package_json(self, pkg: Package, owner: Owner, api: str) -> dict:
        repo = self.state.repository(pkg.repository) if pkg.repository else None
        repo_owner = self.state.owner(repo.owner) if repo else None
        return render.package_json(pkg, owner, repo, repo_owner, api)

    def _rate_limit(self, request: web.Request) -> web.Response:
        """``GET /rate_limit`` (not charged, like GitHub's)."""
        headers = self._common_headers()
        token = self.state.token(bearer_token(request.headers.get("Authorization")))
        if token is None:
            return self._json(401, render.error_json("Bad credentials", "https://docs.github.com/rest", 401), headers)
        now = self.state.wall()
        token.rest.refresh(now)
        token.graphql.refresh(now)

        def res(b):
            return {"limit": b.limit, "used": b.used, "remaining": b.remaining, "reset": int(b.reset_at)}

        headers.update(self._rate_headers(token, "core"))
        if token.reports_scopes:
            headers["x-oauth-scopes"] = ", ".join(sorted(token.scopes))
        search = {"limit": 30, "used": 0, "remaining": 30, "reset": int(now) + 60}
        body = {"resources": {"core": res(token.rest), "graphql": res(token.graphql), "search": search},
                "rate": res(token.rest)}
        if self.validate:
            self.violations.extend(validate_body("/rate_limit", "get", 200, body))
        return self._json(200, body, headers)

    def _user(self, request: web.Request, login: str) -> web.Response:
        """``GET /users/{username}``: 200 for an existing user or org (public
        profile), 404 otherwise; anonymous works too; charged like any REST call."""
        headers = self._common_headers()
        token = self.state.token(bearer_token(request.headers.get("Authorization")))
        if token is not None:
            token.rest.refresh(self.state.wall())
            token.rest.charge(1)
            headers.update(self._rate_headers(token, "core"))
            if token.reports_scopes:
                headers["x-oauth-scopes"] = ", ".join(sorted(token.scopes))
        owner = self.state.owner(login)
        if owner is None:
            status, body = 404, render.error_json("Not Found", "https://docs.github.com/rest/users/users#get-a-user", 404)
        else:
            status, body = 200, render.user_json(owner, f"{request.scheme}://{request.host}")
        if self.validate:
            self.violations.extend(validate_body("/users/{username}", "get", status, body))
        return self._json(status, body, headers)

    # -- GraphQL -------------------------------------------------------------------

    async def _graphql(self, request: web.Request) -> web.Response:
        headers = self._common_headers()
        if request.method != "POST":
            return self._json(404, render.error_json("Not Found", "https://docs.github.com/graphql", 404), headers)
        value = bearer_token(request.headers.get("Authorization"))
        if value is None:
            body = render.error_json(
                "This endpoint requires you to be authenticated.",
                "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql",
            )
            return self._json(401, body, headers)
        token = self.state.token(value)
        if token is None:
            return self._json(401, render.error_json("Bad credentials", "https://docs.github.com/graphql", 401), headers)
        try:
            payload = orjson.loads(await request.read())
            query = payload["query"]
            if not isinstance(query, str):
                raise TypeError("query")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            body = {"errors": [{"message": "A query attribute must be specified and must be a string."}]}
            return self._json(400, body, headers)
        variables = payload.get("variables") or None
        operation_name = payload.get("operationName") or None
        body, _charged = graphql_api.run_query(
            self.state, token, query, variables, operation_name, lists_containers=self.graphql_lists_containers
        )
        errors = tuple(e.get("message", "") for e in body.get("errors", ()))
        self.graphql_log.append(graphql_api.GraphQLCall(query, variables, operation_name, token.login, errors))
        token.graphql.refresh(self.state.wall())
        if token.reports_scopes:
            headers["x-oauth-scopes"] = ", ".join(sorted(token.scopes))
        headers.update(self._rate_headers(token, "graphql"))
        return self._json(200, body, headers)

    # -- registry token endpoint ---------------------------------------------------

    def _token(self, request: web.Request) -> web.Response:
        """ghcr.io/token: Basic auth (any username, a GitHub token as password) or anonymous."""
        internal = request.headers.get(INTERNAL_HEADER) == "builder"
        query = request.rel_url.query
        scopes = tuple(query.getall("scope", ()))
        service = query.get("service") or self.signer.service
        authorization = request.headers.get("Authorization")
        token: Token | None = None
        if authorization:
            value = basic_password(authorization)
            token = self.state.token(value)
            if token is None:
                self.token_log.append(TokenGrant("<rejected>", scopes, (), internal))
                body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}]}
                return self._json(401, body, {"WWW-Authenticate": f'Basic realm="{self.token_url}"'})
        granted = tuple(a for scope in scopes for a in self._grant(token, scope))
        self.token_log.append(TokenGrant(token.login if token else None, scopes, granted, internal))
        jwt_token = self._issue(token, granted, service)
        body: dict = {"token": jwt_token, "access_token": jwt_token, "issued_at": iso(self.state.wall())}
        if self.token_expires_in:
            body["expires_in"] = self.token_ttl_s
        return self._json(200, body, {})

    def _issue(self, token: Token | None, granted: tuple[Access, ...], service: str) -> str:
        # The audience is the service the client named: a client that names the
        # wrong one gets a token the registry (rightly) refuses.
        subject = token.login if token else ""
        return self.signer.issue(subject, list(granted), ttl_s=self.token_ttl_s, now=self.state.wall(), audience=service)

    def _grant(self, token: Token | None, scope: str) -> list[Access]:
        if token is not None and token.kind == "fine_grained":
            token = None  # ghcr supports only classic PATs: a fine-grained one pulls what anonymous can
        parts = scope.split(":")
        if len(parts) < 3:
            return []
        kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
        if kind == "registry" and name == "catalog":
            return [Access("registry", "catalog", ("*",))]
        if kind != "repository":
            return []
        owner, _, package = name.partition("/")
        pkg = self.state.package(owner, package) if package else None
        allowed: list[str] = []
        readable = pkg is not None and (
            pkg.visibility == "public"
            or (token is not None and token.has_scope("read:packages") and self.state.can_read_package(token, pkg))
        )
        may_write = (
            token is not None
            and token.has_scope("write:packages")
            and token.can_access_owner(owner)
            and self.state.owner(owner) is not None
            and (pkg is not None or self.state.package(owner, package, include_deleted=True) is None)
        )
        for action in actions:
            if action == "pull" and (readable or may_write):
                allowed.append("pull")
            elif action == "push" and may_write:
                allowed.append("push")
            elif action in ("delete", "*") and may_write and token.has_scope("delete:packages"):
                allowed.append(action)
        return [Access("repository", name, tuple(allowed))] if allowed else []


def _docs_anchor(match: re.Match) -> str:
    """The REST reference page of a listing route, as GitHub puts it in ``documentation_url``."""
    if match["org"] is not None or match["org_id"] is not None:
        whose = "an-organization"
    elif match["user"] is not None or match["user_id"] is not None:
        whose = "a-user"
    else:
        whose = "the-authenticated-users-namespace" if match["type"] is None else "the-authenticated-user"
    if match["versions"] is None:
        return f"{DOCS}#list-packages-for-{whose}"
    owned = {"an-organization": "owned-by-an-organization", "a-user": "owned-by-a-user"}.get(whose, "owned-by-the-authenticated-user")
    return f"{DOCS}#list-package-versions-for-a-package-{owned}"


def _template(match: re.Match) -> str:
    """The OpenAPI path template a matched route belongs to."""
    if match["org"] is not None or match["org_id"] is not None:
        prefix = "/orgs/{org}"
    elif match["user"] is not None or match["user_id"] is not None:
        prefix = "/users/{username}"
    else:
        prefix = "/user"
    template = f"{prefix}/packages"
    if match["type"] is not None:
        template += "/{package_type}/{package_name}"
        if match["versions"] is not None:
            template += "/versions"
            if match["vid"] is not None:
                template += "/{package_version_id}"
    return template
