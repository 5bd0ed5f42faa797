"""Issue 3, end to end against the world: the sample org syncs completely and
correctly, a no-op sync costs only 304s and writes nothing, and a failure in
one package never stops or corrupts the others — in both stores (SQLite and
PostgreSQL: the `store` parameter)."""

import asyncio
import json

import aiohttp
import pytest

from crawler.sandbox.client import ACCEPT_MANIFESTS, registry_request
from tests.support import dump, integrity_ok, inventory_in, last_run, rows, run_cli, write_config


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def synced(request, world, sample, tmp_path_factory):
    """The sample org synced once into a module-wide database, in each store."""
    tmp = tmp_path_factory.mktemp("synced")
    db = inventory_in(request.param, tmp, request)
    config = write_config(world, tmp, sample.owners, token_env="GHCR_E2E_TOKEN", db=db)
    import os
    os.environ["GHCR_E2E_TOKEN"] = world.token
    code = run_cli(config, "sync")
    assert code == 0
    return db, config


def test_every_tag_matches_the_sample_and_the_registry(world, sample, synced):
    db, _ = synced
    got = {(o, p, t): d for o, p, t, d in rows(db, "SELECT owner, package, tag, digest FROM v_tags")}
    assert got == dict(sample.tags)

    async def served():
        async with aiohttp.ClientSession() as session:
            async def head(key):
                owner, package, tag = key
                reply = await registry_request(session, world.registry_direct_url,
                                               f"/v2/{owner}/{package}/manifests/{tag}", method="HEAD",
                                               github_token=world.token, headers={"Accept": ACCEPT_MANIFESTS})
                return key, reply.headers.get("Docker-Content-Digest")
            return dict(await asyncio.gather(*(head(k) for k in got)))

    assert asyncio.run(served()) == got


def test_images_have_the_right_kind_platform_size_and_labels(sample, synced):
    db, _ = synced
    table = {(o, p, d): r for o, p, d, *r in rows(
        db, "SELECT owner, package, digest, kind, platform, parent_digest, size, layer_count, source, "
            "revision, media_type, config_digest FROM v_images")}
    assert set(table) == set(sample.images)
    pushed_by_digest = {d: img for (_, _, d), img in sample.images.items()}
    for key, img in sample.images.items():
        kind, platform, parent, size, layers, source, revision, media_type, config = table[key]
        assert kind == img.kind, key
        assert media_type == img.media_type, key
        if img.kind == "index":
            assert size == sum(c.config.size + c.layers_size for c in img.children), key
        else:
            assert size == img.config.size + img.layers_size, key
            assert layers == len(img.layers) and config == img.config.digest, key
        if img.kind == "image":
            assert platform == img.platform_str, key
            assert (source, revision) == (img.source, img.revision), key
        if img.parent and img.parent in pushed_by_digest:
            assert parent == img.parent, key


def test_referrers_are_linked_to_their_subjects(sample, synced):
    db, _ = synced
    got = set(rows(db, "SELECT subject_digest, referrer_digest, kind FROM v_referrers"))
    want = {(r.subject, r.referrer, r.kind if r.kind in ("signature", "attestation", "sbom") else "other")
            for r in sample.referrers}
    assert want <= got


def test_labels_and_annotations_are_queryable(sample, synced):
    db, _ = synced
    img = sample.tagged("acme", sample.role("revision_matches_head").name, "latest")
    img = img.children[0] if img.kind == "index" else img  # config labels live on the images
    assert img.labels
    labels = dict(rows(db, "SELECT key, value FROM v_labels WHERE digest = ?", (img.digest,)))
    for key, value in img.labels.items():
        assert labels[key] == value


def test_second_sync_is_only_304s_and_writes_nothing(synced):
    db, config = synced
    before = dump(db)
    assert run_cli(config, "sync") == 0
    run = last_run(db)
    assert run["status"] == "ok"
    assert run["requests"] == run["not_modified"] > 0
    assert set(json.loads(run["requests_by_kind"])) == {"discovery"}
    assert run["packages_changed"] == 0 and run["packages_skipped"] == run["packages_seen"]
    assert dump(db) == before


def test_private_packages_and_user_owners_are_inventoried(sample, synced):
    db, _ = synced
    private = sample.role("private")
    assert rows(db, "SELECT visibility FROM v_packages WHERE owner = ? AND package = ?",
                (private.owner, private.name)) == [("private",)]
    user_pkg = sample.role("user_package")
    assert rows(db, "SELECT COUNT(*) FROM v_tags WHERE owner = ? AND package = ?",
                (user_pkg.owner, user_pkg.name))[0][0] == len(user_pkg.tags)


FAULTS = {
    # name: (proxy, fault kind, path regex builder, expected text in the error)
    "digest mismatch": ("registry_proxy", "corrupt_body", lambda o, p: rf"/v2/{o}/{p}/manifests/sha256",
                        "digest mismatch"),
    "wrong digest header": ("registry_proxy", "wrong_digest", lambda o, p: rf"/v2/{o}/{p}/manifests/sha256",
                            "Docker-Content-Digest"),
    # bytes are verified before they are parsed: garbled JSON is a digest mismatch
    "registry malformed json": ("registry_proxy", "malformed_json", lambda o, p: rf"/v2/{o}/{p}/manifests/",
                                "digest mismatch"),
    "api malformed json": ("api_proxy", "malformed_json",
                           lambda o, p: rf"/packages/container/{p.replace('/', '%2F')}/versions", "JSON"),
    "api 404": ("api_proxy", "status", lambda o, p: rf"/packages/container/{p.replace('/', '%2F')}/versions",
                "404"),
}


@pytest.mark.parametrize("name", FAULTS)
def test_a_failing_package_is_confined(world, sample, tmp_path, monkeypatch, name, capsys, db):
    proxy_name, kind, path, reason = FAULTS[name]
    victim = sample.role("nested")
    params = {"status": 404, "body": {"message": "Not Found"}} if kind == "status" else {}
    getattr(world, proxy_name).inject(kind, path=path(victim.owner, victim.name), probability=1.0, **params)
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    config = write_config(world, tmp_path, sample.owners, db=db)
    code = run_cli(config, "sync")
    err = capsys.readouterr().err
    assert code == 1
    assert integrity_ok(db)
    synced = {p for (p,) in rows(db, "SELECT package FROM v_packages WHERE owner = ?", (victim.owner,))}
    assert victim.name not in synced
    assert len(synced) == len(sample.packages_of(victim.owner)) - 1
    errors = rows(db, "SELECT owner, package, message FROM run_errors")
    assert [(o, p) for o, p, _ in errors] == [(victim.owner, victim.name)]
    assert reason in errors[0][2]
    assert "package_failed" in err and victim.name in err
    run = last_run(db)
    assert (run["status"], run["exit_code"], run["packages_failed"]) == ("partial", 1, 1)


def test_attestations_carry_their_predicate_types(synced):
    db, _ = synced
    got = rows(db, "SELECT via, artifact_type FROM v_referrers WHERE kind = 'attestation'")
    assert {via for via, _ in got} == {"buildx", "cosign-tag"}
    assert all(t and "https://slsa.dev/provenance" in t for _, t in got)
    assert any("https://spdx.dev/Document" in t for via, t in got if via == "buildx")
