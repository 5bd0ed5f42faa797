"""An org at benchmark scale, written straight into the registry's storage and the world's state.

Pushing 30,000 manifests through the distribution API would take many minutes;
instead ``build`` writes distribution's filesystem layout directly
(registry/storage/paths.go, "The path layout in the storage backend")::

    docker/registry/v2/blobs/sha256/<hex[:2]>/<hex>/data               content
    docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link     blob links (configs, layers)
    .../_manifests/revisions/sha256/<hex>/link                           manifest links
    .../_manifests/tags/<tag>/current/link and index/sha256/<hex>/link   tags

(a link file holds the digest text, no newline), and ``register`` records the
same packages, versions and tags in ``WorldState``, so the registry and the
GitHub API agree exactly as they do after the builder's pushes. The content is
the builder's (``content``): real gzipped layers, image configs with the OCI
labels, OCI indexes with buildx attestation manifests, cosign signatures.

Shape of one org (``ScaleSpec``): 10 % of the packages multi-arch (an OCI
index of three platforms plus one attestation manifest each), 20 % signed
(``sha256-<hex>.sig`` per release), 10 % with nested names, 4–22 releases a
package (version tag each, ``latest`` on the newest), and a few "nightly"
packages with 2,000+ tags. 1,000 packages come to about 21,000 tags and
28,000 digests.

Everything is derived from the spec and a seed, so a world is built once and
reused: ``prepare`` keeps ``scale.json`` (the spec, and per package the
versions to register) beside the storage and rebuilds only when the spec
changed. ``churn`` mutates a running world (tags moved, added and deleted, a
package added, one deleted) and notes what it touched in ``churned.json``;
the next ``prepare`` puts those repositories' tags back, so every run starts
from the same world.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from . import content as c
from .content import Blob, Platform
from .state import WorldState

FORMAT = 2  # bump when the generated content changes, to force a rebuild
PLATFORMS = (Platform("linux", "amd64"), Platform("linux", "arm64"), Platform("linux", "arm", "v7"))
LICENSES = ("Apache-2.0", "MIT", "BSD-3-Clause")
_EPOCH = 1_700_000_000


@dataclass(frozen=True)
class ScaleSpec:
    """One org's shape. ``ScaleSpec.org(n)`` scales every count from n packages."""

    owner: str = "bench"
    packages: int = 1000
    seed: int = 7
    giants: int = 3                      # "nightly" packages with giant_tags+ tags
    giant_tags: int = 2000
    releases: tuple[int, int] = (4, 22)  # releases per ordinary package (inclusive)
    multiarch_every: int = 10            # every 10th package: index + 3 platforms + attestations
    signed_every: int = 5                # every 5th package: cosign .sig per release
    nested_every: int = 10               # every 10th package: a name with '/'
    shared: int = 0                      # >0: package i holds package (i % shared)'s content (a wide org)

    @classmethod
    def org(cls, packages: int, *, owner: str = "bench", giants: int | None = None, **kw) -> "ScaleSpec":
        if giants is None:
            giants = max(1, round(packages * 0.003)) if packages >= 20 else 0
        return cls(owner=owner, packages=packages, giants=giants, **kw)

    @classmethod
    def wide(cls, packages: int, *, owner: str, pool: int = 100) -> "ScaleSpec":
        """An org of many small packages sharing the content of `pool` of
        them: its registry storage is tiny link files per repository over
        one pool of blobs, so 10,000 packages build in seconds."""
        return cls(owner=owner, packages=packages, giants=0, releases=(1, 2), shared=pool)

    def key(self) -> str:
        fields = dataclasses.asdict(self)
        if not self.shared:
            del fields["shared"]   # the key of every world built before wide orgs existed stays the same
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def kind_of(self, index: int) -> tuple[bool, bool, bool]:
        """(giant, multiarch, signed) of the index-th package."""
        if index < self.giants:
            return True, False, False
        return False, index % self.multiarch_every == 3, index % self.signed_every == 1

    def name_of(self, index: int) -> str:
        giant, _, _ = self.kind_of(index)
        if giant:
            return f"nightly-{index}"
        if index % self.nested_every == 7:
            return f"team-{index % 13}/svc-{index:04d}"
        return f"svc-{index:04d}"

    def release_count(self, index: int) -> int:
        giant, _, _ = self.kind_of(index)
        if giant:
            return self.giant_tags + 50 * index
        lo, hi = self.releases
        return random.Random(f"{self.seed}:{self.owner}:{index}:releases").randint(lo, hi)


