"""A stand-in Sigstore for the world: a Fulcio-like certificate authority, a
Rekor-like transparency log key, and real-shaped attestation bundles as
GitHub's attestations API serves them — all made with ``cryptography`` at
test time, nothing downloaded.

``FakeSigstore.attest`` signs an in-toto statement (SLSA provenance by
default) in a DSSE envelope with a fresh key whose certificate carries
Fulcio's extensions (OIDs 1.3.6.1.4.1.57264.1.*: issuer, source
repository, ref and commit, build signer; the deprecated raw ones too) and
the signing workflow as its SAN URI, and logs it: a ``dsse`` entry whose
``inclusionPromise.signedEntryTimestamp`` the log key signs over the
canonical ``{body, integratedTime, logID, logIndex}``, as Rekor does.
``trusted_root_jsonl`` writes what ``gh attestation trusted-root`` prints
for this instance. A second ``FakeSigstore`` is an instance the first's
trusted root does not know (a bundle from it must not verify).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
TRUSTED_ROOT = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
INTOTO = "application/vnd.in-toto+json"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document/v2.3"
ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
_FULCIO = "1.3.6.1.4.1.57264.1."


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _utf8_der(text: str) -> bytes:
    """A DER UTF8String: Fulcio's v2 extension values."""
    value = text.encode()
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x0c" + length + value


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sandbox.sigstore"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


