"""`ghcr-inventory check`: can this token do the job? Answered before a
timer fails at 3 a.m.

The questions every GitHub package tool's issue tracker is full of
(docs/architecture.md "Facts"), one line each, ✓ or ✗ with the fix in words:

- the token's kind, from its prefix (`ghp_` classic, `github_pat_`
  fine-grained, `ghs_` App installation / Actions `GITHUB_TOKEN`, `gho_`
  OAuth, `ghu_` App user-to-server, `ghr_` refresh): the packages REST API
  wants a classic PAT with `read:packages`; fine-grained PATs are refused;
- for classic (and OAuth) tokens, the scopes GitHub reports in
  `X-OAuth-Scopes`, and the rate-limit budget left (`GET /rate_limit`
  costs nothing);
- per owner: can its packages listing be read (and how many packages: one
  page of `per_page=1`, the `Link rel="last"` page number is the count); a
  403 with `X-GitHub-SSO` names the SAML SSO authorization URL, a 400
  "Invalid argument" is an Actions `GITHUB_TOKEN` on an org, a 404 is told
  apart by `GET /users/{name}`; can the registry issue a pull token for one
  of its packages (a `tags/list?n=1` with it);
- can the GraphQL enrichment run (a `viewer`/`rateLimit` query).

Exit 0 when every check passed, 3 when the token cannot do the job, 4 when
a service could not be reached. The parsers are pure; `run_checks` does
the requests, each bounded like any other (`crawl.timeout_s`).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from importlib import resources
from typing import Sequence
from urllib.parse import parse_qs, urlsplit

import orjson

from .config import Config, OwnerConfig
from .credentials import Credentials
from .discovery import repository_path
from .engine.wiring import Clocks, http_client, registry_client
from .errors import AuthError, InventoryError, UnreachableError
from .github import GitHubClient
from .headers import parse_link
from .http import HttpClient, Response
from .output import printable
from .secret import redact

__all__ = ["Check", "TokenKind", "exit_code", "parse_sso", "render_checks", "run_checks", "token_kind"]

CLASSIC_PAT = "create a classic personal access token with the read:packages scope (Settings → Developer " \
              "settings → Personal access tokens → Tokens (classic))"


@dataclass(frozen=True, slots=True)
class TokenKind:
    name: str
    prefix: str
    label: str
    packages_api: bool      # does GitHub's packages REST API accept it at all
    scopes: bool            # does GitHub report its scopes (X-OAuth-Scopes)


_KINDS = (  # longest prefix first: github_pat_ before anything shorter
    TokenKind("fine_grained", "github_pat_", "fine-grained personal access token", False, False),
    TokenKind("classic", "ghp_", "classic personal access token", True, True),
    TokenKind("oauth", "gho_", "OAuth app token", True, True),
    TokenKind("user_to_server", "ghu_", "GitHub App user-to-server token", True, False),
    TokenKind("server_to_server", "ghs_", "GitHub App installation token or Actions GITHUB_TOKEN", True, False),
    TokenKind("refresh", "ghr_", "GitHub App refresh token (not accepted by the API)", False, False),
)
UNKNOWN = TokenKind("unknown", "", "token of an unknown kind (GHES or an old 40-hex PAT?)", True, True)


def token_kind(value: str | None) -> TokenKind | None:
    """The kind of a GitHub token from its prefix (None: no token)."""
    if not value:
        return None
    return next((k for k in _KINDS if value.startswith(k.prefix)), UNKNOWN)


def parse_sso(value: str | None) -> str | None:
    """The authorization URL of `X-GitHub-SSO: required; url=https://…`
    (None when the header is absent or names none)."""
    for part in (value or "").split(";"):
        key, _, url = part.strip().partition("=")
        if key.strip().lower() == "url" and url.strip():
            return url.strip()
    return None


def parse_scopes(value: str | None) -> frozenset[str] | None:
    """`X-OAuth-Scopes: read:packages, repo` -> the set (None: header absent)."""
    if value is None:
        return None
    return frozenset(s.strip() for s in value.split(",") if s.strip())


def reads_packages(scopes: frozenset[str]) -> bool:
    return bool(scopes & {"read:packages", "write:packages", "delete:packages"})


def listing_count(resp: Response) -> int:
    """Packages in a `per_page=1` listing: the `rel="last"` page number, or
    the entries of the only page."""
    last = parse_link(resp.header("Link"), resp.url).get("last")
    if last:
        page = parse_qs(urlsplit(last).query).get("page")
        if page and page[0].isdigit():
            return int(page[0])
    body = _json(resp)
    return len(body) if isinstance(body, list) else 0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    owner: str | None = None
    unreachable: bool = False


def exit_code(checks: Sequence[Check]) -> int:
    if any(c.unreachable for c in checks):
        return UnreachableError.exit_code
    return 0 if all(c.ok for c in checks) else AuthError.exit_code


def render_checks(checks: Sequence[Check], fmt: str = "text") -> str:
    if fmt == "json":
        return orjson.dumps({"ok": exit_code(checks) == 0, "exit_code": exit_code(checks),
                             "checks": [asdict(c) for c in checks]}, option=orjson.OPT_INDENT_2).decode() + "\n"
    lines = []
    for c in checks:
        who = f"{c.owner}: " if c.owner else ""
        fix = f" — fix: {c.fix}" if c.fix else ""
        lines.append(printable(redact(f"{'✓' if c.ok else '✗'} {who}{c.name}: {c.detail}{fix}")))
    return "\n".join(lines) + "\n"


def _json(resp: Response):
    try:
        return orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        return None


def _message(resp: Response) -> str:
    body = _json(resp)
    msg = body.get("message") if isinstance(body, dict) else None
    return msg[:200] if isinstance(msg, str) else ""


# --- the checks ---------------------------------------------------------------------


async def run_checks(config: Config, creds: Credentials, *, owners: Sequence[str] = (),
                     clocks: Clocks = Clocks()) -> list[Check]:
    """Every check, in order; a rejected token stops the ones that need it."""
    kind = token_kind(creds.github.reveal() if creds.github else None)
    checks = [_token_check(kind, config)]
    wanted = [o for o in config.owners if not owners or o.name.lower() in {n.lower() for n in owners}]
    # A probe, not a crawl: one retry, no long rate-limit waits.
    # The budget is reported (and judged) by the rate-limit check, not guarded here.
    probe = replace(config, crawl=replace(config.crawl, retries=min(config.crawl.retries, 1),
                                          max_wait_s=min(config.crawl.max_wait_s, 5.0), rate_limit_reserve=0))
    async with http_client(probe, clocks) as http:
        github = GitHubClient(http, config.github.api_url, creds.github)
        registry = registry_client(probe, creds, http, clocks)
        if creds.github is not None:
            if not await _guard(checks, "API", None, _api(github, kind, config, checks)):
                return checks
        for owner in wanted:
            await _guard(checks, "owner", owner.name, _owner(owner, github, registry, creds, checks))
        if creds.github is not None and config.github.enrich:
            await _guard(checks, "GraphQL enrichment", None, _graphql(http, config, creds, checks))
    return checks


async def _guard(checks: list[Check], name: str, owner: str | None, work) -> bool:
    """Run one group of checks; an unreachable service is a ✗ (exit 4), not a traceback."""
    try:
        return await work is not False
    except UnreachableError as exc:
        checks.append(Check(name, False, f"could not be reached: {exc}", "check the URL in the config, the "
                            "network and a proxy; then run check again", owner, unreachable=True))
    except InventoryError as exc:
        checks.append(Check(name, False, str(exc), "", owner))
    return False


def _token_check(kind: TokenKind | None, config: Config) -> Check:
    needs_api = any(o.discovery in ("rest", "graphql") for o in config.owners)
    if kind is None:
        if not needs_api:
            return Check("token", True, "no GitHub token (none needed: no owner uses the GitHub API)")
        return Check("token", False, "no GitHub token, and rest/graphql discovery needs one",
                     f"set {config.github.token_env or 'github.token_file'} to a classic PAT with read:packages")
    if not kind.packages_api:
        fix = CLASSIC_PAT if kind.name == "fine_grained" else "use the access token, not the refresh token"
        return Check("token", False, f"{kind.label} ({kind.prefix}…): GitHub's packages API does not accept it", fix)
    note = ""
    if kind.name == "server_to_server":
        note = "; it can read packages of its own repositories but cannot list an organization's packages"
    return Check("token", True, f"{kind.label} ({kind.prefix or '?'}…){note}")


async def _api(github: GitHubClient, kind: TokenKind, config: Config, checks: list[Check]) -> bool:
    """`GET /rate_limit` (free): is the token accepted, its scopes, the budget left."""
    resp = await github.get(f"{github.api}/rate_limit", kind="rate_limit")
    if resp.status == 401:
        checks.append(Check("token", False, f"GitHub rejected it (HTTP 401: {_message(resp) or 'Bad credentials'})",
                            "it is expired, revoked or mistyped: create a new one and update "
                            f"{config.github.token_env or 'github.token_file'}"))
        return False
    if resp.status != 200:
        checks.append(Check("rate limit", False, f"GET /rate_limit answered HTTP {resp.status} {_message(resp)}"))
        return True
    scopes = parse_scopes(resp.header("X-OAuth-Scopes"))
    if kind.scopes and scopes is not None:
        if reads_packages(scopes):
            checks.append(Check("scopes", True, ", ".join(sorted(scopes))))
        else:
            checks.append(Check("scopes", False, f"{', '.join(sorted(scopes)) or 'none'}: no read:packages",
                                "edit the token (Settings → Developer settings → Tokens (classic)) and tick "
                                "read:packages"))
    checks.append(_budget(resp, config))
    return True


def _budget(resp: Response, config: Config) -> Check:
    body = _json(resp)
    resources_ = body.get("resources") if isinstance(body, dict) else None
    parts, ok = [], True
    for name in ("core", "graphql"):
        res = resources_.get(name) if isinstance(resources_, dict) else None
        if not isinstance(res, dict) or not isinstance(res.get("remaining"), int):
            continue
        reset = datetime.fromtimestamp(int(res.get("reset") or 0), timezone.utc).strftime("%H:%M UTC")
        parts.append(f"{name} {res['remaining']}/{res.get('limit')} left (resets {reset})")
        ok = ok and res["remaining"] > config.crawl.rate_limit_reserve
    if not parts:
        return Check("rate limit", False, "GET /rate_limit answered no budget")
    # A spent budget is exit 4 as in `sync` (README "Exit codes"): it comes back at the reset.
    return Check("rate limit", ok, "; ".join(parts),
                 "" if ok else f"wait for the reset (a sync keeps crawl.rate_limit_reserve = "
                               f"{config.crawl.rate_limit_reserve} requests)", unreachable=not ok)


async def _owner(owner: OwnerConfig, github: GitHubClient, registry, creds: Credentials,
                 checks: list[Check]) -> None:
    if owner.discovery == "rest":
        if creds.github is None:
            return
        first = await _listing(owner, github, checks)
        if first is not None:
            await _pull(owner, registry, repository_path(owner.name, first), checks)
    elif owner.discovery == "catalog":
        await _registry_probe(owner, registry, "/v2/_catalog?n=1", "registry:catalog:*", "catalog", checks)
    elif owner.discovery == "static" and owner.repositories:
        await _pull(owner, registry, owner.repositories[0].lower(), checks)


async def _listing(owner: OwnerConfig, github: GitHubClient, checks: list[Check]) -> str | None:
    """The packages listing with per_page=1: readable? how many? Returns
    one package's name for the registry check."""
    resp = await github.get(github.packages_url(owner.name, owner.kind, per_page=1), kind="discovery")
    name = "packages listing"
    if resp.status == 200:
        count = listing_count(resp)
        body = _json(resp)
        first = body[0].get("name") if isinstance(body, list) and body and isinstance(body[0], dict) else None
        checks.append(Check(name, True, f"readable, {count} container package{'s' if count != 1 else ''}",
                            owner=owner.name))
        return first if isinstance(first, str) else None
    message = _message(resp)
    detail = f"HTTP {resp.status}" + (f": {message}" if message else "")
    sso = parse_sso(resp.header("X-GitHub-SSO"))
    if resp.status == 403 and (sso or "SAML" in message):
        fix = f"authorize the token for the org's SAML SSO: {sso}" if sso else \
            "authorize the token for the org's SAML SSO (Settings → Tokens → Configure SSO)"
        checks.append(Check(name, False, f"{detail} (the org enforces SAML SSO)", fix, owner.name))
    elif resp.status == 403 and "personal access token" in message:
        checks.append(Check(name, False, f"{detail} (fine-grained PATs cannot use the packages API)", CLASSIC_PAT,
                            owner.name))
    elif resp.status == 403:
        checks.append(Check(name, False, detail, "the token needs the read:packages scope (and the org may "
                            "forbid classic PATs: ask its owners)", owner.name))
    elif resp.status == 400 and "invalid argument" in message.lower():
        checks.append(Check(name, False, f"{detail} (an Actions GITHUB_TOKEN or App installation token cannot "
                            "list an organization's packages)",
                            "store a classic PAT with read:packages as a secret and use it instead", owner.name))
    elif resp.status == 401:
        checks.append(Check(name, False, detail, "the token was rejected: create a new one", owner.name))
    elif resp.status == 404:
        checks.append(await _not_found(owner, github, detail))
    else:
        checks.append(Check(name, False, detail, owner=owner.name))
    return None


