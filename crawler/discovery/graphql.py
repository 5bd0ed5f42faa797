"""discovery = "graphql": an owner's container packages through GraphQL's
legacy `packages` connection (crawler/graphql.py holds the client and the
page parser). Only some GHES servers still answer it: github.com removed
container packages from GraphQL (changelog 2022-08-18), so an empty first
page is an owner failure, never an empty inventory."""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator

from ..config import OwnerConfig
from ..errors import DiscoveryUnsupportedError, ParseError
from ..model import PackageRef
from .listing import Listing, repository_path

if TYPE_CHECKING:  # gql is imported only when a run uses GraphQL (crawler/engine/wiring.py)
    from ..graphql import GraphQLClient

MAX_PAGES = 10_000          # packages pages per owner: 1,000,000 packages


async def pages(owner: OwnerConfig, listing: Listing,
                graphql: GraphQLClient | None) -> AsyncIterator[list[PackageRef]]:
    """An owner's container packages through GraphQL's `packages` connection.
    A server that lists none (github.com) is an owner failure naming the
    fix, never an empty inventory: an empty listing would read as "every
    package was deleted"."""
    if graphql is None:
        raise DiscoveryUnsupportedError(f"discovery = \"graphql\" for '{owner.name}' needs a GitHub token "
                                        f"(github.token_env or github.token_file)")
    after: str | None = None
    for number in range(MAX_PAGES):
        page = await graphql.packages_page(owner.name, owner.kind, after)
        listing.pages += 1
        if number == 0 and not page.packages and not page.total:
            raise DiscoveryUnsupportedError(
                f"GraphQL lists no container packages for '{owner.name}' (github.com removed them from "
                f"GraphQL in 2022); set discovery = \"rest\" for this owner", where=graphql.where)
        yield [PackageRef(owner=owner.name, name=p.name, repository_path=repository_path(owner.name, p.name),
                          discovery="graphql", repository=p.repository, version_count=p.version_count)
               for p in page.packages]
        if not page.has_next:
            return
        after = page.end_cursor
    raise ParseError(f"more than {MAX_PAGES} pages of packages", where=graphql.where)
