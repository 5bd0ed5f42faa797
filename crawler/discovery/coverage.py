"""Which owner covers which registry repository: the pure rules behind
catalog discovery's package names and the report of what no owner covers.

An owner covers the repositories under its path prefix: `OWNER/…` by
default (ghcr's layout), or `prefix` (`discovery = "catalog"`): `team` covers
`team/…`, and `prefix = ""` the whole registry, top-level repositories
(`alpine`) included. A package's name is its repository path with the prefix
cut off, so with `prefix = ""` it is the full path (`a/b/c`). A static owner
covers exactly the repositories it lists. A catalog repository no configured
owner covers is reported by the run, never skipped silently
(README "Registries other than ghcr.io").
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..config import OwnerConfig

SHOWN = 5   # uncovered repositories named in the report


def path_prefix(owner: OwnerConfig) -> str:
    """The path prefix of the owner's repositories: "" (all), or "team/"."""
    if owner.prefix is not None:
        return f"{owner.prefix}/" if owner.prefix else ""
    return owner.name.lower() + "/"


def package_name(owner: OwnerConfig, path: str) -> str | None:
    """The package a repository path is for this owner, or None when the
    owner does not cover it."""
    if owner.discovery == "static":
        return _static_name(owner, path) if path in {r.lower() for r in owner.repositories} else None
    prefix = path_prefix(owner)
    if path.startswith(prefix) and len(path) > len(prefix):
        return path[len(prefix):]
    return None


def _static_name(owner: OwnerConfig, path: str) -> str:
    prefix = owner.name.lower() + "/"
    return path[len(prefix):] if path.startswith(prefix) else path


def uncovered(owners: Sequence[OwnerConfig], paths: Iterable[str]) -> list[str]:
    """The repository paths no owner covers, in listing order."""
    return [p for p in paths if not any(package_name(o, p) is not None for o in owners)]


def uncovered_message(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN]) + (f", … and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
    return (f"{len(names)} repositor{'y' if len(names) == 1 else 'ies'} in the catalog no configured owner "
            f"covers, not synced: {shown}; add an owner with discovery = \"catalog\" and prefix = \"\" "
            f"(the whole registry) or a prefix that covers them")
