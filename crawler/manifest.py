"""Pure parsers for OCI / Docker manifests, image configs and digests.

Bytes in, frozen dataclasses out. Every body is size-capped and verified
against the digest it was fetched by *before* it is decoded (OCI
image-spec descriptor.md "Verification": check size, then hash, and avoid
heavy processing first). Anything malformed raises
:class:`~crawler.errors.ParseError`; bytes that do not hash to their digest
raise :class:`~crawler.errors.DigestMismatchError`.

Understood: OCI image index and manifest (image-spec v1.1, including
``artifactType`` and ``subject``), Docker manifest list and schema 2,
cosign signatures/attestations/SBOMs, buildx attestation manifests,
Notary and Sigstore-bundle referrers, foreign / non-distributable layers.
Docker schema 1 is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import orjson

from crawler.errors import DigestMismatchError, ParseError

__all__ = [
    "ACCEPT_MANIFESTS", "DOCKER_CONFIG", "DOCKER_LIST", "DOCKER_MANIFEST", "MAX_CHILDREN",
    "MAX_CONFIG_BYTES", "MAX_LAYERS", "MAX_MANIFEST_BYTES", "OCI_CONFIG", "OCI_EMPTY", "OCI_INDEX",
    "OCI_MANIFEST", "Descriptor", "ImageConfig", "ImageIndex", "ImageInfo", "ImageManifest",
    "Platform", "classify", "compute_digest", "cosign_tag_subject", "image_info", "is_valid_tag",
    "normalize_timestamp", "parse_config", "parse_digest", "parse_manifest", "parse_oci_error",
    "referrers_tag_subject", "verify_digest",
]

# --- media types -----------------------------------------------------------

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

# --- limits ----------------------------------------------------------------
# Real manifests are a few KiB: a 100-platform index or a 127-layer image
# (the overlayfs limit) stays far below these. The caps exist so that a
# hostile or broken registry cannot make one response exhaust memory: the
# body is refused before hashing/decoding, and counts are checked before
# any descriptor is built. 4 MiB is also the manifest limit distribution
# and most registries enforce on push.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_CHILDREN = 10_000
MAX_LAYERS = 10_000
MAX_SIZE = 2**53  # descriptor sizes: int64 in Go, exact in JSON doubles

_SHOW = 80


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[:_SHOW] + "…"


# --- digests and tags --------------------------------------------------------

# image-spec descriptor.md "Digests": algorithm ":" encoded
_DIGEST = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)", re.ASCII)
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_LOWER_HEX = re.compile(r"[a-f0-9]+", re.ASCII)
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", re.ASCII)
_COSIGN_TAG = re.compile(r"(sha256|sha512)-([a-f0-9]+)\.(sig|att|sbom)", re.ASCII)
_REFERRERS_TAG = re.compile(r"(sha256|sha512)-([a-f0-9]+)", re.ASCII)
_COSIGN_KINDS = {"sig": "signature", "att": "attestation", "sbom": "sbom"}


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """``"<algorithm>:<lowercase hex>"`` of ``data`` (sha256 or sha512)."""
    if algorithm not in _HEX_LENGTH:
        raise ParseError(f"unsupported digest algorithm {_show(algorithm)}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def parse_digest(value: object) -> str:
    """Validate a digest string and return it unchanged.

    Grammar from image-spec descriptor.md "Digests"; the registered
    algorithms pin the encoding: sha256 is 64 and sha512 128 lowercase hex
    characters. The spec lets implementations pass unknown algorithms that
    fit the grammar; we refuse them because we could never verify content
    addressed by them.
    """
    if not isinstance(value, str):
        raise ParseError(f"digest is not a string: {_show(value)}")
    match = _DIGEST.fullmatch(value)
    if match is None:
        raise ParseError(f"malformed digest {_show(value)}")
    algorithm, encoded = match.groups()
    length = _HEX_LENGTH.get(algorithm)
    if length is None:
        raise ParseError(f"unsupported digest algorithm {_show(algorithm)} in {_show(value)}")
    if len(encoded) != length or not _LOWER_HEX.fullmatch(encoded):
        raise ParseError(f"{algorithm} digest must be {length} lowercase hex characters: {_show(value)}")
    return value


def verify_digest(data: bytes, digest: str) -> None:
    """Raise DigestMismatchError unless ``data`` hashes to ``digest``."""
    algorithm = parse_digest(digest).split(":", 1)[0]
    actual = compute_digest(data, algorithm)
    if actual != digest:
        raise DigestMismatchError(f"digest mismatch: content hashes to {actual}, expected {digest}")


def is_valid_tag(value: str) -> bool:
    """distribution-spec tag grammar ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``."""
    return isinstance(value, str) and _TAG.fullmatch(value) is not None


def cosign_tag_subject(tag: str) -> tuple[str, str] | None:
    """``sha256-<hex>.sig|.att|.sbom`` -> (subject digest, kind), else None.

    cosign's tag scheme for registries without the referrers API, which
    includes ghcr (cosign specs/SIGNATURE_SPEC.md, "Storage";
    ``cosign attach sbom`` for ``.sbom``).
    """
    match = _COSIGN_TAG.fullmatch(tag) if isinstance(tag, str) else None
    if match is None:
        return None
    algorithm, encoded, suffix = match.groups()
    if len(encoded) != _HEX_LENGTH[algorithm]:
        return None
    return f"{algorithm}:{encoded}", _COSIGN_KINDS[suffix]


def referrers_tag_subject(tag: str) -> str | None:
    """``sha256-<hex>`` -> subject digest: the referrers tag schema fallback.

    distribution-spec "Referrers Tag Schema": an OCI index of referrers
    tagged with the subject digest, ``:`` replaced by ``-``.
    """
    match = _REFERRERS_TAG.fullmatch(tag) if isinstance(tag, str) else None
    if match is None or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
        return None
    return f"{match.group(1)}:{match.group(2)}"


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
        return _lookup(self.annotations, key)

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
        return _lookup(self.annotations, key)

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
        return _lookup(self.annotations, key)

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


def _lookup(pairs: tuple[tuple[str, str], ...], key: str) -> str | None:
    for name, value in pairs:
        if name == key:
            return value
    return None


# --- manifest parsing --------------------------------------------------------

_GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})


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
    doc = _json_object(body, "manifest")
    media_type = _manifest_media_type(doc, content_type)
    if media_type in INDEX_TYPES:
        return _index(doc, digest=digest, media_type=media_type, size=len(body))
    return _image_manifest(doc, digest=digest, media_type=media_type, size=len(body), tag=tag)


def _json_object(body: bytes, what: str) -> dict:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ParseError(f"{what} is JSON {type(doc).__name__}, not an object")
    return doc


def _bare_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _manifest_media_type(doc: dict, content_type: str | None) -> str:
    declared = doc.get("mediaType")
    header = _bare_type(content_type)
    header = "" if header in _GENERIC_TYPES else header
    if declared is not None and not isinstance(declared, str):
        raise ParseError(f"manifest mediaType is not a string: {_show(declared)}")
    version = doc.get("schemaVersion")
    is_int = type(version) is int  # not bool: True == 1 in Python
    if (is_int and version == 1) or {declared, header} & {DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED}:
        raise ParseError("unsupported Docker image manifest schema 1 (schemaVersion 1); re-push the image")
    if not is_int or version != 2:
        raise ParseError(f"manifest schemaVersion must be 2, got {_show(version)}")
    if declared and header and declared != header:
        raise ParseError(f"manifest mediaType {_show(declared)} disagrees with Content-Type {_show(header)}")
    media_type = declared or header or _type_from_structure(doc)
    if media_type not in INDEX_TYPES | MANIFEST_TYPES:
        raise ParseError(f"unsupported manifest media type {_show(media_type)}")
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
    children = _list(doc.get("manifests"), "manifests", MAX_CHILDREN, allow_null=False)
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
        artifact_type=_optional_str(doc.get("artifactType"), "artifactType"),
        annotations=_annotations(doc.get("annotations"), "annotations"),
    )


def _attested_digest(child: Descriptor, where: str) -> str:
    value = child.annotation(REFERENCE_DIGEST)
    try:
        return parse_digest(value)
    except ParseError as exc:
        raise ParseError(f"{where}: attestation manifest without a valid {REFERENCE_DIGEST}: {exc}") from exc


def _image_manifest(doc: dict, *, digest: str, media_type: str, size: int, tag: str | None) -> ImageManifest:
    items = _list(doc.get("layers"), "layers", MAX_LAYERS, allow_null=True)
    manifest = ImageManifest(
        digest=digest,
        media_type=media_type,
        size=size,
        config=_descriptor(doc.get("config"), "config"),
        layers=tuple(_descriptor(item, f"layers[{i}]") for i, item in enumerate(items)),
        subject=_optional_descriptor(doc.get("subject"), "subject"),
        artifact_type=_optional_str(doc.get("artifactType"), "artifactType"),
        annotations=_annotations(doc.get("annotations"), "annotations"),
    )
    return replace(manifest, kind=classify(manifest, tag=tag))


# --- descriptor validation ---------------------------------------------------


def _list(value: object, where: str, limit: int, *, allow_null: bool) -> list:
    """A JSON array capped at ``limit`` items (checked before building)."""
    if value is None and allow_null:
        return []  # Go marshals a nil slice as null (e.g. a layer-less artifact)
    if not isinstance(value, list):
        raise ParseError(f"{where} is not a list: {_show(value)}")
    if len(value) > limit:
        raise ParseError(f"{where} has {len(value)} entries, over the limit of {limit}")
    return value


def _descriptor(value: object, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ParseError(f"{where} is not a descriptor object: {_show(value)}")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ParseError(f"{where}.mediaType is not a non-empty string: {_show(media_type)}")
    try:
        digest = parse_digest(value.get("digest"))
    except ParseError as exc:
        raise ParseError(f"{where}.digest: {exc}") from exc
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=_size(value.get("size"), f"{where}.size"),
        urls=_strings(value.get("urls"), f"{where}.urls"),
        annotations=_annotations(value.get("annotations"), f"{where}.annotations"),
        platform=_platform(value.get("platform"), f"{where}.platform"),
        artifact_type=_optional_str(value.get("artifactType"), f"{where}.artifactType"),
    )


def _optional_descriptor(value: object, where: str) -> Descriptor | None:
    return None if value is None else _descriptor(value, where)


def _size(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_SIZE:
        raise ParseError(f"{where} must be an integer in 0..2**53, got {_show(value)}")
    return value


def _optional_str(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{where} is not a string: {_show(value)}")
    return value or None


def _strings(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseError(f"{where} is not a list of strings: {_show(value)}")
    return tuple(value)


def _annotations(value: object, where: str) -> tuple[tuple[str, str], ...]:
    """A string-to-string map (null tolerated: Go's nil map)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ParseError(f"{where} is not an object: {_show(value)}")
    for key, text in value.items():
        if not isinstance(text, str):
            raise ParseError(f"{where}[{_show(key)}] is not a string: {_show(text)}")
    return tuple(value.items())


def _platform(value: object, where: str) -> Platform | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ParseError(f"{where} is not an object: {_show(value)}")
    os_name, arch = value.get("os"), value.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str):
        raise ParseError(f"{where} needs string os and architecture: {_show(value)}")
    features = value.get("os.features")
    if features is None:
        features = value.get("features")
    return Platform(
        os=os_name,
        architecture=arch,
        variant=_optional_str(value.get("variant"), f"{where}.variant"),
        os_version=_optional_str(value.get("os.version"), f"{where}.os.version"),
        features=_strings(features, f"{where}.os.features"),
    )