# -- content (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """One manifest to store: its bytes, the blobs it references, its tags."""

    digest: str
    media_type: str
    raw: bytes
    blobs: tuple[Blob, ...] = ()      # config and layers to store and link
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Release:
    """One release of a package: manifests in registration order (children, then the top one)."""

    manifests: tuple[Manifest, ...]
    top: str                            # the tagged digest
    images: int = 0                     # image manifests (each has a config to fetch)


@dataclass
class PackagePlan:
    index: int
    name: str
    visibility: str
    releases: list[Release] = field(default_factory=list)

    def versions(self) -> list[tuple[str, str, list[str]]]:
        """(digest, media type, tags) in registration order."""
        return [(m.digest, m.media_type, list(m.tags)) for r in self.releases for m in r.manifests]


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:6], "big")


def _version_tag(k: int) -> str:
    return f"1.{k // 10}.{k % 10}"


def _created(seed: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_EPOCH + seed % 20_000_000))


def _base_layer(spec: ScaleSpec, index: int) -> Blob:
    """A package's shared base layer (every image of the package has it)."""
    return c.layer(_seed(spec.seed, spec.owner, index, "base"), 512)[0]


def _image(spec: ScaleSpec, pkg: str, index: int, k: int, platform: Platform, base: Blob,
           labels: dict) -> Manifest:
    seed = _seed(spec.seed, spec.owner, index, k, platform)
    app, app_diff = c.layer(seed, 48)
    base_diff = c.sha256(b"base" + base.digest.encode())  # diff_ids are not checked by anyone here
    config = c.image_config(platform, labels=labels, created=labels[c.LABEL_CREATED],
                            diff_ids=[base_diff, app_diff], media_type=c.OCI_CONFIG)
    raw = c.image_manifest(c.OCI_MANIFEST, config, [base, app])
    return Manifest(c.sha256(raw), c.OCI_MANIFEST, raw, (config, base, app))


def _attestation(spec: ScaleSpec, pkg: str, subject: str, seed: int) -> Manifest:
    layers = c.attestation_layers(f"pkg:docker/{spec.owner}/{pkg}", subject, seed)
    config = c.attestation_config(layers)
    raw = c.image_manifest(c.OCI_MANIFEST, config, layers)
    return Manifest(c.sha256(raw), c.OCI_MANIFEST, raw, (config, *layers))


def _signature(spec: ScaleSpec, pkg: str, subject: str, seed: int) -> Manifest:
    layer = c.cosign_layer("sig", f"ghcr.io/{spec.owner}/{pkg}", subject, seed)
    config = c.cosign_config(layer)
    raw = c.image_manifest(c.OCI_MANIFEST, config, [layer])
    return Manifest(c.sha256(raw), c.OCI_MANIFEST, raw, (config, layer), (c.cosign_tag(subject, "sig"),))


