#!/usr/bin/env python3
"""The CPU floor (issue 17): a bare aiohttp client replaying a crawler run's requests.

    bench_floor.py --requests cold.requests.jsonl --registry URL --api URL --concurrency 32

Reads the request list the world's fronts recorded during a crawler run
(``crawler.sandbox.remote``: front, method, path with query, status) and makes
the same GETs/HEADs to the same hosts with the same number of workers, reading
every body — no parsing, no store, no digest check, no logging. What it cannot
skip it does the way the crawler does: one registry token per repository
scope (Basic auth with the bench's token, from the realm the first 401
names), a Bearer token to the API, and the registry's redirect to the blob
CDN followed by hand without Authorization. Left out: the run's token
requests (fetched again, one per scope, as needed), its 401 challenge probe
(the floor makes its own) and POSTs (GraphQL, the attestations lookups: their
bodies are not recorded; a handful a run). Run as its own process so its rusage is its own; prints one
JSON line (requests by kind, statuses, bytes, wall seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import sys
import time
from collections import Counter
from urllib.parse import urlencode

import aiohttp

TOKEN_ENV = "GHCR_BENCH_TOKEN"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_REPO = re.compile(r"^/v2/(?P<repo>.+?)/(?P<what>manifests|blobs|tags|referrers)/")
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
_PARAM = re.compile(r'(\w+)="([^"]*)"')


def load(path: str) -> list[dict]:
    """The replayable requests: GET/HEAD, neither token fetches nor 401 probes."""
    out = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r["method"] in ("GET", "HEAD") and r["status"] != 401 and not r["path"].startswith("/token"):
                out.append(r)
    return out


class Floor:
    def __init__(self, session: aiohttp.ClientSession, registry: str, api: str, secret: str,
                 accept_manifests: str) -> None:
        self.session, self.registry, self.api, self.secret = session, registry, api, secret
        # The registry answers a manifest GET without these media types 404
        # (distribution cannot down-convert an OCI manifest), so send them as the crawler does.
        self.manifest_headers = {"Accept": accept_manifests}
        self.api_headers = {**API_HEADERS, "Authorization": f"Bearer {secret}"}
        self.basic = "Basic " + base64.b64encode(f"bench:{secret}".encode()).decode()
        self.realm: str | None = None
        self.service: str | None = None
        self.tokens: dict[str, asyncio.Task] = {}
        self.kinds: Counter = Counter()
        self.statuses: Counter = Counter()
        self.bytes = 0

    async def get(self, method: str, url: str, kind: str, headers: dict | None) -> tuple[int, str | None]:
        async with self.session.request(method, url, headers=headers, allow_redirects=False) as resp:
            body = await resp.read()
            self.kinds[kind] += 1
            self.statuses[resp.status] += 1
            self.bytes += len(body)
            if resp.status == 401 and self.realm is None:
                self._learn(resp.headers.get("WWW-Authenticate", ""))
            return resp.status, resp.headers.get("Location")

    def _learn(self, challenge: str) -> None:
        params = dict(_PARAM.findall(challenge))
        self.realm, self.service = params.get("realm"), params.get("service")

    async def token(self, repo: str) -> str:
        scope = f"repository:{repo}:pull"
        task = self.tokens.get(scope)
        if task is None:
            task = self.tokens[scope] = asyncio.ensure_future(self._fetch_token(scope))
        return await task

    async def _fetch_token(self, scope: str) -> str:
        query = urlencode({"scope": scope, **({"service": self.service} if self.service else {})})
        async with self.session.get(f"{self.realm}?{query}", headers={"Authorization": self.basic}) as resp:
            body = await resp.read()
            self.kinds["token"] += 1
            self.statuses[resp.status] += 1
            self.bytes += len(body)
            return json.loads(body)["token"]

    async def one(self, r: dict) -> None:
        if r["front"] == "api":
            await self.get(r["method"], self.api + r["path"], "api", self.api_headers)
            return
        match = _REPO.match(r["path"])
        headers = self.manifest_headers if match and match["what"] in ("manifests", "referrers") else {}
        if match and self.realm:
            headers = {**headers, "Authorization": f"Bearer {await self.token(match['repo'])}"}
        status, location = await self.get(r["method"], self.registry + r["path"], "registry", headers)
        if status in REDIRECTS and location:
            await self.get("GET", location, "redirect", None)

    async def probe(self, requests: list[dict]) -> None:
        """The registry's first 401 names the token realm, as for the crawler."""
        first = next((r for r in requests if r["front"] == "registry"), None)
        if first is not None:
            await self.get(first["method"], self.registry + first["path"], "probe", self.manifest_headers)


async def replay(requests: list[dict], *, registry: str, api: str, secret: str, concurrency: int,
                 accept_manifests: str) -> dict:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        floor = Floor(session, registry, api, secret, accept_manifests)
        started = time.perf_counter()
        await floor.probe(requests)
        queue = iter(requests)

        async def worker() -> None:
            for r in queue:   # one shared iterator: each request is taken once
                await floor.one(r)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"requests": sum(floor.kinds.values()), "by_kind": dict(floor.kinds),
            "statuses": {str(k): v for k, v in sorted(floor.statuses.items())}, "bytes": floor.bytes,
            "replayed": len(requests), "wall_s": round(wall, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", required=True, help="the JSON lines the world recorded")
    p.add_argument("--registry", required=True)
    p.add_argument("--api", required=True)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--accept-manifests", required=True, help="the Accept header of a manifest GET")
    a = p.parse_args(argv)
    secret = os.environ.get(TOKEN_ENV)
    if not secret:
        print(f"bench_floor: {TOKEN_ENV} is not set", file=sys.stderr)
        return 2
    try:
        requests = load(a.requests)
    except (OSError, ValueError, KeyError) as exc:
        print(f"bench_floor: cannot read {a.requests}: {exc}", file=sys.stderr)
        return 2
    result = asyncio.run(replay(requests, registry=a.registry.rstrip("/"), api=a.api.rstrip("/"),
                                secret=secret, concurrency=a.concurrency,
                                accept_manifests=a.accept_manifests))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
