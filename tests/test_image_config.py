"""Tables for crawler.oci's image config, image info and OCI error
parsers (the manifest parsers are in test_manifest.py)."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from crawler.errors import DigestMismatchError, ParseError
from crawler.oci import (
    ImageConfig,
    ImageInfo,
    compute_digest,
    image_info,
    normalize_timestamp,
    parse_config,
    parse_oci_error,
)


def d(name: str) -> str:
    """A well-formed sha256 digest standing for ``name``."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def encode(doc: object) -> tuple[bytes, str]:
    body = orjson.dumps(doc)
    return body, compute_digest(body)

# --- image config ---------------------------------------------------------------------------


def config_body(doc: dict) -> tuple[bytes, str]:
    return encode(doc)


OCI_IMAGE_CONFIG = {
    "created": "2024-05-01T10:11:12.123456789Z",
    "architecture": "arm64",
    "variant": "v8",
    "os": "linux",
    "config": {
        "Env": ["PATH=/usr/local/bin:/usr/bin"],
        "Cmd": ["/app"],
        "Labels": {
            "org.opencontainers.image.source": "https://github.com/acme/app",
            "org.opencontainers.image.revision": "0123456789abcdef",
            "org.opencontainers.image.description": "The app",
            "org.opencontainers.image.licenses": "Apache-2.0",
        },
    },
    "rootfs": {"type": "layers", "diff_ids": [d("diff")]},
    "history": [{"created": "2024-05-01T10:11:12Z", "created_by": "COPY app /app"}],
}


def test_parse_oci_config_every_field():
    body, digest = config_body(OCI_IMAGE_CONFIG)
    config = parse_config(body, digest=digest)
    assert config == ImageConfig(
        digest=digest,
        os="linux",
        architecture="arm64",
        variant="v8",
        os_version=None,
        created="2024-05-01T10:11:12Z",
        labels=(
            ("org.opencontainers.image.source", "https://github.com/acme/app"),
            ("org.opencontainers.image.revision", "0123456789abcdef"),
            ("org.opencontainers.image.description", "The app"),
            ("org.opencontainers.image.licenses", "Apache-2.0"),
        ),
    )
    assert config.label("org.opencontainers.image.licenses") == "Apache-2.0"


def test_parse_docker_windows_config_with_null_labels():
    doc = {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5329",
           "created": "2024-01-09T20:12:45.6123456-08:00", "config": {"Labels": None}}
    body, digest = config_body(doc)
    config = parse_config(body, digest=digest)
    assert (config.os, config.architecture, config.os_version) == ("windows", "amd64", "10.0.17763.5329")
    assert config.created == "2024-01-10T04:12:45Z"
    assert config.labels == ()


@pytest.mark.parametrize("doc", [{}, {"config": None}, {"config": {}}, {"created": None, "os": None}])
def test_parse_config_sparse(doc):
    body, digest = config_body(doc)
    assert parse_config(body, digest=digest) == ImageConfig(digest=digest)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"config": {"Labels": {"a": 1}}}, r"config.Labels\['a'\] is not a string"),
        ({"config": {"Labels": ["a=b"]}}, "config.Labels is not an object"),
        ({"config": "x"}, "'config' is not an object"),
        ({"created": 1714558272}, "created is not a string"),
        ({"os": ["linux"]}, "os is not a string"),
        ([], "not an object"),
    ],
)
def test_parse_config_wrong_types(doc, message):
    body, digest = config_body(doc)
    with pytest.raises(ParseError, match=message):
        parse_config(body, digest=digest)


