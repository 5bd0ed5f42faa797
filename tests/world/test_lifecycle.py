"""Starting and stopping pieces of the world: a missing binary, a port clash, the serve command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tomllib
import urllib.request

import pytest

from crawler.sandbox import registry as registry_module
from crawler.sandbox.registry import RegistryMissingError, RegistryProcess


async def test_missing_registry_binary_names_the_debian_package(tmp_path):
    process = RegistryProcess(tmp_path, auth=None, binary=str(tmp_path / "no-such-binary"))
    with pytest.raises(RegistryMissingError, match="Debian package 'docker-registry'"):
        await process.start()


async def test_registry_retries_on_a_port_clash(tmp_path, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        real_free_port = registry_module.free_port
        monkeypatch.setattr(registry_module, "free_port", lambda host="127.0.0.1": next(ports, None) or real_free_port(host))
        process = RegistryProcess(tmp_path, auth=None)
        await process.start()
        try:
            assert process.port != busy
            assert "address already in use" in process.log_path.read_text()
            with urllib.request.urlopen(f"{process.url}/v2/") as resp:  # no auth configured: 200
                assert resp.status == 200
        finally:
            await process.stop()


def test_serve_prints_one_json_line_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "crawler.sandbox", "serve", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
    ) as proc:
        try:
            line = proc.stdout.readline()  # the process prints once the world is up
            info = json.loads(line)
            request = urllib.request.Request(f"{info['api_url']}/rate_limit", headers={"Authorization": f"Bearer {info['token']}"})
            with urllib.request.urlopen(request, timeout=10) as resp:
                assert json.load(resp)["resources"]["core"]["limit"] == 5000
            assert info["registry_url"].startswith("http://127.0.0.1:")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_world_config_points_at_the_fronts(world, world_config):
    config = tomllib.loads(world_config.read_text())
    assert config["github"]["api_url"] == world.api_url
    assert config["github"]["graphql_url"] == world.graphql_url
    assert config["registry"]["url"] == world.registry_url
    assert os.environ[config["github"]["token_env"]] == world.token
    assert [(o["name"], o["kind"]) for o in config["owners"]] == [("acme", "org"), (world.user, "user")]
