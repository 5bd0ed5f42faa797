"""Checking a Sigstore bundle against a trusted root the user supplies
(`[attestations] trusted_root`, the JSON lines `gh attestation
trusted-root` writes), with `cryptography`, offline.

What "verified" means here, exactly — all of these hold:
  1. a transparency-log entry of the bundle names a log of the trusted
     root (its key id), and its signed entry timestamp (the log's promise,
     `inclusionPromise.signedEntryTimestamp`) verifies with that log's key
     over `{"body","integratedTime","logID","logIndex"}` (canonical JSON);
  2. that entry is of kind `dsse` and records this envelope: its payload
     hash is the payload's sha256 and it lists this signature;
  3. the signing certificate chains, signature by signature, to a
     certificate authority of the trusted root, every certificate (and the
     authority's and the log's validity windows) covering the log's
     integrated time — the signing time;
  4. the leaf certificate is for code signing, and the DSSE signature
     (over the PAE of the envelope) verifies with its key.
Not checked: certificate transparency (SCTs), the log's inclusion proof and
checkpoint, RFC 3161 timestamps (bundles signed without a public log, e.g.
private repositories, are therefore not verified here), and any identity
policy — the signer's workflow, repository, ref and commit are recorded for
SQL to judge, not enforced. `sigstore-python` does all of it but wants a
full Sigstore instance to test against; `gh attestation verify` does it too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..errors import ParseError
from .bundle import Bundle, TlogEntry, pae

__all__ = ["Authority", "LogKey", "TrustedRoot", "Verdict", "parse_trusted_root", "verify_bundle"]


@dataclass(frozen=True, slots=True)
class Authority:
    chain: tuple[x509.Certificate, ...]    # as the trusted root lists it: intermediates, then the root
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True, slots=True)
class LogKey:
    key_id: bytes
    key: object                             # a cryptography public key
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True, slots=True)
class TrustedRoot:
    authorities: tuple[Authority, ...]
    logs: tuple[LogKey, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    verified: bool
    reason: str | None                     # why not (None when verified)
    signed_at: datetime | None


def parse_trusted_root(data: bytes, *, where: str = "trusted root") -> TrustedRoot:
    """One trusted root (JSON) or several (JSON lines, as `gh attestation
    trusted-root` prints them: the public-good instance and GitHub's)."""
    try:
        docs = [orjson.loads(data)]
    except orjson.JSONDecodeError:
        try:
            docs = [orjson.loads(line) for line in data.splitlines() if line.strip()]
        except orjson.JSONDecodeError:
            raise ParseError("not JSON (nor JSON lines)", where=where) from None
    if not docs:
        raise ParseError("empty", where=where)
    authorities, logs = [], []
    for doc in docs:
        if not isinstance(doc, dict) or not str(doc.get("mediaType", "")).startswith(
                "application/vnd.dev.sigstore.trustedroot"):
            raise ParseError("not a Sigstore trusted root (mediaType "
                             "application/vnd.dev.sigstore.trustedroot+json)", where=where)
        for ca in doc.get("certificateAuthorities") or ():
            certs = ((ca.get("certChain") or {}).get("certificates") or ()) if isinstance(ca, dict) else ()
            try:
                chain = tuple(x509.load_der_x509_certificate(_b64(c.get("rawBytes"), where)) for c in certs)
            except (ValueError, AttributeError):
                raise ParseError("a certificate authority's certificate is not DER X.509", where=where) from None
            if chain:
                authorities.append(Authority(chain, *_window(ca.get("validFor"), where)))
        for log in doc.get("tlogs") or ():
            key = (log.get("publicKey") or {}) if isinstance(log, dict) else {}
            spki = _b64(key.get("rawBytes"), where)
            try:
                public = serialization.load_der_public_key(spki)
            except ValueError:
                raise ParseError("a tlog public key is not DER SubjectPublicKeyInfo", where=where) from None
            key_id = _b64((log.get("logId") or {}).get("keyId"), where)
            logs.append(LogKey(key_id, public, *_window(key.get("validFor"), where)))
    return TrustedRoot(tuple(authorities), tuple(logs))


def verify_bundle(bundle: Bundle, root: TrustedRoot) -> Verdict:
    """Check `bundle` as the module docstring says; never raises for a bad bundle."""
    leaf = bundle.leaf
    if leaf is None:
        return Verdict(False, "no signing certificate in the bundle", None)
    entry, reason = _logged(bundle, root)
    if entry is None:
        return Verdict(False, reason, None)
    when = datetime.fromtimestamp(entry.integrated_time, timezone.utc)
    problem = _chain(leaf, bundle, root, when) or _signature(leaf, bundle)
    return Verdict(problem is None, problem, when)


def _logged(bundle: Bundle, root: TrustedRoot) -> tuple[TlogEntry | None, str]:
    if not bundle.tlog:
        return None, "no transparency-log entry (RFC 3161 timestamps are not checked here)"
    reason = "no transparency-log entry from a log of the trusted root"
    for entry in bundle.tlog:
        for log in root.logs:
            if log.key_id != entry.log_id:
                continue
            if entry.signed_entry_timestamp is None:
                reason = "the log entry has no signed entry timestamp (inclusion proofs are not checked here)"
                continue
            payload = orjson.dumps({"body": entry.body_b64, "integratedTime": entry.integrated_time,
                                    "logID": entry.log_id.hex(), "logIndex": entry.log_index},
                                   option=orjson.OPT_SORT_KEYS)
            if not _verifies(log.key, entry.signed_entry_timestamp, payload):
                reason = "the log's signed entry timestamp does not verify"
                continue
            when = datetime.fromtimestamp(entry.integrated_time, timezone.utc)
            if not _within(when, log.start, log.end):
                reason = "the log entry is outside the log key's validity"
                continue
            bound = _binds(entry, bundle)
            if bound:
                reason = bound
                continue
            return entry, ""
    return None, reason


def _binds(entry: TlogEntry, bundle: Bundle) -> str | None:
    """The log entry records this envelope (None) or why not."""
    if entry.kind != "dsse":
        return f"log entries of kind {entry.kind!r} are not checked here"
    try:
        spec = orjson.loads(entry.body)["spec"]
        payload_hash = spec["payloadHash"]["value"]
        logged = {base64.b64decode(s["signature"]) for s in spec["signatures"]}
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error, ValueError):
        return "the log entry's body is not a dsse entry"
    if payload_hash != hashlib.sha256(bundle.payload).hexdigest():
        return "the log entry records another payload"
    if not logged & set(bundle.signatures):
        return "the log entry records another signature"
    return None


