"""Canned reports: `ghcr-inventory report NAME` and the Datasette canned queries.

Each report is a documented view in schema.sql (the "Reports" section says
what every column means and which semantics were chosen) plus the query that
presents it here. The same SQL is served to Datasette by
scripts/datasette-metadata.yaml, which `python -m crawler.reports` writes
from this module, so the two never drift.

A report that needs data a stage may not have produced (the source
repositories the GraphQL stage fetches) still runs, and says in its `note`
what is missing instead of answering with a silently empty table.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass
from typing import Callable

from .errors import QueryError, UsageError

Rows = list[tuple]


@dataclass(frozen=True)
class Report:
    name: str
    description: str  # one line, shown by `report --list` and in Datasette
    view: str
    sql: str  # may use the named parameter :days
    note: Callable[[sqlite3.Connection, Rows, int], str | None] | None = None
    transpose: bool = False  # one row shown as (metric, value) pairs: fits one screen


def _sources_note(name: str, probe: str) -> Callable[[sqlite3.Connection, Rows, int], str | None]:
    """A note when the GraphQL stage's repository facts the report needs are
    missing: `probe` counts the rows that would make the report meaningful."""
    def note(conn: sqlite3.Connection, rows: Rows, days: int) -> str | None:
        if conn.execute(probe).fetchone()[0]:
            return None
        return (f"report {name}: no source-repository facts yet (v_sources / table repositories "
                "is empty): the GraphQL enrichment stage has not fetched the packages' source "
                "repositories, so this report cannot tell and shows nothing; run a sync against "
                "GitHub with a token that can read those repositories, then run it again")
    return note


_STALE_PROBE = "SELECT COUNT(*) FROM v_sources WHERE head_oid IS NOT NULL"
_VISIBILITY_PROBE = ("SELECT COUNT(*) FROM packages p JOIN repositories r ON r.name_with_owner = p.repository "
                     "WHERE p.deleted_at IS NULL AND r.visibility IS NOT NULL")


def _orphans_note(conn: sqlite3.Connection, rows: Rows, days: int) -> str | None:
    total = conn.execute(
        "SELECT COALESCE(SUM(blob_size), 0) FROM (SELECT DISTINCT blob_digest, blob_size "
        "FROM v_orphan_blobs WHERE reclaimable = 1) rb").fetchone()[0]
    return (f"{len(rows)} orphan{'s' if len(rows) != 1 else ''}; deleting them all frees "
            f"{total} bytes (layers shared between orphans counted once)")


def _moved_note(conn: sqlite3.Connection, rows: Rows, days: int) -> str | None:
    runs = conn.execute("SELECT COUNT(*) FROM sync_runs WHERE status IN ('ok', 'partial')").fetchone()[0]
    if runs < 2:
        return ("report moved: a move is seen when a sync finds a tag on another digest than the "
                f"sync before; this database has {runs} successful sync{'s' if runs != 1 else ''}")
    return None


def _unattested_note(conn: sqlite3.Connection, rows: Rows, days: int) -> str | None:
    """Say how many rows GitHub's attestation store could not be asked about:
    those images may be attested there (unknown is not none)."""
    unsure = sum(1 for r in rows if r[-1] in ("unknown", "not asked"))
    if not unsure:
        return None
    return (f"{unsure} of these {len(rows)} images: GitHub's attestations API could not tell (github_coverage "
            "unknown: the token cannot read attestations, fine-grained tokens need attestations:read; or not "
            "asked yet): they may be attested there")

def _coverage_note(conn: sqlite3.Connection, rows: Rows, days: int) -> str | None:
    if not conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]:
        return ("report webhook-coverage: no webhook delivery recorded yet: it compares what "
                "`ghcr-inventory serve` was told with what reconciliation found (README \"Serve\")")
    only = sum(1 for r in rows if r[3])
    return (f"{only} of {len(rows)} changed package{'s' if len(rows) != 1 else ''} changed only by "
            "reconciliation: GitHub sends no webhook for them (no source repository? see report "
            "missing-source)")


LARGEST_LIMIT = 25


def _largest_note(conn: sqlite3.Connection, rows: Rows, days: int) -> str | None:
    total = conn.execute("SELECT COUNT(*) FROM v_package_sizes").fetchone()[0]
    if total > len(rows):
        return (f"the {len(rows)} largest of {total} packages; all of them: "
                "ghcr-inventory query 'SELECT * FROM v_package_sizes ORDER BY bytes DESC'")
    return None


_REPORTS = (
    Report("unsigned", "Tagged images (or multi-arch indexes) that no signature describes.",
           "v_unsigned",
           "SELECT owner, package, digest, kind, tag_count, tags, attested, sbom, github_attested, attested_by\n"
           "FROM v_unsigned\n"
           "ORDER BY owner, package, digest"),
    Report("missing-source", "Tagged images without an org.opencontainers.image.source label.",
           "v_missing_source",
           "SELECT owner, package, digest, kind, tag_count, tags, repository\n"
           "FROM v_missing_source\n"
           "ORDER BY owner, package, digest"),
    Report("stale", "Tagged images whose revision is not their source repository's head commit.",
           "v_stale",
           "SELECT owner, package, digest, tags, revision, repository, default_branch, head_oid, archived,\n"
           "       signer_commit, signer_matches_revision\n"
           "FROM v_stale\n"
           "ORDER BY owner, package, digest",
           note=_sources_note("stale", _STALE_PROBE)),
    Report("orphans", "Untagged, unreferenced versions, with the bytes deleting them frees.",
           "v_orphans",
           "SELECT owner, package, digest, kind, created, uploaded_at, size, reclaimable_bytes\n"
           "FROM v_orphans\n"
           "ORDER BY reclaimable_bytes DESC, owner, package, digest",
           note=_orphans_note),
    Report("platforms", "Platform coverage per package: which platforms its tagged images offer.",
           "v_platforms",
           "SELECT owner, package, COUNT(*) AS platform_count,\n"
           "       group_concat(platform || CASE WHEN images < tagged_images\n"
           "                                     THEN ' (' || images || '/' || tagged_images || ')'\n"
           "                                     ELSE '' END, ', ') AS platforms,\n"
           "       MAX(tagged_images) AS tagged_images\n"
           "FROM (SELECT * FROM v_platforms ORDER BY owner, package, platform) pl\n"
           "GROUP BY owner, package\n"
           "ORDER BY owner, package"),
    Report("largest", "Packages by stored compressed size (layers shared within a package counted once).",
           "v_package_sizes",
           "SELECT owner, package, bytes, blobs, versions, tags\n"
           "FROM v_package_sizes\n"
           "ORDER BY bytes DESC, owner, package\n"
           f"LIMIT {LARGEST_LIMIT}",
           note=_largest_note),
    Report("moved", "Tags that moved to another digest in the last N days (--days, default 7).",
           "v_tag_moves",
           "SELECT owner, package, tag, from_digest, to_digest, moved_at\n"
           "FROM v_tag_moves\n"
           "WHERE moved_at >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now',\n"
           "                           '-' || CAST(COALESCE(NULLIF(:days, ''), '7') AS INTEGER) || ' days')\n"
           "ORDER BY moved_at DESC, owner, package, tag",
           note=_moved_note),
    Report("public-from-private", "Public packages whose source repository is private or internal.",
           "v_public_from_private",
           "SELECT owner, package, visibility, repository, repository_visibility, archived\n"
           "FROM v_public_from_private\n"
           "ORDER BY owner, package",
           note=_sources_note("public-from-private", _VISIBILITY_PROBE)),
    Report("broken", "Multi-arch indexes whose child manifests the registry no longer has (404).",
           "v_broken_indexes",
           "SELECT owner, package, digest, tags, platform, child_digest, reference_type\n"
           "FROM v_broken_indexes\n"
           "ORDER BY owner, package, digest, position"),
    Report("unattested", "Tagged images no attestation describes, in the registry or in GitHub's attestation store.",
           "v_unattested",
           "SELECT owner, package, digest, kind, tag_count, tags, signed, github_coverage\n"
           "FROM v_unattested\n"
           "ORDER BY owner, package, digest",
           note=_unattested_note),
    Report("summary", "One screen: owners, packages, tags, images, signed %, orphans, last sync.",
           "v_summary",
           "SELECT * FROM v_summary",
           transpose=True),
    Report("webhook-coverage", "Packages whose changes arrive only by reconciliation (GitHub sends no webhook).",
           "v_coverage",
           "SELECT owner, package, repository, reconcile_only, webhook_changes, reconcile_changes,\n"
           "       deliveries, last_change\n"
           "FROM v_coverage\n"
           "ORDER BY reconcile_only DESC, owner, package",
           note=_coverage_note),
)

REPORTS: dict[str, Report] = {r.name: r for r in _REPORTS}


def run_report(conn: sqlite3.Connection, name: str, days: int = 7) -> tuple[list[str], Rows, str | None]:
    """Run report `name`; returns (columns, rows, note). The note (or None)
    tells what the rows cannot show, e.g. that a stage's data is missing."""
    report = REPORTS.get(name)
    if report is None:
        raise UsageError(f"unknown report {name!r}; reports: {', '.join(REPORTS)}")
    if days < 0:
        raise UsageError(f"--days {days}: use a number of days >= 0")
    try:
        cur = conn.execute(report.sql, {"days": days} if ":days" in report.sql else {})
        rows = cur.fetchall()
        columns = [d[0] for d in cur.description]
        note = report.note(conn, rows, days) if report.note else None
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise QueryError(f"report {name}: the database lacks its view ({exc}); a sync with this "
                             "version of ghcr-inventory brings the views up to date") from None
        raise QueryError(f"report {name}: {exc}") from None
    if report.transpose:
        return ["metric", "value"], [(c, v) for r in rows for c, v in zip(columns, r)], note
    return columns, rows, note