def release(spec: ScaleSpec, index: int, k: int, tags: Iterable[str], base: Blob | None = None) -> Release:
    """Release number k of package ``index``, tagged ``tags`` (pure, deterministic)."""
    giant, multiarch, signed = spec.kind_of(index)
    name = spec.name_of(index)
    base = base or _base_layer(spec, index)
    seed = _seed(spec.seed, spec.owner, index, k)
    labels = {
        c.LABEL_SOURCE: f"https://github.com/{spec.owner}/{name.replace('/', '-')}",
        c.LABEL_REVISION: hashlib.sha1(f"{name}@{k}".encode()).hexdigest(),
        c.LABEL_DESCRIPTION: f"{name} release {k}",
        c.LABEL_LICENSES: LICENSES[index % len(LICENSES)],
        c.LABEL_CREATED: _created(seed),
    }
    tags = tuple(tags)
    out: list[Manifest] = []
    if multiarch:
        images = [_image(spec, name, index, k, p, base, labels) for p in PLATFORMS]
        attestations = [_attestation(spec, name, img.digest, seed + n) for n, img in enumerate(images)]
        entries = []
        for img, p in zip(images, PLATFORMS):
            entries.append({"mediaType": img.media_type, "digest": img.digest, "size": len(img.raw),
                            "platform": p.as_json()})
        for att, img in zip(attestations, images):
            entries.append({"mediaType": att.media_type, "digest": att.digest, "size": len(att.raw),
                            "platform": {"architecture": "unknown", "os": "unknown"},
                            "annotations": {"vnd.docker.reference.digest": img.digest,
                                            "vnd.docker.reference.type": "attestation-manifest"}})
        raw = c.index_manifest(c.OCI_INDEX, entries)
        top = Manifest(c.sha256(raw), c.OCI_INDEX, raw, (), tags)
        out.extend(images)
        out.extend(attestations)
        out.append(top)
        count = len(images)
    else:
        image = _image(spec, name, index, k, PLATFORMS[0], base, labels)
        top = dataclasses.replace(image, tags=tags)
        out.append(top)
        count = 1
    if signed and not giant:
        out.append(_signature(spec, name, top.digest, seed))
    return Release(tuple(out), top.digest, count)


def plan_package(spec: ScaleSpec, index: int) -> PackagePlan:
    giant, _, _ = spec.kind_of(index)
    n = spec.release_count(index)
    base = _base_layer(spec, index)
    visibility = ("public", "private", "internal")[index % 3]
    plan = PackagePlan(index, spec.name_of(index), visibility)
    for k in range(n):
        tags = [f"2024.{k:05d}" if giant else _version_tag(k)]
        if k == n - 1:
            tags.append("latest")
        plan.releases.append(release(spec, index, k, tags, base))
    return plan


def plan(spec: ScaleSpec) -> Iterator[PackagePlan]:
    if not spec.shared:
        for index in range(spec.packages):
            yield plan_package(spec, index)
        return
    pool = [plan_package(spec, j) for j in range(min(spec.shared, spec.packages))]
    for index in range(spec.packages):
        yield dataclasses.replace(pool[index % len(pool)], index=index, name=spec.name_of(index),
                                  visibility=("public", "private", "internal")[index % 3])


# -- the registry's storage ---------------------------------------------------------------


