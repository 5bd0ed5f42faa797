"""Every fault the proxies inject is observable by a raw aiohttp client."""

from __future__ import annotations

import hashlib
import json
import time

import aiohttp
import pytest

from crawler.sandbox.client import ACCEPT_MANIFESTS, fetch_token
from crawler.sandbox.proxy import FaultProxy

PACKAGE = "/orgs/acme/packages/container/cli"


async def api_get(http, world, path=PACKAGE):
    async with http.get(world.api_url + path, headers={"Authorization": f"Bearer {world.token}"}) as resp:
        return resp.status, resp.headers, await resp.read()


async def bearer(http, world, repository):
    _, body = await fetch_token(http, world.token_url, service=world.service, scopes=[f"repository:{repository}:pull"], github_token=world.token)
    return {"Authorization": f"Bearer {body['token']}", "Accept": ACCEPT_MANIFESTS}


async def test_latency(world, http):
    world.api_proxy.inject("latency", path=PACKAGE, ms=150)
    started = time.monotonic()
    status, _, _ = await api_get(http, world)
    assert status == 200 and time.monotonic() - started >= 0.15
    assert world.api_proxy.log[-1].path == PACKAGE and world.api_proxy.injected["latency"] >= 1


@pytest.mark.parametrize(
    ("kind", "params", "status", "check"),
    [
        ("status", {"status": 502}, 502, lambda h, b: b"injected 502" in b),
        ("status", {"status": 500, "body": "boom"}, 500, lambda h, b: b == b"boom"),
        ("retry_after", {"seconds": 7}, 429, lambda h, b: h["Retry-After"] == "7"),
        ("retry_after_body", {}, 429, lambda h, b: "Retry-After" not in h and "retry-after: 880µs" in b.decode()),
        ("secondary_limit", {}, 403, lambda h, b: b"secondary rate limit" in b and "Retry-After" not in h),
        ("secondary_limit", {"retry_after": 60}, 403, lambda h, b: h["Retry-After"] == "60"),
        ("malformed_json", {}, 200, lambda h, b: _not_json(b)),
    ],
)
async def test_canned_faults(world, http, kind, params, status, check):
    world.api_proxy.inject(kind, path=PACKAGE, **params)
    got_status, headers, body = await api_get(http, world)
    assert got_status == status
    assert check(headers, body)
    assert world.api_proxy.log[-1].fault == kind
    again, _, _ = await api_get(http, world)  # `times` defaults to 1
    assert again == 200


def _not_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return True
    return False


async def test_reset_closes_the_connection(world, http):
    before = world.api_proxy.injected["reset"]
    world.api_proxy.inject("reset", path=PACKAGE, times=3)  # aiohttp retries an idempotent GET once
    with pytest.raises(aiohttp.ClientConnectionError):
        await api_get(http, world)
    assert world.api_proxy.injected["reset"] - before >= 1
    assert world.api_proxy.log[-1].status is None and world.api_proxy.log[-1].fault == "reset"


async def test_truncate_sends_less_than_content_length(world, http):
    world.api_proxy.inject("truncate", path=PACKAGE, keep=0.25)
    with pytest.raises(aiohttp.ClientPayloadError):
        await api_get(http, world)


async def test_wrong_digest_and_corrupt_body_on_manifests(world, sample, http):
    want = sample.tags[("acme", "cli", "latest")]
    headers = await bearer(http, world, "acme/cli")
    url = f"{world.registry_url}/v2/acme/cli/manifests/latest"
    world.registry_proxy.inject("wrong_digest", path="/manifests/", method="GET")
    async with http.get(url, headers=headers) as resp:
        body = await resp.read()
        assert resp.headers["Docker-Content-Digest"] != want
        assert "sha256:" + hashlib.sha256(body).hexdigest() == want
    world.registry_proxy.inject("corrupt_body", path="/manifests/", method="GET")
    async with http.get(url, headers=headers) as resp:
        body = await resp.read()
        assert resp.headers["Docker-Content-Digest"] == want
        assert len(body) == sample.image("acme", "cli", want).size
        assert "sha256:" + hashlib.sha256(body).hexdigest() != want
    assert [e.fault for e in world.registry_proxy.log[-2:]] == ["wrong_digest", "corrupt_body"]


async def test_method_filter_and_exhaustion(world, sample, http):
    headers = await bearer(http, world, "acme/cli")
    url = f"{world.registry_url}/v2/acme/cli/manifests/latest"
    world.registry_proxy.inject("status", path="/manifests/latest", method="GET", times=2, status=503)
    async with http.head(url, headers=headers) as resp:
        assert resp.status == 200  # HEAD is not GET
    statuses = []
    for _ in range(3):
        async with http.get(url, headers=headers) as resp:
            statuses.append(resp.status)
    assert statuses == [503, 503, 200]


async def test_probability_is_seeded_and_clear_removes_faults(world, http):
    world.api_proxy.faults.rng.seed(1234)
    world.api_proxy.inject("status", path=PACKAGE, probability=0.5, status=500)
    first = [(await api_get(http, world))[0] for _ in range(12)]
    world.api_proxy.faults.rng.seed(1234)
    second = [(await api_get(http, world))[0] for _ in range(12)]
    assert first == second and {500, 200} == set(first)
    world.api_proxy.clear()
    assert {(await api_get(http, world))[0] for _ in range(5)} == {200}


async def test_blob_faults_land_on_the_cdn(world, sample, http):
    image = sample.tagged("acme", "cli", "latest")
    layer = image.layers[0]
    headers = await bearer(http, world, "acme/cli")
    url = f"{world.registry_url}/v2/acme/cli/blobs/{layer.digest}"
    world.registry_proxy.inject("truncate", path="/blobs/", keep=0.5)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(url, headers=headers) as resp:
            await resp.read()
    assert world.registry_proxy.log[-1].status == 307 and world.registry_proxy.log[-1].fault == "truncate"
    world.cdn.inject("status", path="/blobs/", status=503)
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 503
    world.cdn.inject("reset", path="/blobs/", times=3)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(url, headers=headers) as resp:
            await resp.read()
    assert world.cdn.injected["status"] >= 1 and world.cdn.injected["reset"] >= 1
    assert not world.cdn.saw_authorization


async def test_plain_latency_per_request_and_per_connection(world):
    proxy = FaultProxy(world.api_direct_url, latency_ms=40, connect_latency_ms=120)
    await proxy.start()
    try:
        async with aiohttp.ClientSession() as http:
            timings = []
            for _ in range(3):
                started = time.monotonic()
                async with http.get(f"{proxy.url}/orgs/acme/packages?package_type=container", headers={"Authorization": f"Bearer {world.token}"}) as resp:
                    assert resp.status == 200
                    await resp.read()
                timings.append(time.monotonic() - started)
    finally:
        await proxy.stop()
    assert timings[0] >= 0.16  # new connection: 120 + 40 ms
    assert all(t >= 0.04 for t in timings[1:])
    assert [e.status for e in proxy.log] == [200, 200, 200]


def test_unknown_fault_kind_is_refused(world):
    with pytest.raises(ValueError, match="unknown fault kind"):
        world.api_proxy.inject("gremlins")
