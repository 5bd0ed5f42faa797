"""Media types of OCI and Docker content, and the Accept header that asks
for every manifest type at once.

Names follow image-spec media-types.md; the signature, attestation and SBOM
types are the ones cosign, Notary, Sigstore, buildx and the SBOM tools
write (cited where each is used in `classify.py`).
"""

from __future__ import annotations

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

# ghcr answers 404 "OCI index found, but accept header does not support OCI
# indexes" unless the index type is accepted, so list index types first.
ACCEPT_MANIFESTS = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
IMAGE_CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})

# Layers that may not be pushed to / pulled from the registry (image-spec
# layer.md "Non-distributable layers", Docker "foreign" layers).
FOREIGN_LAYER_TYPES = frozenset({
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})
IMAGE_LAYER_PREFIXES = ("application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs.")

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
NOTARY_SIGNATURE = "application/vnd.cncf.notary.signature"
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"  # .v0.3+json, +json;version=0.2
IN_TOTO_PREFIX = "application/vnd.in-toto"  # +json (buildx), .<predicate>+dsse
DSSE_PREFIX = "application/vnd.dsse.envelope"  # cosign .att layers
SBOM_PREFIXES = ("text/spdx", "application/spdx", "application/vnd.cyclonedx", "application/vnd.syft+json")

# buildx attestation manifests in an index (docs.docker.com, "Image
# attestation storage"; moby/buildkit util/attestation).
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"


GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})


def bare_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return (content_type or "").split(";", 1)[0].strip().lower()
