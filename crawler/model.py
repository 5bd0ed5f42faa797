"""What flows between the pipeline stages: discovered packages, version
entries, and the whole-package result a worker hands to the writer.

Wire objects (manifests, configs, referrer links) live in `crawler/oci/`
and `headers.py`; these are the engine's own values. The writer only ever gets a
complete PackageResult, never a cursor or a half-built package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from .oci import ImageConfig, ImageIndex, ImageManifest, Referrer


@dataclass(frozen=True, slots=True)
class PackageRef:
    """One package found by discovery, with what the listing said about it."""

    owner: str
    name: str                       # package name, may contain '/'
    repository_path: str            # registry repository, OWNER/NAME lower-cased
    discovery: str                  # rest | graphql | catalog | static
    visibility: str | None = None
    repository: str | None = None   # source repository OWNER/NAME
    github_id: int | None = None
    html_url: str | None = None
    version_count: int | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def listing_key(self) -> tuple:
        """What must be unchanged for the package to be skipped."""
        return (self.updated_at, self.version_count, self.visibility, self.repository)


@dataclass(frozen=True, slots=True)
class StoredPackage:
    """The package row as the last successful sync left it."""

    id: int
    updated_at: str | None
    version_count: int | None
    visibility: str | None
    repository: str | None
    last_synced: str | None
    deleted_at: str | None
    full_listed_at: str | None = None     # the last whole versions listing committed

    @property
    def listing_key(self) -> tuple:
        return (self.updated_at, self.version_count, self.visibility, self.repository)


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """A digest the package holds: a GitHub package version, or a digest
    reached from a tag (index children, referrers) on other registries."""

    digest: str
    tags: tuple[str, ...] = ()
    version_id: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True, slots=True)
class RegistryFacts:
    """What a registry told us once and we remember across runs: its token
    challenge (so later runs skip the 401 probe) and whether it has the OCI
    referrers API (None: not asked yet)."""

    realm: str | None = None
    service: str | None = None
    referrers: bool | None = None


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A conditional-request validator and the compact payload it stands for."""

    url: str
    etag: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class MissingChild:
    """An index lists `child`, but the registry does not have it (404): a
    broken multi-arch image, recorded as an inventory fact."""

    parent: str
    child: str
    reason: str


@dataclass(slots=True)
class PackageResult:
    """Everything one worker learnt about one package, applied atomically."""

    ref: PackageRef
    versions: list[VersionEntry]
    tags: dict[str, str]            # tag -> digest, the complete current map
    manifests: list[ImageManifest | ImageIndex] = field(default_factory=list)
    configs: list[ImageConfig] = field(default_factory=list)
    referrers: list[Referrer] = field(default_factory=list)
    cache: list[CacheEntry] = field(default_factory=list)
    missing: list[MissingChild] = field(default_factory=list)   # index children the registry lacks
    # A listing is complete when every page was read: only then may digests
    # and tags missing from it be closed (docs/architecture.md "Invariants").
    complete: bool = True
    full: bool = False              # --full: compare and repair stored rows
    # How the versions were had: "whole" (every page read: the store records
    # full_listed_at), "synthesised" (the newest pages and the stored rest,
    # crawler/engine/versions.py), "registry" or "other" (no versions listing).
    listing: str = "other"


def utc_now() -> str:
    """Now as the inventory writes every timestamp: ISO-8601 UTC text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_stamp(epoch: float) -> str:
    """A POSIX time as the inventory writes timestamps (cut-offs compared with stored ones)."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
