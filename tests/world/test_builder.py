"""The builder keeps the registry and the GitHub side in agreement; the sample is what it claims."""

from __future__ import annotations

import hashlib
import json

from crawler.sandbox import content
from crawler.sandbox.client import ACCEPT_MANIFESTS, registry_request
from crawler.sandbox.sample import ROLES


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def rest_versions(http, world, owner, package, state="active"):
    url = f"{world.api_url}/orgs/{owner}/packages/container/{package}/versions?per_page=100&state={state}"
    async with http.get(url, headers={"Authorization": f"Bearer {world.token}"}) as resp:
        return resp.status, (await resp.json() if resp.status == 200 else None)


async def registry_tags(http, world, repository):
    reply = await registry_request(http, world.registry_url, f"/v2/{repository}/tags/list", github_token=world.token)
    return set(reply.json()["tags"] or []) if reply.status == 200 else set()


async def manifest(http, world, repository, reference):
    return await registry_request(
        http, world.registry_url, f"/v2/{repository}/manifests/{reference}", github_token=world.token,
        headers={"Accept": ACCEPT_MANIFESTS},
    )


def test_sample_has_what_the_issue_asks_for(sample):
    assert len(sample.packages_of("acme")) >= 20
    assert set(sample.roles) == set(ROLES)
    assert len(sample.role("many_tags").tags) >= 250
    assert sample.role("private").visibility == "private"
    assert "/" in sample.role("nested").name
    assert sample.role("user_package").owner == sample.user
    assert sample.orphans and sample.signed and sample.sboms and sample.attested
    webapp = sample.tagged("acme", "webapp", "latest")
    assert webapp.kind == "index" and webapp.media_type == content.OCI_INDEX
    assert {c.platform_str for c in webapp.children} == {"linux/amd64", "linux/arm64/v8", "linux/arm/v7", "unknown/unknown"}
    assert sample.tagged("acme", "api", "latest").media_type == content.DOCKER_LIST
    assert sample.repositories["acme/legacy"].archived
    assert sample.repositories["acme/secret-tools"].private and sample.role("public_from_private_repo").visibility == "public"
    assert any(k[:2] == ("acme", "webapp") for k in sample.revision_matches_head)
    assert not any(k[:2] == ("acme", "api") for k in sample.revision_matches_head)
    foreign = sample.tagged("acme", "win-agent", "ltsc2022")
    assert any(layer.foreign for layer in foreign.layers)
    artifact = next(i for i in sample.images.values() if i.kind == "artifact" and i.subject)
    assert artifact.artifact_type == "application/vnd.acme.scan-report.v1+json"
    assert {i.kind for i in sample.images.values()} == {"index", "image", "signature", "attestation", "sbom", "artifact"}


async def test_pushed_records_match_the_registry_bytes(world, sample, http):
    index = sample.tagged("acme", "webapp", "latest")
    reply = await manifest(http, world, "acme/webapp", index.digest)
    assert reply.body == index.raw
    entries = json.loads(reply.body)["manifests"]
    assert [e["digest"] for e in entries] == [c.digest for c in index.children]
    child = index.children[0]
    config = await registry_request(
        http, world.registry_url, f"/v2/acme/webapp/blobs/{child.config.digest}", github_token=world.token, allow_redirects=True
    )
    labels = json.loads(config.body)["config"]["Labels"]
    assert labels == dict(child.labels)
    assert labels["org.opencontainers.image.revision"] == sample.repositories["acme/webapp"].head_oid
    attestation = next(c for c in index.children if c.kind == "attestation")
    entry = next(e for e in entries if e["digest"] == attestation.digest)
    assert entry["annotations"] == {
        "vnd.docker.reference.digest": attestation.subject,
        "vnd.docker.reference.type": "attestation-manifest",
    }
    for layer in child.layers:
        head = await registry_request(http, world.registry_url, f"/v2/acme/webapp/blobs/{layer.digest}", github_token=world.token, method="HEAD")
        assert head.status == 200 and int(head.headers["Content-Length"]) == layer.size


async def test_foreign_layers_are_described_but_not_pushed(world, sample, http):
    image = sample.tagged("acme", "win-agent", "ltsc2022")
    foreign = next(layer for layer in image.layers if layer.foreign)
    assert foreign.media_type == content.DOCKER_FOREIGN_LAYER and foreign.urls
    head = await registry_request(http, world.registry_url, f"/v2/acme/win-agent/blobs/{foreign.digest}", github_token=world.token, method="HEAD")
    assert head.status == 404
    body = json.loads((await manifest(http, world, "acme/win-agent", "ltsc2022")).body)
    assert body["layers"][0]["urls"] == list(foreign.urls)


async def test_moving_a_tag_leaves_the_old_version_untagged(world, fresh_owner, http):
    b = world.builder
    old = b.push_image(fresh_owner, "app", tags=["latest"])
    new = b.push_image(fresh_owner, "app", tags=["next"])
    before = world.package(fresh_owner, "app").updated_at
    b.tag(fresh_owner, "app", "latest", new)
    reply = await manifest(http, world, f"{fresh_owner}/app", "latest")
    assert reply.headers["Docker-Content-Digest"] == new.digest
    status, versions = await rest_versions(http, world, fresh_owner, "app")
    tags = {v["name"]: v["metadata"]["container"]["tags"] for v in versions}
    assert tags == {old.digest: [], new.digest: ["next", "latest"]}
    assert world.package(fresh_owner, "app").updated_at > before


