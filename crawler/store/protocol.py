"""The store's two faces, as protocols: what the pipeline may read, and what
only the writer task may write.

Nothing above the store knows which database holds the inventory
(docs/architecture.md "Layers"): the engine opens a `Store` through
`crawler.store.open_store`, hands its `reader` to workers and enrichment,
and its `writer` to the single writer task (`crawler.engine.writer`), whose
typed methods are the only way in. The SQLite store (`sqlite.py`) is the
first implementation; the PostgreSQL store (`postgres.py`) the second.

Every `StoreWriter` method is one transaction: a package is applied whole
or not at all. `apply_packages` puts several packages in one transaction,
each inside its own savepoint, so one COMMIT serves them all and a package
that fails still rolls back alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..model import CacheEntry, PackageResult, RegistryFacts, StoredPackage, VersionEntry
from ..oci import ImageConfig


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    """A source repository's facts from GraphQL enrichment."""

    name_with_owner: str
    node_id: str | None
    archived: bool | None
    visibility: str | None
    pushed_at: str | None
    default_branch: str | None
    head_oid: str | None


@dataclass(frozen=True, slots=True)
class AttestationRow:
    """One Sigstore bundle GitHub's attestations API listed for a digest,
    as parsed (and, given a trusted root, verified) by the attestations
    stage (`crawler/attestations.py`)."""

    digest: str
    bundle_digest: str
    media_type: str | None
    predicate_type: str | None
    repository_id: int | None
    bundle_url: str | None
    signer_workflow: str | None
    signer_repository: str | None
    signer_ref: str | None
    signer_commit: str | None
    signer_issuer: str | None
    signed_at: str | None
    verified: bool
    verify_error: str | None
    bundle: bytes


@dataclass(frozen=True, slots=True)
class DueDigests:
    """One owner's digests due for the attestations API."""

    owner_id: int
    owner: str
    kind: str                       # org | user
    digests: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run's counters (checkpointed while it runs) and, at the end, its
    outcome (`status`, `finished_at`, `exit_code`, `message`)."""

    requests: int = 0
    not_modified: int = 0
    lower_bound: int = 0
    requests_by_kind: str = "{}"      # JSON object, kind -> count
    faults: str = "{}"                # JSON object, fault -> count
    packages_seen: int = 0
    packages_changed: int = 0
    packages_skipped: int = 0
    packages_failed: int = 0
    packages_deleted: int = 0
    manifests_new: int = 0
    rows_corrected: int = 0
    bytes: int = 0
    errors: int = 0
    status: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    message: str | None = None


@dataclass(slots=True)
class Applied:
    """What applying one package changed."""

    manifests_new: int = 0
    tags_opened: int = 0
    tags_closed: int = 0
    digests_closed: int = 0
    corrected: int = 0
    changed: bool = True            # False: the result changed nothing, nothing was written


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A webhook delivery `serve` accepted (table `events`)."""

    delivery_id: str
    received_at: str
    event: str              # package | registry_package
    action: str             # published | updated
    owner: str              # as configured in [[owners]]
    package: str
    state: str = "pending"  # pending | done | failed


@dataclass(frozen=True, slots=True)
class Coverage:
    """How package changes were found since webhooks began (view v_coverage)."""

    packages: int = 0           # packages that changed since their owner's first delivery
    reconcile_only: int = 0     # ... of which GitHub never notified about
    webhook_changes: int = 0
    reconcile_changes: int = 0


class StoreReader(Protocol):
    """Reads the workers and enrichment may make while the writer writes."""

    async def stored_package(self, owner_id: int, name: str) -> StoredPackage | None: ...

    async def stored_versions(self, package_id: int) -> list[VersionEntry]:
        """The package's live digests with their current tags; a current tag
        on a digest with no live row comes as an entry without a version id."""
        ...

    async def stored_packages(self, owner_id: int, names: Iterable[str]) -> dict[str, StoredPackage]:
        """`stored_package` of many names in one query (a discovery page's)."""
        ...

    async def known_manifests(self, digests: Iterable[str]) -> set[str]: ...

    async def known_configs(self, digests: Iterable[str]) -> set[str]: ...

    async def children(self, parents: Iterable[str]) -> dict[str, list[str]]: ...

    async def load_config(self, digest: str) -> ImageConfig | None: ...

    async def cache_lookup(self, url: str) -> CacheEntry | None: ...

    async def registry_facts(self, registry: str) -> RegistryFacts | None: ...

    # The two stages after the packages read what is due a page at a time
    # (keyset: past `after`, at most `limit`), so their memory is one page's,
    # whatever the org's size (docs/benchmarks.md, finding 17).
    async def repositories_due(self, registry: str, owners: Sequence[str], max_age_s: float | None, *,
                               after: str | None = None, limit: int | None = None) -> list[str]: ...

    async def attestations_due(self, registry: str, owners: Sequence[str], *, young_s: float | None,
                               interval_s: float, after: tuple[int, str] | None = None,
                               limit: int | None = None) -> list[DueDigests]: ...


