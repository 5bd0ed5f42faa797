"""Registry token signing: a throw-away key, its certificate, and JWTs the registry trusts.

distribution 2.8's token auth (docs/spec/auth/jwt.md) verifies a JWT whose header
carries the signing certificate in ``x5c`` (standard base64 DER, not base64url)
and accepts it when that certificate chains to one in ``auth.token.rootcertbundle``.
The claims it checks: ``iss`` equals ``auth.token.issuer``, ``aud`` is a *string*
equal to ``auth.token.service``, integer ``exp``/``nbf`` (60 s leeway), and an
``access`` list of ``{type, name, actions}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Access:
    """One entry of the JWT ``access`` claim, e.g. repository acme/app [pull]."""

    type: str
    name: str
    actions: tuple[str, ...]

    def as_claim(self) -> dict:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


class TokenSigner:
    """An EC P-256 key with a self-signed certificate, issuing ES256 registry JWTs."""

    def __init__(self, *, issuer: str, service: str, common_name: str = "ghcr-sandbox token signer") -> None:
        self.issuer = issuer
        self.service = service
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        # Standard base64 (RFC 7515 §4.1.6), which is what distribution decodes.
        self._x5c = [base64.b64encode(der).decode("ascii")]
        self.issued = 0  # tokens signed so far; jti is "sandbox-<n>"

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write_bundle(self, path: Path) -> Path:
        """Write the root certificate bundle the registry's config points at."""
        path.write_bytes(self.cert_pem())
        return path

    def public_key(self):
        return self._key.public_key()

    def issue(
        self, subject: str, access: list[Access], *, ttl_s: int = 300, now: float | None = None, audience: str | None = None
    ) -> str:
        """Sign a JWT for ``subject`` granting ``access``, valid for ``ttl_s`` seconds.

        ``audience`` defaults to the registry's service; another value yields a
        token the registry refuses (what a client naming the wrong service gets).
        """
        issued = int(now if now is not None else time.time())
        self.issued += 1
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience or self.service,
            "exp": issued + int(ttl_s),
            "nbf": issued - 1,
            "iat": issued,
            "jti": f"sandbox-{self.issued}",
            "access": [a.as_claim() for a in access],
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": self._x5c})

    def decode(self, token: str) -> dict:
        """Verify and decode a token this signer issued (for tests)."""
        return jwt.decode(
            token,
            self._key.public_key(),
            algorithms=["ES256"],
            audience=self.service,
            issuer=self.issuer,
        )
