"""Enrichment: the source repositories behind the packages, from GitHub's
GraphQL API (the stage after the owners' packages are synced).

The distinct `packages.repository` values (OWNER/NAME, from the REST or
GraphQL listing) of the run's owners that are new, or whose stored facts are
older than `github.enrich_interval_s` (all of them under `--full`), are read
from the store and asked in batches of up to 100: one aliased query per batch
(crawler/queries/repositories.graphql), so 250 repositories cost 3 requests
and an unchanged inventory costs none. Facts land in `repositories` (view
`v_sources`), one transaction per batch, so a failure keeps what the batches
before it fetched.

Failures never fail the package sync; they come back as `problems` for the
engine to record:
  - a repository GitHub does not resolve (NOT_FOUND: deleted, renamed away,
    or not visible to the token) keeps the facts it had and is marked as asked;
  - an answer with only errors, or a malformed one, loses that batch only;
  - a rejected token, an exhausted rate limit or an unreachable API ends the
    stage (the remaining batches would fail alike).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

import structlog

from .errors import AuthError, GraphQLQueryError, InventoryError, PackageError, UnreachableError
from .graphql import MAX_BATCH, GraphQLClient, RepositoryBatch, SourceRepository, split_full_name
from .store import RepositoryRow, StoreReader

log = structlog.get_logger("crawler.enrich")

# Answers that will not change by asking again soon: such a repository is
# marked as asked (its old facts kept). Others (timeouts...) are retried next run.
SETTLED_TYPES = frozenset({"NOT_FOUND", "FORBIDDEN"})


class RepositoryWriter(Protocol):
    """The writes enrichment makes (the engine's writer provides them)."""

    async def save_repositories(self, rows: Iterable[RepositoryRow]) -> int: ...

    async def touch_repositories(self, names: Iterable[str]) -> int: ...


@dataclass(slots=True)
class EnrichReport:
    due: int = 0                     # repositories that needed asking
    requests: int = 0                # batches sent
    stored: int = 0                  # repositories whose facts were stored
    missing: list[str] = field(default_factory=list)
    problems: list[InventoryError] = field(default_factory=list)


def repository_row(facts: SourceRepository, stored_as: str) -> RepositoryRow:
    """The `repositories` row for GraphQL's facts. `stored_as` is the name
    the packages link to, should GitHub have followed a rename."""
    return RepositoryRow(stored_as, facts.node_id, facts.archived, facts.visibility, facts.pushed_at,
                         facts.default_branch, facts.head_oid)


async def enrich_sources(client: GraphQLClient, reader: StoreReader, writer: RepositoryWriter, *,
                         registry: str, owners: Sequence[str], max_age_s: float | None,
                         count_request: Callable[[], None] = lambda: None) -> EnrichReport:
    """Ask GraphQL about the source repositories that are due; store the
    facts through `writer` (the engine's single writer). `count_request`
    is called once per batch (the run's lower bound)."""
    report = EnrichReport()
    after = None
    while True:
        page = await reader.repositories_due(registry, owners, max_age_s, after=after, limit=MAX_BATCH)
        if not page:
            break
        after = page[-1]
        chunk = _valid(page, report)
        if not chunk:
            continue
        report.due += len(chunk)
        count_request()
        report.requests += 1
        try:
            batch = await client.repositories(chunk)
        except (AuthError, UnreachableError) as exc:   # RateLimitedError too: the rest would fail alike
            report.problems.append(exc)
            log.warning("enrichment_stopped", error=str(exc), error_type=type(exc).__name__,
                        stored=report.stored)
            break
        except PackageError as exc:                     # this batch's answer was unusable
            report.problems.append(exc)
            continue
        await _keep(batch, client, writer, report)
    log.info("enrichment_done", due=report.due, requests=report.requests, stored=report.stored,
             missing=len(report.missing), problems=len(report.problems))
    return report


def _valid(names: Sequence[str], report: EnrichReport) -> list[str]:
    """The names GraphQL can be asked about; each other one is a problem."""
    valid = []
    for name in names:
        try:
            split_full_name(name)
            valid.append(name)
        except ValueError as exc:
            report.problems.append(GraphQLQueryError(str(exc)))
    return valid


async def _keep(batch: RepositoryBatch, client: GraphQLClient, writer: RepositoryWriter, report: EnrichReport) -> None:
    """One batch's answer: the facts stored, the settled misses marked as asked."""
    rows = [repository_row(facts, name) for name, facts in batch.found.items()]
    if rows:
        await writer.save_repositories(rows)
    report.stored += len(rows)
    settled = [name for name, issue in batch.missing.items()
               if issue is None or issue.type in SETTLED_TYPES]
    if settled:
        await writer.touch_repositories(settled)
    for name, issue in batch.missing.items():
        report.missing.append(name)
        why = (f"{issue.type}: {issue.message}" if issue and issue.type else issue.message if issue
               else "null without an error")
        report.problems.append(GraphQLQueryError(f"repository {name} not resolved: {why}",
                                                 where=client.where,
                                                 types=(issue.type,) if issue and issue.type else ()))
