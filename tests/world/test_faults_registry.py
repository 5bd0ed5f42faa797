"""Registry-side anomalies on the wire: one repository refused (403 DENIED), an index child gone (404)."""

from __future__ import annotations

import orjson

from crawler.sandbox.client import ACCEPT_MANIFESTS, registry_request

ACCEPT = {"Accept": ACCEPT_MANIFESTS}


async def get(http, world, path, method="GET"):
    return await registry_request(http, world.registry_url, path, github_token=world.token, method=method, headers=ACCEPT)


async def test_deny_repository_refuses_one_repository_only(world, http, fresh_owner):
    b = world.builder
    shared = b.push_image(fresh_owner, "first", tags=["v1"], seed=4242)
    again = b.push_image(fresh_owner, "second", tags=["v1"], seed=4242)
    nested = b.push_image(fresh_owner, "second/inner", tags=["v1"])
    assert again.digest == shared.digest and again.layers == shared.layers  # the same content in two packages
    layer = shared.layers[0].digest
    rule = world.deny_repository(fresh_owner, "second")
    before = world.registry_proxy.injected["denied"]

    refused = [
        await get(http, world, f"/v2/{fresh_owner}/second/manifests/v1"),
        await get(http, world, f"/v2/{fresh_owner}/second/manifests/{shared.digest}"),
        await get(http, world, f"/v2/{fresh_owner}/second/blobs/{layer}"),
        await get(http, world, f"/v2/{fresh_owner}/second/tags/list"),
    ]
    head = await get(http, world, f"/v2/{fresh_owner}/second/manifests/{shared.digest}", method="HEAD")
    assert [r.status for r in refused] == [403, 403, 403, 403] and head.status == 403
    assert {orjson.loads(r.body)["errors"][0]["code"] for r in refused} == {"DENIED"}
    assert "Location" not in refused[2].headers  # refused before any CDN redirect

    first_manifest = await get(http, world, f"/v2/{fresh_owner}/first/manifests/{shared.digest}")
    first_blob = await get(http, world, f"/v2/{fresh_owner}/first/blobs/{layer}")
    inner = await get(http, world, f"/v2/{fresh_owner}/second/inner/manifests/v1")
    assert first_manifest.status == 200 and first_blob.status == 307 and inner.status == 200
    assert inner.headers["Docker-Content-Digest"] == nested.digest
    assert world.registry_proxy.injected["denied"] - before == 5 == rule.fired  # every refusal counted, never used up

    world.clear_faults()
    assert (await get(http, world, f"/v2/{fresh_owner}/second/manifests/v1")).status == 200


async def test_deny_repository_can_be_limited_to_one_method(world, http, fresh_owner):
    image = world.builder.push_image(fresh_owner, "app", tags=["v1"])
    world.deny_repository(fresh_owner, "app", method="GET")
    head = await get(http, world, f"/v2/{fresh_owner}/app/manifests/v1", method="HEAD")
    body = await get(http, world, f"/v2/{fresh_owner}/app/manifests/v1")
    assert head.status == 200 and head.headers["Docker-Content-Digest"] == image.digest
    assert body.status == 403


async def test_remove_manifest_leaves_an_index_with_a_missing_child(world, http, fresh_owner):
    b = world.builder
    index = b.push_index(fresh_owner, "multi", tags=["latest"], platforms=("linux/amd64", "linux/arm64", "linux/s390x"))
    gone, kept, dropped = index.children
    b.remove_manifest(fresh_owner, "multi", gone.digest)

    missing = await get(http, world, f"/v2/{fresh_owner}/multi/manifests/{gone.digest}")
    missing_head = await get(http, world, f"/v2/{fresh_owner}/multi/manifests/{gone.digest}", method="HEAD")
    assert missing.status == 404 and orjson.loads(missing.body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert missing_head.status == 404
    by_tag = await get(http, world, f"/v2/{fresh_owner}/multi/manifests/latest")
    by_digest = await get(http, world, f"/v2/{fresh_owner}/multi/manifests/{index.digest}")
    sibling = await get(http, world, f"/v2/{fresh_owner}/multi/manifests/{kept.digest}")
    assert by_tag.status == by_digest.status == sibling.status == 200
    assert by_tag.body == index.raw and gone.digest in {m["digest"] for m in by_tag.json()["manifests"]}
    assert sibling.headers["Docker-Content-Digest"] == kept.digest

    b.remove_manifest(fresh_owner, "multi", dropped.digest, keep_version=False)
    assert (await get(http, world, f"/v2/{fresh_owner}/multi/manifests/{dropped.digest}")).status == 404
    async with http.get(
        f"{world.api_url}/orgs/{fresh_owner}/packages/container/multi/versions", headers={"Authorization": f"Bearer {world.token}"}
    ) as resp:
        listed = {v["name"] for v in await resp.json()}
    assert gone.digest in listed  # GitHub still lists the version whose manifest is gone
    assert dropped.digest not in listed and {index.digest, kept.digest} <= listed
