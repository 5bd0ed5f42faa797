"""Deterministic image content: layers, configs, manifests and indexes as bytes.

Pure functions, no I/O. Everything is derived from an integer seed so a sample
built twice has the same digests. Layers are real gzipped tarballs (mtime 0) so
third-party tools can unpack them; ``diff_ids`` are the digests of the
uncompressed tars, as the image spec requires.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass

# Media types (OCI image-spec, Docker image manifest v2 schema 2, cosign, in-toto).
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_FOREIGN_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
SPDX_JSON = "text/spdx+json"

EMPTY_JSON = b"{}"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v0.2"
SPDX_PREDICATE = "https://spdx.dev/Document"

LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_DESCRIPTION = "org.opencontainers.image.description"
LABEL_LICENSES = "org.opencontainers.image.licenses"
LABEL_CREATED = "org.opencontainers.image.created"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj: dict) -> bytes:
    """Manifest/config JSON bytes (compact, key order as built)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: "str | Platform") -> "Platform":
        if isinstance(text, Platform):
            return text
        parts = text.split("/")
        if len(parts) not in (2, 3):
            raise ValueError(f"platform must be os/arch[/variant], not {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def as_json(self) -> dict:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class Blob:
    """Bytes plus the descriptor fields that describe them."""

    media_type: str
    data: bytes
    urls: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def layer(seed: int, size: int, media_type: str = OCI_LAYER) -> tuple[Blob, str]:
    """A gzipped tar holding one file of ``size`` seeded random bytes; returns (blob, diff_id)."""
    payload = random.Random(seed).randbytes(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"data/layer-{seed & 0xFFFFFFFF:08x}.bin")
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return Blob(media_type, gzip.compress(tar_bytes, mtime=0)), sha256(tar_bytes)


def foreign_layer(seed: int, size: int, media_type: str) -> tuple[Blob, str]:
    """A non-distributable layer: described with ``urls``, never pushed (its bytes stay here)."""
    blob, diff_id = layer(seed, size, media_type)
    url = f"https://foreign-layers.example.invalid/blobs/{blob.digest}"
    return Blob(media_type, blob.data, urls=(url,)), diff_id


def image_config(platform: Platform, *, labels: dict, created: str, diff_ids: list[str], media_type: str) -> Blob:
    config = {
        "architecture": platform.architecture,
        "os": platform.os,
        **({"variant": platform.variant} if platform.variant else {}),
        "created": created,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/app"],
            "Labels": dict(labels),
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": f"COPY layer {i} /data"} for i in range(len(diff_ids))],
    }
    return Blob(media_type, canonical(config))


def image_manifest(
    media_type: str,
    config: Blob,
    layers: list[Blob],
    *,
    annotations: dict | None = None,
    artifact_type: str | None = None,
    subject: dict | None = None,
) -> bytes:
    manifest: dict = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type:
        manifest["artifactType"] = artifact_type
    config_desc = config.descriptor()
    if config.media_type == OCI_EMPTY:
        config_desc["data"] = base64.b64encode(config.data).decode()
    manifest["config"] = config_desc
    manifest["layers"] = [b.descriptor() for b in layers]
    if subject:
        manifest["subject"] = subject
    if annotations:
        manifest["annotations"] = dict(annotations)
    return canonical(manifest)


def index_manifest(media_type: str, entries: list[dict], *, annotations: dict | None = None) -> bytes:
    index: dict = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    if annotations:
        index["annotations"] = dict(annotations)
    return canonical(index)


def attestation_layers(subject_ref: str, subject_digest: str, seed: int) -> list[Blob]:
    """buildx's attestation manifest layers: an SPDX SBOM and SLSA provenance, as in-toto statements."""
    out = []
    for predicate_type, predicate in (
        (SPDX_PREDICATE, {"spdxVersion": "SPDX-2.3", "name": subject_ref, "packages": [], "seed": seed}),
        (SLSA_PROVENANCE, {"builder": {"id": "https://github.com/docker/buildx"}, "buildType": "https://mobyproject.org/buildkit@v1", "seed": seed}),
    ):
        statement = {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": predicate_type,
            "subject": [{"name": subject_ref, "digest": {"sha256": subject_digest.split(":", 1)[1]}}],
            "predicate": predicate,
        }
        out.append(Blob(IN_TOTO, canonical(statement), annotations=(("in-toto.io/predicate-type", predicate_type),)))
    return out


def attestation_config(layers: list[Blob]) -> Blob:
    config = {
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [b.digest for b in layers]},
    }
    return Blob(OCI_CONFIG, canonical(config))


def cosign_layer(kind: str, subject_ref: str, subject_digest: str, seed: int) -> Blob:
    """The single layer of a cosign ``.sig`` / ``.att`` / ``.sbom`` manifest."""
    if kind == "sig":
        payload = {
            "critical": {
                "identity": {"docker-reference": subject_ref},
                "image": {"docker-manifest-digest": subject_digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
        fake_sig = base64.b64encode(hashlib.sha512(f"sig{seed}{subject_digest}".encode()).digest()).decode()
        return Blob(COSIGN_SIMPLESIGNING, canonical(payload), annotations=(("dev.cosignproject.cosign/signature", fake_sig),))
    if kind == "att":
        statement = {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": SLSA_PROVENANCE,
            "subject": [{"name": subject_ref, "digest": {"sha256": subject_digest.split(":", 1)[1]}}],
            "predicate": {"seed": seed},
        }
        envelope = {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(canonical(statement)).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(f"att{seed}".encode()).decode()}],
        }
        return Blob(DSSE_ENVELOPE, canonical(envelope), annotations=(("predicateType", SLSA_PROVENANCE),))
    if kind == "sbom":
        doc = {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": subject_ref, "packages": [], "seed": seed}
        return Blob(SPDX_JSON, canonical(doc))
    raise ValueError(f"cosign kind must be sig, att or sbom, not {kind!r}")


def cosign_config(layer_blob: Blob) -> Blob:
    """cosign's config for signature/attestation manifests."""
    config = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer_blob.digest]},
        "config": {},
    }
    return Blob(OCI_CONFIG, canonical(config))


def cosign_tag(subject_digest: str, kind: str) -> str:
    """cosign's tag schema: ``sha256:<hex>`` → ``sha256-<hex>.sig``."""
    return subject_digest.replace(":", "-") + "." + kind
