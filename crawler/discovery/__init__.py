"""Discovery: which packages an owner has. One backend per `discovery`
value, one file each:

- rest.py     GitHub REST packages API (github.com and GHES): the default,
              since ghcr.io has no catalog and GitHub removed containers
              from GraphQL.
- graphql.py  the legacy `packages` connection, answered only by some GHES
              servers.
- catalog.py  the registry's /v2/_catalog (distribution, Harbor, zot, the sandbox).
- static.py   repositories listed in the config; works anonymously for public images.
- named.py    `rest` for a targeted run (a few --package names): one GET per package.

Every backend is an async generator of PackageRef pages that fills a
`Listing`; `discover` marks the listing complete only when the backend
ended as its protocol says and skipped no malformed entry. Only a complete
listing may conclude that a package was deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator

from ..config import OwnerConfig
from ..github import GitHubClient
from ..model import PackageRef
from ..registry import RegistryClient
from . import catalog, graphql, named, rest, static
from .listing import Listing, Scope, repository_path

if TYPE_CHECKING:  # gql is imported only when a run uses GraphQL (crawler/engine/wiring.py)
    from ..graphql import GraphQLClient

__all__ = ["Listing", "Scope", "discover", "repository_path"]


async def discover(owner: OwnerConfig, scope: Scope, listing: Listing, *,
                   github: GitHubClient | None, registry: RegistryClient,
                   graphql_client: GraphQLClient | None = None,
                   conditional: bool = True) -> AsyncIterator[list[PackageRef]]:
    if owner.discovery == "rest" and 0 < len(scope.only) <= named.NAMED_MAX:
        wanted = [n for n in dict.fromkeys(scope.only) if scope.configured(n)]
        pages = named.pages(owner, wanted, listing, github, conditional)
    elif owner.discovery == "rest":
        pages = rest.pages(owner, listing, github, conditional)
    elif owner.discovery == "graphql":
        pages = graphql.pages(owner, listing, graphql_client)
    elif owner.discovery == "catalog":
        pages = catalog.pages(owner, listing, registry)
    else:
        pages = static.pages(owner, listing)
    async for refs in pages:
        listing.listed.update(r.name for r in refs)
        chosen = [r for r in refs if scope.selected(r.name)]
        if chosen:
            yield chosen
    listing.complete = not listing.skipped
