"""OCI / Docker manifests: the wire objects and their pure parser.

Bytes in, frozen dataclasses out. Every body is size-capped and verified
against the digest it was fetched by *before* it is decoded (OCI
image-spec descriptor.md "Verification": check size, then hash, and avoid
heavy processing first). Anything malformed raises
:class:`~crawler.errors.ParseError`; bytes that do not hash to their digest
raise :class:`~crawler.errors.DigestMismatchError`.

Understood: OCI image index and manifest (image-spec v1.1, including
``artifactType`` and ``subject``), Docker manifest list and schema 2,
foreign / non-distributable layers. What a manifest *holds* (image,
signature, attestation, sbom, artifact) is decided by `classify.py`.
Docker schema 1 is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from crawler.errors import ParseError

from .classify import classify
from .digest import parse_digest, show, verify_digest
from .fields import capped_list, json_object, lookup, optional_str, string_map, strings
from .mediatypes import (ATTESTATION_MANIFEST, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, FOREIGN_LAYER_TYPES,
                         GENERIC_TYPES, INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST,
                         REFERENCE_DIGEST, REFERENCE_TYPE, bare_type)

# --- limits ----------------------------------------------------------------
# Real manifests are a few KiB: a 100-platform index or a 127-layer image
# (the overlayfs limit) stays far below these. The caps exist so that a
# hostile or broken registry cannot make one response exhaust memory: the
# body is refused before hashing/decoding, and counts are checked before
# any descriptor is built. 4 MiB is also the manifest limit distribution
# and most registries enforce on push.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CHILDREN = 10_000
MAX_LAYERS = 10_000
MAX_SIZE = 2**53  # descriptor sizes: int64 in Go, exact in JSON doubles


# --- wire objects ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Platform:
    """Where an index child runs (image-spec image-index.md ``platform``).

    ``features`` is ``os.features``; the top-level ``features`` is
    reserved by OCI and only used as a fallback for Docker lists.
    """

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    features: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = (self.os, self.architecture, self.variant)
        return "/".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor (image-spec descriptor.md)."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    platform: Platform | None = None
    artifact_type: str | None = None

    def annotation(self, key: str) -> str | None:
        return lookup(self.annotations, key)

    @property
    def foreign(self) -> bool:
        """A layer the registry may not serve: foreign/non-distributable
        media type, or one that names its own download ``urls``."""
        return self.media_type in FOREIGN_LAYER_TYPES or bool(self.urls)


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """An image manifest or anything else with ``config`` + ``layers``.

    ``kind`` is one of image, signature, attestation, sbom, artifact.
    """

    digest: str
    media_type: str
    size: int
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    kind: str = "image"

    def annotation(self, key: str) -> str | None:
        return lookup(self.annotations, key)

    @property
    def total_size(self) -> int:
        """Config plus all layer sizes, as the descriptors declare them.

        Foreign layers count: they are part of the image a runtime pulls,
        even if from elsewhere. Sizes are compressed sizes, like ghcr's UI.
        """
        return self.config.size + sum(layer.size for layer in self.layers)


@dataclass(frozen=True, slots=True)
class ImageIndex:
    """An OCI image index or a Docker manifest list."""

    digest: str
    media_type: str
    size: int
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    kind: str = "index"

    def annotation(self, key: str) -> str | None:
        return lookup(self.annotations, key)

    def attestations(self) -> list[tuple[Descriptor, str]]:
        """buildx attestation manifests: (child, digest it attests)."""
        return [
            (child, child.annotation(REFERENCE_DIGEST) or "")
            for child in self.manifests if _is_attestation_child(child)
        ]

    def platform_children(self) -> list[Descriptor]:
        """Every child that is not a buildx attestation manifest."""
        return [child for child in self.manifests if not _is_attestation_child(child)]


def _is_attestation_child(child: Descriptor) -> bool:
    return child.annotation(REFERENCE_TYPE) == ATTESTATION_MANIFEST


# --- manifest parsing --------------------------------------------------------


def parse_manifest(
    body: bytes, *, digest: str, content_type: str | None = None, tag: str | None = None
) -> ImageManifest | ImageIndex:
    """Parse a manifest fetched by ``digest`` (or by a tag that resolved to it).

    Order: size cap, digest check, JSON, media type. The media type comes
    from the body's ``mediaType``, else the Content-Type header, else the
    structure (``manifests`` -> index, ``config`` + ``layers`` -> manifest);
    when body and header name different types the body is not trusted.
    ``tag`` only breaks ties when classifying the kind (cosign tag suffix).
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ParseError(f"manifest body is not bytes: {type(body).__name__}")
    body = bytes(body)
    if len(body) > MAX_MANIFEST_BYTES:
        raise ParseError(f"manifest is {len(body)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit")
    verify_digest(body, digest)
    doc = json_object(body, "manifest")
    media_type = _manifest_media_type(doc, content_type)
    if media_type in INDEX_TYPES:
        return _index(doc, digest=digest, media_type=media_type, size=len(body))
    return _image_manifest(doc, digest=digest, media_type=media_type, size=len(body), tag=tag)


