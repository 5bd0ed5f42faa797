"""Sigstore bundles as GitHub's attestations API lists them: the DSSE
envelope, the in-toto statement it carries, the signing certificate and
its Fulcio identity, and the transparency-log entries.

Pure: JSON in (bytes or the decoded object), a frozen `Bundle` out, or a
one-line ParseError. X.509 is read with `cryptography`; the only DER this
module decodes itself is the UTF8String value of Fulcio's v2 extensions,
by its tag and length, never by searching text.

References: the Sigstore bundle format (protobuf-specs `Bundle`, media types
`application/vnd.dev.sigstore.bundle+json;version=0.1|0.2|0.3` and
`application/vnd.dev.sigstore.bundle.v0.3+json`), DSSE v1 (PAE), the in-toto
Statement v0.1/v1, and Fulcio's OID registry (docs/oid-info.md):
1.3.6.1.4.1.57264.1.8 issuer, .12 source repository URI, .13 source
repository digest (the commit), .14 source repository ref, .9 build signer
URI; the deprecated raw-valued .1 issuer, .3 workflow SHA, .5 repository and
.6 ref are read when the v2 ones are absent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from ..errors import ParseError

__all__ = ["Bundle", "Signer", "Statement", "TlogEntry", "load_object", "pae", "parse_bundle",
           "INTOTO_PAYLOAD_TYPE"]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_FULCIO = "1.3.6.1.4.1.57264.1."
# (v2 DER-encoded extension, deprecated raw one) per fact
_ISSUER = ("8", "1")
_REPOSITORY = ("12", "5")
_REF = ("14", "6")
_COMMIT = ("13", "3")
_BUILD_SIGNER = ("9", None)
_MAX_BUNDLE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Statement:
    """The in-toto statement a DSSE envelope carries."""

    type: str
    predicate_type: str | None
    subjects: tuple[tuple[str, str], ...]     # (name, "sha256:<hex>") per subject digest

    def describes(self, digest: str) -> bool:
        return any(d == digest for _, d in self.subjects)


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed, as the Fulcio certificate says (None where it does not)."""

    workflow: str | None         # the SAN URI: the workflow file at its ref that signed
    issuer: str | None           # the OIDC issuer (token.actions.githubusercontent.com)
    repository: str | None       # source repository URI
    ref: str | None              # source repository ref (refs/heads/main, refs/tags/v1)
    commit: str | None           # source repository digest (the commit SHA)
    build_signer: str | None     # build signer URI


@dataclass(frozen=True, slots=True)
class TlogEntry:
    """A transparency-log entry of the bundle (Rekor)."""

    log_id: bytes                # the log's key id (sha256 of its public key)
    log_index: int
    integrated_time: int         # seconds since the epoch, as the log recorded it
    kind: str | None
    version: str | None
    body: bytes                  # canonicalizedBody, decoded
    body_b64: str                # canonicalizedBody as served (what the SET signs)
    signed_entry_timestamp: bytes | None


@dataclass(frozen=True, slots=True)
class Bundle:
    media_type: str
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]
    certificates: tuple[bytes, ...]      # DER, the leaf first
    statement: Statement
    signer: Signer
    tlog: tuple[TlogEntry, ...]
    digest: str                          # sha256 of the bundle as canonical JSON (its identity)
    raw: bytes                           # the bundle as canonical JSON

    @property
    def leaf(self) -> x509.Certificate | None:
        return x509.load_der_x509_certificate(self.certificates[0]) if self.certificates else None


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature signs."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def parse_bundle(data: bytes | dict, *, where: str = "bundle") -> Bundle:
    """A Sigstore bundle carrying a DSSE envelope, or ParseError."""
    obj = _load(data, where)
    media_type = _text(obj, "mediaType", where)
    if not media_type.startswith("application/vnd.dev.sigstore.bundle"):
        raise ParseError(f"not a Sigstore bundle (mediaType {media_type[:80]!r})", where=where)
    envelope = _table(obj, "dsseEnvelope", where)
    payload_type = _text(envelope, "payloadType", where)
    payload = _b64(envelope.get("payload"), "dsseEnvelope.payload", where)
    sigs = envelope.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise ParseError("dsseEnvelope has no signatures", where=where)
    signatures = tuple(_b64(s.get("sig") if isinstance(s, dict) else None, "signature", where) for s in sigs)
    material = _table(obj, "verificationMaterial", where)
    certificates = _certificates(material, where)
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise ParseError(f"DSSE payloadType {payload_type[:80]!r} is not an in-toto statement", where=where)
    statement = parse_statement(payload, where=where)
    signer = _signer(certificates[0], where) if certificates else Signer(None, None, None, None, None, None)
    tlog = tuple(_tlog(entry, where) for entry in _list(material, "tlogEntries", where))
    raw = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    return Bundle(media_type, payload_type, payload, signatures, certificates, statement, signer, tlog,
                  "sha256:" + hashlib.sha256(raw).hexdigest(), raw)


def parse_statement(payload: bytes, *, where: str = "statement") -> Statement:
    obj = _load(payload, where)
    kind = _text(obj, "_type", where)
    if not kind.startswith("https://in-toto.io/Statement/"):
        raise ParseError(f"in-toto _type {kind[:80]!r} is not a Statement", where=where)
    predicate = obj.get("predicateType")
    if predicate is not None and not isinstance(predicate, str):
        raise ParseError("'predicateType' is not a string", where=where)
    subjects = []
    for item in _list(obj, "subject", where):
        if not isinstance(item, dict) or not isinstance(item.get("digest"), dict):
            raise ParseError("an in-toto subject has no digest map", where=where)
        name = item.get("name") if isinstance(item.get("name"), str) else ""
        for algorithm, value in item["digest"].items():
            if isinstance(value, str) and algorithm in ("sha256", "sha512"):
                subjects.append((name, f"{algorithm}:{value.lower()}"))
    return Statement(kind, predicate, tuple(subjects))


