"""Tables and real-world shapes for crawler.oci.

Every body is built here as the tool that pushes it would write it (buildx,
docker, cosign, notation, GitHub's attest action, oras), hashed, and parsed
back field by field.
"""

from __future__ import annotations

import hashlib

import orjson
import pytest

from crawler.errors import DigestMismatchError, ParseError
from crawler.oci import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MAX_CHILDREN,
    MAX_LAYERS,
    MAX_MANIFEST_BYTES,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    compute_digest,
    parse_manifest,
)


def d(name: str) -> str:
    """A well-formed sha256 digest standing for ``name``."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def encode(doc: object, *, pretty: bool = False) -> tuple[bytes, str]:
    body = orjson.dumps(doc, option=orjson.OPT_INDENT_2 if pretty else 0)
    return body, compute_digest(body)


def parse(doc: object, **kwargs):
    body, digest = encode(doc)
    return parse_manifest(body, digest=digest, **kwargs)


EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"
HEX = "a" * 64

# --- real shapes -------------------------------------------------------------------

AMD64, ARM64, ATT_AMD64, ATT_ARM64 = d("amd64"), d("arm64"), d("att-amd64"), d("att-arm64")

# docker buildx build --platform linux/amd64,linux/arm64 --provenance=true --sbom=true
BUILDX_INDEX = {
    "schemaVersion": 2,
    "mediaType": OCI_INDEX,
    "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": AMD64, "size": 1054,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": ARM64, "size": 1054,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"mediaType": OCI_MANIFEST, "digest": ATT_AMD64, "size": 840,
         "annotations": {"vnd.docker.reference.digest": AMD64, "vnd.docker.reference.type": "attestation-manifest"},
         "platform": {"architecture": "unknown", "os": "unknown"}},
        {"mediaType": OCI_MANIFEST, "digest": ATT_ARM64, "size": 840,
         "annotations": {"vnd.docker.reference.digest": ARM64, "vnd.docker.reference.type": "attestation-manifest"},
         "platform": {"architecture": "unknown", "os": "unknown"}},
    ],
    "annotations": {"org.opencontainers.image.source": "https://github.com/acme/app"},
}


def test_buildx_index_with_attestations():
    body, digest = encode(BUILDX_INDEX, pretty=True)
    index = parse_manifest(body, digest=digest, content_type=OCI_INDEX)
    assert isinstance(index, ImageIndex)
    assert (index.digest, index.media_type, index.size, index.kind) == (digest, OCI_INDEX, len(body), "index")
    assert index.subject is None and index.artifact_type is None
    assert index.annotations == (("org.opencontainers.image.source", "https://github.com/acme/app"),)
    assert index.annotation("org.opencontainers.image.source") == "https://github.com/acme/app"
    amd, arm, att_amd, att_arm = index.manifests
    assert amd == Descriptor(OCI_MANIFEST, AMD64, 1054, platform=Platform("linux", "amd64"))
    assert arm.platform == Platform("linux", "arm64", "v8")
    assert str(arm.platform) == "linux/arm64/v8" and str(amd.platform) == "linux/amd64"
    assert index.platform_children() == [amd, arm]
    assert index.attestations() == [(att_amd, AMD64), (att_arm, ARM64)]
    assert att_amd.annotation("vnd.docker.reference.type") == "attestation-manifest"
    assert att_amd.annotation("missing") is None


def test_docker_manifest_list_with_windows_platform():
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": d("linux"), "size": 528,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "digest": d("arm"), "size": 528,
             "platform": {"architecture": "arm", "os": "linux", "variant": "v7", "features": ["sse4"]}},
            {"mediaType": DOCKER_MANIFEST, "digest": d("win"), "size": 1125,
             "platform": {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5329",
                          "os.features": ["win32k"]}},
        ],
    }
    index = parse(doc, content_type=DOCKER_LIST)
    assert isinstance(index, ImageIndex) and index.media_type == DOCKER_LIST and index.kind == "index"
    linux, arm, win = index.manifests
    assert linux.platform == Platform("linux", "amd64")
    assert arm.platform == Platform("linux", "arm", "v7", features=("sse4",))
    assert win.platform == Platform("windows", "amd64", None, "10.0.17763.5329", ("win32k",))
    assert str(win.platform) == "windows/amd64"
    assert index.attestations() == [] and index.platform_children() == list(index.manifests)


CONFIG_DIGEST = d("config")


def test_oci_image_manifest_every_field():
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": CONFIG_DIGEST, "size": 1470},
        "layers": [
            {"mediaType": GZIP_LAYER, "digest": d("l1"), "size": 3_623_807},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": d("l2"), "size": 93},
        ],
        "annotations": {"org.opencontainers.image.created": "2024-05-01T10:00:00Z",
                        "org.opencontainers.image.revision": "abc123"},
    }
    body, digest = encode(doc)
    manifest = parse_manifest(body, digest=digest, content_type=f"{OCI_MANIFEST}; charset=utf-8", tag="v1")
    assert isinstance(manifest, ImageManifest)
    assert manifest == ImageManifest(
        digest=digest,
        media_type=OCI_MANIFEST,
        size=len(body),
        config=Descriptor(OCI_CONFIG, CONFIG_DIGEST, 1470),
        layers=(Descriptor(GZIP_LAYER, d("l1"), 3_623_807),
                Descriptor("application/vnd.oci.image.layer.v1.tar+zstd", d("l2"), 93)),
        subject=None,
        artifact_type=None,
        annotations=(("org.opencontainers.image.created", "2024-05-01T10:00:00Z"),
                     ("org.opencontainers.image.revision", "abc123")),
        kind="image",
    )
    assert manifest.total_size == 1470 + 3_623_807 + 93
    assert not any(layer.foreign for layer in manifest.layers)


def test_docker_v2_manifest_with_foreign_layer():
    url = "https://mcr.microsoft.com/v2/windows/servercore/blobs/" + d("base")
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": 2475, "digest": CONFIG_DIGEST},
        "layers": [
            {"mediaType": FOREIGN_LAYER, "size": 1_718_332_879, "digest": d("base"), "urls": [url]},
            {"mediaType": DOCKER_LAYER, "size": 1234, "digest": d("app")},
        ],
    }
    manifest = parse(doc, content_type=DOCKER_MANIFEST)
    assert manifest.media_type == DOCKER_MANIFEST and manifest.kind == "image"
    base, app = manifest.layers
    assert base.foreign and base.urls == (url,)
    assert not app.foreign
    assert manifest.total_size == 2475 + 1_718_332_879 + 1234  # foreign layers count
    # a non-distributable OCI layer, and any layer with urls, are foreign too
    assert Descriptor("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", d("x"), 1).foreign
    assert Descriptor(GZIP_LAYER, d("x"), 1, urls=("https://elsewhere/blob",)).foreign


def test_buildx_attestation_manifest():
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": d("att-config"), "size": 167},
        "layers": [
            {"mediaType": IN_TOTO, "digest": d("provenance"), "size": 1632,
             "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}},
            {"mediaType": IN_TOTO, "digest": d("sbom"), "size": 26_214,
             "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}},
        ],
    }
    manifest = parse(doc)
    assert manifest.kind == "attestation"
    assert manifest.layers[0].annotation("in-toto.io/predicate-type") == "https://slsa.dev/provenance/v0.2"


def cosign_manifest(layer_type: str, annotations: dict) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": 233, "digest": d("cosign-config")},
        "layers": [{"mediaType": layer_type, "size": 256, "digest": d("payload"), "annotations": annotations}],
    }


COSIGN_SIG = cosign_manifest(
    "application/vnd.dev.cosign.simplesigning.v1+json",
    {"dev.cosignproject.cosign/signature": "MEUCIQD...",
     "dev.sigstore.cosign/bundle": '{"SignedEntryTimestamp":"MEQ..."}',
     "dev.sigstore.cosign/certificate": "-----BEGIN CERTIFICATE-----\n..."},
)
COSIGN_ATT = cosign_manifest(
    "application/vnd.dsse.envelope.v1+json",
    {"dev.cosignproject.cosign/signature": "", "predicateType": "https://slsa.dev/provenance/v0.2"},
)
COSIGN_SBOM_SPDX = cosign_manifest("text/spdx+json", {})
COSIGN_SBOM_CDX = cosign_manifest("application/vnd.cyclonedx+json", {})


@pytest.mark.parametrize(
    ("doc", "kind"),
    [(COSIGN_SIG, "signature"), (COSIGN_ATT, "attestation"),
     (COSIGN_SBOM_SPDX, "sbom"), (COSIGN_SBOM_CDX, "sbom"),
     (cosign_manifest("text/spdx", {}), "sbom"),
     (cosign_manifest("application/vnd.syft+json", {}), "sbom")],
)
def test_cosign_manifests(doc, kind):
    manifest = parse(doc, tag="v1")  # content decides, not the tag
    assert manifest.kind == kind
    assert manifest.config.media_type == OCI_CONFIG
    assert manifest.layers[0].digest == d("payload")


def test_cosign_signature_annotations_survive():
    manifest = parse(COSIGN_SIG)
    assert manifest.layers[0].annotation("dev.cosignproject.cosign/signature") == "MEUCIQD..."


def test_oci_artifact_with_subject():
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.report.v1",
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
        "layers": [{"mediaType": "application/vnd.example.report.layer.v1+json", "digest": d("report"),
                    "size": 4242, "annotations": {"org.opencontainers.image.title": "report.json"}}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": AMD64, "size": 1054},
        "annotations": {"org.opencontainers.image.created": "2024-03-08T18:18:20.406Z"},
    }
    manifest = parse(doc)
    assert manifest.kind == "artifact"
    assert manifest.artifact_type == "application/vnd.example.report.v1"
    assert manifest.config == Descriptor(OCI_EMPTY, EMPTY_DIGEST, 2)
    assert manifest.subject == Descriptor(OCI_MANIFEST, AMD64, 1054)
    assert manifest.layers[0].annotation("org.opencontainers.image.title") == "report.json"
    assert manifest.total_size == 2 + 4242


SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def sigstore_bundle(annotations: dict | None) -> dict:
    """GitHub's attest action / cosign BUNDLE_SPEC: an OCI 1.1 referrer."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGSTORE_BUNDLE,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": SIGSTORE_BUNDLE, "digest": d("bundle"), "size": 4971}],
        "subject": {"mediaType": OCI_INDEX, "digest": d("image"), "size": 1609},
    }
    if annotations is not None:
        doc["annotations"] = annotations
    return doc


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        (sigstore_bundle({"dev.sigstore.bundle.content": "dsse-envelope",
                          "dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"}), "attestation"),
        (sigstore_bundle({"dev.sigstore.bundle.content": "message-signature"}), "signature"),
        (sigstore_bundle(None), "signature"),
        # Notary Project signature (notation): config media type marks it
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
          "config": {"mediaType": "application/vnd.cncf.notary.signature", "size": 2, "digest": EMPTY_DIGEST},
          "layers": [{"mediaType": "application/jose+json", "digest": d("jws"), "size": 32654}],
          "subject": {"mediaType": OCI_MANIFEST, "digest": d("image"), "size": 16724}}, "signature"),
        # notation with OCI 1.1 artifactType
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.cncf.notary.signature",
          "config": {"mediaType": OCI_EMPTY, "size": 2, "digest": EMPTY_DIGEST},
          "layers": [{"mediaType": "application/cose", "digest": d("cose"), "size": 1}]}, "signature"),
        # docker/attest: in-toto DSSE artifactType
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.in-toto.provenance+dsse",
          "config": {"mediaType": OCI_EMPTY, "size": 2, "digest": EMPTY_DIGEST},
          "layers": [{"mediaType": "application/vnd.in-toto.provenance+dsse", "digest": d("p"), "size": 1}]},
         "attestation"),
        # an SBOM pushed as an OCI 1.1 artifact
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
          "config": {"mediaType": OCI_EMPTY, "size": 2, "digest": EMPTY_DIGEST},
          "layers": [{"mediaType": "application/spdx+json", "digest": d("s"), "size": 1}]}, "sbom"),
        # Helm chart: unknown config type
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
          "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "size": 117, "digest": d("c")},
          "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": d("h"),
                      "size": 3000}]}, "artifact"),
        # image config but a non-image layer
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
          "config": {"mediaType": OCI_CONFIG, "size": 1, "digest": d("c")},
          "layers": [{"mediaType": "application/wasm", "digest": d("w"), "size": 1}]}, "artifact"),
        # an image with no layers at all is still an image
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
          "config": {"mediaType": OCI_CONFIG, "size": 1, "digest": d("c")}, "layers": []}, "image"),
    ],
)
def test_referrer_and_artifact_kinds(doc, kind):
    assert parse(doc).kind == kind


