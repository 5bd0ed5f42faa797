"""The emulator's webhook deliveries: shaped like GitHub's (each payload
valid against the published schema, and the check can fail), signed, sent
only for packages linked to a source repository, only to loopback."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from aiohttp import web

from crawler.sandbox.openapi import validate_webhook


async def test_a_push_delivers_a_signed_valid_registry_package_event(world, fresh_owner):
    import asyncio
    got: list[tuple[dict, bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        world.builder.create_repository(fresh_owner, "src")
        h = world.add_webhook(f"http://127.0.0.1:{site.port}/hook", "hook-secret", owner=fresh_owner)
        await asyncio.to_thread(world.builder.push_image, fresh_owner, "linked", tags=["v1"],
                                repository=f"{fresh_owner}/src")
        await asyncio.to_thread(world.builder.push_image, fresh_owner, "unlinked", tags=["v1"])
        world.remove_webhook(h.id)
    finally:
        await runner.cleanup()
    (headers, body), = got                    # nothing for the package without a source repository
    assert headers["X-GitHub-Event"] == "registry_package" and headers["User-Agent"].startswith("GitHub-Hookshot/")
    assert headers["X-Hub-Signature-256"] == "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    (delivery,) = world.deliveries(fresh_owner)
    assert (delivery.package, delivery.action, delivery.status, delivery.id) == \
        ("linked", "published", 202, headers["X-GitHub-Delivery"])
    assert world.emulator.violations == []


def test_the_payload_check_can_fail(world, fresh_owner):
    import orjson
    world.builder.create_repository(fresh_owner, "src")
    world.builder.push_image(fresh_owner, "app", tags=["v1"], repository=f"{fresh_owner}/src")
    pkg = world.package(fresh_owner, "app")
    body = world.call(world.webhooks.payload, "registry_package", "published", pkg,
                      next(iter(pkg.versions.values())))
    assert validate_webhook("registry_package", "published", body) == []
    broken = orjson.loads(orjson.dumps(body))
    del broken["registry_package"]["package_version"]["package_url"]
    broken["registry_package"]["id"] = "3"
    problems = {v.path for v in validate_webhook("registry_package", "published", broken)}
    assert problems == {"registry_package/package_version", "registry_package/id"}


def test_hooks_point_only_at_loopback(world):
    for url in ("http://10.0.0.1/hook", "https://example.com/hook"):
        with pytest.raises(ValueError, match="loopback"):
            world.add_webhook(url, "s")
