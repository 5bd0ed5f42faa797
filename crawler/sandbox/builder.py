"""The world's one source of truth: push images to the real registry and register them on the GitHub side.

Every push goes through the OCI distribution push API (HEAD blob → POST upload →
PUT ``?digest=``, then PUT the manifest) with a push token from the emulator's
``/token``, and the matching package/version (digest as version name, tags,
visibility, source repository) is recorded in ``WorldState`` in the same call,
so the registry and the GitHub API always agree. Each push returns a frozen
``Pushed`` describing exactly what was made — the tests' oracle.

Between runs the builder moves tags (re-PUT under the tag; on GitHub the old
version stays, untagged), deletes tags (distribution 2.8 has no tag DELETE, so
the tag's links are removed from storage, which the world owns), deletes and
restores versions and packages, and removes a manifest from the registry alone
(``remove_manifest``: an index whose child is gone). ``bulk_packages`` and
``bulk_versions`` fill the GitHub side only, thousands at a time, for listing
limits.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping
from urllib.parse import urljoin

import aiohttp

from . import content as c
from .content import Blob, Platform
from .emulator import INTERNAL_HEADER
from .registry import RegistryProcess
from .state import Owner, Repository, WorldState

KINDS = ("index", "image", "signature", "attestation", "sbom", "artifact")
_COSIGN_KIND = {"sig": "signature", "att": "attestation", "sbom": "sbom"}
_BASE_CREATED = 1_700_000_000  # 2023-11-14T22:13:20Z: deterministic image `created`


class PushError(RuntimeError):
    """The registry refused a push (status and body in the message)."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def foreign(self) -> bool:
        return bool(self.urls)


@dataclass(frozen=True)
class Pushed:
    """One manifest the builder put in the registry (and registered as a GitHub version).

    ``tags`` are the tags given at push time (later moves show in the world's
    state, not here). ``children`` are an index's entries in index order;
    ``parent`` is set on children; ``subject`` is the digest this manifest
    describes (cosign tags, buildx attestation manifests, OCI ``subject``).
    """

    owner: str
    package: str
    kind: str  # index | image | signature | attestation | sbom | artifact
    media_type: str
    digest: str
    size: int
    tags: tuple[str, ...] = ()
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    children: tuple["Pushed", ...] = ()
    platform: Platform | None = None
    parent: str | None = None
    subject: str | None = None
    artifact_type: str | None = None
    created: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    raw: bytes = field(default=b"", repr=False, hash=False, compare=False)

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.package}"

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def platform_str(self) -> str | None:
        return str(self.platform) if self.platform else None

    @property
    def layers_size(self) -> int:
        return sum(d.size for d in self.layers)

    @property
    def total_size(self) -> int:
        """Manifest + config + every layer (foreign ones included, by their descriptor size)."""
        return self.size + (self.config.size if self.config else 0) + self.layers_size

    @property
    def source(self) -> str | None:
        return self.labels.get(c.LABEL_SOURCE)

    @property
    def revision(self) -> str | None:
        return self.labels.get(c.LABEL_REVISION)

    @property
    def description(self) -> str | None:
        return self.labels.get(c.LABEL_DESCRIPTION)

    @property
    def licenses(self) -> str | None:
        return self.labels.get(c.LABEL_LICENSES)


def _descriptor(blob: Blob) -> Descriptor:
    return Descriptor(blob.media_type, blob.digest, blob.size, blob.urls, dict(blob.annotations))


