"""Targeted discovery on GitHub (`sync --package`, the syncs `serve` runs
for webhook events): each named package by its own
`GET /orgs/{org}/packages/container/{name}` instead of the owner's whole
listing — one request per package, where an org of 10,000 packages costs
100 listing pages (sequential: their latency adds up). Used by `rest`
discovery when at most NAMED_MAX packages are named; a targeted run never
concludes deletions (crawler/engine/owner.py), so nothing is lost by not
listing the rest.

A named package GitHub answers 404 for is skipped; the first such error is
raised after the others were handed on, so it fails this owner's listing
(and is recorded) without holding back the packages that exist.
"""

from __future__ import annotations

from typing import AsyncIterator, Iterable

from ..config import OwnerConfig
from ..errors import NotFoundError
from ..github import GitHubClient
from ..model import PackageRef
from .listing import Listing
from .rest import ref_from_github

NAMED_MAX = 10      # more names than this: list the owner instead (a page holds 100)


async def pages(owner: OwnerConfig, names: Iterable[str], listing: Listing, github: GitHubClient | None,
                conditional: bool) -> AsyncIterator[list[PackageRef]]:
    assert github is not None, "rest discovery needs the GitHub client"
    missing: NotFoundError | None = None
    for name in names:
        try:
            page = await github.package(owner.name, owner.kind, name, conditional=conditional)
        except NotFoundError as exc:
            missing = missing or exc
            continue
        listing.pages += 1
        listing.not_modified += page.not_modified
        if page.cache:
            listing.cache.append(page.cache)
        yield [ref_from_github(owner, p, "rest") for p in page.items]
    if missing is not None:
        raise missing
