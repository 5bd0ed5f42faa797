"""The metrics of a `serve` process, for GET /metrics (Prometheus text
format, prometheus_client on a registry of its own, so two servers in one
process — the tests — never share counters).

What an operator asks: are deliveries arriving and accepted (by event and
outcome), how many packages wait (queue depth), how syncs end (by trigger
and status), how long from an event to its sync committed (histogram), the
requests the syncs spend and the rate budget left, how often a sync waited
for the lock a timer held, when reconciliation last succeeded, and how many
packages change only by reconciliation (GitHub sends no event for them).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..store import Coverage

PREFIX = "ghcr_inventory_serve"
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Telemetry:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(f"{PREFIX}_deliveries", "Webhook deliveries by event and outcome "
                                  "(accepted, duplicate, ping, ignored_*, rejected_*, store_error).",
                                  ["event", "outcome"], registry=r)
        self.queue_depth = Gauge(f"{PREFIX}_queue_depth", "Packages waiting for their targeted sync.",
                                 registry=r)
        self.syncs = Counter(f"{PREFIX}_syncs", "Syncs run, by trigger (webhook, reconcile) and status.",
                             ["trigger", "status"], registry=r)
        self.latency = Histogram(f"{PREFIX}_event_to_commit_seconds",
                                 "From receiving an event to its targeted sync committed.",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.requests = Counter(f"{PREFIX}_requests", "HTTP requests the syncs made, by kind.", ["kind"],
                                registry=r)
        self.not_modified = Counter(f"{PREFIX}_not_modified", "Requests of the syncs answered 304.", registry=r)
        self.budget = Gauge(f"{PREFIX}_rate_limit_remaining", "Requests left in a server's rate budget, as "
                            "it last said (by governor: host or GitHub resource).", ["governor"], registry=r)
        self.lock_waits = Counter(f"{PREFIX}_lock_waits", "Times a sync found another sync holding the lock "
                                  "and waited to retry.", registry=r)
        self.last_reconcile = Gauge(f"{PREFIX}_last_reconcile_timestamp_seconds",
                                    "When the last successful reconciliation finished (unix time).", registry=r)
        self.changed = Gauge(f"{PREFIX}_package_changes", "Package changes since webhooks began, by how they "
                             "were found (webhook, reconciliation).", ["found_by"], registry=r)
        self.reconcile_only = Gauge(f"{PREFIX}_reconcile_only_packages", "Packages that changed but never "
                                    "had a webhook: only reconciliation keeps them current.", registry=r)

    def sync_done(self, trigger: str, summary) -> None:
        """Count a finished run (a RunSummary)."""
        self.syncs.labels(trigger, summary.status).inc()
        for kind, count in summary.requests_by_kind.items():
            self.requests.labels(kind).inc(count)
        self.not_modified.inc(summary.not_modified)
        for governor, (remaining, _limit) in summary.budgets.items():
            self.budget.labels(governor).set(remaining)

    def coverage(self, coverage: Coverage) -> None:
        self.changed.labels("webhook").set(coverage.webhook_changes)
        self.changed.labels("reconciliation").set(coverage.reconcile_changes)
        self.reconcile_only.set(coverage.reconcile_only)

    def render(self) -> bytes:
        return generate_latest(self.registry)
