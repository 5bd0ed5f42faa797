"""discovery = "catalog": the registry's `/v2/_catalog` (distribution,
Harbor, zot, the sandbox); ghcr.io has none (microsoft/vscode-docker#1525).
An owner takes the repositories under its prefix (`OWNER/…`, or `prefix`;
`prefix = ""`: the whole registry)."""

from __future__ import annotations

from typing import AsyncIterator

from ..config import OwnerConfig
from ..model import PackageRef
from ..registry import RegistryClient
from .coverage import package_name
from .listing import Listing


async def pages(owner: OwnerConfig, listing: Listing,
                registry: RegistryClient) -> AsyncIterator[list[PackageRef]]:
    """The repositories under the owner's prefix (`coverage.py`); every name
    the catalog holds is kept in `listing.catalog`, so the run can report
    what no owner covers."""
    listed = await registry.catalog()
    listing.pages += listed.pages
    listing.tokens += int(registry.demands_tokens)      # the registry:catalog:* scope
    listing.catalog = list(listed.names)
    refs = []
    for path in listed.names:
        name = package_name(owner, path)
        if name is not None:
            refs.append(PackageRef(owner=owner.name, name=name, repository_path=path, discovery="catalog"))
    yield refs
