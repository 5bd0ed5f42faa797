"""`ghcr-inventory plan-cleanup`: which package versions can be deleted
without breaking anything kept — a planner, never a deleter.

- policy.py  the policy of each package: [cleanup] defaults, per owner/package
             overrides, `--policy KEY=VALUE`
- load.py    the inventory's rows, read-only; packages nothing may be
             concluded from are refused
- plan.py    the pure planner and the check every plan passes
- render.py  rows, a summary line, `gh api -X DELETE` lines for review
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Sequence

from ..config import CleanupConfig, CleanupPolicy
from .load import load_packages
from .plan import PackagePlan, plan_package
from .policy import parse_policy_options, policy_for

__all__ = ["make_plan", "parse_policy_options"]


def clock() -> datetime:
    """Now (the ages of versions are measured from it; tests move it)."""
    return datetime.now(timezone.utc)


def make_plan(conn: sqlite3.Connection, config: CleanupConfig, *, owners: Sequence[str] = (),
              packages: Sequence[str] = (), options: CleanupPolicy | None = None,
              now: datetime | None = None) -> list[PackagePlan]:
    """The plan of every live package in scope, each under its own policy."""
    now = now or clock()
    return [plan_package(rows, policy_for(config, rows.owner, rows.name, options), now)
            for rows in load_packages(conn, owners, packages)]
