"""`serve` under faults and bad input: forged, replayed, oversized and
malformed deliveries, a timer holding the lock, packages GitHub never
announces, a crash between the 202 and the sync (SIGKILL of a real
`ghcr-inventory serve`), SIGTERM in the middle of a sync, and a missing
secret. Every scenario is a row of RELIABILITY asserted by the test it
names (README's table is rendered from these rows)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson

from crawler.lock import SyncLock
from crawler.sandbox.faults import FOREVER
from crawler.serve.app import MAX_BODY
from tests.reliability import Row
from tests.serving import (DEBOUNCE, SECRET, metrics, post, push, served, start, stop,  # noqa: F401 - fixture
                           until_metric)
from tests.support import integrity_ok, rows, until, write_config

ROOT = Path(__file__).resolve().parent.parent

RELIABILITY = [
    Row("serve-signature", "a webhook with no, a wrong, or a SHA-1 (`sha1=`, `X-Hub-Signature`) signature",
        "401 before the body is parsed; nothing recorded but a counter",
        test="test_signatures_are_checked_before_anything_is_read"),
    Row("serve-replay", "the same delivery again (GitHub's Redeliver keeps `X-GitHub-Delivery`)",
        "200 `duplicate`; not synced again", test="test_a_replayed_delivery_is_recognised_and_not_synced_again"),
    Row("serve-bodies", "a webhook body over 1 MiB; malformed JSON; a field of the wrong type; an owner or "
        "package name outside GitHub's grammar (escape sequences); another event, ecosystem or owner",
        "413; 400 naming the field; 202 ignored and counted; nothing recorded",
        test="test_oversized_malformed_and_foreign_bodies"),
    Row("serve-lock", "an event while a timer's `sync` holds the lock",
        "the targeted sync waits and retries (backoff), never dropped; runs once the lock is free",
        test="test_an_event_during_a_timers_sync_waits_for_the_lock"),
    Row("serve-unannounced", "a push GitHub sends no webhook for (no source repository)",
        "found by the next reconciliation; `report webhook-coverage` and a metric name it",
        test="test_reconciliation_catches_a_package_github_never_announced"),
    Row("serve-crash", "`serve` killed (SIGKILL) after answering 202, before the sync",
        "the event was stored first; the next start syncs it", test="test_a_crash_after_the_202_loses_nothing"),
    Row("serve-sigterm", "SIGTERM to `serve` in the middle of a sync",
        "stops accepting, the package in flight rolled back, exit 0; the event stays pending and the next "
        "start syncs it", test="test_sigterm_mid_sync_rolls_back_and_exits_0"),
    Row("serve-secret", "`serve` without a webhook secret, with one under 16 characters, or a `listen` "
        "address in use", "exit 2 before listening, one line naming the key; the secret never echoed",
        test="test_serve_refuses_to_start_without_a_usable_secret_or_address"),
]


async def test_a_replayed_delivery_is_recognised_and_not_synced_again(world, served):
    s = served
    await push(world, "push_image", s.owner, "app", tags=["v1"], repository=f"{s.owner}/src")
    s.step.advance(DEBOUNCE)
    await until(lambda: s.events("done"), what="the first sync")
    (delivery,) = world.deliveries(s.owner, "app")
    again = await asyncio.to_thread(world.redeliver, delivery.id)
    assert again.status == 200 and again.attempts == 2
    s.step.advance(DEBOUNCE)
    assert len(s.events()) == 1 and len(s.runs()) == 1
    assert 'outcome="duplicate"} 1.0' in await metrics(s.url)




async def test_signatures_are_checked_before_anything_is_read(world, served):
    s = served
    ping = orjson.dumps({"zen": "Design for failure.", "hook_id": 1})
    assert (await post(s.url, ping, event="ping"))[0] == 200
    body = orjson.dumps({"action": "published", "registry_package": {"name": "app", "namespace": s.owner,
                                                                     "package_type": "CONTAINER"}})
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    wrong = "sha256=" + hmac.new(b"not the secret", body, hashlib.sha256).hexdigest()
    for signature, extra in [(None, {}), (wrong, {}), (sha1, {}), (None, {"X-Hub-Signature": sha1}),
                             ("sha256=" + "0" * 64, {})]:
        status, answer = await post(s.url, body, signature=signature, extra=extra)
        assert status == 401 and answer["outcome"] == "rejected_signature", (signature, extra)
    # a bad signature over malformed JSON is still a 401: the body is never parsed unsigned
    assert (await post(s.url, b"{broken", signature=wrong))[0] == 401
    assert s.events() == [] and s.runs() == []
    text = await metrics(s.url)
    assert 'ghcr_inventory_serve_deliveries_total{event="registry_package",outcome="rejected_signature"} 6.0' in text
    assert 'outcome="ping"} 1.0' in text




async def test_oversized_malformed_and_foreign_bodies(world, served):
    s = served

    def package(**fields) -> bytes:
        return orjson.dumps({"action": "published", "registry_package": {
            "name": "app", "namespace": s.owner, "package_type": "CONTAINER", **fields}})

    big = b'{"pad": "' + b"x" * MAX_BODY + b'"}'
    assert (await post(s.url, big, signature="sha256=" + "0" * 64))[0] == 413
    status, answer = await post(s.url, b"{not json")
    assert (status, answer["reason"][:22]) == (400, "body is not valid JSON")
    status, answer = await post(s.url, package(name=["app"]))
    assert status == 400 and "'registry_package.name' must be a non-empty string, not list" in answer["reason"]
    status, answer = await post(s.url, package(namespace="evil\x1b]0;owned\x07"))
    assert status == 400 and "'registry_package.namespace' is not a GitHub login" in answer["reason"]
    assert (await post(s.url, b'{"ref": "main"}', event="push"))[1]["outcome"] == "ignored_event"
    assert (await post(s.url, package(package_type="npm")))[1]["outcome"] == "ignored_ecosystem"
    assert (await post(s.url, package(namespace="someone-else")))[1]["outcome"] == "ignored_owner"
    assert s.events() == [] and s.runs() == []




async def test_an_event_during_a_timers_sync_waits_for_the_lock(world, served):
    s = served
    timer = SyncLock(s.db).acquire()     # what a running `ghcr-inventory sync` holds
    try:
        await push(world, "push_image", s.owner, "app", tags=["v1"], repository=f"{s.owner}/src")
        s.step.advance(DEBOUNCE)
        for waits in range(1, 4):     # each retry waits on the step clock: the event is never dropped
            await until_metric(s.url, "ghcr_inventory_serve_lock_waits_total", waits)
            s.step.advance(60)
        assert len(s.events("pending")) == 1 and s.runs() == []
    finally:
        timer.release()
    s.step.advance(60)
    await until(lambda: s.events("done"), what="the sync after the lock was released")
    assert s.runs()[0][1] == "ok"




async def test_reconciliation_catches_a_package_github_never_announced(world, tmp_path):
    s = await start(world, tmp_path, reconcile_s=60)
    try:
        await until(lambda: s.runs() and s.runs()[0][1] == "ok", what="the reconciliation at start")
        await push(world, "push_image", s.owner, "linked", tags=["v1"], repository=f"{s.owner}/src")
        s.step.advance(DEBOUNCE)
        await until(lambda: s.events("done"), what="the webhook sync")
        await push(world, "push_image", s.owner, "unlinked", tags=["v1"])     # no source label: no event
        assert world.deliveries(s.owner, "unlinked") == []
        s.step.advance(60)
        await until(lambda: len(s.runs()) == 3 and s.runs()[2][1] == "ok", what="the second reconciliation")
        assert rows(s.db, "SELECT COUNT(*) FROM v_tags WHERE package = 'unlinked'") == [(1,)]
        coverage = rows(s.db, "SELECT package, repository, webhook_changes, reconcile_changes, deliveries, "
                              "reconcile_only FROM v_coverage WHERE owner = ? ORDER BY package", (s.owner,))
        assert coverage == [("linked", f"{s.owner}/src", 1, 0, 1, 0), ("unlinked", None, 0, 1, 0, 1)]
        text = await metrics(s.url)
        assert "ghcr_inventory_serve_reconcile_only_packages 1.0" in text
        assert 'ghcr_inventory_serve_package_changes{found_by="webhook"} 1.0' in text
        async with aiohttp.ClientSession() as session:
            async with session.get(s.url + "/healthz") as resp:
                health = await resp.json()
        assert resp.status == 200 and health["status"] == "ok" and health["last_reconcile_age_s"] is not None
        assert integrity_ok(s.db)
    finally:
        await stop(s)


# --- a real `ghcr-inventory serve` process --------------------------------------------------------

def serve_process(config: Path, log: Path, env: dict) -> tuple[subprocess.Popen, str]:
    """Start `ghcr-inventory serve`; its URL once it listens (parsed from its JSON log)."""
    out = open(log, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "crawler", "--config", str(config), "--log-format", "json",
                             "--log-level", "debug", "serve"], stdout=subprocess.DEVNULL, stderr=out, env=env,
                            cwd=ROOT)
    out.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_bytes().splitlines():
            if b'"serve_listening"' in line:
                record = orjson.loads(line)
                if record.get("pid", proc.pid) == proc.pid and proc.poll() is None:
                    return proc, record["url"]
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("serve did not listen within 30 s")


def wait_for(predicate, what: str, within_s: float = 30.0):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def serve_config(world, tmp_path: Path, owner: str, *, debounce_s: float, name: str = "serve.toml") -> Path:
    extra = f'\n[serve]\nlisten = "127.0.0.1:0"\ndebounce_s = {debounce_s}\nreconcile_interval_s = 0\n'
    return write_config(world, tmp_path, [(owner, "org")], extra=extra, name=name)


def env_for(world) -> dict:
    return {**os.environ, "GHCR_SANDBOX_TOKEN": world.token, "GHCR_INVENTORY_WEBHOOK_SECRET": SECRET}


def terminate(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def hooked_serve(world, tmp_path: Path, prefix: str, *, debounce_s: float):
    """A fresh owner with a source repository, `serve` for it, and its webhook."""
    owner = world.new_owner(prefix)
    world.builder.create_repository(owner, "src")
    log, env = tmp_path / "serve.log", env_for(world)
    proc, url = serve_process(serve_config(world, tmp_path, owner, debounce_s=debounce_s), log, env)
    hook = world.add_webhook(url + "/webhook", SECRET, owner=owner)
    return owner, tmp_path / "inventory.db", log, env, proc, hook


def test_a_crash_after_the_202_loses_nothing(world, tmp_path):
    # a debounce far longer than the test: the sync never starts before the kill
    owner, db, log, env, proc, hook = hooked_serve(world, tmp_path, "crash", debounce_s=3600)
    try:
        world.builder.push_image(owner, "app", tags=["v1"], repository=f"{owner}/src")
        assert [d.status for d in world.deliveries(owner, "app")] == [202]
        proc.kill()
        proc.wait(10)
        assert rows(db, "SELECT package, state FROM events") == [("app", "pending")]
        assert rows(db, "SELECT COUNT(*) FROM sync_runs") == [(0,)]
        proc, url = serve_process(serve_config(world, tmp_path, owner, debounce_s=3600, name="again.toml"),
                                  log, env)
        wait_for(lambda: rows(db, "SELECT state FROM events") == [("done",)], "the pending event synced at start")
        assert rows(db, "SELECT tag FROM v_tags WHERE package = 'app'") == [("v1",)]
        assert rows(db, "SELECT via FROM package_changes") == [("webhook",)]
        assert terminate(proc) == 0
    finally:
        world.remove_webhook(hook.id)
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert SECRET not in text and world.token not in text   # at debug level too
    assert integrity_ok(db)


def test_sigterm_mid_sync_rolls_back_and_exits_0(world, tmp_path):
    owner, db, log, env, proc, hook = hooked_serve(world, tmp_path, "term", debounce_s=0)
    try:
        # every manifest of this package takes 3 s: the sync is in flight when SIGTERM comes
        world.registry_proxy.inject("latency", path=rf"^/v2/{owner}/app/manifests/", times=FOREVER, ms=3000)
        world.builder.push_image(owner, "app", tags=["v1"], repository=f"{owner}/src")
        wait_for(lambda: rows(db, "SELECT status FROM sync_runs") == [("running",)], "the sync to start")
        started = time.monotonic()
        assert terminate(proc) == 0 and time.monotonic() - started < 15
        assert rows(db, "SELECT status FROM sync_runs") == [("interrupted",)]
        assert rows(db, "SELECT state FROM events") == [("pending",)]
        assert rows(db, "SELECT COUNT(*) FROM v_tags WHERE package = 'app'") == [(0,)]   # rolled back whole
        assert integrity_ok(db)
        world.clear_faults()
        proc, url = serve_process(serve_config(world, tmp_path, owner, debounce_s=0, name="again.toml"), log, env)
        wait_for(lambda: rows(db, "SELECT state FROM events") == [("done",)], "the pending event synced")
        assert rows(db, "SELECT tag FROM v_tags WHERE package = 'app'") == [("v1",)]
        assert terminate(proc) == 0
    finally:
        world.remove_webhook(hook.id)
        if proc.poll() is None:
            proc.kill()


def test_serve_refuses_to_start_without_a_usable_secret_or_address(world, tmp_path):
    owner = world.new_owner("nosecret")
    config = serve_config(world, tmp_path, owner, debounce_s=1)
    base = {k: v for k, v in os.environ.items() if k != "GHCR_INVENTORY_WEBHOOK_SECRET"}
    base["GHCR_SANDBOX_TOKEN"] = world.token

    def run(env, cfg=config):
        proc = subprocess.run([sys.executable, "-m", "crawler", "--config", str(cfg), "serve"], env=env,
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        lines = [line for line in proc.stderr.splitlines() if line.startswith("ghcr-inventory:")]
        return proc.returncode, lines, proc.stderr

    code, lines, err = run(base)
    assert code == 2 and len(lines) == 1 and "GHCR_INVENTORY_WEBHOOK_SECRET" in lines[0], err
    assert "'serve.secret_env'" in lines[0] and "Traceback" not in err
    code, lines, err = run({**base, "GHCR_INVENTORY_WEBHOOK_SECRET": "short-Secr3t"})
    assert code == 2 and "shorter than 16 characters" in lines[0] and "short-Secr3t" not in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = write_config(world, tmp_path, [(owner, "org")], name="busy.toml",
                            extra=f'\n[serve]\nlisten = "127.0.0.1:{port}"\n')
        code, lines, err = run({**base, "GHCR_INVENTORY_WEBHOOK_SECRET": SECRET}, busy)
    assert code == 2 and len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], err
    assert "serve.listen" in lines[0] and SECRET not in err
