"""The life of a `serve` process.

Start: open the store (the event log's own connection; each sync opens
its own, as `sync` does), bind the listener (`serve.listen`, loopback by
default: TLS ends at a reverse proxy), tell systemd it is ready
(`Type=notify`: READY=1 on $NOTIFY_SOCKET), then hand the events a
previous process left pending to the scheduler, which syncs them before
its first reconciliation.

Stop (SIGTERM, SIGINT, or `stop` set by a caller): stop accepting (the
listener closes; a delivery being answered finishes), the sync in flight
finishes or rolls back its package (the engine's stop signal, within its
grace), the loops end and the store closes; the service then exits 0. An
event not yet synced stays pending in the store for the next start.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Callable, Mapping

import structlog
from aiohttp import web

from ..config import Config, parse_listen
from ..credentials import Credentials
from ..errors import UsageError
from ..secret import Secret
from ..store import open_store
from .app import build_app
from .scheduler import Scheduler
from .telemetry import Telemetry

log = structlog.get_logger("crawler.serve")

SHUTDOWN_S = 5.0        # requests being answered when the stop came may take this long


async def serve(config: Config, creds: Credentials, secret: Secret, *, stop: asyncio.Event | None = None,
                ready: Callable[[str], None] | None = None, **scheduler_options) -> int:
    """Run until `stop` is set; 0 when stopped. `ready(url)` once listening.
    `scheduler_options`: injected time (`clock`, `sleep`, `wall`) for tests."""
    if not config.owners:
        raise UsageError("serve needs at least one [[owners]] to sync", where=config.source)
    stop = stop or asyncio.Event()
    telemetry = Telemetry()
    store = await open_store(config.database)
    try:
        scheduler = Scheduler(config, creds, store.events, telemetry, stop=stop, **scheduler_options)
        runner = web.AppRunner(build_app(config, secret, store.events, scheduler, telemetry), access_log=None,
                               handle_signals=False, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        cleaned = False
        try:
            url = await _listen(runner, config)
            log.info("serve_listening", url=url, owners=[o.name for o in config.owners],
                     debounce_s=config.serve.debounce_s, reconcile_interval_s=config.serve.reconcile_interval_s)
            notify(f"READY=1\nSTATUS=listening on {url}")
            if ready is not None:
                ready(url)
            pending = await store.events.pending_events()
            starter = asyncio.create_task(scheduler._guard(scheduler.start(pending)), name="serve:start")
            await stop.wait()
            log.info("serve_stopping", pending=scheduler.depth, running=scheduler.running)
            notify("STOPPING=1")
            cleaned = True
            await runner.cleanup()           # no new connections; deliveries being answered finish
            await scheduler.close()          # the sync in flight finishes or rolls back
            await asyncio.gather(starter, return_exceptions=True)
        finally:
            if not cleaned:
                await runner.cleanup()
    finally:
        await store.close()
    if scheduler.failure is not None:
        raise scheduler.failure
    log.info("serve_stopped")
    return 0


async def _listen(runner: web.AppRunner, config: Config) -> str:
    host, port = parse_listen(config.serve.listen, config.source)
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on {config.serve.listen}: {exc.strerror or exc}",
                         where=f"{config.source}: serve.listen") from None
    return f"http://{f'[{host}]' if ':' in host else host}:{site.port}"   # the port: also when 0 was asked


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a
    path, or '@' for the abstract namespace). False when not under systemd
    or the socket is gone (never fatal)."""
    path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify_failed", socket=path, error=str(exc))
        return False
    return True
