"""Digests, tags and repository names: the content-address grammar, the
distribution-spec name and tag grammars, and the tag schemes that link a tag
to a digest (cosign's ``sha256-<hex>.sig``, the referrers tag schema). Pure
functions; malformed input raises ParseError.
"""

from __future__ import annotations

import hashlib
import re

from crawler.errors import DigestMismatchError, ParseError

_SHOW = 80


def show(value: object) -> str:
    """A bad value, quoted short enough for a one-line message."""
    text = repr(value)
    return text if len(text) <= _SHOW else text[:_SHOW] + "…"


# image-spec descriptor.md "Digests": algorithm ":" encoded
_DIGEST = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)", re.ASCII)
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_LOWER_HEX = re.compile(r"[a-f0-9]+", re.ASCII)
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", re.ASCII)
# distribution-spec "Pulling manifests": <name> path components.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
MAX_NAME = 255
_COSIGN_TAG = re.compile(r"(sha256|sha512)-([a-f0-9]+)\.(sig|att|sbom)", re.ASCII)
_REFERRERS_TAG = re.compile(r"(sha256|sha512)-([a-f0-9]+)", re.ASCII)
_COSIGN_KINDS = {"sig": "signature", "att": "attestation", "sbom": "sbom"}


# The constructors themselves: hashlib.new() looks the name up on every call.
_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
# A well-formed digest of a registered algorithm, in one match (the common case);
# anything else goes through the checks below, which say what is wrong.
_VALID = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}", re.ASCII)


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """``"<algorithm>:<lowercase hex>"`` of ``data`` (sha256 or sha512)."""
    new = _HASHES.get(algorithm)
    if new is None:
        raise ParseError(f"unsupported digest algorithm {show(algorithm)}")
    return f"{algorithm}:{new(data).hexdigest()}"


def parse_digest(value: object) -> str:
    """Validate a digest string and return it unchanged.

    Grammar from image-spec descriptor.md "Digests"; the registered
    algorithms pin the encoding: sha256 is 64 and sha512 128 lowercase hex
    characters. The spec lets implementations pass unknown algorithms that
    fit the grammar; we refuse them because we could never verify content
    addressed by them.
    """
    if not isinstance(value, str):
        raise ParseError(f"digest is not a string: {show(value)}")
    if _VALID.fullmatch(value) is not None:
        return value
    match = _DIGEST.fullmatch(value)
    if match is None:
        raise ParseError(f"malformed digest {show(value)}")
    algorithm, encoded = match.groups()
    length = _HEX_LENGTH.get(algorithm)
    if length is None:
        raise ParseError(f"unsupported digest algorithm {show(algorithm)} in {show(value)}")
    if len(encoded) != length or not _LOWER_HEX.fullmatch(encoded):
        raise ParseError(f"{algorithm} digest must be {length} lowercase hex characters: {show(value)}")
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


def is_valid_repository(value: str) -> bool:
    """distribution-spec repository name grammar (lower-case path components
    joined by ``/``, at most 255 characters): anything else could not be
    sent in a request path and is refused before it is."""
    return isinstance(value, str) and len(value) <= MAX_NAME and _NAME.fullmatch(value) is not None


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
