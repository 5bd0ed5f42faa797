"""A deliberately small registry client for tests that poke the world directly.

Not the crawler's client: it exists so world tests (and the lead's tests) can
drive the token dance in a few lines — GET, read the ``WWW-Authenticate``
challenge, fetch a token from its realm (Basic auth with the GitHub token, or
anonymous), retry with ``Bearer``.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Mapping

import aiohttp

ACCEPT_MANIFESTS = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)

_PARAM = re.compile(r'(\w+)="([^"]*)"')


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def parse_challenge(header: str) -> dict[str, str]:
    """``Bearer realm="…",service="…",scope="…"`` → {"scheme": "Bearer", "realm": …}."""
    scheme, _, rest = header.partition(" ")
    return {"scheme": scheme, **dict(_PARAM.findall(rest))}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def json(self):
        import json

        return json.loads(self.body)


async def fetch_token(
    session: aiohttp.ClientSession, realm: str, *, service: str | None, scopes: list[str], github_token: str | None
) -> tuple[int, dict]:
    """GET the realm; returns (status, decoded JSON body)."""
    params = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
    headers = {"Authorization": basic("sandbox", github_token)} if github_token else {}
    async with session.get(realm, params=params, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def registry_request(
    session: aiohttp.ClientSession,
    base_url: str,
    path: str,
    *,
    github_token: str | None = None,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    scope: str | None = None,
    allow_redirects: bool = False,
) -> Reply:
    """One registry request with the challenge → token → retry dance (anonymous if no github_token)."""
    url = base_url.rstrip("/") + path
    headers = dict(headers or {})
    async with session.request(method, url, headers=headers, allow_redirects=allow_redirects) as resp:
        first = Reply(resp.status, resp.headers, await resp.read(), str(resp.url))
    if first.status != 401 or "WWW-Authenticate" not in first.headers:
        return first
    challenge = parse_challenge(first.headers["WWW-Authenticate"])
    scopes = [scope or challenge.get("scope")] if (scope or challenge.get("scope")) else []
    status, body = await fetch_token(
        session, challenge["realm"], service=challenge.get("service"), scopes=scopes, github_token=github_token
    )
    if status != 200:
        return Reply(status, {}, repr(body).encode(), challenge["realm"])
    headers["Authorization"] = f"Bearer {body['token']}"
    async with session.request(method, url, headers=headers, allow_redirects=allow_redirects) as resp:
        return Reply(resp.status, resp.headers, await resp.read(), str(resp.url))