# --- the certificate ----------------------------------------------------------------

def _certificates(material: dict, where: str) -> tuple[bytes, ...]:
    """DER certificates, leaf first: v0.3 `certificate`, v0.1/0.2 `x509CertificateChain`."""
    if isinstance(material.get("certificate"), dict):
        ders = [_b64(material["certificate"].get("rawBytes"), "certificate.rawBytes", where)]
    elif isinstance(material.get("x509CertificateChain"), dict):
        chain = _list(material["x509CertificateChain"], "certificates", where)
        ders = [_b64(c.get("rawBytes") if isinstance(c, dict) else None, "certificates[].rawBytes", where)
                for c in chain]
    else:
        return ()   # a public-key hint only: no identity to read
    for der in ders:
        try:
            x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise ParseError(f"certificate is not valid DER X.509 ({exc})", where=where) from None
    return tuple(ders)


def _signer(der: bytes, where: str) -> Signer:
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        workflow = uris[0] if uris else next(iter(san.get_values_for_type(x509.RFC822Name)), None)
    except x509.ExtensionNotFound:
        workflow = None
    except ValueError as exc:
        raise ParseError(f"certificate extensions are malformed ({exc})", where=where) from None
    return Signer(workflow, _fulcio(cert, _ISSUER, where), _fulcio(cert, _REPOSITORY, where),
                  _fulcio(cert, _REF, where), _fulcio(cert, _COMMIT, where), _fulcio(cert, _BUILD_SIGNER, where))


def _fulcio(cert: x509.Certificate, arcs: tuple[str, str | None], where: str) -> str | None:
    """A Fulcio extension's text: the v2 one (a DER UTF8String), else the
    deprecated one (raw bytes)."""
    v2, legacy = arcs
    value = _extension(cert, v2)
    if value is not None:
        return der_utf8(value, where)
    value = _extension(cert, legacy) if legacy else None
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(f"Fulcio extension {_FULCIO}{legacy} is not UTF-8", where=where) from None


def _extension(cert: x509.Certificate, arc: str) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(ObjectIdentifier(_FULCIO + arc))
    except x509.ExtensionNotFound:
        return None
    return getattr(ext.value, "value", None)


def der_utf8(data: bytes, where: str = "certificate") -> str:
    """The text of one DER UTF8String (tag 0x0C, definite length), whole."""
    if len(data) < 2 or data[0] != 0x0C:
        raise ParseError("a Fulcio v2 extension is not a DER UTF8String", where=where)
    length, start = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            raise ParseError("a DER length is malformed", where=where)
        length, start = int.from_bytes(data[2:2 + count], "big"), 2 + count
    if start + length != len(data):
        raise ParseError("a DER UTF8String's length disagrees with its bytes", where=where)
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("a DER UTF8String is not UTF-8", where=where) from None


# --- the transparency log -------------------------------------------------------------

def _tlog(entry: Any, where: str) -> TlogEntry:
    if not isinstance(entry, dict):
        raise ParseError("a tlogEntries item is not an object", where=where)
    log_id = _b64(_table(entry, "logId", where).get("keyId"), "logId.keyId", where)
    body_b64 = entry.get("canonicalizedBody")
    body = _b64(body_b64, "canonicalizedBody", where) if body_b64 is not None else b""
    kv = entry.get("kindVersion") if isinstance(entry.get("kindVersion"), dict) else {}
    promise = entry.get("inclusionPromise")
    set_ = (_b64(promise.get("signedEntryTimestamp"), "signedEntryTimestamp", where)
            if isinstance(promise, dict) and promise.get("signedEntryTimestamp") else None)
    return TlogEntry(log_id, _int64(entry.get("logIndex"), "logIndex", where),
                     _int64(entry.get("integratedTime"), "integratedTime", where),
                     kv.get("kind") if isinstance(kv.get("kind"), str) else None,
                     kv.get("version") if isinstance(kv.get("version"), str) else None,
                     body, body_b64 if isinstance(body_b64, str) else "", set_)


# --- JSON field readers -----------------------------------------------------------------

def _load(data: bytes | dict, where: str) -> dict:
    if isinstance(data, dict):
        return data
    if len(data) > _MAX_BUNDLE:
        raise ParseError(f"more than {_MAX_BUNDLE} bytes", where=where)
    return load_object(data, where)


def load_object(data: bytes, where: str, what: str = "JSON") -> dict:
    """A JSON object from bytes, or ParseError naming `what`."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ParseError(f"malformed {what}", where=where) from None
    if not isinstance(obj, dict):
        raise ParseError(f"expected a JSON object, got {type(obj).__name__}", where=where)
    return obj


def _table(obj: dict, key: str, where: str) -> dict:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ParseError(f"'{key}' is missing or not an object", where=where)
    return value


def _list(obj: dict, key: str, where: str) -> list:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise ParseError(f"'{key}' is not a list", where=where)
    return value


def _text(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ParseError(f"'{key}' is missing or not a string", where=where)
    return value


def _b64(value: Any, what: str, where: str) -> bytes:
    if not isinstance(value, str):
        raise ParseError(f"'{what}' is missing or not a string", where=where)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ParseError(f"'{what}' is not valid base64", where=where) from None


def _int64(value: Any, what: str, where: str) -> int:
    """protobuf's JSON writes int64 as a string; accept either."""
    if isinstance(value, bool):
        raise ParseError(f"'{what}' is not an integer", where=where)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ParseError(f"'{what}' is not an integer", where=where)
