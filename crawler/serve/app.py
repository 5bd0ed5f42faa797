"""The HTTP face of `serve` (aiohttp.web): POST /webhook, GET /healthz,
GET /metrics.

POST /webhook, in this order: the body is read up to MAX_BODY (1 MiB; more
is refused with 413 while reading, before it is all in memory); the
signature is checked on the raw bytes (401, nothing recorded but a
counter); the delivery headers and the payload are parsed
(`crawler.webhooks`; 400 naming the field); `ping` is answered 200; a
container package event for a configured owner and package is stored as a
pending event (`EventLog.record_event`) *before* it is answered 202 and
handed to the scheduler, so a crash after the answer loses nothing; a
delivery id seen before is answered 200 and not synced again; anything else
is answered 202 and only counted. Each delivery is one log line; the
secret, the signature and the body never are.
"""

from __future__ import annotations

import time
from typing import Callable

import orjson
import structlog
from aiohttp import web

from ..config import Config
from ..discovery import Scope
from ..errors import StoreError, WebhookRejected
from ..model import utc_now
from ..secret import Secret, redact
from ..store import EventLog, EventRecord
from ..webhooks import (DELIVERY_HEADER, EVENT_HEADER, PACKAGE_EVENTS, SIGNATURE_HEADER, Delivery, Ignored,
                        PackageChange, Ping, parse_delivery, parse_event, verify_signature)
from .scheduler import Scheduler
from .telemetry import CONTENT_TYPE, Telemetry

log = structlog.get_logger("crawler.serve")

MAX_BODY = 1024 * 1024          # GitHub's package payloads are a few KiB
STALE_FACTOR = 2                # /healthz: not ready once reconciliation is this many intervals late


def build_app(config: Config, secret: Secret, events: EventLog, scheduler: Scheduler, telemetry: Telemetry, *,
              wall: Callable[[], float] = time.time) -> web.Application:
    hooks = _Handlers(config, secret, events, scheduler, telemetry, wall)
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/webhook", hooks.webhook)
    app.router.add_get("/healthz", hooks.healthz)
    app.router.add_get("/metrics", hooks.metrics)
    return app


def _answer(status: int, outcome: str, **fields) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"outcome": outcome, **fields}),
                        content_type="application/json")


class _Handlers:
    def __init__(self, config: Config, secret: Secret, events: EventLog, scheduler: Scheduler,
                 telemetry: Telemetry, wall: Callable[[], float]) -> None:
        self.config = config
        self._key = secret.reveal().encode()
        self.events = events
        self.scheduler = scheduler
        self.telemetry = telemetry
        self.wall = wall

    # -- POST /webhook ------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        event = request.headers.get(EVENT_HEADER, "")[:64] or "unknown"
        try:
            body = await request.read()      # client_max_size: 413 past MAX_BODY, while reading
        except web.HTTPRequestEntityTooLarge:
            return self._rejected(event, request, WebhookRejected(f"body over {MAX_BODY} bytes", status=413))
        try:
            verify_signature(self._key, body, request.headers.get(SIGNATURE_HEADER))
            delivery = parse_delivery(request.headers.get(EVENT_HEADER), request.headers.get(DELIVERY_HEADER))
            parsed = parse_event(delivery.event, body)
        except WebhookRejected as exc:
            return self._rejected(event, request, exc)
        if isinstance(parsed, Ping):
            return self._outcome(delivery, 200, "ping")
        if isinstance(parsed, Ignored):
            return self._outcome(delivery, 202, f"ignored_{parsed.reason}")
        return await self._package(delivery, parsed)

    async def _package(self, delivery: Delivery, change: PackageChange) -> web.Response:
        owner = self.config.owner(change.owner)
        if owner is None:
            return self._outcome(delivery, 202, "ignored_owner", owner=change.owner)
        if not Scope(owner.include, owner.exclude).configured(change.package):
            return self._outcome(delivery, 202, "ignored_scope", owner=owner.name, package=change.package)
        received = self.wall()
        record = EventRecord(delivery.delivery_id, utc_now(), delivery.event, change.action, owner.name,
                             change.package)
        try:
            new = await self.events.record_event(record)
        except StoreError as exc:   # not recorded: not accepted (GitHub shows the failure; redeliver it)
            log.error("event_not_recorded", delivery=delivery.delivery_id, error=redact(str(exc)))
            return self._outcome(delivery, 503, "store_error", owner=owner.name, package=change.package)
        if not new:
            return self._outcome(delivery, 200, "duplicate", owner=owner.name, package=change.package)
        self.scheduler.submit(owner.name, change.package, delivery.delivery_id, received)
        return self._outcome(delivery, 202, "accepted", owner=owner.name, package=change.package,
                             action=change.action, version=change.version)

    def _outcome(self, delivery: Delivery, status: int, outcome: str, **fields) -> web.Response:
        self.telemetry.deliveries.labels(delivery.event, outcome).inc()
        log.info("webhook", github_event=delivery.event, delivery=delivery.delivery_id, outcome=outcome,
                 status=status, **fields)
        fields.pop("version", None)
        return _answer(status, outcome, **fields)

    def _rejected(self, event: str, request: web.Request, exc: WebhookRejected) -> web.Response:
        outcome = {401: "rejected_signature", 413: "rejected_too_large"}.get(exc.status, "rejected_payload")
        # Unsigned input picks no label of its own (a forger could mint series without end).
        label = event if event in ("ping", *PACKAGE_EVENTS) else "other"
        self.telemetry.deliveries.labels(label, outcome).inc()
        log.warning("webhook_rejected", github_event=event, status=exc.status, reason=exc.message,
                    delivery=request.headers.get(DELIVERY_HEADER, "")[:100] or None, peer=request.remote)
        return _answer(exc.status, outcome, reason=exc.message)

    # -- GET /healthz, GET /metrics -----------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness (it answers) and readiness: the store answers, and
        reconciliation is not more than STALE_FACTOR intervals late."""
        problems = []
        try:
            await self.events.ping()
            store = "ok"
        except StoreError as exc:
            store = redact(str(exc))
            problems.append("store unreachable")
        s = self.scheduler
        interval = self.config.serve.reconcile_interval_s
        since = s.last_reconcile if s.last_reconcile is not None else s.started
        age = self.wall() - since
        if interval > 0 and age > STALE_FACTOR * interval:
            problems.append(f"no successful reconciliation for {age:.0f}s")
        body = {"status": "ok" if not problems else "degraded", "problems": problems, "store": store,
                "last_reconcile_age_s": None if s.last_reconcile is None else round(age, 1),
                "pending": s.depth, "running": s.running}
        return web.Response(status=503 if problems else 200, body=orjson.dumps(body),
                            content_type="application/json")

    async def metrics(self, request: web.Request) -> web.Response:
        try:
            self.telemetry.coverage(await self.events.coverage())
        except StoreError as exc:
            log.warning("coverage_unavailable", error=redact(str(exc)))
        return web.Response(body=self.telemetry.render(), headers={"Content-Type": CONTENT_TYPE})