async def _not_found(owner: OwnerConfig, github: GitHubClient, detail: str) -> Check:
    """A listing's 404: `GET /users/{name}` tells "does not exist" from "no access"."""
    found = await github.owner_type(owner.name)
    want = "Organization" if owner.kind == "org" else "User"
    name = "packages listing"
    if found is None:
        return Check(name, False, f"{detail}: GitHub has no user or organization '{owner.name}'",
                     "check owners.name", owner.name)
    if found != want:
        other = "user" if owner.kind == "org" else "org"
        return Check(name, False, f"{detail}: '{owner.name}' is a {found}", f"set kind = \"{other}\"", owner.name)
    return Check(name, False, f"{detail}: the {found.lower()} exists but this token cannot see its packages "
                 "(a 404 here means no access)",
                 "use a classic PAT with read:packages of an account that can read them", owner.name)


async def _pull(owner: OwnerConfig, registry, repository: str, checks: list[Check]) -> None:
    await _registry_probe(owner, registry, f"/v2/{repository}/tags/list?n=1", f"repository:{repository}:pull",
                          f"pull {repository}", checks)


async def _registry_probe(owner: OwnerConfig, registry, path: str, scope: str, what: str,
                          checks: list[Check]) -> None:
    """One registry request through the real challenge flow."""
    name = "registry"
    try:
        resp = await registry.request("GET", path, kind="tags" if "tags" in path else "catalog", scope=scope)
    except AuthError as exc:
        checks.append(Check(name, False, f"{what}: {exc.message}", "a classic PAT with read:packages (ghcr.io "
                            "accepts no fine-grained PAT), or the registry's own login (registry.token_env, "
                            "registry.docker_config)", owner.name))
        return
    how = "with a pull token" if registry.demands_tokens else ("with Basic credentials" if registry.uses_basic
                                                              else "without credentials")
    if resp.status == 200:
        checks.append(Check(name, True, f"{what}: answered {how}", owner=owner.name))
    else:
        checks.append(Check(name, False, f"{what}: HTTP {resp.status}",
                            "a 403/404 means this token may not pull it: check the package's access settings",
                            owner.name))


