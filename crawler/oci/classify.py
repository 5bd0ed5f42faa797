"""The one classifier of content: what a manifest holds, and what a
referrer descriptor's ``artifactType`` says it is.

Kinds: ``index`` (set by the parser for indexes), ``image``, ``signature``,
``attestation``, ``sbom``, ``artifact``. A referrer found only by its
descriptor (the OCI referrers API) gets the same words from its
``artifactType``, or ``other`` when it names none of them. Pure functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .digest import cosign_tag_subject
from .mediatypes import (COSIGN_SIMPLESIGNING, DSSE_PREFIX, IMAGE_CONFIG_TYPES, IMAGE_LAYER_PREFIXES,
                         IN_TOTO_PREFIX, NOTARY_SIGNATURE, SBOM_PREFIXES, SIGSTORE_BUNDLE_PREFIX,
                         bare_type)

if TYPE_CHECKING:  # the parser imports this module: only the type, no cycle at run time
    from .manifest import ImageManifest

# cosign's own artifact types for what it attaches through the referrers
# API (sigstore/cosign pkg/oci/static, "application/vnd.dev.cosign.artifact.*").
COSIGN_ARTIFACT_KINDS = {
    "application/vnd.dev.cosign.artifact.sig.v1+json": "signature",
    "application/vnd.dev.cosign.artifact.sbom.v1+json": "sbom",
    "application/vnd.dev.cosign.artifact.att.v1+json": "attestation",
}
# The predicate type of an in-toto statement, as buildx and cosign annotate it.
PREDICATE_ANNOTATIONS = ("in-toto.io/predicate-type", "predicateType")


def _is_sbom(media_type: str) -> bool:
    return media_type.startswith(SBOM_PREFIXES)


def _is_intoto(media_type: str) -> bool:
    return media_type.startswith((IN_TOTO_PREFIX, DSSE_PREFIX))


def classify(manifest: ImageManifest, *, tag: str | None = None) -> str:
    """What a config+layers manifest holds, from its content first.

    - cosign signature: a ``simplesigning`` layer (cosign SIGNATURE_SPEC);
      Notary signature config/artifactType (notaryproject signature spec);
      Sigstore bundle (cosign BUNDLE_SPEC): signature unless annotated as a
      DSSE envelope or with a predicate type, which makes an attestation.
    - attestation: in-toto / DSSE layers or artifactType (cosign ``.att``,
      buildx attestation manifests with ``application/vnd.in-toto+json``).
    - sbom: SPDX / CycloneDX / Syft layers or artifactType (cosign
      ``attach sbom``).
    - image: OCI/Docker image config, no artifactType, image layers.
    - otherwise artifact, unless ``tag`` carries a cosign suffix.
    """
    layer_types = [bare_type(layer.media_type) for layer in manifest.layers]
    kinds = [bare_type(manifest.artifact_type), bare_type(manifest.config.media_type)]
    if COSIGN_SIMPLESIGNING in layer_types or COSIGN_SIMPLESIGNING in kinds or NOTARY_SIGNATURE in kinds:
        return "signature"
    if any(t.startswith(SIGSTORE_BUNDLE_PREFIX) for t in kinds + layer_types):
        return _sigstore_bundle_kind(manifest)
    if any(_is_intoto(t) for t in kinds + layer_types):
        return "attestation"
    if any(_is_sbom(t) for t in kinds + layer_types):
        return "sbom"
    if _is_plain_image(manifest, layer_types):
        return "image"
    hinted = cosign_tag_subject(tag) if tag else None
    return hinted[1] if hinted else "artifact"


def _sigstore_bundle_kind(manifest: ImageManifest) -> str:
    content = manifest.annotation("dev.sigstore.bundle.content")
    if content == "dsse-envelope" or manifest.annotation("dev.sigstore.bundle.predicateType"):
        return "attestation"
    return "signature"


def _is_plain_image(manifest: ImageManifest, layer_types: list[str]) -> bool:
    return (
        manifest.artifact_type is None
        and bare_type(manifest.config.media_type) in IMAGE_CONFIG_TYPES
        and all(t.startswith(IMAGE_LAYER_PREFIXES) for t in layer_types)
    )


def artifact_kind(artifact_type: str | None) -> str:
    """signature | attestation | sbom | other, from a referrer descriptor's
    ``artifactType`` alone (the referrers API answers descriptors, not
    manifests): the same media-type rules as `classify`, plus cosign's
    artifact types. A Sigstore bundle seen only by its type counts as a
    signature (its content, not its type, would tell a DSSE attestation)."""
    t = bare_type(artifact_type)
    if t in COSIGN_ARTIFACT_KINDS:
        return COSIGN_ARTIFACT_KINDS[t]
    if t in (COSIGN_SIMPLESIGNING, NOTARY_SIGNATURE) or t.startswith(SIGSTORE_BUNDLE_PREFIX):
        return "signature"
    if _is_intoto(t):
        return "attestation"
    if _is_sbom(t):
        return "sbom"
    return "other"


def referrer_kind(kind: str) -> str:
    """A manifest's kind as a referrer link's kind (images and artifacts
    that point at a subject are ``other``)."""
    return kind if kind in ("signature", "attestation", "sbom") else "other"


def predicate_types(manifest: ImageManifest) -> str | None:
    """The attestation's predicate type(s), comma-separated (a buildx
    attestation manifest carries provenance and SBOM statements side by side)."""
    found = [value for layer in manifest.layers for key in PREDICATE_ANNOTATIONS
             if (value := layer.annotation(key))]
    return ",".join(dict.fromkeys(found)) or None