UNKNOWN_CONTENT = {
    "schemaVersion": 2,
    "mediaType": OCI_MANIFEST,
    "config": {"mediaType": "application/vnd.unknown.config.v1+json", "size": 2, "digest": EMPTY_DIGEST},
    "layers": [{"mediaType": "application/octet-stream", "digest": d("blob"), "size": 10}],
}


@pytest.mark.parametrize(
    ("tag", "kind"),
    [(None, "artifact"), ("latest", "artifact"), (f"sha256-{HEX}.sig", "signature"),
     (f"sha256-{HEX}.att", "attestation"), (f"sha256-{HEX}.sbom", "sbom")],
)
def test_tag_hint_decides_only_inconclusive_content(tag, kind):
    assert parse(UNKNOWN_CONTENT, tag=tag).kind == kind


def test_tag_hint_never_overrides_content():
    image = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
             "config": {"mediaType": OCI_CONFIG, "size": 1, "digest": d("c")},
             "layers": [{"mediaType": GZIP_LAYER, "digest": d("l"), "size": 1}]}
    assert parse(image, tag=f"sha256-{HEX}.sig").kind == "image"
    assert parse(COSIGN_ATT, tag=f"sha256-{HEX}.sig").kind == "attestation"


def test_referrers_index_with_artifact_types():
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": d("b1"), "size": 779, "artifactType": SIGSTORE_BUNDLE,
         "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"}}]}
    index = parse(doc)
    assert index.manifests[0].artifact_type == SIGSTORE_BUNDLE
    assert index.platform_children() == list(index.manifests)