async def _graphql(http: HttpClient, config: Config, creds: Credentials, checks: list[Check]) -> None:
    text = resources.files("crawler").joinpath("queries", "check.graphql").read_text(encoding="utf-8")
    url = config.github.graphql_url
    resp = await http.request("POST", url, kind="graphql", body=orjson.dumps({"query": text}),
                              headers={"Content-Type": "application/json", "Accept": "application/json"},
                              auth=f"Bearer {creds.github.reveal()}", auth_origin=url)
    body = _json(resp)
    data = body.get("data") if isinstance(body, dict) else None
    viewer = data.get("viewer") if isinstance(data, dict) else None
    if resp.status == 200 and isinstance(viewer, dict):
        rate = data.get("rateLimit") or {}
        checks.append(Check("GraphQL enrichment", True, f"answers as {viewer.get('login')}; "
                            f"{rate.get('remaining')}/{rate.get('limit')} points left"))
        return
    errors = body.get("errors") if isinstance(body, dict) else None
    why = errors[0].get("message") if isinstance(errors, list) and errors and isinstance(errors[0], dict) else ""
    checks.append(Check("GraphQL enrichment", False, f"HTTP {resp.status}" + (f": {why}" if why else ""),
                        "the enrichment (v_sources) needs a token GraphQL accepts; or set github.enrich = false"))


def run(config: Config, creds: Credentials, owners: Sequence[str] = ()) -> list[Check]:
    return asyncio.run(run_checks(config, creds, owners=owners))