def _chain(leaf: x509.Certificate, bundle: Bundle, root: TrustedRoot, when: datetime) -> str | None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = ()
    if ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        return "the signing certificate is not for code signing"
    if not _valid(leaf, when):
        return "the signing certificate was not valid at the signing time"
    for authority in root.authorities:
        if not _within(when, authority.start, authority.end):
            continue
        if _issued(leaf, authority.chain, when):
            return None
    return "the certificate chain does not lead to a certificate authority of the trusted root"


def _issued(leaf: x509.Certificate, chain: tuple[x509.Certificate, ...], when: datetime) -> bool:
    """leaf <- chain[0] <- chain[1] ... <- the last (self-signed), each valid then."""
    child = leaf
    for parent in chain:
        if not _valid(parent, when) or not _signed_by(child, parent):
            return False
        child = parent
    return _signed_by(child, child)


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _signature(leaf: x509.Certificate, bundle: Bundle) -> str | None:
    message = pae(bundle.payload_type, bundle.payload)
    if any(_verifies(leaf.public_key(), sig, message) for sig in bundle.signatures):
        return None
    return "the DSSE signature does not verify with the signing certificate's key"


def _verifies(key, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            digest = hashes.SHA384() if key.curve.key_size >= 384 else hashes.SHA256()
            key.verify(signature, message, ec.ECDSA(digest))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
        return True
    except (InvalidSignature, ValueError):
        return False


def _valid(cert: x509.Certificate, when: datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def _within(when: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or start <= when) and (end is None or when <= end)


def _window(valid_for, where: str) -> tuple[datetime | None, datetime | None]:
    valid_for = valid_for if isinstance(valid_for, dict) else {}
    return _time(valid_for.get("start"), where), _time(valid_for.get("end"), where)


def _time(value, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ParseError(f"a validFor time {str(value)[:40]!r} is not RFC 3339", where=where) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def _b64(value, where: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        raise ParseError("a rawBytes/keyId field is not valid base64", where=where) from None