class StoreWriter(Protocol):
    """Writes, each one transaction; called only by the writer task."""

    max_batch: int      # packages the writer may give `apply_packages` at once

    def interrupt(self) -> None:
        """A stop signal: give up waiting for locks another process holds."""
        ...

    async def close_stale_runs(self) -> int: ...

    async def begin_run(self, mode: str, owners: Iterable[str], pid: int, host: str) -> int: ...

    async def update_run(self, run_id: int, record: RunRecord) -> None: ...

    async def record_error(self, run_id: int, owner: str | None, package: str | None,
                           kind: str, message: str) -> None: ...

    async def ensure_owner(self, registry: str, name: str, kind: str, discovery: str) -> int: ...

    async def mark_listed(self, owner_id: int, present: set[str],
                          in_scope: Callable[[str], bool]) -> list[str]: ...

    async def apply_package(self, owner_id: int, result: PackageResult) -> Applied:
        """One package in its own transaction; its error is raised."""
        ...

    async def apply_packages(self, batch: Sequence[tuple[int, PackageResult]]) -> list[Applied | Exception]:
        """(owner id, result) pairs in one transaction, each in its own
        savepoint: what each changed, in order, or the error (StoreError for
        the database's) that rolled that package back alone; the others are
        committed. An error of the transaction itself (its COMMIT: disk full,
        a lost session) is raised and leaves every package of the batch
        untouched."""
        ...

    async def save_cache(self, entries: Iterable[CacheEntry]) -> None: ...

    async def save_registry_facts(self, registry: str, facts: RegistryFacts) -> None: ...

    async def save_repositories(self, rows: Iterable[RepositoryRow]) -> int: ...

    async def touch_repositories(self, names: Iterable[str]) -> int: ...

    async def mark_incomplete(self, owner_id: int, package: str, run_id: int, kind: str,
                              message: str) -> None: ...

    async def save_attestations(self, owner_id: int, answered: Sequence[str],
                                rows: Sequence[AttestationRow]) -> int: ...

    async def mark_attestations_unknown(self, owner_id: int, digests: Sequence[str], reason: str) -> int: ...

    async def record_changes(self, run_id: int, via: str, changes: Iterable[tuple[str, str]]) -> None:
        """(owner, package) pairs this run changed, and how the run was started
        (`via`: webhook | reconcile | sync): table package_changes."""
        ...


class EventLog(Protocol):
    """What `serve` records about the webhook deliveries it accepted (table
    `events`), on its own connection beside the runs; each method one
    transaction."""

    async def record_event(self, event: EventRecord) -> bool:
        """Store a pending delivery; False if its delivery id was stored before."""
        ...

    async def pending_events(self) -> list[EventRecord]:
        """Deliveries not yet synced, oldest first."""
        ...

    async def finish_events(self, delivery_ids: Sequence[str], state: str, run_id: int | None,
                            message: str | None) -> None:
        """Mark deliveries done or failed by the run that handled them."""
        ...

    async def coverage(self) -> Coverage: ...

    async def ping(self) -> None:
        """Raise StoreError unless the store answers (the readiness probe)."""
        ...


class Store(Protocol):
    """An open inventory: its two faces, the run's claim on its owners, and
    how to close it."""

    @property
    def reader(self) -> StoreReader: ...

    @property
    def writer(self) -> StoreWriter: ...

    @property
    def events(self) -> EventLog: ...

    async def claim(self, registry: str, owners: Sequence[str]) -> None:
        """Hold these owners for this run: another sync holding one of them is
        LockHeldError (75). SQLite: the file lock taken before opening
        (crawler/lock.py) already holds the whole database; PostgreSQL: one
        advisory lock per owner, so crawlers of different owners share it."""
        ...

    async def close(self) -> None: ...
