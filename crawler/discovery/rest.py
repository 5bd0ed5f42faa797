"""discovery = "rest": the GitHub REST packages API (crawler/github.py),
`GET /orgs/{org}/packages?package_type=container` or `/users/{user}/…`,
100 a page, Link pagination, ETag."""

from __future__ import annotations

from typing import AsyncIterator

from ..config import OwnerConfig
from ..errors import InventoryError, NotFoundError
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
    try:
        async for page in github.packages(owner.name, owner.kind, conditional=conditional):
            listing.pages += page.requests
            listing.not_modified += page.not_modified
            if page.cache:
                listing.cache.append(page.cache)
            listing.skipped.extend(page.skipped)
            yield [ref_from_github(owner, p, "rest") for p in page.items]
    except NotFoundError as exc:
        if listing.pages:
            raise
        raise await _missing_owner(github, owner, exc) from None


async def _missing_owner(github: GitHubClient, owner: OwnerConfig, exc: NotFoundError) -> NotFoundError:
    """A 404 on an owner's listing means "does not exist" or "this token
    cannot see it" (GitHub hides what a token may not read);
    `GET /users/{name}` tells which, for one request."""
    try:
        found = await github.owner_type(owner.name)
    except InventoryError:
        return exc
    want = "Organization" if owner.kind == "org" else "User"
    if found is None:
        text = f"GitHub has no user or organization named '{owner.name}'; check owners.name"
    elif found != want:
        text = (f"'{owner.name}' is a {found}, not {'an org' if owner.kind == 'org' else 'a user'}: set kind = "
                f"\"{'user' if owner.kind == 'org' else 'org'}\" for this owner")
    else:
        text = (f"the {found.lower()} '{owner.name}' exists but this token cannot see its packages (a 404 "
                f"here means no access): use a classic PAT with read:packages of an account that can read them "
                f"(and authorize it for SAML SSO if the org enforces it); `ghcr-inventory check` tells")
    return NotFoundError(f"not found (HTTP 404): {text}", where=exc.where)
