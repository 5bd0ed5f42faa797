"""crawler/serve/scheduler.py as a unit, with stand-ins for the engine's
`run_sync` and the store's EventLog: which events end done or failed, what
is tried again (a run cut by its timeout, a failing store), and that
nothing runs before the debounce window closes."""

from __future__ import annotations

import asyncio

import pytest

from crawler.config import Config, OwnerConfig, ServeConfig
from crawler.credentials import Credentials
from crawler.engine import RunSummary
from crawler.errors import StoreBusyError
from crawler.serve.scheduler import Scheduler
from crawler.serve.telemetry import Telemetry
from tests.support import StepClock, until


class Events:
    """The EventLog's finish_events, remembered."""

    def __init__(self) -> None:
        self.finished: dict[str, tuple[str, str | None]] = {}

    async def finish_events(self, delivery_ids, state, run_id, message) -> None:
        for delivery in delivery_ids:
            self.finished[delivery] = (state, message)


class Sync:
    """run_sync's stand-in: answers from a script of outcomes, records the options."""

    def __init__(self, *outcomes) -> None:
        self.outcomes = list(outcomes)
        self.calls: list = []

    async def __call__(self, config, creds, options, **_):
        self.calls.append(options)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        status, errors = outcome
        return RunSummary(run_id=len(self.calls), status=status, errors=list(errors),
                          message="; ".join(errors))


def scheduler(sync: Sync, events: Events, step: StepClock) -> Scheduler:
    config = Config(owners=(OwnerConfig("acme"),), serve=ServeConfig(debounce_s=5, reconcile_interval_s=0))
    return Scheduler(config, Credentials(None, None), events, Telemetry(), stop=asyncio.Event(),
                     clock=step.clock, sleep=step.sleep, sync=sync)


@pytest.fixture
def step():
    return StepClock()


async def test_nothing_runs_before_the_window_then_one_run_for_all(step):
    sync, events = Sync(("ok", [])), Events()
    s = scheduler(sync, events, step)
    for n, package in enumerate(["b", "a", "b"]):
        s.submit("acme", package, f"d{n}", 0.0)
    step.advance(4.9)
    await asyncio.sleep(0.05)
    assert sync.calls == [] and s.depth == 2
    step.advance(0.2)
    await until(lambda: len(events.finished) == 3, what="the events finished")
    (options,) = sync.calls
    assert (options.owners, options.packages, options.trigger) == (("acme",), ("a", "b"), "webhook")
    assert set(events.finished.values()) == {("done", None)} and s.depth == 0
    await s.close()


async def test_a_partial_run_fails_only_the_packages_it_names(step):
    sync, events = Sync(("partial", ["acme/bad: manifest sha256:… does not match"])), Events()
    s = scheduler(sync, events, step)
    s.submit("acme", "bad", "d-bad", 0.0)
    s.submit("acme", "good", "d-good", 0.0)
    step.advance(5)
    await until(lambda: len(events.finished) == 2, what="the events finished")
    assert events.finished["d-good"] == ("done", None)
    assert events.finished["d-bad"][0] == "failed" and "does not match" in events.finished["d-bad"][1]
    await s.close()


async def test_a_run_cut_by_its_timeout_and_a_failing_store_are_tried_again(step):
    busy = StoreBusyError("the database stayed locked by another process", where="inventory.db")
    sync, events = Sync(("interrupted", []), busy, ("ok", [])), Events()
    s = scheduler(sync, events, step)
    s.submit("acme", "app", "d-1", 0.0)
    step.advance(5)
    await until(lambda: len(sync.calls) == 1, what="the first run")
    assert events.finished == {} and s.depth == 1       # not a stop: the events wait for the next window
    step.advance(5)
    await until(lambda: len(sync.calls) == 2, what="the second run (store busy)")
    step.advance(1)                                     # RETRY_S later
    await until(lambda: events.finished, what="the retried run")
    assert events.finished == {"d-1": ("done", None)} and len(sync.calls) == 3
    await s.close()


async def test_a_stop_leaves_the_events_pending(step):
    sync, events = Sync(("interrupted", [])), Events()
    s = scheduler(sync, events, step)
    s.submit("acme", "app", "d-1", 0.0)
    s.stop.set()
    step.advance(5)
    await s.close()
    assert sync.calls == [] and events.finished == {}


class Store:
    """The EventLog's ping and coverage, failing or not."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail

    async def ping(self) -> None:
        if self.fail:
            from crawler.errors import StoreError
            raise StoreError("cannot create or open for writing (Read-only file system)", where="inventory.db")

    async def coverage(self):
        from crawler.store import Coverage
        return Coverage(packages=3, reconcile_only=1, webhook_changes=4, reconcile_changes=2)


async def test_healthz_is_503_with_the_reasons_when_the_store_fails_or_reconciliation_is_late(step):
    from aiohttp.test_utils import TestClient, TestServer

    from crawler.secret import Secret
    from crawler.serve.app import build_app
    config = Config(owners=(OwnerConfig("acme"),), serve=ServeConfig(reconcile_interval_s=60))
    for fail, late, problems in [(False, 0, []), (True, 0, ["store unreachable"]),
                                 (False, 121, ["no successful reconciliation for 121s"])]:
        s = scheduler(Sync(), Events(), step)
        s.config = config
        s.started = 1000.0
        store = Store(fail)
        app = build_app(config, Secret("x" * 20), store, s, s.telemetry, wall=lambda: 1000.0 + late)
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/healthz")
            body = await resp.json()
            assert (resp.status, body["problems"]) == (503 if problems else 200, problems)
            metrics = await (await client.get("/metrics")).text()
        assert "ghcr_inventory_serve_reconcile_only_packages 1.0" in metrics
        await s.close()


async def test_a_wait_ends_at_its_deadline_however_late_its_sleep_starts(step):
    """The debounce/retry sleep reads the time left when it starts: time that
    moved between making the sleep task and its first step (a loaded loop;
    the step clock here) shortens the sleep instead of pushing its end out."""
    s = scheduler(Sync(), Events(), step)
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        await step.sleep(seconds)

    s.sleep = sleep
    waiting = asyncio.ensure_future(s._wait(until=10.0))
    await asyncio.sleep(0)      # _wait has made its sleep task; the task has not run yet
    step.advance(4.0)           # time moves before it does
    await until(lambda: asked, what="the sleep started")
    assert asked == [6.0]
    step.advance(6.0)           # the deadline: 10.0, not 4.0 + 10.0
    await asyncio.wait_for(waiting, 5)
    await s.close()
