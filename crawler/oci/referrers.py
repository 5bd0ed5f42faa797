"""Links between content: which digest signs, attests or describes which.

Derived from what the content and its tags state, never from fetching:
- an OCI ``subject`` (image-spec manifest.md "subject"), via ``subject``;
- buildx attestation manifests inside an index (``vnd.docker.reference.type
  = attestation-manifest`` and ``.digest``), via ``buildx``;
- cosign's tag scheme ``sha256-<hex>.sig|.att|.sbom`` (the fallback where a
  registry has no referrers API: ghcr.io), via ``cosign-tag``;
- descriptors the OCI referrers API answered (distribution-spec v1.1), via
  ``referrers-api``.
The kind of each link comes from `classify.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .classify import artifact_kind, referrer_kind
from .digest import cosign_tag_subject
from .manifest import Descriptor, ImageIndex, ImageManifest


@dataclass(frozen=True, slots=True)
class Referrer:
    subject_digest: str
    referrer_digest: str
    kind: str                       # signature | attestation | sbom | other
    artifact_type: str | None
    via: str                        # cosign-tag | buildx | subject | referrers-api


def content_referrers(manifests: Iterable[ImageManifest | ImageIndex]) -> list[Referrer]:
    """Links the content itself states: OCI `subject`, buildx attestations."""
    out = []
    for m in manifests:
        if m.subject is not None:
            out.append(Referrer(m.subject.digest, m.digest, referrer_kind(m.kind), m.artifact_type,
                                "subject"))
        if isinstance(m, ImageIndex):
            for child, described in m.attestations():
                if described:
                    out.append(Referrer(described, child.digest, "attestation", child.artifact_type,
                                        "buildx"))
    return out


def cosign_referrers(tags: Mapping[str, str],
                     manifests: Iterable[ImageManifest | ImageIndex]) -> list[Referrer]:
    """cosign's tag scheme: the tag names the subject, the tagged content
    (when fetched) says what it is; otherwise the tag's suffix does."""
    kinds = {m.digest: m.kind for m in manifests}
    out = []
    for tag, digest in tags.items():
        linked = cosign_tag_subject(tag)
        if linked is None:
            continue
        subject, by_tag = linked
        kind = kinds.get(digest)
        linked_kind = kind if kind in ("signature", "attestation", "sbom") else by_tag
        out.append(Referrer(subject, digest, linked_kind, None, "cosign-tag"))
    return out


def api_referrers(subject: str, descriptors: Iterable[Descriptor]) -> list[Referrer]:
    """Links from an OCI referrers API answer for `subject`."""
    return [Referrer(subject, d.digest, artifact_kind(d.artifact_type), d.artifact_type, "referrers-api")
            for d in descriptors]