# --- media type resolution --------------------------------------------------------------

MINIMAL_MANIFEST = {"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG, "size": 1, "digest": d("c")},
                    "layers": []}
MINIMAL_INDEX = {"schemaVersion": 2, "manifests": []}


@pytest.mark.parametrize(
    ("doc", "content_type", "media_type"),
    [
        (MINIMAL_MANIFEST, None, OCI_MANIFEST),  # structure decides
        (MINIMAL_INDEX, None, OCI_INDEX),
        (MINIMAL_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST),  # header decides
        (MINIMAL_INDEX, DOCKER_LIST, DOCKER_LIST),
        (MINIMAL_MANIFEST, "application/json", OCI_MANIFEST),  # generic header ignored
        (MINIMAL_INDEX, "text/plain; charset=utf-8", OCI_INDEX),
        ({**MINIMAL_MANIFEST, "mediaType": DOCKER_MANIFEST}, None, DOCKER_MANIFEST),
        ({**MINIMAL_MANIFEST, "mediaType": DOCKER_MANIFEST}, "application/octet-stream", DOCKER_MANIFEST),
        ({**MINIMAL_MANIFEST, "mediaType": OCI_MANIFEST}, OCI_MANIFEST.upper(), OCI_MANIFEST),
    ],
)
def test_media_type_resolution(doc, content_type, media_type):
    assert parse(doc, content_type=content_type).media_type == media_type