# --- kind classification -------------------------------------------------------


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
    layer_types = [_bare_type(layer.media_type) for layer in manifest.layers]
    kinds = [_bare_type(manifest.artifact_type), _bare_type(manifest.config.media_type)]
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
        and _bare_type(manifest.config.media_type) in IMAGE_CONFIG_TYPES
        and all(t.startswith(IMAGE_LAYER_PREFIXES) for t in layer_types)
    )


# --- image config ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The fields of an image config blob (image-spec config.md) we keep."""

    digest: str
    os: str | None = None
    architecture: str | None = None
    variant: str | None = None
    os_version: str | None = None
    created: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def label(self, key: str) -> str | None:
        return _lookup(self.labels, key)


def parse_config(body: bytes, *, digest: str) -> ImageConfig:
    """Parse an image config blob fetched by ``digest``.

    Labels come from ``config.Labels``; Docker writes ``null`` for an image
    without labels, and ``config`` itself may be absent or null.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ParseError(f"config body is not bytes: {type(body).__name__}")
    body = bytes(body)
    if len(body) > MAX_CONFIG_BYTES:
        raise ParseError(f"image config is {len(body)} bytes, over the {MAX_CONFIG_BYTES}-byte limit")
    verify_digest(body, digest)
    doc = _json_object(body, "image config")
    inner = doc.get("config")
    if inner is not None and not isinstance(inner, dict):
        raise ParseError(f"image config 'config' is not an object: {_show(inner)}")
    created = _optional_str(doc.get("created"), "image config created")
    return ImageConfig(
        digest=digest,
        os=_optional_str(doc.get("os"), "image config os"),
        architecture=_optional_str(doc.get("architecture"), "image config architecture"),
        variant=_optional_str(doc.get("variant"), "image config variant"),
        os_version=_optional_str(doc.get("os.version"), "image config os.version"),
        created=normalize_timestamp(created) if created else None,
        labels=_annotations((inner or {}).get("Labels"), "image config config.Labels"),
    )


_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def normalize_timestamp(value: str) -> str:
    """RFC 3339 text -> ``YYYY-MM-DDTHH:MM:SSZ`` in UTC; else ``value``.

    Go writes nanoseconds (``…05.123456789Z``) and sometimes offsets;
    GitHub's API writes whole seconds with ``Z``. Truncating to seconds in
    UTC makes both sort and compare as text. Text without an offset, or
    that is not a real instant, is returned unchanged.
    """
    match = _TIMESTAMP.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return value
    year, month, day, hh, mm, ss, _frac, _z, sign, oh, om = match.groups()
    try:
        offset = timedelta(hours=int(oh or 0), minutes=int(om or 0))
        tz = timezone(-offset if sign == "-" else offset)
        when = datetime(int(year), int(month), int(day), int(hh), int(mm), min(int(ss), 59), tzinfo=tz)
        utc = when.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return value
    # not strftime: glibc's %Y does not zero-pad years before 1000
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"


# --- image info (org.opencontainers.image.* annotations) -------------------------

_INFO_PREFIX = "org.opencontainers.image."


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """Pre-defined OCI annotations (image-spec annotations.md)."""

    source: str | None = None
    revision: str | None = None
    description: str | None = None
    licenses: str | None = None
    created: str | None = None


def image_info(
    labels: Iterable[tuple[str, str]],
    annotations: Iterable[tuple[str, str]],
    config_created: str | None,
) -> ImageInfo:
    """Config labels first, then manifest annotations; ``created`` falls
    back to the config's own ``created`` field. Empty values are skipped."""
    found: dict[str, str] = {}
    for pairs in (labels, annotations):
        for key, value in pairs:
            name = key[len(_INFO_PREFIX):] if key.startswith(_INFO_PREFIX) else None
            if name in ImageInfo.__slots__ and value and name not in found:
                found[name] = value
    created = found.get("created") or config_created
    found["created"] = normalize_timestamp(created) if created else None
    return ImageInfo(**found)


# --- OCI error bodies ----------------------------------------------------------


def parse_oci_error(body: bytes) -> str | None:
    """``{"errors":[{"code","message","detail"}]}`` -> ``"CODE: message"``.

    The first error only (distribution-spec "Error Codes"); None when the
    body is not that shape. Never raises: it only decorates other errors.
    """
    try:
        doc = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        return None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict) or not isinstance(first.get("code"), str):
        return None
    code, message = first["code"], first.get("message")
    text = f"{code}: {message}" if isinstance(message, str) and message else code
    return " ".join(text.split())  # one line