# --- Datasette ------------------------------------------------------------------

# One line per view of the query surface: the stable views (README "The SQL surface")
# and the report views (schema.sql documents each one in full).
VIEWS = {
    "v_packages": "Packages per owner: visibility, source repository, GitHub's timestamps, sync times.",
    "v_tags": "Current tags: tag -> digest, with the manifest's media type and kind.",
    "v_tag_history": "Every span a tag pointed at a digest; last_seen is NULL while it still does.",
    "v_images": "Every version a package holds: kind, platform, parent index, labels, size, tags.",
    "v_labels": "Config labels and manifest annotations by digest.",
    "v_descriptor_annotations": "Annotations on the descriptors a manifest holds: index entries, layers, "
                                "config, subject.",
    "v_referrers": "Signatures, attestations, SBOMs and artifacts linked to the digest they describe.",
    "v_sources": "Source repositories of packages (GraphQL stage): archived, visibility, head commit, "
                 "whether the tagged revision is the head.",
    "v_sync_runs": "Every sync run: mode, status, requests, 304s, packages changed, errors.",
    "v_blobs": "Config and layer blobs of every image manifest (stored = 0: foreign layer).",
    "v_tagged_images": "Tagged images and indexes: signed, attested, SBOM, source, revision.",
    "v_unsigned": "Tagged images that no signature describes.",
    "v_attestations": "Attestations of every digest, from registry referrers and GitHub's attestations API: "
                      "predicate, signer workflow, repository, ref and commit, verified.",
    "v_unattested": "Tagged images no attestation describes (either source), with GitHub's coverage.",
    "v_missing_source": "Tagged images without an org.opencontainers.image.source.",
    "v_stale": "Tagged images whose revision is not their source repository's head commit.",
    "v_public_from_private": "Public packages whose source repository is private or internal.",
    "v_untagged": "Untagged versions and why they exist: child-of-tagged-index, referrer-of-tagged, orphan.",
    "v_orphan_blobs": "The blobs of every orphan, and whether deleting the orphans frees them.",
    "v_orphans": "Untagged, unreferenced versions with the bytes deleting them frees.",
    "v_platforms": "Platforms offered by each package's tagged images.",
    "v_package_sizes": "What each package stores: distinct blob bytes over all its versions.",
    "v_tag_moves": "Every time a tag moved to another digest.",
    "v_incomplete_listings": "Packages (or owners' listings) whose last listing did not end complete; "
                             "plan-cleanup refuses them.",
    "v_broken_indexes": "Children a multi-arch index lists that the registry no longer has (404).",
    "v_summary": "One row: owners, packages, tags, images, signed %, orphans, reclaimable bytes, last sync.",
    "v_coverage": "Per package changed since webhooks began: changes found by webhook vs by reconciliation.",
}

