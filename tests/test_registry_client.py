"""The registry client against the real registry behind the ghcr-shaped
front: challenge once, cache tokens per scope, refresh once on a 401."""

import io
import json

import pytest

from crawler import logs
from crawler.errors import AuthError
from crawler.http import HttpClient, origin
from crawler.registry import RegistryClient
from crawler.secret import Secret


async def test_tokens_are_cached_per_scope_and_refreshed_once_on_401(world, sample):
    app = sample.role("nested")
    img = sample.tagged("acme", app.name, sorted(app.tags)[0])
    async with HttpClient(concurrency=4) as http:
        reg = RegistryClient(http, world.registry_url, credentials=Secret(world.token))
        first = await reg.manifest(f"acme/{app.name}", img.digest, digest=img.digest)
        again = await reg.manifest(f"acme/{app.name}", img.digest, digest=img.digest)
        assert first == again and first.digest == img.digest
        assert reg.token_fetches == 1                 # one challenge, one token, reused
        assert http.counters.requests["manifest"] == 3  # the probe (401) + two GETs
        world.expire_registry_tokens()
        await reg.manifest(f"acme/{app.name}", img.digest, digest=img.digest)
        assert reg.token_fetches == 2                 # refreshed once after the 401
        assert reg.realm.endswith("/token") and reg.service == world.service


async def test_plain_http_hops_never_build_a_tls_context(world, sample):
    """Loading the CA store costs ~0.3 s of a no-op: only an https hop pays it."""
    app = sample.role("nested")
    img = sample.tagged("acme", app.name, sorted(app.tags)[0])
    async with HttpClient(concurrency=4) as http:
        reg = RegistryClient(http, world.registry_url, credentials=Secret(world.token))
        await reg.manifest(f"acme/{app.name}", img.digest, digest=img.digest)
        assert world.registry_url.startswith("http://") and http._ssl is None
        from urllib.parse import urlsplit
        assert http._ssl_for(urlsplit("https://ghcr.io/v2/")) is http._ssl is not None
        assert http._ssl_for(urlsplit("https://ghcr.io/v2/")) is http._ssl    # made once


async def test_a_forgotten_repository_token_is_fetched_again(world, sample):
    app = sample.role("nested")
    img = sample.tagged("acme", app.name, sorted(app.tags)[0])
    async with HttpClient(concurrency=4) as http:
        reg = RegistryClient(http, world.registry_url, credentials=Secret(world.token))
        await reg.manifest(f"acme/{app.name}", img.digest, digest=img.digest)
        reg.forget("acme/someone-else")                # another repository's: this one's stays
        await reg.manifest(f"acme/{app.name}", img.digest, digest=img.digest)
        assert reg.token_fetches == 1
        reg.forget(f"acme/{app.name}")                 # the package is done: nothing kept for it
        await reg.manifest(f"acme/{app.name}", img.digest, digest=img.digest)
        assert reg.token_fetches == 2


async def test_a_second_401_after_refresh_is_an_auth_error(world, sample):
    app = sample.role("private")
    img = sample.tagged("acme", app.name, sorted(app.tags)[0])
    async with HttpClient(concurrency=4) as http:
        reg = RegistryClient(http, world.registry_url, credentials=None)   # anonymous: private is refused
        with pytest.raises(AuthError) as info:
            await reg.manifest(f"acme/{app.name}", img.digest, digest=img.digest)
        assert "anonymous pull refused" in str(info.value) and not info.value.fatal


@pytest.mark.parametrize(("level", "events"), [("debug", 3), ("info", 0)])
async def test_one_debug_event_per_exchange_only_when_debug_is_on(world, sample, level, events):
    """The probe (401), the token, the manifest: one `http` event each at
    debug, none built at info; never a token or a query string."""
    app = sample.role("nested")
    img = sample.tagged("acme", app.name, sorted(app.tags)[0])
    stream = io.StringIO()
    logs.configure("json", level, stream=stream)
    try:
        async with HttpClient(concurrency=4) as http:
            reg = RegistryClient(http, world.registry_url, credentials=Secret(world.token))
            await reg.manifest(f"acme/{app.name}", img.digest, digest=img.digest)
    finally:
        logs.configure("json", "warning")
    exchanges = [e for e in map(json.loads, stream.getvalue().splitlines()) if e["event"] == "http"]
    assert len(exchanges) == events
    assert sorted(e["kind"] for e in exchanges) == (["manifest", "manifest", "token"] if events else [])
    assert sorted(e["status"] for e in exchanges) == ([200, 200, 401] if events else [])
    assert world.token not in stream.getvalue() and "scope=" not in stream.getvalue()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:5000/v2/x", ("http", "127.0.0.1", 5000)),
        ("https://GHCR.io/v2/", ("https", "ghcr.io", 443)),
        ("HTTP://ghcr.io/v2/", ("http", "ghcr.io", 80)),
        ("https://user:pw@Host.example:8443/x?y", ("https", "host.example", 8443)),
        ("https://host.example:8443/other", ("https", "host.example", 8443)),  # remembered per netloc
        ("http://[::1]/a", ("http", "::1", 80)),
        ("https://pkg-containers.githubusercontent.com/ghcr1/blobs/sha256:ab?sig=x", (
            "https", "pkg-containers.githubusercontent.com", 443)),
    ],
)
def test_origin_is_scheme_host_and_port(url, expected):
    assert origin(url) == expected
