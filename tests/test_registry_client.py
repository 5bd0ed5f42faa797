"""The registry client against the real registry behind the ghcr-shaped
front: challenge once, cache tokens per scope, refresh once on a 401."""

import pytest

from crawler.errors import AuthError
from crawler.http import HttpClient
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