class FakeSigstore:
    """A CA (root + intermediate), a log key, and a counter of log indexes."""

    def __init__(self, name: str = "sandbox", *, now: float | None = None) -> None:
        start = dt.datetime.fromtimestamp((now or time.time()) - 86_400 * 30, dt.timezone.utc)
        end = start + dt.timedelta(days=3650)
        self.name = name
        self._root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca(_name(f"{name}-root"), self._root_key, _name(f"{name}-root"), self._root_key,
                             start, end, path_length=1)
        self._inter_key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = self._ca(_name(f"{name}-intermediate"), self._inter_key, self.root.subject,
                                     self._root_key, start, end, path_length=0)
        self._log_key = ec.generate_private_key(ec.SECP256R1())
        spki = self._log_key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        self.log_spki = spki
        self.log_id = hashlib.sha256(spki).digest()
        self.valid_from = start
        self._indexes = itertools.count(1000)

    @staticmethod
    def _ca(subject, key, issuer, issuer_key, start, end, *, path_length: int) -> x509.Certificate:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                               critical=True)
                .sign(issuer_key, hashes.SHA256()))

    # -- attestations ------------------------------------------------------------------

    def attest(self, subject_name: str, subject_digest: str, *, repository: str, commit: str,
               ref: str = "refs/heads/main", workflow: str = ".github/workflows/release.yml",
               predicate_type: str = SLSA_PROVENANCE, server: str = "https://github.com",
               signed_at: float | None = None) -> dict:
        """A bundle (decoded JSON) attesting ``subject_digest``, signed by ``workflow`` of ``repository``."""
        algorithm, _, hexdigest = subject_digest.partition(":")
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": subject_name, "digest": {algorithm: hexdigest}}],
            "predicateType": predicate_type,
            "predicate": self._predicate(predicate_type, repository, commit, ref, workflow, server),
        }
        payload = json.dumps(statement, separators=(",", ":")).encode()
        when = int(signed_at or time.time())
        key = ec.generate_private_key(ec.SECP256R1())
        workflow_uri = f"{server}/{repository}/{workflow}@{ref}"
        cert = self._leaf(key, when, workflow_uri, f"{server}/{repository}", ref, commit)
        signature = key.sign(pae(INTOTO, payload), ec.ECDSA(hashes.SHA256()))
        envelope = {"payload": _b64(payload), "payloadType": INTOTO, "signatures": [{"sig": _b64(signature)}]}
        pem = cert.public_bytes(serialization.Encoding.PEM)
        return {
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [self._log(envelope, payload, signature, pem, when)],
                "timestampVerificationData": {},
            },
            "dsseEnvelope": envelope,
        }

    def _leaf(self, key, when: int, workflow_uri: str, repository_uri: str, ref: str,
              commit: str) -> x509.Certificate:
        start = dt.datetime.fromtimestamp(when - 60, dt.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(x509.Name([]))
                   .issuer_name(self.intermediate.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + dt.timedelta(minutes=10))
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                   .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(workflow_uri)]),
                                  critical=True))
        repo = repository_uri.split("://", 1)[-1].split("/", 1)[-1]
        facts = [("1", ACTIONS_ISSUER.encode()), ("2", b"push"), ("3", commit.encode()),
                 ("4", b"release"), ("5", repo.encode()), ("6", ref.encode()),
                 ("8", _utf8_der(ACTIONS_ISSUER)), ("9", _utf8_der(workflow_uri)),
                 ("12", _utf8_der(repository_uri)), ("13", _utf8_der(commit)), ("14", _utf8_der(ref)),
                 ("20", _utf8_der("push")), ("11", _utf8_der("github-hosted"))]
        for arc, value in facts:
            builder = builder.add_extension(x509.UnrecognizedExtension(ObjectIdentifier(_FULCIO + arc), value),
                                            critical=False)
        return builder.sign(self._inter_key, hashes.SHA256())

    def _log(self, envelope: dict, payload: bytes, signature: bytes, pem: bytes, when: int) -> dict:
        body = {"apiVersion": "0.0.1", "kind": "dsse", "spec": {
            "envelopeHash": {"algorithm": "sha256",
                             "value": hashlib.sha256(json.dumps(envelope, sort_keys=True).encode()).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [{"signature": _b64(signature), "verifier": _b64(pem)}]}}
        body_b64 = _b64(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
        index = next(self._indexes)
        promise = json.dumps({"body": body_b64, "integratedTime": when, "logID": self.log_id.hex(),
                              "logIndex": index}, sort_keys=True, separators=(",", ":")).encode()
        set_ = self._log_key.sign(promise, ec.ECDSA(hashes.SHA256()))
        return {"logIndex": str(index), "logId": {"keyId": _b64(self.log_id)},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"}, "integratedTime": str(when),
                "inclusionPromise": {"signedEntryTimestamp": _b64(set_)}, "canonicalizedBody": body_b64}

    @staticmethod
    def _predicate(predicate_type: str, repository: str, commit: str, ref: str, workflow: str,
                   server: str) -> dict:
        if predicate_type != SLSA_PROVENANCE:
            return {"spdxVersion": "SPDX-2.3", "name": repository, "packages": []}
        return {"buildDefinition": {
                    "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                    "externalParameters": {"workflow": {"ref": ref, "repository": f"{server}/{repository}",
                                                        "path": workflow}},
                    "resolvedDependencies": [{"uri": f"git+{server}/{repository}@{ref}",
                                              "digest": {"gitCommit": commit}}]},
                "runDetails": {"builder": {"id": f"{server}/actions/runner/github-hosted"}}}

    # -- the trusted root ------------------------------------------------------------------

    def trusted_root(self) -> dict:
        start = self.valid_from.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {
            "mediaType": TRUSTED_ROOT,
            "tlogs": [{"baseUrl": f"https://rekor.{self.name}.invalid", "hashAlgorithm": "SHA2_256",
                       "publicKey": {"rawBytes": _b64(self.log_spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                     "validFor": {"start": start}},
                       "logId": {"keyId": _b64(self.log_id)}}],
            "certificateAuthorities": [{
                "subject": {"organization": "sandbox.sigstore", "commonName": self.name},
                "uri": f"https://fulcio.{self.name}.invalid",
                "certChain": {"certificates": [
                    {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
                    for c in (self.intermediate, self.root)]},
                "validFor": {"start": start}}],
            "ctlogs": [],
            "timestampAuthorities": [],
        }

    def write_trusted_root(self, path: Path, *others: "FakeSigstore") -> Path:
        """JSON lines, one trusted root per instance, as ``gh attestation trusted-root`` prints."""
        path.write_text("".join(json.dumps(s.trusted_root()) + "\n" for s in (self, *others)))
        return path
