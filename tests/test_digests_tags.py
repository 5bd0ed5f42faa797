"""Digests, tags and the Accept header of crawler.oci: known vectors, the
digest grammar, tag validity, the tag schemes that name a subject (cosign's
`sha256-<hex>.sig`, the referrers fallback). Manifest shapes are in
tests/test_manifest.py."""

from __future__ import annotations

import pytest

from crawler.errors import DigestMismatchError, ParseError
from crawler.oci import (
    ACCEPT_MANIFESTS,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    compute_digest,
    cosign_tag_subject,
    is_valid_tag,
    parse_digest,
    referrers_tag_subject,
    verify_digest,
)
from tests.test_manifest import EMPTY_DIGEST, HEX

# --- digests, tags ---------------------------------------------------------------


def test_compute_digest_known_vectors():
    assert compute_digest(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert compute_digest(b"{}") == EMPTY_DIGEST  # the OCI empty descriptor
    assert compute_digest(b"", "sha512").startswith("sha512:cf83e1357eefb8bdf1542850d66d8007")
    with pytest.raises(ParseError, match="unsupported digest algorithm"):
        compute_digest(b"", "md5")


@pytest.mark.parametrize("value", [EMPTY_DIGEST, compute_digest(b"x", "sha512")])
def test_parse_digest_valid(value):
    assert parse_digest(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "not a string"),
        (123, "not a string"),
        ("", "malformed digest"),
        ("sha256", "malformed digest"),
        ("sha256:", "malformed digest"),
        (":abc", "malformed digest"),
        ("SHA256:" + "a" * 64, "malformed digest"),
        ("sha256:" + "a" * 64 + "\n", "malformed digest"),
        ("sha256:" + "a" * 63, "64 lowercase hex"),
        ("sha256:" + "a" * 65, "64 lowercase hex"),
        ("sha256:" + "A" * 64, "64 lowercase hex"),
        ("sha256:" + "g" * 64, "64 lowercase hex"),
        ("sha512:" + "a" * 64, "128 lowercase hex"),
        ("sha384:" + "a" * 96, "unsupported digest algorithm"),
        ("blake3:" + "a" * 64, "unsupported digest algorithm"),
        ("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", "unsupported digest algorithm"),
        ("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "unsupported digest algorithm"),
    ],
)
def test_parse_digest_invalid(value, message):
    with pytest.raises(ParseError, match=message):
        parse_digest(value)


def test_verify_digest():
    verify_digest(b"{}", EMPTY_DIGEST)
    with pytest.raises(DigestMismatchError) as info:
        verify_digest(b"{ }", EMPTY_DIGEST)
    assert EMPTY_DIGEST in str(info.value) and compute_digest(b"{ }") in str(info.value)
    with pytest.raises(ParseError, match="malformed"):
        verify_digest(b"{}", "nope")


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("latest", True), ("v1.2.3", True), ("_x", True), ("1", True), ("a" * 128, True),
        ("sha256-" + "a" * 64 + ".sig", True), ("A-b_c.D", True),
        ("", False), ("a" * 129, False), (".hidden", False), ("-x", False), ("a/b", False),
        ("a:b", False), ("a b", False), ("tag\n", False), ("é", False), (None, False), (5, False),
    ],
)
def test_is_valid_tag(tag, valid):
    assert is_valid_tag(tag) is valid




@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (f"sha256-{HEX}.sig", (f"sha256:{HEX}", "signature")),
        (f"sha256-{HEX}.att", (f"sha256:{HEX}", "attestation")),
        (f"sha256-{HEX}.sbom", (f"sha256:{HEX}", "sbom")),
        (f"sha512-{'b' * 128}.sig", (f"sha512:{'b' * 128}", "signature")),
        (f"sha256-{HEX}", None),  # referrers tag schema, not cosign
        (f"sha256-{HEX}.foo", None),
        (f"sha256-{'a' * 63}.sig", None),
        (f"sha256-{'A' * 64}.sig", None),
        (f"sha512-{HEX}.sig", None),
        ("latest", None),
        (None, None),
    ],
)
def test_cosign_tag_subject(tag, expected):
    assert cosign_tag_subject(tag) == expected


def test_referrers_tag_subject():
    assert referrers_tag_subject(f"sha256-{HEX}") == f"sha256:{HEX}"
    assert referrers_tag_subject(f"sha256-{HEX}.sig") is None
    assert referrers_tag_subject("v1") is None


def test_accept_header_lists_index_types_first():
    types = [t.strip() for t in ACCEPT_MANIFESTS.split(",")]
    assert types[:2] == [OCI_INDEX, DOCKER_LIST]
    assert set(types) == {OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST}
