"""What the planner needs, read from the inventory on the read-only
connection (`crawler/readonly.py`): per live package its current versions
(GitHub version ids, upload times, kinds, tags), the links between them
(index children, referrers), the blobs each uses, and whether anything may
be concluded from it at all.

Refused, whole: a package whose last sync failed or whose owner's last
packages listing was incomplete (`incomplete_listings`: the stored rows
may be older than what the registry holds), every package of an owner
whose last sync run did not finish (interrupted, rate-limited, failed, or
running now), and a package that is not a GitHub package (no version ids
to delete)."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from ..store.reading import run_sql
from .plan import Link, PackageRows, Version

__all__ = ["load_packages"]

_PACKAGES = """
SELECT p.id, o.id, o.name, o.kind, o.discovery, p.name, p.visibility, p.last_synced
FROM packages p JOIN owners o ON o.id = p.owner_id
WHERE p.deleted_at IS NULL
ORDER BY o.name, p.name
"""
_INCOMPLETE = "SELECT owner_id, package, run_id, kind, message FROM incomplete_listings"
# The last run that covered each owner: one that did not finish (stopped,
# rate-limited, failed, still running) may have left its listing unread.
_LAST_RUN = """
SELECT o.id, r.id, r.status
FROM owners o
JOIN sync_runs r ON r.id = (SELECT MAX(x.id) FROM sync_runs x
                             WHERE ',' || x.owners || ',' LIKE '%,' || o.name || ',%')
"""
UNFINISHED = frozenset({"running", "interrupted", "failed", "rate_limited"})
_VERSIONS = """
SELECT pd.package_id, pd.digest, pd.version_id, COALESCE(pd.created_at, pd.first_seen), m.kind,
       (SELECT group_concat(t.tag, ',') FROM tags t
         WHERE t.package_id = pd.package_id AND t.digest = pd.digest AND t.last_seen IS NULL)
FROM package_digests pd LEFT JOIN manifests m ON m.digest = pd.digest
WHERE pd.last_seen IS NULL
"""
_LINKS = """
SELECT pd.package_id, mc.parent_digest, mc.child_digest, 'child'
FROM manifest_children mc JOIN package_digests pd ON pd.digest = mc.parent_digest AND pd.last_seen IS NULL
UNION ALL
SELECT pd.package_id, r.subject_digest, r.referrer_digest,
       CASE WHEN r.kind IN ('signature', 'attestation', 'sbom') THEN r.kind ELSE 'referrer' END
FROM referrers r JOIN package_digests pd ON pd.digest = r.subject_digest AND pd.last_seen IS NULL
"""
_BLOBS = """
SELECT pd.package_id, pd.digest, l.digest, l.size
FROM layers l JOIN package_digests pd ON pd.digest = l.manifest_digest AND pd.last_seen IS NULL
WHERE l.urls IS NULL
UNION ALL
SELECT pd.package_id, pd.digest, m.config_digest, m.config_size
FROM manifests m JOIN package_digests pd ON pd.digest = m.digest AND pd.last_seen IS NULL
WHERE m.config_digest IS NOT NULL
"""


def load_packages(conn, owners: Sequence[str] = (),
                  packages: Sequence[str] = ()) -> list[PackageRows]:
    """The live packages (of `owners`, named `packages`; empty = all)."""
    wanted_owners = {o.lower() for o in owners}
    chosen = [r for r in run_sql(conn, _PACKAGES)[1]
              if (not wanted_owners or r[2].lower() in wanted_owners) and (not packages or r[5] in packages)]
    if not chosen:
        return []
    incomplete = {(o, p): (run, kind, msg) for o, p, run, kind, msg in run_sql(conn, _INCOMPLETE)[1]}
    for owner_id, run, status in run_sql(conn, _LAST_RUN)[1]:
        if status in UNFINISHED:
            incomplete.setdefault((owner_id, ""), (run, status, "that sync did not finish; sync again"))
    versions, links, blobs = defaultdict(list), defaultdict(list), defaultdict(lambda: defaultdict(list))
    for pid, digest, vid, uploaded, kind, tags in run_sql(conn, _VERSIONS)[1]:
        versions[pid].append(Version(digest, vid, uploaded, kind, tuple(sorted(tags.split(","))) if tags else ()))
    for pid, parent, child, how in run_sql(conn, _LINKS)[1]:
        links[pid].append(Link(parent, child, how))
    for pid, digest, blob, size in run_sql(conn, _BLOBS)[1]:
        blobs[pid][digest].append((blob, size or 0))
    out = []
    for pid, owner_id, owner, kind, discovery, name, visibility, _synced in chosen:
        refused = _refused(incomplete, owner_id, name, discovery)
        out.append(PackageRows(owner, kind, name, visibility, tuple(versions[pid]), tuple(links[pid]),
                               {d: tuple(b) for d, b in blobs[pid].items()}, refused))
    return out


def _refused(incomplete: dict, owner_id: int, name: str, discovery: str) -> str | None:
    if discovery not in ("rest", "graphql"):
        return f"not a GitHub package (discovery {discovery}): no version ids to delete"
    for key, what in (((owner_id, name), "this package's last sync"), ((owner_id, ""), "the owner's last listing")):
        if key in incomplete:
            run, kind, message = incomplete[key]
            return f"{what} was incomplete (run {run}, {kind}: {message}); nothing is concluded from it"
    return None
