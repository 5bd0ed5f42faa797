"""discovery = "static": the repositories listed in the config
(`repositories = ["acme/app"]`); works anonymously for public images."""

from __future__ import annotations

from typing import AsyncIterator

from ..config import OwnerConfig
from ..model import PackageRef
from .listing import Listing


async def pages(owner: OwnerConfig, listing: Listing) -> AsyncIterator[list[PackageRef]]:
    prefix = owner.name.lower() + "/"
    refs = []
    for repo in owner.repositories:
        path = repo.lower()
        name = path[len(prefix):] if path.startswith(prefix) else path
        refs.append(PackageRef(owner=owner.name, name=name, repository_path=path, discovery="static"))
    yield refs
