"""Property tests: every parser returns a value or raises ParseError.

For any input — arbitrary text and bytes, and JSON that has the right keys
in the wrong shapes — the parsers in crawler.headers and crawler.oci
either return or raise ParseError (DigestMismatchError included); nothing
else may escape. Where a well-formed input can be generated, it must also
round-trip.
"""

from __future__ import annotations

import email.utils
from datetime import datetime, timezone
from urllib.parse import urljoin

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crawler.errors import DigestMismatchError, ParseError
from crawler.headers import (
    MAX_RETRY_AFTER,
    RateLimit,
    is_secondary_rate_limit,
    parse_etag,
    parse_link,
    parse_rate_limit,
    parse_retry_after,
    parse_retry_after_body,
    parse_www_authenticate,
)
from crawler.oci import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    compute_digest,
    cosign_tag_subject,
    image_info,
    is_valid_tag,
    normalize_timestamp,
    parse_config,
    parse_digest,
    parse_manifest,
    parse_oci_error,
    referrers_tag_subject,
    verify_digest,
)

SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(fn, *args, **kwargs):
    """Call a parser; a ParseError is an allowed outcome, anything else fails."""
    try:
        return fn(*args, **kwargs)
    except ParseError as exc:
        assert str(exc) and "\n" not in str(exc), "messages are one non-empty line"
        return exc


# --- shared strategies ---------------------------------------------------------------

HEADER_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
header_text = st.text(HEADER_CHARS, max_size=80) | st.text(' \t"\\=,;<>/:Wabc0123=', max_size=40)

hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
digests = hex64.map(lambda h: f"sha256:{h}")
any_digest = digests | st.text(max_size=80) | st.sampled_from(
    ["sha512:" + "a" * 128, "sha256:" + "A" * 64, "md5:abc", "sha256:", "blake3:" + "a" * 64])

MEDIA_TYPES = [
    OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, DOCKER_CONFIG, OCI_EMPTY,
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "application/vnd.in-toto+json",
    "application/vnd.dsse.envelope.v1+json", "application/vnd.dev.cosign.simplesigning.v1+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.cncf.notary.signature",
    "text/spdx+json", "application/json", "", "x",
]
KEYS = [
    "schemaVersion", "mediaType", "manifests", "config", "layers", "digest", "size", "urls",
    "annotations", "platform", "os", "architecture", "variant", "os.version", "os.features", "features",
    "artifactType", "subject", "Labels", "created", "errors", "code", "message", "detail",
    "vnd.docker.reference.type", "vnd.docker.reference.digest",
]
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
    | st.sampled_from(MEDIA_TYPES + KEYS + [2, 1, -1, 2**53, 2**53 + 1, "attestation-manifest"]) | digests
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner,
                                                                 max_size=6),
    max_leaves=25,
)


# --- WWW-Authenticate ----------------------------------------------------------------

tokens = st.from_regex(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,8}", fullmatch=True)
param_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\t\u00e9\u00b5"),
                       max_size=20)


@given(header_text | st.none())
def test_www_authenticate_total(value):
    result = outcome(parse_www_authenticate, value)
    if isinstance(result, list):
        for challenge in result:
            assert challenge.scheme == challenge.scheme.lower()
            assert all(k == k.lower() for k in challenge.params)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(st.lists(st.tuples(tokens, st.dictionaries(tokens.map(str.lower), param_values, max_size=4)),
                min_size=1, max_size=3))
def test_www_authenticate_round_trip(challenges):
    header = ", ".join(
        scheme + (" " + ", ".join(f"{k}={_quote(v)}" for k, v in params.items()) if params else "")
        for scheme, params in challenges
    )
    parsed = parse_www_authenticate(header)
    assert [(c.scheme, dict(c.params)) for c in parsed] == [(s.lower(), p) for s, p in challenges]


# --- Link ---------------------------------------------------------------------------------

BASE = "https://api.github.com/orgs/acme/packages?per_page=100"
uri_refs = st.text("abcxyz0123456789/?&=%.-_~:;,+!*'()@$", max_size=30)


@given(header_text | st.none(), st.sampled_from([BASE, "", "http://[::1]/x", "not a url"]))
def test_link_total(value, base):
    result = outcome(parse_link, value, base)
    if isinstance(result, dict):
        assert all(isinstance(k, str) and k == k.lower() and isinstance(v, str) for k, v in result.items())