class Builder:
    """Async builder bound to one registry and one world state (runs on the world's loop)."""

    def __init__(
        self,
        *,
        state: WorldState,
        registry: RegistryProcess,
        token_url: str,
        service: str,
        admin_token: str,
        seed: int = 0,
        sigstore=None,
    ) -> None:
        self.sigstore = sigstore  # a sigstore.FakeSigstore: signs what ``attest`` stores
        self.state = state
        self.registry = registry
        self.token_url = token_url
        self.service = service
        self.admin_token = admin_token
        self.seed = seed
        self.records: dict[tuple[str, str, str], Pushed] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._pushes = itertools.count(1)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- owners and repositories ---------------------------------------------------

    async def create_owner(self, login: str, kind: str = "org", *, name: str | None = None) -> Owner:
        return self.state.add_owner(login, kind, name=name)

    async def create_repository(self, owner: str, name: str, **kw) -> Repository:
        """kw: visibility, archived, default_branch, head_oid, description."""
        return self.state.add_repository(owner, name, **kw)

    async def push_commit(self, full_name: str, oid: str | None = None) -> str:
        return self.state.push_commit(full_name, oid).head_oid

    async def archive_repository(self, full_name: str, archived: bool = True) -> None:
        self.state.update_repository(full_name, archived=archived)

    # -- images ----------------------------------------------------------------------

    async def push_image(
        self,
        owner: str,
        package: str,
        *,
        tags: Iterable[str] = (),
        format: str = "oci",  # noqa: A002
        platform: str | Platform = "linux/amd64",
        layers: int = 2,
        layer_size: int = 512,
        foreign_layer: bool = False,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        created: str | None = None,
        source: str | None = None,
        revision: str | None = None,
        description: str | None = None,
        licenses: str | None = None,
        visibility: str | None = None,
        repository: str | None = None,
        seed: int | None = None,
    ) -> Pushed:
        """A single-platform image (``format`` "oci" or "docker"), tagged and registered.

        ``repository`` ("owner/name") links the package to a source repository
        and, unless ``source`` is given, sets the ``org.opencontainers.image.source``
        label to it (that label is how ghcr links packages to repositories).
        """
        tags = tuple(tags)
        pkg = self._ensure_package(owner, package, visibility, repository)
        seed = self._seed(owner, package) if seed is None else seed
        created = created or _created(seed)
        image = await self._image(
            owner, pkg, format, Platform.parse(platform), layers, layer_size, foreign_layer,
            self._labels(labels, created, source or _source_url(repository), revision, description, licenses),
            annotations, created, seed,
        )
        await self._put_manifest(image, tags)
        image = dataclasses.replace(image, tags=tags)
        self._register(image, tags)
        return image

    async def push_index(
        self,
        owner: str,
        package: str,
        *,
        tags: Iterable[str] = (),
        format: str = "oci",  # noqa: A002
        platforms: Iterable[str | Platform] = ("linux/amd64", "linux/arm64"),
        attestations: bool = False,
        child_annotations: Mapping[str, Mapping[str, str]] | None = None,
        layers: int = 1,
        layer_size: int = 256,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        created: str | None = None,
        source: str | None = None,
        revision: str | None = None,
        description: str | None = None,
        licenses: str | None = None,
        visibility: str | None = None,
        repository: str | None = None,
        seed: int | None = None,
    ) -> Pushed:
        """A multi-platform OCI index or Docker manifest list.

        Children are pushed by digest and registered as their own untagged
        versions (as on GitHub). ``attestations`` adds a buildx-style
        attestation manifest per platform (OCI only): platform
        ``unknown/unknown``, annotations ``vnd.docker.reference.type:
        attestation-manifest`` and ``vnd.docker.reference.digest: <child>``.
        ``child_annotations`` maps a platform ("linux/arm64") to annotations
        on that index entry, as ``buildah manifest annotate`` writes them.
        """
        if format not in ("oci", "docker"):
            raise ValueError("format must be 'oci' or 'docker'")
        if attestations and format != "oci":
            raise ValueError("attestation manifests need an OCI index")
        tags = tuple(tags)
        pkg = self._ensure_package(owner, package, visibility, repository)
        seed = self._seed(owner, package) if seed is None else seed
        created = created or _created(seed)
        merged = self._labels(labels, created, source or _source_url(repository), revision, description, licenses)
        images: list[Pushed] = []
        for n, plat in enumerate(Platform.parse(p) for p in platforms):
            image = await self._image(owner, pkg, format, plat, layers, layer_size, False, merged, None, created, seed * 31 + n)
            await self._put_manifest(image, ())
            images.append(dataclasses.replace(image, platform=plat))
        children: list[Pushed] = list(images)
        if attestations:
            for n, image in enumerate(images):
                children.append(await self._attestation(image, seed * 37 + n))
        entries = []
        for child in children:
            entry: dict = {"mediaType": child.media_type, "digest": child.digest, "size": child.size}
            entry["platform"] = (child.platform or Platform("unknown", "unknown")).as_json()
            if child.kind != "attestation" and (child_annotations or {}).get(str(child.platform)):
                entry["annotations"] = dict(child_annotations[str(child.platform)])
            if child.kind == "attestation":
                entry["annotations"] = {
                    "vnd.docker.reference.digest": child.subject,
                    "vnd.docker.reference.type": "attestation-manifest",
                }
            entries.append(entry)
        media_type = c.OCI_INDEX if format == "oci" else c.DOCKER_LIST
        raw = c.index_manifest(media_type, entries, annotations=dict(annotations or {}) or None)
        digest = c.sha256(raw)
        children = [dataclasses.replace(ch, parent=digest) for ch in children]
        index = Pushed(
            owner=owner, package=pkg, kind="index", media_type=media_type, digest=digest, size=len(raw),
            tags=tags, children=tuple(children), labels=merged, annotations=dict(annotations or {}),
            created=merged.get(c.LABEL_CREATED), raw=raw,
        )
        await self._put_manifest(index, tags)
        for child in children:
            self._register(child, ())
        self._register(index, tags)
        return index

    async def push_cosign(self, owner: str, package: str, subject: Pushed | str, kind: str = "sig") -> Pushed:
        """A cosign signature (``sig``), attestation (``att``) or SBOM (``sbom``) under ``sha256-<hex>.<kind>``."""
        subject_digest = subject.digest if isinstance(subject, Pushed) else subject
        self._ensure_package(owner, package, None, None)
        seed = self._seed(owner, package)
        layer_blob = c.cosign_layer(kind, f"ghcr.io/{owner}/{package}", subject_digest, seed)
        config = c.cosign_config(layer_blob)
        raw = c.image_manifest(c.OCI_MANIFEST, config, [layer_blob])
        tag = c.cosign_tag(subject_digest, kind)
        pushed = Pushed(
            owner=owner, package=package, kind=_COSIGN_KIND[kind], media_type=c.OCI_MANIFEST, digest=c.sha256(raw),
            size=len(raw), tags=(tag,), config=_descriptor(config), layers=(_descriptor(layer_blob),),
            subject=subject_digest, raw=raw,
        )
        repo = pushed.repository
        for blob in (layer_blob, config):
            await self._push_blob(repo, blob)
        await self._put_manifest(pushed, (tag,))
        self._register(pushed, (tag,))
        return pushed

    async def push_artifact(
        self,
        owner: str,
        package: str,
        *,
        artifact_type: str,
        subject: Pushed | str | None = None,
        tags: Iterable[str] = (),
        files: Iterable[tuple[str, bytes]] | None = None,
        annotations: Mapping[str, str] | None = None,
        visibility: str | None = None,
        repository: str | None = None,
    ) -> Pushed:
        """An OCI artifact: ``artifactType``, empty config (``application/vnd.oci.empty.v1+json``), optional ``subject``."""
        tags = tuple(tags)
        pkg = self._ensure_package(owner, package, visibility, repository)
        seed = self._seed(owner, pkg)
        if files is None:
            files = [("application/json", c.canonical({"report": artifact_type, "seed": seed}))]
        blobs = [Blob(mt, data) for mt, data in files]
        config = Blob(c.OCI_EMPTY, c.EMPTY_JSON)
        subject_desc = None
        subject_digest = None
        if subject is not None:
            target = subject if isinstance(subject, Pushed) else self.records[(owner, pkg, subject)]
            subject_digest = target.digest
            subject_desc = {"mediaType": target.media_type, "digest": target.digest, "size": target.size}
        notes = {c.LABEL_CREATED: _created(seed), **dict(annotations or {})}
        raw = c.image_manifest(c.OCI_MANIFEST, config, blobs, annotations=notes, artifact_type=artifact_type, subject=subject_desc)
        pushed = Pushed(
            owner=owner, package=pkg, kind="artifact", media_type=c.OCI_MANIFEST, digest=c.sha256(raw), size=len(raw),
            tags=tags, config=_descriptor(config), layers=tuple(_descriptor(b) for b in blobs), subject=subject_digest,
            artifact_type=artifact_type, annotations=notes, created=notes[c.LABEL_CREATED], raw=raw,
        )
        for blob in (*blobs, config):
            await self._push_blob(pushed.repository, blob)
        await self._put_manifest(pushed, tags)
        self._register(pushed, tags)
        return pushed

    async def attest(
        self,
        owner: str,
        package: str,
        subject: Pushed | str,
        *,
        repository: str,
        commit: str | None = None,
        ref: str = "refs/heads/main",
        workflow: str = ".github/workflows/release.yml",
        predicate_type: str | None = None,
        sigstore=None,
    ) -> dict:
        """An attestation of ``subject`` in GitHub's attestation store only (``actions/attest-build-provenance``
        without ``push-to-registry``), signed by ``workflow`` of ``repository`` at ``commit``
        (default: its head). ``sigstore``: another instance (one the trusted root does not know)."""
        from .sigstore import SLSA_PROVENANCE

        digest = subject.digest if isinstance(subject, Pushed) else subject
        signer = sigstore or self.sigstore
        if signer is None:
            raise ValueError("the builder has no Sigstore to sign with")
        repo = self.state.repository(repository)
        if repo is None:
            raise ValueError(f"unknown repository {repository!r}")
        bundle = signer.attest(f"ghcr.io/{owner}/{package}".lower(), digest, repository=repo.full_name,
                               commit=commit or repo.head_oid, ref=ref, workflow=workflow,
                               predicate_type=predicate_type or SLSA_PROVENANCE)
        self.state.add_attestation(owner, digest, bundle, repository=repo.full_name)
        return bundle

    # -- mutations between runs -------------------------------------------------------------

    async def tag(self, owner: str, package: str, tag: str, digest: str | Pushed) -> None:
        """Add ``tag`` or move it to ``digest`` (the previous holder stays, untagged)."""
        record = self._record(owner, package, digest)
        await self._put_manifest(record, (tag,))
        self.state.record_version(owner, package, record.digest, tags=(tag,), media_type=record.media_type)

    async def add_tags(self, owner: str, package: str, digest: str | Pushed, tags: Iterable[str], *, fast: bool = False) -> None:
        """Many tags on one manifest; ``fast`` writes the registry's tag links directly (thousands of tags)."""
        record = self._record(owner, package, digest)
        tags = list(tags)
        if fast:
            for tag in tags:
                self.registry.write_tag(record.repository, tag, record.digest)
        else:
            await self._put_manifest(record, tags)
        self.state.record_version(owner, package, record.digest, tags=tags, media_type=record.media_type)

    async def untag(self, owner: str, package: str, tag: str) -> str | None:
        """Delete a tag on both sides; returns the digest it pointed at."""
        self.registry.remove_tag(f"{owner}/{package}", tag)
        return self.state.remove_tag(owner, package, tag)

    async def delete_version(self, owner: str, package: str, digest: str | Pushed) -> None:
        """Delete a manifest (registry DELETE) and its GitHub version (tags go with it)."""
        record = self._record(owner, package, digest)
        status, _, body = await self._call("DELETE", record.repository, f"/v2/{record.repository}/manifests/{record.digest}")
        if status not in (202, 404):
            raise PushError(f"DELETE {record.reference}: {status} {body[:200]!r}")
        self.state.delete_version(owner, package, record.digest)

    async def remove_manifest(self, owner: str, package: str, digest: str | Pushed, *, keep_version: bool = True) -> None:
        """Delete one manifest from the registry only (DELETE by digest; the world enables deletes).

        Afterwards a GET or HEAD of that digest answers 404 ``MANIFEST_UNKNOWN``
        while everything else still serves: an index whose child is gone keeps
        serving the index and its other children (distribution does not check
        references on delete). The GitHub side keeps the version unless
        ``keep_version`` is False (then it is deleted there too). Works on any
        manifest the builder pushed, index children included.
        """
        record = self._record(owner, package, digest)
        status, _, body = await self._call("DELETE", record.repository, f"/v2/{record.repository}/manifests/{record.digest}")
        if status != 202:
            raise PushError(f"DELETE {record.reference}: {status} {body[:200]!r}")
        if not keep_version:
            self.state.delete_version(owner, package, record.digest)

    async def bulk_packages(
        self, owner: str, count: int, *, prefix: str = "pkg", visibility: str = "public"
    ) -> list[str]:
        """``count`` empty packages ``<prefix>-00000``… on the GitHub side only (no registry content).

        Cheap (no pushes, one clock tick): 10,001 take well under a second, enough
        to reach GitHub's 10,000-item listing cap for real. Creates the owner
        (an org) if needed. Returns the names.
        """
        if self.state.owner(owner) is None:
            self.state.add_owner(owner, "org")
        width = max(5, len(str(count - 1)))
        names = [f"{prefix}-{i:0{width}d}" for i in range(count)]
        self.state.add_packages(owner, names, visibility=visibility)
        return names

    async def bulk_versions(self, owner: str, package: str, count: int) -> list[str]:
        """``count`` untagged versions of ``owner/package`` on the GitHub side only (fake digests, nothing pushed).

        The package is created (empty, public) if it does not exist. Returns the
        digests (version names), oldest first.
        """
        self._ensure_package(owner, package, None, None)
        key = f"{self.seed}:{owner}/{package}:{len(self.state.package(owner, package).versions)}"
        digests = ["sha256:" + hashlib.sha256(f"{key}:{i}".encode()).hexdigest() for i in range(count)]
        self.state.add_versions(owner, package, digests, media_type=c.OCI_MANIFEST)
        return digests

    async def restore_version(self, owner: str, package: str, digest: str | Pushed) -> None:
        """Re-push a deleted manifest by digest and restore its version (untagged)."""
        record = self._record(owner, package, digest)
        await self._put_manifest(record, ())
        self.state.record_version(owner, package, record.digest, media_type=record.media_type)

    async def delete_package(self, owner: str, package: str) -> None:
        """GitHub side: the package vanishes from listings and its pulls are refused."""
        self.state.delete_package(owner, package)

    async def restore_package(self, owner: str, package: str) -> None:
        self.state.restore_package(owner, package)

    async def set_visibility(self, owner: str, package: str, visibility: str) -> None:
        self.state.ensure_package(owner, package, visibility=visibility)

    # -- internals ---------------------------------------------------------------------------

    def _record(self, owner: str, package: str, digest: str | Pushed) -> Pushed:
        key = (owner, package, digest.digest if isinstance(digest, Pushed) else digest)
        if key not in self.records:
            raise KeyError(f"the builder never pushed {key[0]}/{key[1]}@{key[2]}")
        return self.records[key]

    def _ensure_package(self, owner: str, package: str, visibility: str | None, repository: str | None) -> str:
        if self.state.owner(owner) is None:
            self.state.add_owner(owner, "org")
        existing = self.state.package(owner, package, include_deleted=True)
        self.state.ensure_package(
            owner, package, visibility=visibility or (None if existing else "public"), repository=repository
        )
        return package

    def _register(self, pushed: Pushed, tags: Iterable[str]) -> None:
        self.records[(pushed.owner, pushed.package, pushed.digest)] = pushed
        self.state.record_version(pushed.owner, pushed.package, pushed.digest, tags=tags, media_type=pushed.media_type)

    def _seed(self, owner: str, package: str) -> int:
        n = next(self._pushes)
        return int.from_bytes(hashlib.sha256(f"{self.seed}:{owner}/{package}#{n}".encode()).digest()[:6], "big")

    @staticmethod
    def _labels(labels, created, source, revision, description, licenses) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in (
            (c.LABEL_SOURCE, source),
            (c.LABEL_REVISION, revision),
            (c.LABEL_DESCRIPTION, description),
            (c.LABEL_LICENSES, licenses),
            (c.LABEL_CREATED, created),
        ):
            if value is not None:
                out[key] = value
        out.update(labels or {})
        return out

    async def _image(
        self, owner, package, fmt, platform, n_layers, layer_size, foreign, labels, annotations, created, seed
    ) -> Pushed:
        if fmt not in ("oci", "docker"):
            raise ValueError("format must be 'oci' or 'docker'")
        created = created or labels.get(c.LABEL_CREATED) or _created(seed)
        layer_type = c.OCI_LAYER if fmt == "oci" else c.DOCKER_LAYER
        blobs: list[Blob] = []
        diff_ids: list[str] = []
        if foreign:
            blob, diff_id = c.foreign_layer(seed, layer_size * 2, c.OCI_FOREIGN_LAYER if fmt == "oci" else c.DOCKER_FOREIGN_LAYER)
            blobs.append(blob)
            diff_ids.append(diff_id)
        for i in range(n_layers):
            blob, diff_id = c.layer(seed * 1_000 + i, layer_size + i * 17, layer_type)
            blobs.append(blob)
            diff_ids.append(diff_id)
        config = c.image_config(
            platform, labels=labels, created=created, diff_ids=diff_ids, media_type=c.OCI_CONFIG if fmt == "oci" else c.DOCKER_CONFIG
        )
        media_type = c.OCI_MANIFEST if fmt == "oci" else c.DOCKER_MANIFEST
        raw = c.image_manifest(media_type, config, blobs, annotations=dict(annotations or {}) or None)
        repo = f"{owner}/{package}"
        for blob in (*blobs, config):
            if not blob.urls:  # foreign layers are never pushed
                await self._push_blob(repo, blob)
        return Pushed(
            owner=owner, package=package, kind="image", media_type=media_type, digest=c.sha256(raw), size=len(raw),
            config=_descriptor(config), layers=tuple(_descriptor(b) for b in blobs), platform=platform,
            labels=dict(labels), annotations=dict(annotations or {}), created=created, raw=raw,
        )

    async def _attestation(self, image: Pushed, seed: int) -> Pushed:
        layers = c.attestation_layers(f"pkg:docker/{image.repository}", image.digest, seed)
        config = c.attestation_config(layers)
        raw = c.image_manifest(c.OCI_MANIFEST, config, layers)
        pushed = Pushed(
            owner=image.owner, package=image.package, kind="attestation", media_type=c.OCI_MANIFEST,
            digest=c.sha256(raw), size=len(raw), config=_descriptor(config), layers=tuple(_descriptor(b) for b in layers),
            platform=Platform("unknown", "unknown"), subject=image.digest, raw=raw,
        )
        for blob in (*layers, config):
            await self._push_blob(pushed.repository, blob)
        await self._put_manifest(pushed, ())
        return pushed

    # -- the distribution push API --------------------------------------------------------

    async def _session_get(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self._session

    async def _token(self, repository: str, *, fresh: bool = False) -> str:
        cached = self._tokens.get(repository)
        if cached and not fresh and cached[1] > time.monotonic():
            return cached[0]
        session = await self._session_get()
        basic = base64.b64encode(f"builder:{self.admin_token}".encode()).decode()
        params = [("service", self.service), ("scope", f"repository:{repository}:pull,push,delete")]
        headers = {"Authorization": f"Basic {basic}", INTERNAL_HEADER: "builder"}
        async with session.get(self.token_url, params=params, headers=headers) as resp:
            if resp.status != 200:
                raise PushError(f"token for {repository}: {resp.status} {await resp.text()}")
            body = await resp.json()
        ttl = float(body.get("expires_in") or 60)
        self._tokens[repository] = (body["token"], time.monotonic() + ttl / 2)
        return body["token"]

    async def _call(
        self, method: str, repository: str, path_or_url: str, *, data: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        session = await self._session_get()
        url = urljoin(self.registry.url + "/", path_or_url)
        for attempt in (0, 1):
            token = await self._token(repository, fresh=attempt == 1)
            all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
            async with session.request(method, url, data=data, headers=all_headers, allow_redirects=False) as resp:
                body = await resp.read()
                if resp.status == 401 and attempt == 0:
                    continue
                return resp.status, resp.headers, body
        raise AssertionError("unreachable")

    async def _push_blob(self, repository: str, blob: Blob) -> None:
        status, _, _ = await self._call("HEAD", repository, f"/v2/{repository}/blobs/{blob.digest}")
        if status == 200:
            return
        status, headers, body = await self._call("POST", repository, f"/v2/{repository}/blobs/uploads/")
        if status != 202:
            raise PushError(f"POST upload {repository}: {status} {body[:200]!r}")
        location = headers["Location"]
        location += ("&" if "?" in location else "?") + f"digest={blob.digest}"
        status, _, body = await self._call(
            "PUT", repository, location, data=blob.data, headers={"Content-Type": "application/octet-stream"}
        )
        if status != 201:
            raise PushError(f"PUT blob {repository}@{blob.digest}: {status} {body[:200]!r}")

    async def _put_manifest(self, pushed: Pushed, tags: Iterable[str]) -> None:
        references = list(tags) or [pushed.digest]
        for reference in references:
            status, headers, body = await self._call(
                "PUT", pushed.repository, f"/v2/{pushed.repository}/manifests/{reference}",
                data=pushed.raw, headers={"Content-Type": pushed.media_type},
            )
            if status != 201:
                raise PushError(f"PUT manifest {pushed.repository}:{reference}: {status} {body[:300]!r}")
            if headers.get("Docker-Content-Digest") != pushed.digest:
                raise PushError(f"registry digest {headers.get('Docker-Content-Digest')} != {pushed.digest}")


def _source_url(repository: str | None) -> str | None:
    return f"https://github.com/{repository}" if repository else None


def _created(seed: int) -> str:
    ts = _BASE_CREATED + (seed % 10_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
