"""Prometheus textfile-collector metrics for the last run (`sync --metrics-file`).

node_exporter's textfile collector reads *.prom files; the file is written to
a temporary name and renamed, so a scrape never sees half of it. Writing it
comes after the sync committed its results: a failure (a parent that is a
file, a read-only or full file system) is one StoreError line (73/74) that
says the results are committed.
"""

from __future__ import annotations

import calendar
import os
import tempfile
import time
from pathlib import Path

from .errors import StoreError, storage_error
from .files import make_parent
from .store.reading import open_reader

STATUSES = ("ok", "partial", "failed", "interrupted", "rate_limited")
PREFIX = "ghcr_inventory"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    """Every digit: `:g` keeps six significant ones, which turns a unix time
    into 1.79536e+09 (minutes off) and rounds large counters."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render_metrics(summary, inventory: dict[str, float], now: float) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help: str, samples: list[tuple[dict, float]]) -> None:
        full = f"{PREFIX}_{name}"
        lines.append(f"# HELP {full} {help}")
        lines.append(f"# TYPE {full} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            lines.append(f"{full}{{{text}}} {_number(value)}" if text else f"{full} {_number(value)}")

    metric("last_run_timestamp_seconds", "gauge", "When the last sync finished (unix time).", [({}, now)])
    metric("last_run_duration_seconds", "gauge", "Wall time of the last sync.", [({}, summary.duration_s)])
    metric("last_run_status", "gauge", "1 for the last sync's status.",
           [({"status": s}, 1 if summary.status == s else 0) for s in STATUSES])
    metric("last_run_exit_code", "gauge", "Exit code of the last sync.", [({}, summary.exit_code)])
    metric("last_run_requests", "gauge", "HTTP requests of the last sync by kind.",
           [({"kind": k}, v) for k, v in sorted(summary.requests_by_kind.items())] or [({"kind": "none"}, 0)])
    metric("last_run_not_modified", "gauge", "Requests answered 304 Not Modified.", [({}, summary.not_modified)])
    metric("last_run_lower_bound", "gauge", "Fewest requests the last sync could have made.",
           [({}, summary.lower_bound)])
    metric("last_run_packages", "gauge", "Packages by outcome in the last sync.",
           [({"outcome": "changed"}, summary.packages_changed), ({"outcome": "unchanged"}, summary.packages_skipped),
            ({"outcome": "failed"}, summary.packages_failed), ({"outcome": "deleted"}, summary.packages_deleted)])
    metric("last_run_errors", "gauge", "Errors recorded by the last sync.", [({}, len(summary.errors))])
    metric("last_run_faults", "gauge", "Transient faults met (retried or waited out) by kind.",
           [({"fault": k}, v) for k, v in sorted(summary.faults.items())] or [({"fault": "none"}, 0)])
    for name, help in (("packages", "Packages in the inventory (not deleted)."),
                       ("images", "Digests held by packages (v_images rows)."),
                       ("tags", "Current tags."),
                       ("last_success_timestamp_seconds", "When the newest ok/partial sync finished.")):
        if name in inventory:
            metric(name, "gauge", help, [({}, inventory[name])])
    return "\n".join(lines) + "\n"


def inventory_counts(db, password=None) -> dict[str, float]:
    """Counts of the inventory (an SQLite file, or a DatabaseConfig naming
    either store); {} when it cannot be read: the run metrics still count."""
    try:
        conn = open_reader(db, password)
    except Exception:  # no database yet: the run metrics still get written
        return {}
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        counts = {"packages": one("SELECT COUNT(*) FROM v_packages WHERE deleted_at IS NULL"),
                  "images": one("SELECT COUNT(*) FROM v_images"), "tags": one("SELECT COUNT(*) FROM v_tags")}
        last = one("SELECT MAX(finished_at) FROM sync_runs WHERE status IN ('ok', 'partial')")
        if last:
            counts["last_success_timestamp_seconds"] = calendar.timegm(time.strptime(last, "%Y-%m-%dT%H:%M:%SZ"))
        return counts
    except Exception:   # sqlite3.Error, or the PostgreSQL reader's translated errors
        return {}
    finally:
        conn.close()


COMMITTED = "the sync itself finished and its results are committed"


def write_metrics(path: Path, summary, db=None, password=None) -> None:
    text = render_metrics(summary, inventory_counts(db, password) if db else {}, time.time())
    try:
        make_parent(path, "metrics file")
        _write_atomically(path, text)
    except (OSError, StoreError) as exc:   # StoreError: make_parent names a parent that is a file
        raise storage_error(exc, str(path), note=COMMITTED) from None


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".prom.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