async def test_deleting_a_tag_removes_it_on_both_sides(world, fresh_owner, http):
    b = world.builder
    image = b.push_image(fresh_owner, "app", tags=["keep", "drop"])
    assert b.untag(fresh_owner, "app", "drop") == image.digest
    assert await registry_tags(http, world, f"{fresh_owner}/app") == {"keep"}
    assert (await manifest(http, world, f"{fresh_owner}/app", "drop")).status == 404
    assert world.tags_of(fresh_owner, "app") == {"keep": image.digest}


async def test_deleting_and_restoring_a_version(world, fresh_owner, http):
    b = world.builder
    keep = b.push_image(fresh_owner, "app", tags=["keep"])
    gone = b.push_image(fresh_owner, "app", tags=["gone"])
    b.delete_version(fresh_owner, "app", gone)
    assert (await manifest(http, world, f"{fresh_owner}/app", gone.digest)).status == 404
    assert await registry_tags(http, world, f"{fresh_owner}/app") == {"keep"}
    _, active = await rest_versions(http, world, fresh_owner, "app")
    _, deleted = await rest_versions(http, world, fresh_owner, "app", "deleted")
    assert [v["name"] for v in active] == [keep.digest]
    assert [v["name"] for v in deleted] == [gone.digest] and deleted[0]["deleted_at"]
    b.restore_version(fresh_owner, "app", gone)
    assert (await manifest(http, world, f"{fresh_owner}/app", gone.digest)).status == 200
    _, active = await rest_versions(http, world, fresh_owner, "app")
    assert {v["name"] for v in active} == {keep.digest, gone.digest}


async def test_deleting_and_restoring_a_package(world, fresh_owner, http):
    b = world.builder
    b.push_image(fresh_owner, "app", tags=["latest"], visibility="public")
    listing = f"{world.api_url}/orgs/{fresh_owner}/packages?package_type=container"
    b.delete_package(fresh_owner, "app")
    async with http.get(listing, headers={"Authorization": f"Bearer {world.token}"}) as resp:
        assert await resp.json() == []
    assert (await rest_versions(http, world, fresh_owner, "app"))[0] == 404
    assert (await manifest(http, world, f"{fresh_owner}/app", "latest")).status == 401
    b.restore_package(fresh_owner, "app")
    async with http.get(listing, headers={"Authorization": f"Bearer {world.token}"}) as resp:
        assert [p["name"] for p in await resp.json()] == ["app"]
    assert (await manifest(http, world, f"{fresh_owner}/app", "latest")).status == 200


async def test_artifacts_cosign_tags_and_docker_lists(world, fresh_owner, http):
    b = world.builder
    image = b.push_image(fresh_owner, "app", tags=["v1"], format="docker")
    sig = b.push_cosign(fresh_owner, "app", image, "sig")
    assert sig.tags == (f"sha256-{image.digest.split(':')[1]}.sig",) and sig.subject == image.digest
    art = b.push_artifact(fresh_owner, "app", artifact_type="application/vnd.example+json", subject=image)
    body = json.loads((await manifest(http, world, f"{fresh_owner}/app", art.digest)).body)
    assert body["artifactType"] == "application/vnd.example+json"
    assert body["subject"] == {"mediaType": content.DOCKER_MANIFEST, "digest": image.digest, "size": image.size}
    assert body["config"]["mediaType"] == content.OCI_EMPTY
    assert (await registry_tags(http, world, f"{fresh_owner}/app")) == {"v1", sig.tags[0]}


async def test_many_tags_fast_path_is_seen_by_the_registry(world, fresh_owner, http):
    b = world.builder
    image = b.push_image(fresh_owner, "app", layers=1)
    b.add_tags(fresh_owner, "app", image, [f"t{i:04d}" for i in range(1200)], fast=True)
    reply = await registry_request(http, world.registry_direct_url, f"/v2/{fresh_owner}/app/tags/list", github_token=world.token)
    assert len(reply.json()["tags"]) == 1200
    assert len(world.tags_of(fresh_owner, "app")) == 1200
    assert (await manifest(http, world, f"{fresh_owner}/app", "t0999")).headers["Docker-Content-Digest"] == image.digest


def test_every_mutation_gets_a_later_timestamp(world, fresh_owner):
    b = world.builder
    image = b.push_image(fresh_owner, "app", tags=["a"])
    stamps = [world.package(fresh_owner, "app").updated_at]
    for step in (
        lambda: b.tag(fresh_owner, "app", "b", image),
        lambda: b.untag(fresh_owner, "app", "a"),
        lambda: b.push_image(fresh_owner, "app", tags=["c"]),
    ):
        step()
        stamps.append(world.package(fresh_owner, "app").updated_at)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_content_is_deterministic():
    one, diff_one = content.layer(7, 300)
    two, diff_two = content.layer(7, 300)
    other, _ = content.layer(8, 300)
    assert (one.digest, diff_one) == (two.digest, diff_two) and one.digest != other.digest
    assert content.cosign_tag("sha256:abc", "att") == "sha256-abc.att"
    assert str(content.Platform.parse("linux/arm64/v8")) == "linux/arm64/v8"