def test_null_collections_are_tolerated():
    doc = {**MINIMAL_MANIFEST, "layers": None, "annotations": None,
           "config": {"mediaType": OCI_CONFIG, "size": 1, "digest": d("c"), "urls": None, "annotations": None,
                      "platform": None}}
    manifest = parse(doc)
    assert manifest.layers == () and manifest.annotations == ()
    assert manifest.config == Descriptor(OCI_CONFIG, d("c"), 1)


# --- errors ----------------------------------------------------------------------------------


def test_digest_mismatch_names_both_digests():
    body, digest = encode(BUILDX_INDEX)
    wrong = d("something else")
    with pytest.raises(DigestMismatchError) as info:
        parse_manifest(body, digest=wrong)
    assert wrong in str(info.value) and digest in str(info.value)


def test_oversized_body_refused_before_hashing():
    body = b" " * (MAX_MANIFEST_BYTES + 1)
    with pytest.raises(ParseError, match="over the") as info:
        parse_manifest(body, digest=d("anything"))  # the digest is wrong too: size comes first
    assert not isinstance(info.value, DigestMismatchError)


def test_million_layers_refused():
    layer = {"mediaType": GZIP_LAYER, "digest": d("l"), "size": 1}
    body = orjson.dumps({**MINIMAL_MANIFEST, "layers": [layer] * 1_000_000})
    with pytest.raises(ParseError, match="limit"):
        parse_manifest(body, digest=compute_digest(body))


