"""Helpers for the `serve` tests: a server in process on the test's loop,
against the world, with a StepClock for its debounce and backoff; pushes
from another thread (the world delivers their webhooks to this loop);
signed and unsigned POSTs; the metrics text."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest_asyncio

from crawler.config import load_config
from crawler.credentials import Credentials
from crawler.secret import Secret
from crawler.serve import serve
from tests.support import StepClock, rows, until, write_config

SECRET = "serve-test-secret-0123456789abcdef"
DEBOUNCE = 5.0


@dataclass
class Served:
    url: str
    owner: str
    db: Path
    config: Path
    step: StepClock
    stop: asyncio.Event
    task: asyncio.Task

    def events(self, state: str | None = None) -> list[tuple]:
        sql = "SELECT delivery_id, owner, package, state, run_id FROM events"
        return rows(self.db, sql + (" WHERE state = ?" if state else ""), (state,) if state else ())

    def runs(self) -> list[tuple]:
        return rows(self.db, "SELECT id, status, requests, lower_bound FROM sync_runs ORDER BY id")


async def start(world, tmp_path, *, reconcile_s: float = 0.0, name: str = "serve.toml") -> Served:
    owner = world.new_owner("hook")
    world.builder.create_repository(owner, "src")
    extra = (f'\n[serve]\nlisten = "127.0.0.1:0"\ndebounce_s = {DEBOUNCE}\n'
             f'reconcile_interval_s = {reconcile_s}\n')
    config = write_config(world, tmp_path, [(owner, "org")], extra=extra, name=name)
    token = Secret(world.token)
    step, stop, urls = StepClock(), asyncio.Event(), []
    task = asyncio.create_task(serve(load_config(config), Credentials(token, token), Secret(SECRET), stop=stop,
                                     ready=urls.append, clock=step.clock, sleep=step.sleep))
    await until(lambda: urls or task.done(), what="the listener")
    assert urls, task.exception()
    world.add_webhook(urls[0] + "/webhook", SECRET, owner=owner)
    return Served(urls[0], owner, tmp_path / "inventory.db", config, step, stop, task)


@pytest_asyncio.fixture
async def served(world, tmp_path):
    s = await start(world, tmp_path)
    yield s
    await stop(s)


async def stop(s: Served) -> None:
    s.stop.set()
    assert await asyncio.wait_for(s.task, 30) == 0


async def push(world, *args, **kwargs):
    """A push from another thread: its webhooks are answered by the server on this loop."""
    return await asyncio.to_thread(getattr(world.builder, args[0]), *args[1:], **kwargs)


async def post(url: str, body: bytes, *, event: str = "registry_package", delivery: str = "d-1",
               signature: str | None = "good", extra: dict | None = None) -> tuple[int, dict]:
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json",
               **(extra or {})}
    if signature == "good":
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/webhook", data=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


async def metrics(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/metrics") as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
            return await resp.text()


async def until_metric(url: str, name: str, at_least: float) -> None:
    """Wait (bounded) until the sample of metric `name` reaches `at_least`."""
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        for line in (await metrics(url)).splitlines():
            if line.startswith(name + " ") and float(line.split()[-1]) >= at_least:
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} stayed below {at_least}")
