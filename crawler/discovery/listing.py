"""What every discovery backend shares: the listing's side results, the
scope of a run, and the registry path of a package."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from ..model import CacheEntry


@dataclass(slots=True)
class Listing:
    """Side results of one owner's discovery."""

    complete: bool = False
    pages: int = 0
    tokens: int = 0                 # token scopes the listing needed (the lower bound counts them)
    not_modified: int = 0
    cache: list[CacheEntry] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)   # every name listed (before --package)
    skipped: list[str] = field(default_factory=list)  # malformed entries left out, one reason each
    catalog: list[str] | None = None  # every repository a catalog listed (None: not a catalog listing)


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