class Storage:
    """distribution 2.8's filesystem layout under ``root`` (the registry's rootdirectory)."""

    def __init__(self, root: Path) -> None:
        self.v2 = Path(root) / "docker" / "registry" / "v2"
        self._blobs: set[str] = set()
        self._dirs: set[str] = set()

    def repo(self, repository: str) -> Path:
        return self.v2 / "repositories" / repository

    def _write(self, directory: str, name: str, data: bytes) -> None:
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)

    def blob(self, data: bytes, digest: str | None = None) -> str:
        digest = digest or c.sha256(data)
        if digest not in self._blobs:
            hexd = digest.split(":", 1)[1]
            directory = f"{self.v2}/blobs/sha256/{hexd[:2]}/{hexd}"
            if not os.path.exists(f"{directory}/data"):
                self._write(directory, "data", data)
            self._blobs.add(digest)
        return digest

    def _link(self, directory: str, digest: str) -> None:
        self._write(directory, "link", digest.encode())

    def link_blob(self, repository: str, digest: str) -> None:
        self._link(f"{self.v2}/repositories/{repository}/_layers/sha256/{digest[7:]}", digest)

    def link_manifest(self, repository: str, digest: str) -> None:
        self._link(f"{self.v2}/repositories/{repository}/_manifests/revisions/sha256/{digest[7:]}", digest)

    def tag(self, repository: str, tag: str, digest: str) -> None:
        base = f"{self.v2}/repositories/{repository}/_manifests/tags/{tag}"
        self._link(f"{base}/current", digest)
        self._link(f"{base}/index/sha256/{digest[7:]}", digest)

    def untag(self, repository: str, tag: str) -> None:
        shutil.rmtree(self.repo(repository) / "_manifests" / "tags" / tag, ignore_errors=True)

    def clear_tags(self, repository: str) -> None:
        path = self.repo(repository) / "_manifests" / "tags"
        shutil.rmtree(path, ignore_errors=True)
        self._dirs = {d for d in self._dirs if not d.startswith(str(path))}

    def remove_repository(self, repository: str) -> None:
        path = self.repo(repository)
        shutil.rmtree(path, ignore_errors=True)
        self._dirs = {d for d in self._dirs if not d.startswith(str(path))}

    def put_release(self, repository: str, rel: Release) -> None:
        for m in rel.manifests:
            for b in m.blobs:
                self.link_blob(repository, self.blob(b.data, b.digest))
            self.link_manifest(repository, self.blob(m.raw, m.digest))
            for tag in m.tags:
                self.tag(repository, tag, m.digest)


def repository_of(owner: str, name: str) -> str:
    return f"{owner}/{name}".lower()


# -- build, reuse, register ------------------------------------------------------------------


