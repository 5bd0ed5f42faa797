"""Discovery: which packages an owner has. One backend per `discovery` value.

- rest     GitHub REST packages API (github.com and GHES): the default, since
           ghcr.io has no catalog and GitHub removed containers from GraphQL.
- graphql  the legacy `packages` connection, answered only by some GHES
           servers (crawler/graphql.py).
- catalog  the registry's /v2/_catalog (distribution, Harbor, zot, the sandbox).
- static   repositories listed in the config; works anonymously for public images.

Every backend yields pages of PackageRef and fills a Listing that says
whether the listing was complete: only a complete listing may conclude that
a package was deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import AsyncIterator

from .config import OwnerConfig
from .github import GitHubClient, GhPackage
from .model import CacheEntry, PackageRef
from .registry import RegistryClient


@dataclass(slots=True)
class Listing:
    """Side results of one owner's discovery."""

    complete: bool = False
    pages: int = 0
    not_modified: int = 0
    cache: list[CacheEntry] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)   # every name listed (before --package)


@dataclass(slots=True)
class Scope:
    """Which listed packages this run handles."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    only: tuple[str, ...] = ()          # --package NAME (exact names)

    def configured(self, name: str) -> bool:
        return (any(fnmatchcase(name, p) for p in self.include)
                and not any(fnmatchcase(name, p) for p in self.exclude))

    def selected(self, name: str) -> bool:
        return self.configured(name) and (not self.only or name in self.only)


def repository_path(owner: str, package: str) -> str:
    # ghcr.io repositories are lower-case OWNER/NAME (docker reference grammar).
    return f"{owner}/{package}".lower()


def ref_from_github(owner: OwnerConfig, p: GhPackage, discovery: str) -> PackageRef:
    return PackageRef(owner=owner.name, name=p.name, repository_path=repository_path(owner.name, p.name),
                      discovery=discovery, visibility=p.visibility, repository=p.repository,
                      github_id=p.id, html_url=p.html_url, version_count=p.version_count,
                      created_at=p.created_at, updated_at=p.updated_at)


async def discover(owner: OwnerConfig, scope: Scope, listing: Listing, *,
                   github: GitHubClient | None, registry: RegistryClient,
                   graphql=None, conditional: bool = True) -> AsyncIterator[list[PackageRef]]:
    if owner.discovery == "rest":
        pages = _rest(owner, listing, github, conditional)
    elif owner.discovery == "graphql":
        from .graphql import discover_packages
        pages = discover_packages(graphql, owner, listing)
    elif owner.discovery == "catalog":
        pages = _catalog(owner, listing, registry)
    else:
        pages = _static(owner, listing)
    async for refs in pages:
        listing.listed.update(r.name for r in refs)
        chosen = [r for r in refs if scope.selected(r.name)]
        if chosen:
            yield chosen
    listing.complete = True


async def _rest(owner: OwnerConfig, listing: Listing, github: GitHubClient | None,
                conditional: bool) -> AsyncIterator[list[PackageRef]]:
    assert github is not None, "rest discovery needs the GitHub client"
    async for page in github.packages(owner.name, owner.kind, conditional=conditional):
        listing.pages += 1
        listing.not_modified += page.not_modified
        if page.cache:
            listing.cache.append(page.cache)
        yield [ref_from_github(owner, p, "rest") for p in page.items]


async def _catalog(owner: OwnerConfig, listing: Listing,
                   registry: RegistryClient) -> AsyncIterator[list[PackageRef]]:
    prefix = owner.name.lower() + "/"
    repos = await registry.catalog()
    listing.pages += 1
    yield [PackageRef(owner=owner.name, name=r[len(prefix):], repository_path=r, discovery="catalog")
           for r in repos if r.startswith(prefix) and len(r) > len(prefix)]


async def _static(owner: OwnerConfig, listing: Listing) -> AsyncIterator[list[PackageRef]]:
    prefix = owner.name.lower() + "/"
    refs = []
    for repo in owner.repositories:
        path = repo.lower()
        name = path[len(prefix):] if path.startswith(prefix) else path
        refs.append(PackageRef(owner=owner.name, name=name, repository_path=path, discovery="static"))
    yield refs
