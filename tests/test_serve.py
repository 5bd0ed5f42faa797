"""`serve` in process, against the world: the emulator delivers signed
webhooks for pushes, the receiver stores each before answering, coalesces a
burst into one targeted sync, and tells its metrics. Faults and bad input
are in tests/test_reliability_serve.py."""

from __future__ import annotations

import orjson

from crawler.serve import notify
from tests.serving import DEBOUNCE, metrics, push, served  # noqa: F401 - served is a fixture
from tests.support import rows, until


async def test_one_multi_platform_push_is_one_targeted_sync(world, served):
    s = served
    await push(world, "push_index", s.owner, "app", tags=["latest"], attestations=True,
               repository=f"{s.owner}/src")
    deliveries = world.deliveries(s.owner, "app")
    assert [(d.event, d.action, d.status) for d in deliveries] == [("registry_package", "published", 202)] * 5
    assert len(s.events("pending")) == 5 and s.runs() == []      # stored before the 202; nothing synced yet
    s.step.advance(DEBOUNCE)
    await until(lambda: len(s.events("done")) == 5, what="the events synced")
    (run_id, status, requests, bound), = s.runs()
    assert status == "ok" and {r[4] for r in s.events()} == {run_id}
    assert rows(s.db, "SELECT tag FROM v_tags WHERE owner = ? AND package = 'app'", (s.owner,)) == [("latest",)]
    assert rows(s.db, "SELECT via FROM package_changes WHERE package = 'app'") == [("webhook",)]
    # a burst across packages within the window: still one sync, of those packages only
    await push(world, "push_image", s.owner, "one", tags=["v1"], repository=f"{s.owner}/src")
    await push(world, "push_image", s.owner, "two", tags=["v1"], repository=f"{s.owner}/src")
    s.step.advance(DEBOUNCE)
    await until(lambda: len(s.events("done")) == 7, what="the burst synced")
    assert len(s.runs()) == 2 and s.runs()[1][1] == "ok"
    assert rows(s.db, "SELECT package FROM package_changes WHERE run_id = ? ORDER BY package",
                (s.runs()[1][0],)) == [("one",), ("two",)]
    # a targeted sync reads the named packages, never the owner's listing
    run = rows(s.db, "SELECT requests_by_kind FROM sync_runs WHERE id = ?", (s.runs()[1][0],))[0][0]
    assert orjson.loads(run)["discovery"] == 2
    text = await metrics(s.url)
    assert 'ghcr_inventory_serve_deliveries_total{event="registry_package",outcome="accepted"} 7.0' in text
    assert 'ghcr_inventory_serve_syncs_total{status="ok",trigger="webhook"} 2.0' in text
    assert "ghcr_inventory_serve_event_to_commit_seconds_count 7.0" in text
    assert "ghcr_inventory_serve_queue_depth 0.0" in text


def test_sd_notify_sends_one_datagram(tmp_path):
    import socket
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        assert notify("READY=1", {"NOTIFY_SOCKET": str(path)}) is True
        assert sock.recv(100) == b"READY=1"
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