@dataclass
class Layout:
    """What ``prepare`` left on disk: per owner, the packages' versions to register."""

    specs: list[ScaleSpec]
    packages: dict[str, list[dict]]      # owner -> [{index, name, visibility, versions}]
    built: bool = False                  # True: generated now; False: reused
    seconds: float = 0.0                 # generating (or reusing) the world
    cleanup_seconds: float = 0.0         # removing an older build first

    def stats(self) -> dict:
        out = {}
        for spec in self.specs:
            pkgs = self.packages[spec.owner]
            tags = sum(len(t) for p in pkgs for _, _, t in p["versions"])
            digests = sum(len(p["versions"]) for p in pkgs)
            out[spec.owner] = {
                "packages": len(pkgs), "tags": tags, "digests": digests,
                "images": sum(p.get("images", 0) for p in pkgs),  # image manifests: one config each
                "versions_pages": sum(max(1, -(-len(p["versions"]) // 100)) for p in pkgs),
                "max_tags": max((sum(len(t) for _, _, t in p["versions"]) for p in pkgs), default=0),
            }
        return out


def _state_file(directory: Path) -> Path:
    return directory / "scale.json"


def _churn_file(directory: Path) -> Path:
    return directory / "churned.json"


def storage_root(directory: Path) -> Path:
    """Where ``World(directory)`` keeps the registry's storage."""
    return Path(directory) / "registry" / "storage"


def prepare(directory: str | Path, specs: list[ScaleSpec]) -> Layout:
    """Build the orgs into ``directory`` (a World's base dir), or reuse a build of the same specs.

    Must run before the world's registry starts (it edits storage).
    """
    directory = Path(directory)
    started = time.perf_counter()
    wanted = {"format": FORMAT, "specs": [s.key() for s in specs]}
    saved = _read_json(_state_file(directory))
    storage = Storage(storage_root(directory))
    if saved is not None and saved.get("key") == wanted:
        layout = Layout(specs, saved["packages"], built=False)
        _undo_churn(directory, storage, layout)
    else:
        shutil.rmtree(storage_root(directory), ignore_errors=True)
        _churn_file(directory).unlink(missing_ok=True)
        cleanup = time.perf_counter() - started
        started += cleanup
        packages: dict[str, list[dict]] = {}
        for spec in specs:
            rows = packages[spec.owner] = []
            for p in plan(spec):
                repository = repository_of(spec.owner, p.name)
                for rel in p.releases:
                    storage.put_release(repository, rel)
                rows.append({"index": p.index, "name": p.name, "visibility": p.visibility,
                             "versions": p.versions(), "images": sum(r.images for r in p.releases)})
        layout = Layout(specs, packages, built=True, cleanup_seconds=round(cleanup, 2))
        _write_json(_state_file(directory), {"key": wanted, "packages": packages})
    layout.seconds = round(time.perf_counter() - started, 2)
    return layout


def register(state: WorldState, layout: Layout) -> None:
    """Record every package, version and tag of the layout on the GitHub side."""
    for spec in layout.specs:
        if state.owner(spec.owner) is None:
            state.add_owner(spec.owner, "org")
        for p in layout.packages[spec.owner]:
            _register_package(state, spec.owner, p["name"], p["visibility"], p["versions"])


def _register_package(state: WorldState, owner: str, name: str, visibility: str, versions) -> None:
    repo_name = name.replace("/", "-")
    if state.repository(f"{owner}/{repo_name}") is None:
        state.add_repository(owner, repo_name, visibility="public" if visibility == "public" else "private")
    state.ensure_package(owner, name, visibility=visibility, repository=f"{owner}/{repo_name}")
    for digest, media_type, tags in versions:
        version = state.record_version(owner, name, digest, media_type=media_type)
        # The plan's tags are unique within a package, so they are attached
        # directly: record_version's move-the-tag scan is O(versions) per tag,
        # minutes for the 2,000-tag packages.
        version.tags.extend(tags)


# -- churn ---------------------------------------------------------------------------------


def churn(state: WorldState, directory: str | Path, layout: Layout, spec: ScaleSpec, *,
          fraction: float = 0.01, round_no: int = 1) -> dict:
    """Change about ``fraction`` of the org's tags, add a package and delete one.

    The first giant always gets a new nightly release; the other packages are
    chosen at random among the ordinary ones. Per chosen package, one of: a new release (new digests, a new version tag,
    ``latest`` moved to it), a rollback (``latest`` moved to the previous
    release), or the oldest version tag deleted. Runs on the world's loop
    (state) while the registry serves (storage has no cache to go stale).
    """
    directory = Path(directory)
    storage = Storage(storage_root(directory))
    rng = random.Random(f"{spec.seed}:{spec.owner}:churn:{round_no}")
    pkgs = list(layout.packages[spec.owner])
    total_tags = sum(len(t) for p in pkgs for _, _, t in p["versions"])
    target = max(1, round(total_tags * fraction))
    order = list(range(spec.giants, len(pkgs) - 1))  # the last package is deleted below
    rng.shuffle(order)
    if spec.giants:
        order.insert(0, 0)  # one nightly build a day: the first giant always gets a release
    summary = {"tags_added": 0, "tags_moved": 0, "tags_deleted": 0, "digests_added": 0,
               "packages_changed": 0, "package_added": None, "package_deleted": None}
    touched = {"repositories": [], "added": []}
    changes = 0
    for i in order:
        if changes >= target:
            break
        p = pkgs[i]
        pkg = state.package(spec.owner, p["name"])
        if pkg is None:
            continue
        repository = repository_of(spec.owner, p["name"])
        touched["repositories"].append(repository)
        _write_json(_churn_file(directory), touched)  # before the edit: a crash still gets undone
        roll = 0.0 if spec.kind_of(p["index"])[0] else rng.random()
        tag_map = pkg.tag_map()
        tops = [d for d, _, t in p["versions"] if any(not x.startswith("sha256-") for x in t)]
        if roll < 0.5 or len(tops) < 2:
            k = spec.release_count(p["index"]) + round_no * 1000
            giant = spec.kind_of(p["index"])[0]
            new_tag = f"2024.{k:05d}" if giant else _version_tag(k)
            rel = release(spec, p["index"], k, [new_tag, "latest"])
            storage.put_release(repository, rel)
            for m in rel.manifests:
                state.record_version(spec.owner, p["name"], m.digest, tags=m.tags, media_type=m.media_type)
            summary["digests_added"] += len(rel.manifests)
            summary["tags_added"] += 1 + sum(1 for m in rel.manifests if m.tags and m.digest != rel.top)
            summary["tags_moved"] += 1
            changes += 2 + sum(1 for m in rel.manifests if m.tags and m.digest != rel.top)
        elif roll < 0.75:
            target_digest = tops[-2] if tag_map.get("latest") != tops[-2] else tops[-1]
            storage.tag(repository, "latest", target_digest)
            state.set_tag(spec.owner, p["name"], "latest", target_digest)
            summary["tags_moved"] += 1
            changes += 1
        else:
            victims = sorted(t for t in tag_map if t != "latest" and not t.startswith("sha256-"))
            if not victims:
                continue
            storage.untag(repository, victims[0])
            state.remove_tag(spec.owner, p["name"], victims[0])
            summary["tags_deleted"] += 1
            changes += 1
        summary["packages_changed"] += 1
    # One new package (an ordinary one, past the org's last index) and one deleted.
    new_index = spec.packages + round_no
    new = plan_package(spec, new_index)
    new_name = f"new-{round_no}-{new.name}"
    repository = repository_of(spec.owner, new_name)
    touched["added"].append(repository)
    _write_json(_churn_file(directory), touched)
    for rel in new.releases:
        storage.put_release(repository, rel)
    _register_package(state, spec.owner, new_name, new.visibility, new.versions())
    summary["package_added"] = new_name
    summary["tags_added"] += sum(len(t) for _, _, t in new.versions())
    summary["digests_added"] += len(new.versions())
    gone = pkgs[-1]["name"]  # an ordinary package (the giants come first)
    doomed = state.package(spec.owner, gone)
    summary["tags_deleted_with_package"] = len(doomed.tag_map()) if doomed else 0
    if doomed is not None:
        state.delete_package(spec.owner, gone)
        summary["package_deleted"] = gone
    summary["tags_changed"] = summary["tags_added"] + summary["tags_moved"] + summary["tags_deleted"]
    summary["fraction"] = round(summary["tags_changed"] / total_tags, 4)
    return summary


def nightly_build(state: WorldState, directory: str | Path, layout: Layout, spec: ScaleSpec, *,
                  round_no: int = 1) -> dict:
    """One new release of the org's first giant, ``latest`` moved to it, and
    nothing else: the benchmark's "nightly" scenario (one build of a package
    with a long history). Undone by the next ``prepare`` like a churn."""
    directory = Path(directory)
    storage = Storage(storage_root(directory))
    p = layout.packages[spec.owner][0]
    repository = repository_of(spec.owner, p["name"])
    touched = _read_json(_churn_file(directory)) or {"repositories": [], "added": []}
    touched["repositories"].append(repository)
    _write_json(_churn_file(directory), touched)  # before the edit: a crash still gets undone
    k = spec.release_count(p["index"]) + 100_000 + round_no
    rel = release(spec, p["index"], k, [f"2024.{k:05d}", "latest"])
    storage.put_release(repository, rel)
    for m in rel.manifests:
        state.record_version(spec.owner, p["name"], m.digest, tags=m.tags, media_type=m.media_type)
    return {"package": p["name"], "versions": state.package(spec.owner, p["name"]).version_count}


def _undo_churn(directory: Path, storage: Storage, layout: Layout) -> None:
    """Put back the tags of repositories a previous run's churn changed."""
    touched = _read_json(_churn_file(directory))
    if not touched:
        return
    base = {repository_of(owner, p["name"]): p for owner, pkgs in layout.packages.items() for p in pkgs}
    for repository in touched.get("added", []):
        storage.remove_repository(repository)
    for repository in dict.fromkeys(touched.get("repositories", [])):
        p = base.get(repository)
        if p is None:
            continue
        storage.clear_tags(repository)
        for digest, _, tags in p["versions"]:
            for tag in tags:
                storage.tag(repository, tag, digest)
    _churn_file(directory).unlink(missing_ok=True)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)
