"""The world's GitHub-side data model: owners, repositories, packages, versions, tokens.

Pure data and bookkeeping, no I/O. The emulator serves it; the builder writes it
in step with what it pushes to the registry. Every mutation of a package (a
version added or deleted, a tag moved or removed) bumps the package's
``updated_at`` using an injectable clock; the default clock never hands out the
same second twice, so two mutations are always distinguishable.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

VISIBILITIES = ("public", "private", "internal")
OWNER_KINDS = ("org", "user")

# Scopes that imply others (classic PAT semantics: write implies read).
_IMPLIED_SCOPES = {
    "write:packages": {"read:packages"},
    "delete:packages": {"read:packages"},
}


class StateError(ValueError):
    """A builder/test asked for something the world cannot hold."""


def iso(ts: float | None) -> str | None:
    """Epoch seconds → GitHub's ISO-8601 UTC text (``2024-01-01T00:00:00Z``)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(prefix: str, number: int) -> str:
    """A GitHub-looking global node id (``R_kgDO…``); opaque to clients."""
    raw = base64.urlsafe_b64encode(number.to_bytes(6, "big")).decode().rstrip("=")
    return f"{prefix}_kgDO{raw}"


class MonotonicClock:
    """Wall-clock epoch seconds, but strictly increasing: each call is ≥ 1 s after the last."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._last: int | None = None

    def __call__(self) -> float:
        current = int(self._now())
        if self._last is not None and current <= self._last:
            current = self._last + 1
        self._last = current
        return float(current)


class TickClock:
    """A deterministic clock: ``start``, then ``step`` seconds more on every call."""

    def __init__(self, start: float = 1_704_067_200.0, step: float = 1.0) -> None:  # 2024-01-01T00:00:00Z
        self._next = float(start)
        self.step = float(step)

    def __call__(self) -> float:
        value, self._next = self._next, self._next + self.step
        return value


@dataclass
class Owner:
    login: str
    kind: str  # org | user
    id: int
    node_id: str
    name: str | None = None
    created_at: float = 0.0

    @property
    def type_name(self) -> str:
        return "Organization" if self.kind == "org" else "User"


@dataclass
class Repository:
    owner: str
    name: str
    id: int
    node_id: str
    visibility: str = "public"  # public | private | internal
    archived: bool = False
    default_branch: str = "main"
    head_oid: str = ""
    committed_at: float = 0.0
    pushed_at: float | None = None
    created_at: float = 0.0
    description: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def private(self) -> bool:
        return self.visibility != "public"


@dataclass
class Version:
    id: int
    name: str  # the manifest digest, as on ghcr
    tags: list[str]
    created_at: float
    updated_at: float
    media_type: str | None = None
    deleted_at: float | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass
class Package:
    id: int
    owner: str
    name: str  # may contain "/", e.g. team/app/api
    node_id: str
    visibility: str
    repository: str | None  # "owner/name" of the linked source repository
    created_at: float
    updated_at: float
    deleted_at: float | None = None
    downloads: int = 0
    versions: dict[str, Version] = field(default_factory=dict)  # by digest
    # How the versions listing orders them: "created" as GitHub does (see
    # listed_versions); "updated" and "oldest" break that order on purpose,
    # for tests of a crawler that must stay correct when it does not hold.
    version_order: str = "created"

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def listed_versions(self, *, deleted: bool = False) -> list[Version]:
        """Active (or deleted) versions, newest *created* first, like the REST
        listing: a retag changes a version's ``updated_at``, not its place
        (observed, not documented: astral-sh/uv#7458)."""
        chosen = [v for v in self.versions.values() if v.deleted == deleted]
        if self.version_order == "updated":
            return sorted(chosen, key=lambda v: (v.updated_at, v.id), reverse=True)
        newest_first = self.version_order != "oldest"
        return sorted(chosen, key=lambda v: (v.created_at, v.id), reverse=newest_first)

    @property
    def version_count(self) -> int:
        return sum(1 for v in self.versions.values() if not v.deleted)

    def tag_map(self) -> dict[str, str]:
        return {t: v.name for v in self.versions.values() if not v.deleted for t in v.tags}


@dataclass
class Budget:
    """A fixed-window request budget (GitHub's primary rate limit)."""

    limit: int
    used: int = 0
    reset_at: float = 0.0
    window_s: float = 3600.0

    def refresh(self, now: float) -> None:
        if now >= self.reset_at:
            self.used = 0
            self.reset_at = now + self.window_s

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def charge(self, cost: int = 1) -> None:
        self.used += cost


TOKEN_KINDS = ("classic", "fine_grained", "actions", "app", "oauth", "user_to_server")


@dataclass
class Token:
    value: str
    login: str
    scopes: frozenset[str]
    owners: frozenset[str] | None  # owners whose private packages it may read; None = all
    rest: Budget
    graphql: Budget
    user_id: int = 0
    # What issued it (GitHub's prefixes): classic ghp_, fine_grained github_pat_,
    # actions ghs_ (GITHUB_TOKEN), app ghs_ (installation), oauth gho_, user_to_server ghu_.
    kind: str = "classic"
    # SAML SSO-enforced orgs this token is not authorized for: their REST
    # endpoints answer 403 with X-GitHub-SSO: required; url=…
    sso_blocked: frozenset[str] = frozenset()

    @property
    def reports_scopes(self) -> bool:
        """Classic PATs and OAuth tokens carry scopes (X-OAuth-Scopes); the others have permissions."""
        return self.kind in ("classic", "oauth")

    def has_scope(self, scope: str) -> bool:
        if scope in self.scopes:
            return True
        return any(scope in _IMPLIED_SCOPES.get(s, ()) for s in self.scopes)

    def can_access_owner(self, owner: str) -> bool:
        owner = owner.lower()
        return self.owners is None or owner in self.owners or owner == self.login.lower()


@dataclass
class StoredAttestation:
    """One attestation in GitHub's attestation store (what bulk-list serves)."""

    bundle: dict
    repository_id: int


class WorldState:
    """Everything the emulator knows. Mutate only through these methods."""

    def __init__(self, clock: Callable[[], float] | None = None, *, wall: Callable[[], float] = time.time) -> None:
        self.clock = clock or MonotonicClock()
        self.wall = wall  # rate-limit windows run on real time
        self.owners: dict[str, Owner] = {}
        self.repositories: dict[str, Repository] = {}
        self.packages: dict[tuple[str, str], Package] = {}
        self._by_owner: dict[str, tuple[int, list[Package]]] = {}   # see _owner_packages
        self.tokens: dict[str, Token] = {}
        self._owner_ids = itertools.count(9_000_001)
        self._repo_ids = itertools.count(700_000_001)
        self._package_ids = itertools.count(3_000_001)
        self._version_ids = itertools.count(90_000_001)
        self._nodes: dict[str, object] = {}
        # GitHub's attestation store: (owner lower-cased, subject digest) -> attestations
        self.attestations: dict[tuple[str, str], list[StoredAttestation]] = {}
        # Called as (package, version, new) after a version is recorded or tagged (webhooks.py).
        self.version_observers: list[Callable[[Package, Version, bool], None]] = []

    # -- owners and repositories ------------------------------------------

    def add_owner(self, login: str, kind: str = "org", *, name: str | None = None) -> Owner:
        if kind not in OWNER_KINDS:
            raise StateError(f"owner kind must be one of {OWNER_KINDS}, not {kind!r}")
        if login.lower() in self.owners:
            raise StateError(f"owner {login!r} exists")
        number = next(self._owner_ids)
        owner = Owner(login, kind, number, node_id("O" if kind == "org" else "U", number), name, self.clock())
        self.owners[login.lower()] = owner
        self._nodes[owner.node_id] = owner
        return owner

    def owner(self, login: str) -> Owner | None:
        return self.owners.get(login.lower())

    def owner_by_id(self, number: int) -> Owner | None:
        return next((o for o in self.owners.values() if o.id == number), None)

    def add_repository(
        self,
        owner: str,
        name: str,
        *,
        visibility: str = "public",
        archived: bool = False,
        default_branch: str = "main",
        head_oid: str | None = None,
        description: str | None = None,
    ) -> Repository:
        if self.owner(owner) is None:
            raise StateError(f"unknown owner {owner!r}")
        if visibility not in VISIBILITIES:
            raise StateError(f"visibility must be one of {VISIBILITIES}")
        full = f"{self.owner(owner).login}/{name}"
        if full.lower() in self.repositories:
            raise StateError(f"repository {full!r} exists")
        number = next(self._repo_ids)
        now = self.clock()
        repo = Repository(
            owner=self.owner(owner).login,
            name=name,
            id=number,
            node_id=node_id("R", number),
            visibility=visibility,
            archived=archived,
            default_branch=default_branch,
            head_oid=head_oid or hashlib.sha1(f"{full}@0".encode()).hexdigest(),
            committed_at=now,
            pushed_at=now,
            created_at=now,
            description=description,
        )
        self.repositories[full.lower()] = repo
        self._nodes[repo.node_id] = repo
        return repo

    def repository(self, full_name: str) -> Repository | None:
        return self.repositories.get(full_name.lower())

    def push_commit(self, full_name: str, oid: str | None = None) -> Repository:
        """A new head commit on the default branch."""
        repo = self._need_repo(full_name)
        now = self.clock()
        repo.head_oid = oid or hashlib.sha1(f"{repo.full_name}@{now}".encode()).hexdigest()
        repo.committed_at = now
        repo.pushed_at = now
        return repo

    def update_repository(self, full_name: str, **changes) -> Repository:
        repo = self._need_repo(full_name)
        for key, value in changes.items():
            if key not in ("visibility", "archived", "default_branch", "description"):
                raise StateError(f"cannot change repository field {key!r}")
            setattr(repo, key, value)
        return repo

    def node(self, global_id: str) -> object | None:
        return self._nodes.get(global_id)

    def _need_repo(self, full_name: str) -> Repository:
        repo = self.repository(full_name)
        if repo is None:
            raise StateError(f"unknown repository {full_name!r}")
        return repo

    # -- packages and versions ---------------------------------------------

    def package(self, owner: str, name: str, *, include_deleted: bool = False) -> Package | None:
        pkg = self.packages.get((owner.lower(), name))
        if pkg is None or (pkg.deleted and not include_deleted):
            return None
        return pkg

    def packages_of(self, owner: str, *, include_deleted: bool = False) -> list[Package]:
        every = self._owner_packages(owner.lower())
        return list(every) if include_deleted else [p for p in every if p.deleted_at is None]

    def readable_packages(self, owner: str, token: Token | None) -> list[Package]:
        """`packages_of(owner)` that `token` may read (`can_read_package`
        for each, the owner's access asked once: a listing page filters them all)."""
        live = self.packages_of(owner)
        if token is not None and token.can_access_owner(owner):
            return live
        return [p for p in live if p.visibility == "public"]

    def _owner_packages(self, key: str) -> list[Package]:
        """An owner's packages by id, kept until a package is added anywhere
        (packages are never removed, only marked deleted): every page of a
        10,000-package listing had scanned and sorted all the world's."""
        size = len(self.packages)
        cached = self._by_owner.get(key)
        if cached is None or cached[0] != size:
            found = sorted((p for (o, _), p in self.packages.items() if o == key), key=lambda p: p.id)
            cached = self._by_owner[key] = (size, found)
        return cached[1]

    def ensure_package(
        self, owner: str, name: str, *, visibility: str | None = None, repository: str | None = None
    ) -> Package:
        """The package, created on first push (like ghcr), optionally re-linked."""
        own = self.owner(owner)
        if own is None:
            raise StateError(f"unknown owner {owner!r}")
        if visibility is not None and visibility not in VISIBILITIES:
            raise StateError(f"visibility must be one of {VISIBILITIES}")
        if repository is not None and self.repository(repository) is None:
            raise StateError(f"unknown repository {repository!r}")
        pkg = self.packages.get((own.login.lower(), name))
        if pkg is None:
            number = next(self._package_ids)
            now = self.clock()
            pkg = Package(
                id=number,
                owner=own.login,
                name=name,
                node_id=node_id("P", number),
                visibility=visibility or "private",  # ghcr's default for a new package
                repository=self.repository(repository).full_name if repository else None,
                created_at=now,
                updated_at=now,
            )
            self.packages[(own.login.lower(), name)] = pkg
            self._nodes[pkg.node_id] = pkg
            return pkg
        changed = False
        if visibility is not None and visibility != pkg.visibility:
            pkg.visibility, changed = visibility, True
        if repository is not None and self.repository(repository).full_name != pkg.repository:
            pkg.repository, changed = self.repository(repository).full_name, True
        if changed:
            pkg.updated_at = self.clock()
        return pkg

    def add_packages(self, owner: str, names: Iterable[str], *, visibility: str = "public") -> list[Package]:
        """Many empty packages at once, one clock tick for all (owners with > 10,000 packages, cheaply).

        GitHub side only: nothing is pushed, the registry has no such
        repositories. Names that exist are refused.
        """
        own = self.owner(owner)
        if own is None:
            raise StateError(f"unknown owner {owner!r}")
        if visibility not in VISIBILITIES:
            raise StateError(f"visibility must be one of {VISIBILITIES}")
        now = self.clock()
        made = []
        for name in names:
            key = (own.login.lower(), name)
            if key in self.packages:
                raise StateError(f"package {own.login}/{name} exists")
            number = next(self._package_ids)
            pkg = Package(number, own.login, name, node_id("P", number), visibility, None, now, now)
            self.packages[key] = pkg
            self._nodes[pkg.node_id] = pkg
            made.append(pkg)
        return made

    def add_versions(self, owner: str, name: str, digests: Iterable[str], *, media_type: str | None = None) -> list[Version]:
        """Many untagged versions at once, one clock tick for all (GitHub side only; see ``add_packages``)."""
        pkg = self._need_package(owner, name)
        now = self.clock()
        made = []
        for digest in digests:
            if digest in pkg.versions:
                raise StateError(f"{owner}/{name}@{digest} exists")
            version = Version(next(self._version_ids), digest, [], now, now, media_type)
            pkg.versions[digest] = version
            made.append(version)
        pkg.updated_at = now
        return made

    def record_version(
        self, owner: str, name: str, digest: str, *, tags: Iterable[str] = (), media_type: str | None = None
    ) -> Version:
        """A manifest pushed to the package: a new version, or tags added to one."""
        pkg = self._need_package(owner, name)
        now = self.clock()
        version = pkg.versions.get(digest)
        new = version is None or version.deleted
        if version is None:
            version = Version(next(self._version_ids), digest, [], now, now, media_type)
            pkg.versions[digest] = version
        elif version.deleted:
            version.deleted_at = None
            version.updated_at = now
        for tag in tags:
            self._attach_tag(pkg, tag, version, now)
        pkg.updated_at = now
        for observer in self.version_observers:
            observer(pkg, version, new)
        return version

    def set_tag(self, owner: str, name: str, tag: str, digest: str) -> None:
        """Point ``tag`` at ``digest``; the previous holder stays, untagged (as on GitHub)."""
        pkg = self._need_package(owner, name)
        version = pkg.versions.get(digest)
        if version is None or version.deleted:
            raise StateError(f"{owner}/{name}@{digest} is not an active version")
        now = self.clock()
        self._attach_tag(pkg, tag, version, now)
        pkg.updated_at = now

    def remove_tag(self, owner: str, name: str, tag: str) -> str | None:
        """Drop ``tag``; returns the digest it pointed at (None if it was not there)."""
        pkg = self._need_package(owner, name)
        for version in pkg.versions.values():
            if tag in version.tags and not version.deleted:
                now = self.clock()
                version.tags.remove(tag)
                version.updated_at = now
                pkg.updated_at = now
                return version.name
        return None

    def set_version_order(self, owner: str, name: str, order: str) -> None:
        """List this package's versions in another order (``Package.version_order``)."""
        if order not in ("created", "updated", "oldest"):
            raise StateError(f"unknown version order {order!r}")
        self._need_package(owner, name).version_order = order

    def delete_version(self, owner: str, name: str, digest: str) -> Version:
        pkg = self._need_package(owner, name)
        version = pkg.versions.get(digest)
        if version is None or version.deleted:
            raise StateError(f"{owner}/{name}@{digest} is not an active version")
        now = self.clock()
        version.deleted_at = now
        version.updated_at = now
        version.tags.clear()  # a deleted version's tags are gone
        pkg.updated_at = now
        return version

    def delete_package(self, owner: str, name: str) -> Package:
        pkg = self._need_package(owner, name)
        pkg.deleted_at = self.clock()
        pkg.updated_at = pkg.deleted_at
        return pkg

    def restore_package(self, owner: str, name: str) -> Package:
        pkg = self.packages.get((owner.lower(), name))
        if pkg is None or not pkg.deleted:
            raise StateError(f"{owner}/{name} is not a deleted package")
        pkg.deleted_at = None
        pkg.updated_at = self.clock()
        return pkg

    def count_download(self, repository: str) -> None:
        """A manifest GET on the registry (ghcr counts each as a download)."""
        owner, _, name = repository.partition("/")
        pkg = self.package(owner, name)
        if pkg is not None:
            pkg.downloads += 1

    def _attach_tag(self, pkg: Package, tag: str, version: Version, now: float) -> None:
        for other in pkg.versions.values():
            if other is not version and tag in other.tags:
                other.tags.remove(tag)
                other.updated_at = now
        if tag not in version.tags:
            version.tags.append(tag)
            version.updated_at = now

    def _need_package(self, owner: str, name: str) -> Package:
        pkg = self.package(owner, name)
        if pkg is None:
            raise StateError(f"unknown package {owner}/{name}")
        return pkg

    # -- attestations ----------------------------------------------------------

    def add_attestation(self, owner: str, digest: str, bundle: dict, *, repository: str) -> StoredAttestation:
        """Store an attestation of ``digest`` made in ``repository`` (as attest-build-provenance does)."""
        if self.owner(owner) is None:
            raise StateError(f"unknown owner {owner!r}")
        stored = StoredAttestation(bundle, self._need_repo(repository).id)
        self.attestations.setdefault((owner.lower(), digest), []).append(stored)
        return stored

    def attestations_of(self, token: "Token | None", owner: str, digest: str) -> list[StoredAttestation]:
        """The attestations of ``digest`` the token may see (those of repositories it can read)."""
        by_id = {r.id: r for r in self.repositories.values()}
        return [a for a in self.attestations.get((owner.lower(), digest), ())
                if a.repository_id in by_id and self.can_see_repository(token, by_id[a.repository_id])]

    # -- tokens and access ---------------------------------------------------

    def add_token(
        self,
        value: str,
        login: str,
        *,
        scopes: Iterable[str] = ("read:packages",),
        owners: Iterable[str] | None = None,
        rate_limit: int = 5000,
        graphql_limit: int = 5000,
        window_s: float = 3600.0,
        kind: str = "classic",
        sso_blocked: Iterable[str] = (),
    ) -> Token:
        if value in self.tokens:
            raise StateError("token exists")
        if kind not in TOKEN_KINDS:
            raise StateError(f"token kind must be one of {TOKEN_KINDS}, not {kind!r}")
        user = self.owner(login)
        token = Token(
            value=value,
            login=login,
            scopes=frozenset(scopes),
            owners=None if owners is None else frozenset(o.lower() for o in owners),
            rest=Budget(rate_limit, window_s=window_s),
            graphql=Budget(graphql_limit, window_s=window_s),
            user_id=user.id if user else 1_000_000 + len(self.tokens),
            kind=kind,
            sso_blocked=frozenset(o.lower() for o in sso_blocked),
        )
        self.tokens[value] = token
        return token

    def token(self, value: str | None) -> Token | None:
        return self.tokens.get(value) if value else None

    def can_read_package(self, token: Token | None, pkg: Package) -> bool:
        if pkg.deleted:
            return False
        if pkg.visibility == "public":
            return True
        return token is not None and token.can_access_owner(pkg.owner)

    def can_see_repository(self, token: Token | None, repo: Repository) -> bool:
        return repo.visibility == "public" or (token is not None and token.can_access_owner(repo.owner))