def _manifest_media_type(doc: dict, content_type: str | None) -> str:
    declared = doc.get("mediaType")
    header = bare_type(content_type)
    header = "" if header in GENERIC_TYPES else header
    if declared is not None and not isinstance(declared, str):
        raise ParseError(f"manifest mediaType is not a string: {show(declared)}")
    version = doc.get("schemaVersion")
    is_int = type(version) is int  # not bool: True == 1 in Python
    if (is_int and version == 1) or {declared, header} & {DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED}:
        raise ParseError("unsupported Docker image manifest schema 1 (schemaVersion 1); re-push the image")
    if not is_int or version != 2:
        raise ParseError(f"manifest schemaVersion must be 2, got {show(version)}")
    if declared and header and declared != header:
        raise ParseError(f"manifest mediaType {show(declared)} disagrees with Content-Type {show(header)}")
    media_type = declared or header or _type_from_structure(doc)
    if media_type not in INDEX_TYPES | MANIFEST_TYPES:
        raise ParseError(f"unsupported manifest media type {show(media_type)}")
    _check_structure(doc, media_type)
    return media_type


def _type_from_structure(doc: dict) -> str:
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc and "layers" in doc:
        return OCI_MANIFEST
    raise ParseError("manifest has no mediaType and neither 'manifests' nor 'config'+'layers'")


def _check_structure(doc: dict, media_type: str) -> None:
    """A body must look like what it claims.

    CVE-2021-41190 (GHSA-77vh-xpmg-72qh, GHSA-mc8v-mgrf-8f4m): a document
    with both ``manifests`` and ``layers``/``config`` could be read as
    either, so it is refused; and a body's ``mediaType`` must match the
    Content-Type it was served with (checked by the caller).
    """
    if media_type in INDEX_TYPES:
        if "manifests" not in doc or "layers" in doc or "config" in doc:
            raise ParseError(f"{media_type} body does not have the shape of an index")
    elif "config" not in doc or "layers" not in doc or "manifests" in doc:
        raise ParseError(f"{media_type} body does not have the shape of an image manifest")


def _index(doc: dict, *, digest: str, media_type: str, size: int) -> ImageIndex:
    children = capped_list(doc.get("manifests"), "manifests", MAX_CHILDREN, allow_null=False)
    manifests = tuple(_descriptor(item, f"manifests[{i}]") for i, item in enumerate(children))
    for i, child in enumerate(manifests):
        if _is_attestation_child(child):
            _attested_digest(child, f"manifests[{i}]")
    return ImageIndex(
        digest=digest,
        media_type=media_type,
        size=size,
        manifests=manifests,
        subject=_optional_descriptor(doc.get("subject"), "subject"),
        artifact_type=optional_str(doc.get("artifactType"), "artifactType"),
        annotations=string_map(doc.get("annotations"), "annotations"),
    )


def _attested_digest(child: Descriptor, where: str) -> str:
    value = child.annotation(REFERENCE_DIGEST)
    try:
        return parse_digest(value)
    except ParseError as exc:
        raise ParseError(f"{where}: attestation manifest without a valid {REFERENCE_DIGEST}: {exc}") from exc


def _image_manifest(doc: dict, *, digest: str, media_type: str, size: int, tag: str | None) -> ImageManifest:
    items = capped_list(doc.get("layers"), "layers", MAX_LAYERS, allow_null=True)
    manifest = ImageManifest(
        digest=digest,
        media_type=media_type,
        size=size,
        config=_descriptor(doc.get("config"), "config"),
        layers=tuple(_descriptor(item, f"layers[{i}]") for i, item in enumerate(items)),
        subject=_optional_descriptor(doc.get("subject"), "subject"),
        artifact_type=optional_str(doc.get("artifactType"), "artifactType"),
        annotations=string_map(doc.get("annotations"), "annotations"),
    )
    return replace(manifest, kind=classify(manifest, tag=tag))


# --- descriptor validation ---------------------------------------------------


def _descriptor(value: object, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ParseError(f"{where} is not a descriptor object: {show(value)}")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ParseError(f"{where}.mediaType is not a non-empty string: {show(media_type)}")
    try:
        digest = parse_digest(value.get("digest"))
    except ParseError as exc:
        raise ParseError(f"{where}.digest: {exc}") from exc
    # Optional fields are read only when present: most descriptors (a layer)
    # have none, and naming each field for an error that cannot happen cost
    # more than the checks.
    size = value.get("size")
    if type(size) is not int or not 0 <= size <= MAX_SIZE:
        _size(size, f"{where}.size")
    urls, annotations, platform, artifact_type = (
        value.get("urls"), value.get("annotations"), value.get("platform"), value.get("artifactType"))
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=() if urls is None else strings(urls, f"{where}.urls"),
        annotations=() if annotations is None else string_map(annotations, f"{where}.annotations"),
        platform=None if platform is None else _platform(platform, f"{where}.platform"),
        artifact_type=None if artifact_type is None else optional_str(artifact_type, f"{where}.artifactType"),
    )


def _size(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_SIZE:
        raise ParseError(f"{where} must be an integer in 0..2**53, got {show(value)}")
    return value


def _optional_descriptor(value: object, where: str) -> Descriptor | None:
    return None if value is None else _descriptor(value, where)


def _platform(value: object, where: str) -> Platform | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ParseError(f"{where} is not an object: {show(value)}")
    os_name, arch = value.get("os"), value.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str):
        raise ParseError(f"{where} needs string os and architecture: {show(value)}")
    features = value.get("os.features")
    if features is None:
        features = value.get("features")
    return Platform(
        os=os_name,
        architecture=arch,
        variant=optional_str(value.get("variant"), f"{where}.variant"),
        os_version=optional_str(value.get("os.version"), f"{where}.os.version"),
        features=strings(features, f"{where}.os.features"),
    )
