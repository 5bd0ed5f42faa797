"""discovery = "rest": the GitHub REST packages API (crawler/github.py),
`GET /orgs/{org}/packages?package_type=container` or `/users/{user}/…`,
100 a page, Link pagination, ETag."""

from __future__ import annotations

from typing import AsyncIterator

from ..config import OwnerConfig
from ..github import GhPackage, GitHubClient
from ..model import PackageRef
from .listing import Listing, repository_path


def ref_from_github(owner: OwnerConfig, p: GhPackage, discovery: str) -> PackageRef:
    return PackageRef(owner=owner.name, name=p.name, repository_path=repository_path(owner.name, p.name),
                      discovery=discovery, visibility=p.visibility, repository=p.repository,
                      github_id=p.id, html_url=p.html_url, version_count=p.version_count,
                      created_at=p.created_at, updated_at=p.updated_at)


async def pages(owner: OwnerConfig, listing: Listing, github: GitHubClient | None,
                conditional: bool) -> AsyncIterator[list[PackageRef]]:
    assert github is not None, "rest discovery needs the GitHub client"
    async for page in github.packages(owner.name, owner.kind, conditional=conditional):
        listing.pages += 1
        listing.not_modified += page.not_modified
        if page.cache:
            listing.cache.append(page.cache)
        listing.skipped.extend(page.skipped)
        yield [ref_from_github(owner, p, "rest") for p in page.items]