@pytest.mark.parametrize(("key", "limit"), [("layers", MAX_LAYERS), ("manifests", MAX_CHILDREN)])
def test_count_caps(key, limit):
    item = {"mediaType": "a/b", "digest": EMPTY_DIGEST, "size": 1}
    base = MINIMAL_MANIFEST if key == "layers" else MINIMAL_INDEX
    body, digest = encode({**base, key: [item] * (limit + 1)})
    assert len(body) < MAX_MANIFEST_BYTES  # the count cap, not the size cap, is under test
    with pytest.raises(ParseError, match=f"{key} has {limit + 1} entries, over the limit of {limit}"):
        parse_manifest(body, digest=digest)
    body, digest = encode({**base, key: [item] * limit})
    assert len(getattr(parse_manifest(body, digest=digest), key)) == limit


def test_truncated_json():
    body = orjson.dumps(BUILDX_INDEX)[:-10]
    with pytest.raises(ParseError, match="not valid JSON"):
        parse_manifest(body, digest=compute_digest(body))


def good_manifest() -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": CONFIG_DIGEST, "size": 10},
        "layers": [{"mediaType": GZIP_LAYER, "digest": d("l"), "size": 10}],
    }


def with_layer(**fields) -> dict:
    doc = good_manifest()
    doc["layers"][0].update(fields)
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1, 2], "not an object"),
        ("manifest", "not an object"),
        ({**good_manifest(), "schemaVersion": 1}, "schema 1"),
        ({"schemaVersion": 1, "name": "acme/app", "tag": "v1", "fsLayers": [], "signatures": []}, "schema 1"),
        ({**good_manifest(), "schemaVersion": 3}, "schemaVersion must be 2"),
        ({**good_manifest(), "schemaVersion": "2"}, "schemaVersion must be 2"),
        ({**good_manifest(), "schemaVersion": True}, "schemaVersion must be 2"),
        ({k: v for k, v in good_manifest().items() if k != "schemaVersion"}, "schemaVersion must be 2"),
        ({**good_manifest(), "mediaType": 7}, "mediaType is not a string"),
        ({**good_manifest(), "mediaType": "application/vnd.oci.artifact.manifest.v1+json"},
         "unsupported manifest media type 'application/vnd.oci.artifact.manifest.v1\\+json'"),
        ({**good_manifest(), "mediaType": "text/html"}, "unsupported manifest media type 'text/html'"),
        ({"schemaVersion": 2, "foo": 1}, "neither 'manifests' nor 'config'"),
        ({**good_manifest(), "manifests": []}, "shape of an image manifest"),
        ({**MINIMAL_INDEX, "mediaType": OCI_INDEX, "layers": []}, "shape of an index"),
        ({**good_manifest(), "mediaType": OCI_INDEX}, "shape of an index"),
        ({**MINIMAL_INDEX, "mediaType": OCI_MANIFEST}, "shape of an image manifest"),
        ({**good_manifest(), "layers": {"0": {}}}, "layers is not a list"),
        ({**MINIMAL_INDEX, "manifests": None}, "manifests is not a list"),
        ({**good_manifest(), "config": None}, "config is not a descriptor"),
        ({**good_manifest(), "config": "sha256:abc"}, "config is not a descriptor"),
        (with_layer(size=-1), r"layers\[0\].size must be an integer in 0..2\*\*53, got -1"),
        (with_layer(size="10"), r"layers\[0\].size must be an integer"),
        (with_layer(size=10.0), r"layers\[0\].size must be an integer"),
        (with_layer(size=True), r"layers\[0\].size must be an integer"),
        (with_layer(size=2**53 + 1), r"layers\[0\].size must be an integer"),
        (with_layer(size=None), r"layers\[0\].size must be an integer"),
        (with_layer(mediaType=None), r"layers\[0\].mediaType is not a non-empty string"),
        (with_layer(mediaType=""), r"layers\[0\].mediaType is not a non-empty string"),
        (with_layer(digest="sha256:abc"), r"layers\[0\].digest: sha256 digest must be 64"),
        (with_layer(digest="md5:" + "a" * 32), r"layers\[0\].digest: unsupported digest algorithm"),
        (with_layer(digest=None), r"layers\[0\].digest: digest is not a string"),
        (with_layer(urls="https://x"), r"layers\[0\].urls is not a list of strings"),
        (with_layer(urls=[1]), r"layers\[0\].urls is not a list of strings"),
        (with_layer(annotations=["a"]), r"layers\[0\].annotations is not an object"),
        (with_layer(annotations={"a": 1}), r"layers\[0\].annotations\['a'\] is not a string"),
        (with_layer(annotations={"a": None}), r"layers\[0\].annotations\['a'\] is not a string"),
        (with_layer(artifactType=5), r"layers\[0\].artifactType is not a string"),
        (with_layer(platform="linux/amd64"), r"layers\[0\].platform is not an object"),
        (with_layer(platform={"os": "linux"}), r"layers\[0\].platform needs string os and architecture"),
        (with_layer(platform={"os": "linux", "architecture": 64}), "needs string os and architecture"),
        (with_layer(platform={"os": "linux", "architecture": "arm", "variant": 7}), "platform.variant is not"),
        (with_layer(platform={"os": "l", "architecture": "a", "os.features": "x"}), "os.features is not a list"),
        ({**good_manifest(), "subject": {"mediaType": OCI_MANIFEST}}, "subject.digest"),
        ({**good_manifest(), "artifactType": ["x"]}, "artifactType is not a string"),
        ({**good_manifest(), "annotations": {"k": {"nested": "v"}}}, r"annotations\['k'\] is not a string"),
        ({**BUILDX_INDEX, "manifests": [{**BUILDX_INDEX["manifests"][2], "annotations": {
            "vnd.docker.reference.type": "attestation-manifest"}}]},
         r"manifests\[0\]: attestation manifest without a valid vnd.docker.reference.digest"),
    ],
)
def test_wrong_shapes(doc, message):
    with pytest.raises(ParseError, match=message) as info:
        parse(doc)
    assert not isinstance(info.value, DigestMismatchError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("doc", "content_type", "message"),
    [
        (good_manifest(), OCI_INDEX, "disagrees with Content-Type"),
        (good_manifest(), DOCKER_MANIFEST, "disagrees with Content-Type"),
        (MINIMAL_MANIFEST, "application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1"),
        (MINIMAL_MANIFEST, "application/vnd.example+json", "unsupported manifest media type"),
        (MINIMAL_INDEX, OCI_MANIFEST, "shape of an image manifest"),
    ],
)
def test_header_problems(doc, content_type, message):
    with pytest.raises(ParseError, match=message):
        parse(doc, content_type=content_type)


@pytest.mark.parametrize("body", [b"", b"\xff\xfe", b"null", b"{", b"[" * 2000 + b"]" * 2000, b'{"a":1e999999}'])
def test_garbage_bytes(body):
    with pytest.raises(ParseError):
        parse_manifest(body, digest=compute_digest(body))


def test_invalid_digest_argument():
    with pytest.raises(ParseError, match="malformed digest"):
        parse_manifest(b"{}", digest="latest")
    with pytest.raises(ParseError, match="not bytes"):
        parse_manifest("{}", digest=EMPTY_DIGEST)  # type: ignore[arg-type]


def test_sha512_addressed_manifest():
    body = orjson.dumps(MINIMAL_INDEX)
    digest = compute_digest(body, "sha512")
    assert parse_manifest(body, digest=digest).digest == digest
