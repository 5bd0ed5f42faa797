"""`ghcr-inventory serve`: GitHub's package webhooks become targeted syncs
within seconds, and a periodic reconciliation catches what GitHub never
notifies about (README "Serve: fresh within seconds").

    service.py    the process: store, listener, systemd readiness, graceful stop
    app.py        the HTTP face: POST /webhook (signature first), GET /healthz, GET /metrics
    scheduler.py  pending packages, debounce, one sync at a time under the lock, reconciliation
    telemetry.py  the Prometheus metrics of the process

The wire format (signatures, payloads, name grammar) is parsed by the pure
functions of `crawler/webhooks.py`; syncs are the engine's (`run_sync`).
"""

from .service import notify, serve

__all__ = ["notify", "serve"]
