"""Creating the directories the inventory's files live in (the database and
its lock, the metrics file), with a failure a person can act on: a path
component that exists but is not a directory is named as such, rather than
mkdir's bare "File exists" or "Not a directory"."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import StoreCreateError

__all__ = ["make_parent"]


def make_parent(path: Path, what: str) -> None:
    """Create `path`'s directory (and its parents). Raises StoreCreateError
    (73) naming the first existing ancestor that is not a directory; any
    other OSError is the caller's to translate (errors.storage_error)."""
    parent = Path(path).parent
    for ancestor in (parent, *parent.parents):
        if os.path.lexists(ancestor):
            if not ancestor.is_dir():
                raise StoreCreateError(f"cannot create the {what}: {ancestor} is not a directory",
                                       where=str(path))
            break
    parent.mkdir(parents=True, exist_ok=True)
