"""Annotations on every descriptor (issue 13): index entries (`buildah
manifest annotate`), layers, config and subject are kept with the entry they
belong to, in `descriptor_annotations` / `v_descriptor_annotations`;
`--full` repairs them like the other child rows."""

import orjson

from crawler.oci import compute_digest, parse_manifest
from crawler.model import PackageRef, PackageResult, VersionEntry
from crawler.store import SQLiteStore
from crawler.store.rows import descriptor_annotation_rows
from tests.sampledb import synced_sample
from tests.support import rows

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _parsed(doc: dict):
    raw = orjson.dumps(doc)
    return parse_manifest(raw, digest=compute_digest(raw))


def annotated_index():
    child = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 10,
             "platform": {"os": "linux", "architecture": "arm64"},
             "annotations": {"org.opencontainers.image.description": "Graviton build"}}
    plain = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "2" * 64, "size": 11,
             "platform": {"os": "linux", "architecture": "amd64"}}
    subject = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "3" * 64, "size": 12,
               "annotations": {"note": "described"}}
    return _parsed({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [plain, child],
                    "subject": subject, "annotations": {"own": "index"}})


def annotated_image():
    return _parsed({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": "sha256:" + "4" * 64, "size": 2, "annotations": {"c": "1"}},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "5" * 64,
                                "size": 3},
                               {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "6" * 64,
                                "size": 4, "annotations": {"org.opencontainers.image.title": "b.tar"}}]})


def test_rows_name_the_descriptor_by_role_and_position():
    index = annotated_index()
    assert descriptor_annotation_rows(index) == [
        (index.digest, "child", 1, "org.opencontainers.image.description", "Graviton build"),
        (index.digest, "subject", 0, "note", "described")]
    image = annotated_image()
    assert descriptor_annotation_rows(image) == [
        (image.digest, "layer", 1, "org.opencontainers.image.title", "b.tar"),
        (image.digest, "config", 0, "c", "1")]


def _result(manifests, *, full=False):
    ref = PackageRef(owner="acme", name="app", repository_path="acme/app", discovery="catalog")
    return PackageResult(ref=ref, versions=[VersionEntry(m.digest) for m in manifests], tags={"v1": manifests[0].digest},
                         manifests=list(manifests), configs=[], complete=True, full=full)


async def test_the_store_keeps_them_and_full_repairs_them(tmp_path):
    store = await SQLiteStore.open(tmp_path / "inv.db")
    try:
        owner = await store.writer.ensure_owner("registry", "acme", "org", "catalog")
        index, image = annotated_index(), annotated_image()
        await store.writer.apply_package(owner, _result([index, image]))
        db = tmp_path / "inv.db"
        view = "SELECT role, position, descriptor_digest, platform, key, value FROM v_descriptor_annotations "
        assert rows(db, view + "WHERE manifest_digest = ? ORDER BY role, position", (index.digest,)) == [
            ("child", 1, "sha256:" + "1" * 64, "linux/arm64", "org.opencontainers.image.description",
             "Graviton build"),
            ("subject", 0, "sha256:" + "3" * 64, None, "note", "described")]
        assert rows(db, view + "WHERE manifest_digest = ? ORDER BY role", (image.digest,)) == [
            ("config", 0, "sha256:" + "4" * 64, None, "c", "1"),
            ("layer", 1, "sha256:" + "6" * 64, None, "org.opencontainers.image.title", "b.tar")]
        # the manifest's own annotation stays in v_labels, not here
        assert rows(db, "SELECT key FROM v_labels WHERE digest = ?", (index.digest,)) == [("own",)]
        conn = __import__("sqlite3").connect(db)
        conn.execute("DELETE FROM descriptor_annotations WHERE role = 'child'")
        conn.execute("UPDATE descriptor_annotations SET value = 'tampered' WHERE role = 'config'")
        conn.commit()
        conn.close()
        applied = await store.writer.apply_package(owner, _result([index, image], full=True))
        assert applied.corrected >= 2
        assert rows(db, "SELECT COUNT(*) FROM descriptor_annotations") == [(4,)]
        assert rows(db, "SELECT value FROM descriptor_annotations WHERE role = 'config'") == [("1",)]
    finally:
        await store.close()


def test_the_sample_index_entry_annotation_is_in_the_view(world, sample, tmp_path_factory):
    db = synced_sample(world, tmp_path_factory)
    index = sample.tagged("acme", "db-migrations", "latest")
    arm = next(ch for ch in index.children if ch.platform_str == "linux/arm64")
    got = rows(db, "SELECT platform, descriptor_digest, key, value FROM v_descriptor_annotations "
                   "WHERE manifest_digest = ? AND role = 'child' ORDER BY key", (index.digest,))
    assert got == [("linux/arm64", arm.digest, "com.acme.tested", "false"),
                   ("linux/arm64", arm.digest, "org.opencontainers.image.description", "Graviton build")]
    # buildx attestation entries and cosign layers keep theirs too
    webapp = sample.tagged("acme", "webapp", "latest")
    kinds = {k for (k,) in rows(db, "SELECT DISTINCT key FROM v_descriptor_annotations WHERE manifest_digest = ?",
                                (webapp.digest,))}
    assert kinds == {"vnd.docker.reference.digest", "vnd.docker.reference.type"}
    assert rows(db, "SELECT COUNT(*) FROM v_descriptor_annotations WHERE role = 'layer'")[0][0] > 0