@given(st.lists(st.tuples(uri_refs, st.lists(tokens.map(str.lower), min_size=1, max_size=3)), max_size=4))
def test_link_round_trip(links):
    header = ", ".join(f'<{target}>; rel="{" ".join(rels)}"' for target, rels in links)
    expected: dict[str, str] = {}
    for target, rels in links:
        for rel in rels:
            expected.setdefault(rel, urljoin(BASE, target))
    assert parse_link(header, BASE) == expected


# --- rate limit -------------------------------------------------------------------------

RATE_KEYS = ["limit", "remaining", "used", "reset", "resource"]
rate_key = st.tuples(st.sampled_from(RATE_KEYS), st.sampled_from([str.lower, str.upper, str.title])).map(
    lambda kc: kc[1](f"x-ratelimit-{kc[0]}"))


@given(st.dictionaries(rate_key | st.text(max_size=10), header_text, max_size=6))
def test_rate_limit_total(headers):
    result = outcome(parse_rate_limit, headers)
    assert result is None or isinstance(result, (RateLimit, ParseError))


@given(st.fixed_dictionaries({}, optional={k: st.integers(0, 10**12) for k in RATE_KEYS[:4]}),
       st.sampled_from([str.lower, str.upper, str.title]))
def test_rate_limit_round_trip(numbers, case):
    headers = {case(f"x-ratelimit-{k}"): str(v) for k, v in numbers.items()}
    expected = RateLimit(**numbers) if numbers else None
    assert parse_rate_limit(headers) == expected


# --- Retry-After ---------------------------------------------------------------------

NOW = 1_717_171_717.0


@given(header_text | st.none(), st.floats(0, 4e9))
def test_retry_after_total(value, now):
    result = outcome(parse_retry_after, value, now=now)
    if isinstance(result, float):
        assert 0.0 <= result <= MAX_RETRY_AFTER


@given(st.integers(0, 10**40))
def test_retry_after_seconds_round_trip(seconds):
    assert parse_retry_after(str(seconds), now=NOW) == min(float(seconds), MAX_RETRY_AFTER)


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31)))
def test_retry_after_date_round_trip(when):
    when = when.replace(microsecond=0, tzinfo=timezone.utc)
    header = email.utils.format_datetime(when, usegmt=True)
    assert parse_retry_after(header, now=NOW) == min(max(0.0, when.timestamp() - NOW), MAX_RETRY_AFTER)


@given(header_text | st.binary(max_size=80) | st.none())
def test_retry_after_body_total(body):
    result = outcome(parse_retry_after_body, body)
    if isinstance(result, float):
        assert 0.0 <= result <= MAX_RETRY_AFTER


GO_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 999), st.sampled_from(sorted(GO_UNITS))),
                min_size=1, max_size=4),
       st.booleans())
def test_retry_after_body_round_trip(parts, as_json):
    duration = "".join(f"{whole}.{frac:03d}{unit}" for whole, frac, unit in parts)
    message = f"retry-after: {duration}, allowed: 44000/minute"
    body = orjson.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": message}]}) if as_json else message
    expected = sum((whole + frac / 1000) * GO_UNITS[unit] for whole, frac, unit in parts)
    assert parse_retry_after_body(body) == pytest.approx(min(expected, MAX_RETRY_AFTER))


# --- ETag / secondary limits ------------------------------------------------------------------


@given(header_text | st.none())
def test_etag_total(value):
    result = outcome(parse_etag, value)
    if isinstance(result, str):
        assert result == value.strip(" \t") and result


@given(st.booleans(), st.text(st.characters(min_codepoint=0x23, max_codepoint=0x7E), max_size=30))
def test_etag_round_trip(weak, opaque):
    etag = ("W/" if weak else "") + f'"{opaque}"'
    assert parse_etag(etag) == etag


@given(st.integers(100, 599) | st.sampled_from([403, 429]),
       st.dictionaries(st.sampled_from(["retry-after", "x-ratelimit-remaining", "X-RateLimit-Remaining"])
                       | st.text(max_size=8), header_text, max_size=4),
       st.binary(max_size=60) | json_values.map(orjson.dumps)
       | st.sampled_from([b'{"message":"You have exceeded a secondary rate limit."}']))
def test_is_secondary_rate_limit_total(status, headers, body):
    assert is_secondary_rate_limit(status, headers, body) in (True, False)


# --- digests and tags ----------------------------------------------------------------------------


@given(any_digest | st.integers() | st.none() | st.binary(max_size=10))
def test_parse_digest_total(value):
    result = outcome(parse_digest, value)
    if isinstance(result, str):
        assert result == value


@given(st.binary(max_size=200), st.sampled_from(["sha256", "sha512"]))
def test_digest_round_trip(data, algorithm):
    digest = compute_digest(data, algorithm)
    assert parse_digest(digest) == digest
    verify_digest(data, digest)
    with pytest.raises(DigestMismatchError):
        verify_digest(data + b"x", digest)


