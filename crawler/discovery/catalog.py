"""discovery = "catalog": the registry's `/v2/_catalog` (distribution,
Harbor, zot, the sandbox); ghcr.io has none (microsoft/vscode-docker#1525)."""

from __future__ import annotations

from typing import AsyncIterator

from ..config import OwnerConfig
from ..model import PackageRef
from ..registry import RegistryClient
from .listing import Listing


async def pages(owner: OwnerConfig, listing: Listing,
                registry: RegistryClient) -> AsyncIterator[list[PackageRef]]:
    prefix = owner.name.lower() + "/"
    listed = await registry.catalog()
    listing.pages += listed.pages
    listing.tokens += int(registry.demands_tokens)      # the registry:catalog:* scope
    yield [PackageRef(owner=owner.name, name=r[len(prefix):], repository_path=r, discovery="catalog")
           for r in listed.names if r.startswith(prefix) and len(r) > len(prefix)]