DATABASE = "inventory"  # Datasette names a database after its file: inventory.db


def datasette_metadata() -> dict:
    """The Datasette metadata (as a dict) for an inventory database."""
    return {
        "title": "ghcr-inventory",
        "description": "Container images of GitHub owners on ghcr.io (or any OCI registry), "
                       "inventoried by ghcr-inventory. Start with the v_* views and the canned "
                       "reports; schema.sql documents every view.",
        "databases": {
            DATABASE: {
                "description": "The v_* views are the stable query surface; the tables are the "
                               "engine's normalised storage.",
                "tables": {
                    **{view: {"description": text} for view, text in VIEWS.items()},
                    "http_cache": {"hidden": True},
                },
                "queries": {
                    r.name: {"title": f"report {r.name}", "description": r.description, "sql": r.sql}
                    for r in _REPORTS
                },
            }
        },
    }


def to_yaml(value, indent: int = 0) -> str:
    """A small YAML emitter for nested dicts of strings and booleans: strings
    as JSON-quoted scalars (valid YAML), multi-line ones as literal blocks."""
    import json

    pad = " " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{key}:")
            lines.append(to_yaml(item, indent + 2).rstrip("\n"))
        elif isinstance(item, bool):
            lines.append(f"{pad}{key}: {'true' if item else 'false'}")
        elif "\n" in item:
            lines.append(f"{pad}{key}: |-")
            lines += [f"{pad}  {line}" if line else "" for line in item.split("\n")]
        else:
            lines.append(f"{pad}{key}: {json.dumps(item)}")
    return "\n".join(lines) + "\n"


def datasette_yaml() -> str:
    return ("# Datasette metadata for a ghcr-inventory database: the documented views and the\n"
            "# canned reports. Written by `python -m crawler.reports` from crawler/reports.py\n"
            "# (tests/test_datasette.py checks it is current).\n"
            "#   datasette inventory.db -m scripts/datasette-metadata.yaml\n"
            f"# The `databases.{DATABASE}` section applies to a file named {DATABASE}.db.\n"
            + to_yaml(datasette_metadata()))


if __name__ == "__main__":  # pragma: no cover - exercised through datasette_yaml()
    sys.stdout.write(datasette_yaml())