def test_parse_config_digest_and_size_checks():
    body, digest = config_body(OCI_IMAGE_CONFIG)
    with pytest.raises(DigestMismatchError):
        parse_config(body + b" ", digest=digest)
    big = b" " * (4 * 1024 * 1024 + 1)
    with pytest.raises(ParseError, match="over the"):
        parse_config(big, digest=compute_digest(big))
    with pytest.raises(ParseError, match="not valid JSON"):
        parse_config(b"{", digest=compute_digest(b"{"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:11:12Z", "2024-05-01T10:11:12Z"),
        ("2024-05-01T10:11:12.123456789Z", "2024-05-01T10:11:12Z"),
        ("2024-05-01t10:11:12z", "2024-05-01T10:11:12Z"),
        ("2024-05-01 10:11:12+00:00", "2024-05-01T10:11:12Z"),
        ("2024-05-01T01:00:00+02:30", "2024-04-30T22:30:00Z"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59Z"),  # leap second
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),  # SOURCE_DATE_EPOCH=0 builds
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),  # Go's zero time
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
        ("2024-05-01T10:11:12", "2024-05-01T10:11:12"),  # no offset: as given
        ("2024-02-30T00:00:00Z", "2024-02-30T00:00:00Z"),  # not a date: as given
        ("2024-05-01T24:00:00Z", "2024-05-01T24:00:00Z"),  # not a time: as given
        ("2024-05-01T10:11:12Z ", "2024-05-01T10:11:12Z"),  # the canonical form, after a strip
        ("yesterday", "yesterday"),
        ("", ""),
    ],
)
def test_normalize_timestamp(value, expected):
    assert normalize_timestamp(value) == expected


# --- image info -------------------------------------------------------------------------------


def test_image_info_labels_first_then_annotations_then_config():
    labels = [("org.opencontainers.image.source", "https://github.com/acme/app"),
              ("org.opencontainers.image.licenses", ""),  # empty: skipped
              ("maintainer", "someone")]
    annotations = [("org.opencontainers.image.source", "https://elsewhere"),
                   ("org.opencontainers.image.revision", "abc"),
                   ("org.opencontainers.image.licenses", "MIT"),
                   ("org.opencontainers.image.description", "desc")]
    info = image_info(labels, annotations, "2024-01-01T00:00:00.5Z")
    assert info == ImageInfo(source="https://github.com/acme/app", revision="abc", description="desc",
                             licenses="MIT", created="2024-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("labels", "annotations", "config_created", "created"),
    [
        ([], [], None, None),
        ([], [], "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
        ([("org.opencontainers.image.created", "2023-01-01T00:00:00+01:00")], [], "2024-01-01T00:00:00Z",
         "2022-12-31T23:00:00Z"),
        ([], [("org.opencontainers.image.created", "2023-06-01T00:00:00Z")], "2024-01-01T00:00:00Z",
         "2023-06-01T00:00:00Z"),
    ],
)
def test_image_info_created(labels, annotations, config_created, created):
    assert image_info(labels, annotations, config_created).created == created


# --- OCI error bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v9"}}]}',
         "MANIFEST_UNKNOWN: manifest unknown"),
        (b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"},'
         b'{"code":"UNAUTHORIZED","message":"x"}]}', "DENIED: requested access to the resource is denied"),
        (b'{"errors":[{"code":"NAME_UNKNOWN"}]}', "NAME_UNKNOWN"),
        (b'{"errors":[{"code":"X","message":"two\\nlines"}]}', "X: two lines"),
        ('{"errors":[{"code":"UNSUPPORTED","message":""}]}', "UNSUPPORTED"),
        (b'{"errors":[{"code":"TOOMANYREQUESTS","message":"retry-after: 880.092\xc2\xb5s, allowed: 44000/minute"}]}',
         "TOOMANYREQUESTS: retry-after: 880.092\u00b5s, allowed: 44000/minute"),
        (b'{"errors":[]}', None),
        (b'{"errors":[{"message":"no code"}]}', None),
        (b'{"errors":"x"}', None),
        (b'{"message":"Not Found","documentation_url":"https://docs.github.com"}', None),
        (b"<html>502 Bad Gateway</html>", None),
        (b"", None),
        (b"\xff", None),
        (b"[1]", None),
        (None, None),
    ],
)
def test_parse_oci_error(body, expected):
    assert parse_oci_error(body) == expected