@given(st.binary(max_size=50), any_digest)
def test_verify_digest_total(data, digest):
    outcome(verify_digest, data, digest)


@given(st.text(max_size=140))
def test_tag_predicates_total(tag):
    assert is_valid_tag(tag) in (True, False)
    subject = cosign_tag_subject(tag)
    if subject is not None:
        assert is_valid_tag(tag) and parse_digest(subject[0]) == subject[0]
    referred = referrers_tag_subject(tag)
    if referred is not None:
        assert parse_digest(referred) == referred


@given(st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", fullmatch=True))
def test_valid_tags_accepted(tag):
    assert is_valid_tag(tag)


@given(hex64, st.sampled_from(["sig", "att", "sbom"]))
def test_cosign_tag_round_trip(hexdigest, suffix):
    kind = {"sig": "signature", "att": "attestation", "sbom": "sbom"}[suffix]
    assert cosign_tag_subject(f"sha256-{hexdigest}.{suffix}") == (f"sha256:{hexdigest}", kind)


# --- manifests: arbitrary bytes and wrong shapes --------------------------------------------

content_types = st.none() | st.sampled_from(MEDIA_TYPES) | st.text(max_size=30)
tags = st.none() | st.text(max_size=20) | hex64.map(lambda h: f"sha256-{h}.sig")


def check_manifest(result) -> None:
    if isinstance(result, ImageManifest):
        assert result.kind in {"image", "signature", "attestation", "sbom", "artifact"}
        assert result.total_size >= 0
        for layer in result.layers:
            assert parse_digest(layer.digest) and layer.foreign in (True, False)
    elif isinstance(result, ImageIndex):
        assert result.kind == "index"
        assert len(result.attestations()) + len(result.platform_children()) == len(result.manifests)
        for child, subject in result.attestations():
            assert parse_digest(subject) == subject
    else:
        assert isinstance(result, ParseError)


@given(st.binary(max_size=300), content_types, tags)
def test_manifest_from_bytes(body, content_type, tag):
    check_manifest(outcome(parse_manifest, body, digest=compute_digest(body), content_type=content_type, tag=tag))


@given(st.binary(max_size=50), any_digest)
def test_manifest_with_any_digest(body, digest):
    result = outcome(parse_manifest, body, digest=digest)
    assert isinstance(result, ParseError) or compute_digest(body, digest.split(":")[0]) == digest


@SLOW
@given(json_values, content_types, tags)
def test_manifest_from_json_shapes(doc, content_type, tag):
    body = orjson.dumps(doc)
    check_manifest(outcome(parse_manifest, body, digest=compute_digest(body), content_type=content_type, tag=tag))


# Well-formed pieces, to build valid documents and then break them.

platforms = st.builds(
    dict,
    os=st.sampled_from(["linux", "windows", "unknown"]),
    architecture=st.sampled_from(["amd64", "arm64", "arm", "unknown"]),
) | st.fixed_dictionaries(
    {"os": st.just("linux"), "architecture": st.just("arm")},
    optional={"variant": st.sampled_from(["v6", "v7"]), "os.version": st.just("10.0"),
              "os.features": st.lists(st.text(max_size=5), max_size=2)},
)
descriptors = st.fixed_dictionaries(
    {"mediaType": st.sampled_from(MEDIA_TYPES[:-2]), "digest": digests, "size": st.integers(0, 2**53)},
    optional={
        "urls": st.lists(st.text(max_size=10), max_size=2),
        "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
        "platform": platforms,
        "artifactType": st.sampled_from(MEDIA_TYPES[:-2]),
    },
)
image_manifests = st.fixed_dictionaries(
    {"schemaVersion": st.just(2), "config": descriptors, "layers": st.lists(descriptors, max_size=4)},
    optional={"mediaType": st.sampled_from([OCI_MANIFEST, DOCKER_MANIFEST]), "subject": descriptors,
              "artifactType": st.sampled_from(MEDIA_TYPES[:-2]),
              "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)},
)
indexes = st.fixed_dictionaries(
    {"schemaVersion": st.just(2), "manifests": st.lists(descriptors, max_size=4)},
    optional={"mediaType": st.sampled_from([OCI_INDEX, DOCKER_LIST]), "subject": descriptors,
              "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)},
)


def expected_descriptor(doc: dict) -> Descriptor:
    platform = doc.get("platform")
    return Descriptor(
        media_type=doc["mediaType"],
        digest=doc["digest"],
        size=doc["size"],
        urls=tuple(doc.get("urls", ())),
        annotations=tuple(doc.get("annotations", {}).items()),
        platform=None if platform is None else Platform(
            platform["os"], platform["architecture"], platform.get("variant"), platform.get("os.version"),
            tuple(platform.get("os.features", ()))),
        artifact_type=doc.get("artifactType"),
    )


@SLOW
@given(image_manifests, tags)
def test_valid_manifest_round_trip(doc, tag):
    body = orjson.dumps(doc)
    manifest = parse_manifest(body, digest=compute_digest(body), tag=tag)
    assert isinstance(manifest, ImageManifest)
    assert manifest.media_type == doc.get("mediaType", OCI_MANIFEST)
    assert manifest.config == expected_descriptor(doc["config"])
    assert manifest.layers == tuple(expected_descriptor(layer) for layer in doc["layers"])
    assert manifest.size == len(body)
    assert manifest.total_size == doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])
    check_manifest(manifest)


@SLOW
@given(indexes)
def test_valid_index_round_trip(doc):
    assume(not any(c.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest"
                   for c in doc["manifests"]))
    body = orjson.dumps(doc)
    index = parse_manifest(body, digest=compute_digest(body))
    assert isinstance(index, ImageIndex)
    assert index.manifests == tuple(expected_descriptor(child) for child in doc["manifests"])
    assert index.platform_children() == list(index.manifests)


def _paths(node, prefix=()):
    """Every (container, key) position in a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield node, i
            yield from _paths(value, prefix + (i,))


@SLOW
@given(image_manifests | indexes, st.data())
def test_broken_manifest_and_index(doc, data):
    for _ in range(data.draw(st.integers(1, 3))):
        positions = list(_paths(doc))
        if not positions:
            break
        container, key = data.draw(st.sampled_from(positions))
        if isinstance(container, dict) and data.draw(st.booleans()):
            del container[key]
        else:
            container[key] = data.draw(json_values)
    body = orjson.dumps(doc)
    check_manifest(outcome(parse_manifest, body, digest=compute_digest(body), content_type=data.draw(content_types),
                           tag=data.draw(tags)))


# --- config, image info, error bodies --------------------------------------------------------------


@given(st.binary(max_size=200) | json_values.map(orjson.dumps)
       | st.fixed_dictionaries({}, optional={k: json_values for k in
                                             ["os", "architecture", "variant", "os.version", "created", "config"]})
       .map(orjson.dumps))
def test_config_total(body):
    result = outcome(parse_config, body, digest=compute_digest(body))
    if not isinstance(result, ParseError):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.labels)


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5),
       st.text(max_size=30) | st.none())
def test_config_labels_round_trip(labels, created):
    body = orjson.dumps({"os": "linux", "created": created, "config": {"Labels": labels}})
    config = parse_config(body, digest=compute_digest(body))
    assert dict(config.labels) == labels
    assert config.created == (normalize_timestamp(created) if created else None)


@given(st.text(max_size=40) | st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()))
def test_normalize_timestamp_total(value):
    result = normalize_timestamp(value)
    assert isinstance(result, str)
    if result != value:
        assert result.endswith("Z") and len(result) == 20


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()))
def test_normalize_timestamp_round_trip(when):
    expected = when.astimezone(timezone.utc).replace(microsecond=0)
    result = normalize_timestamp(when.isoformat())
    if when.utcoffset().seconds % 60:  # offsets with seconds are not RFC 3339
        assert result == when.isoformat()
    else:
        assert datetime.strptime(result, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) == expected


@given(st.lists(st.tuples(st.text(max_size=40), st.text(max_size=10)), max_size=5),
       st.lists(st.tuples(st.sampled_from(["org.opencontainers.image.source", "org.opencontainers.image.created",
                                           "org.opencontainers.image.licenses"]), st.text(max_size=20)), max_size=5),
       st.text(max_size=30) | st.none())
def test_image_info_total(labels, annotations, created):
    info = image_info(labels, annotations, created)
    assert info.created is None or isinstance(info.created, str)


@given(st.binary(max_size=200) | json_values.map(orjson.dumps) | st.text(max_size=50) | st.none())
def test_parse_oci_error_never_raises(body):
    result = parse_oci_error(body)
    assert result is None or (isinstance(result, str) and "\n" not in result)


@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20),
       st.text(max_size=40))
def test_parse_oci_error_round_trip(code, message):
    assume(code.strip())
    body = orjson.dumps({"errors": [{"code": code, "message": message, "detail": None}]})
    result = parse_oci_error(body)
    assert result is not None and " ".join(code.split()) in result

