"""The content model: what OCI / Docker content is, from bytes alone.

    mediatypes   media type names, the manifest Accept header
    digest       digest and tag grammar, cosign / referrers tag schemes
    fields       typed readers for OCI JSON fields
    manifest     Descriptor, Platform, ImageManifest, ImageIndex, parse_manifest
    classify     the one classifier: image | index | signature | attestation | sbom | artifact
    imageconfig  ImageConfig, parse_config, ImageInfo (org.opencontainers.image.*)
    referrers    Referrer links derived from content, tags and referrers-API answers
    errorbody    the one line worth showing from an OCI error body

Everything here is pure (no I/O, no engine imports): the registry client
fetches bytes and hands them here. The names most callers need are
re-exported below.
"""

from .classify import artifact_kind, classify, predicate_types
from .digest import (compute_digest, cosign_tag_subject, is_valid_repository, is_valid_tag, parse_digest,
                     referrers_tag_subject, verify_digest)
from .errorbody import parse_oci_error
from .imageconfig import MAX_CONFIG_BYTES, ImageConfig, ImageInfo, image_info, normalize_timestamp, parse_config
from .manifest import (MAX_CHILDREN, MAX_LAYERS, MAX_MANIFEST_BYTES, Descriptor, ImageIndex, ImageManifest,
                       Platform, parse_manifest)
from .mediatypes import (ACCEPT_MANIFESTS, DOCKER_CONFIG, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_EMPTY,
                         OCI_INDEX, OCI_MANIFEST)
from .referrers import Referrer, api_referrers, content_referrers, cosign_referrers

__all__ = [
    "ACCEPT_MANIFESTS", "DOCKER_CONFIG", "DOCKER_LIST", "DOCKER_MANIFEST", "MAX_CHILDREN",
    "MAX_CONFIG_BYTES", "MAX_LAYERS", "MAX_MANIFEST_BYTES", "OCI_CONFIG", "OCI_EMPTY", "OCI_INDEX",
    "OCI_MANIFEST", "Descriptor", "ImageConfig", "ImageIndex", "ImageInfo", "ImageManifest", "Platform",
    "Referrer", "api_referrers", "artifact_kind", "classify", "compute_digest", "content_referrers",
    "cosign_referrers", "cosign_tag_subject", "image_info", "is_valid_repository", "is_valid_tag", "normalize_timestamp",
    "parse_config", "parse_digest", "parse_manifest", "parse_oci_error", "predicate_types",
    "referrers_tag_subject", "verify_digest",
]
