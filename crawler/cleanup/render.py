"""A cleanup plan for a person: rows for the table/JSON/CSV formats, and
`--format script`, `gh api -X DELETE …/versions/ID` lines to review and run
by hand (parents first, so a half-run script never leaves a tagged index
without its children). Names are escaped (`printable`) in comments and
quoted for the shell."""

from __future__ import annotations

import shlex
from urllib.parse import quote

from ..output import printable
from .plan import PackagePlan

__all__ = ["COLUMNS", "plan_rows", "script", "summary"]

COLUMNS = ["owner", "package", "version_id", "digest", "kind", "tags", "reason", "bytes", "caveat"]


def plan_rows(plans: list[PackagePlan]) -> list[tuple]:
    return [(p.owner, p.package, p.version_id, p.digest, p.kind, ",".join(p.tags) or None, p.reason, p.bytes,
             p.caveat) for plan in plans for p in plan.proposals]


def delete_path(owner: str, owner_kind: str, package: str, version_id: int) -> str:
    base = "orgs" if owner_kind == "org" else "users"
    return (f"/{base}/{quote(owner, safe='')}/packages/container/{quote(package, safe='')}"
            f"/versions/{int(version_id)}")


def summary(plans: list[PackagePlan]) -> str:
    count = sum(len(p.proposals) for p in plans)
    packages = sum(1 for p in plans if p.proposals)
    freed = sum(p.bytes for p in plans)
    refused = [p for p in plans if p.refused]
    text = (f"plan-cleanup: {count} version{'s' if count != 1 else ''} in {packages} "
            f"package{'s' if packages != 1 else ''}, {freed} bytes freed (layers shared within a package "
            f"counted once); nothing was deleted")
    if refused:
        text += f"; {len(refused)} package{'s' if len(refused) != 1 else ''} refused"
    return text


def script(plans: list[PackagePlan]) -> str:
    lines = ["#!/bin/sh", "# A deletion plan by ghcr-inventory plan-cleanup. Review it before running it:",
             "# the tool itself deleted nothing. Parents come before their followers.",
             f"# {summary(plans)}"]
    for plan in plans:
        if plan.refused:
            lines.append(f"# refused {printable(plan.owner)}/{printable(plan.package)}: {printable(plan.refused)}")
    for plan in plans:
        for p in plan.proposals:
            shown = ",".join(p.tags[:5]) + (f",… (+{len(p.tags) - 5})" if len(p.tags) > 5 else "")
            tags = f" tags {shown}" if p.tags else ""
            lines.append(f"# {printable(p.owner)}/{printable(p.package)} {p.digest}{printable(tags)}: "
                         f"{printable(p.reason)}; frees {p.bytes} bytes")
            if p.caveat:
                lines.append(f"# caveat: {p.caveat}")
            lines.append(f"gh api -X DELETE {shlex.quote(delete_path(p.owner, p.owner_kind, p.package, p.version_id))}")
    return "\n".join(lines) + "\n"
