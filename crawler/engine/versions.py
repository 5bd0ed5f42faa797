"""A package's versions listing, whole or cut short by the stop rule.

GitHub lists a package's versions newest *created* first; a retag (a tag
moved to an old version) changes that version's `updated_at`, not its
position (docs/architecture.md "Facts"; observed, not documented:
astral-sh/uv#7458). So one new nightly build shifts every page, and a
package of V versions would cost ceil(V/100) pages at every change.

Instead, when a complete listing of the package is on record and younger
than `crawl.full_listing_interval_s`, the pages are read newest first and
the reading stops after the first page where `can_stop` holds: what was
read, plus what the store holds for the versions not read, is then the
complete picture (`synthesise`), which the writer applies as it would a
whole listing. Every rule is checked against GitHub's own counters, so if
the ordering assumption is wrong the rules fail and the listing is read
whole: a wrong assumption costs requests, never data.

A brand-new tag put on an old, unread version moves no read version and, if
a newer build follows it, is hidden behind that build's `updated_at`: it is
found by the next whole listing (the interval bounds how late).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from ..model import VersionEntry


@dataclass(frozen=True, slots=True)
class KnownListing:
    """What the store holds from the last committed listing of a package:
    its live versions (with their current tags) and the package's row."""

    versions: dict[str, VersionEntry]     # by digest
    updated_at: str | None                # the package's updated_at the store has


def first_by_digest(entries: Iterable[VersionEntry]) -> list[VersionEntry]:
    """A digest listed twice (pages shifting under us): keep the first."""
    out: dict[str, VersionEntry] = {}
    for v in entries:
        out.setdefault(v.digest, v)
    return list(out.values())


def can_stop(known: KnownListing, read: list[VersionEntry], version_count: int | None,
             updated_at: str | None) -> bool:
    """May the listing stop after the pages that gave `read` (newest first)?
    `version_count` and `updated_at` are what discovery says now."""
    return (_reached_known(known, read) and _moves_seen_whole(known, read)
            and version_count == _synthesised_count(known, read)
            and _explained(known, read, updated_at))


def _synthesised_count(known: KnownListing, read: list[VersionEntry]) -> int:
    """Rule 3: `len(synthesise(known, read))` without building it (checked
    after every page: a whole listing of 20,000 versions is 200 checks)."""
    return len(read) + len(known.versions) - sum(1 for v in read if v.digest in known.versions)


def _reached_known(known: KnownListing, read: list[VersionEntry]) -> bool:
    """Rule 1: new versions are the newest, so once a known version with its
    tags unchanged is read, every new one has been."""
    return any(_same(known.versions.get(v.digest), v) for v in read)


def _same(stored: VersionEntry | None, v: VersionEntry) -> bool:
    return stored is not None and stored.version_id == v.version_id and set(stored.tags) == set(v.tags)


def _moves_seen_whole(known: KnownListing, read: list[VersionEntry]) -> bool:
    """Rule 2: a tag a read version lost must be on a read version now;
    otherwise it moved to an unread older version or was deleted."""
    found = {t for v in read for t in v.tags}
    for v in read:
        stored = known.versions.get(v.digest)
        if stored is not None and not set(stored.tags) - set(v.tags) <= found:
            return False
    return True


def _explained(known: KnownListing, read: list[VersionEntry], updated_at: str | None) -> bool:
    """Rule 4: the package's updated_at is no newer than the newest change
    read; a later one means something changed deeper (a retag of an old
    version). Timestamps that do not parse explain nothing."""
    if updated_at is None:
        return False
    if updated_at == known.updated_at:
        return True
    now = _when(updated_at)
    changed = [_when(v.updated_at) for v in read if _changed(known.versions.get(v.digest), v)]
    newest = max((c for c in changed if c is not None), default=None)
    return now is not None and newest is not None and now <= newest


def _changed(stored: VersionEntry | None, v: VersionEntry) -> bool:
    return not _same(stored, v) or stored.updated_at != v.updated_at


def _when(stamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def synthesise(known: KnownListing, read: list[VersionEntry]) -> list[VersionEntry]:
    """The complete listing: the versions read, then each unread version as
    stored, without the tags a read version now holds (moved to it). Rule 3
    compares its length with discovery's version_count, so a version
    deleted among the unread ones is never carried as present."""
    seen = {v.digest for v in read}
    taken = {t for v in read for t in v.tags}
    rest = [VersionEntry(v.digest, tuple(t for t in v.tags if t not in taken), v.version_id, v.created_at,
                         v.updated_at)
            for d, v in known.versions.items() if d not in seen]
    return read + rest
