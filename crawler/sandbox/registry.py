"""Run the real CNCF registry (Debian ``docker-registry``, distribution 2.8) on loopback.

The registry gets a generated config: filesystem storage under the world's
directory, deletes enabled, and token auth (``auth.token`` realm/service/issuer/
rootcertbundle) pointing at the GitHub emulator's ``/token`` — the same challenge
flow as ghcr.io. The config is written as JSON, which the registry's YAML parser
reads as-is.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import aiohttp

REGISTRY_BINARY = "/usr/bin/docker-registry"
_LIVE: set[subprocess.Popen] = set()  # registries to kill if the interpreter exits without stop()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class RegistryMissingError(RuntimeError):
    """The registry binary is not installed."""


class RegistryStartError(RuntimeError):
    """The registry did not come up (its log says why)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the caller retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class TokenAuth:
    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


@dataclass(frozen=True)
class HtpasswdAuth:
    """distribution's ``auth.htpasswd``: Basic auth against a file of bcrypt hashes
    (the only format it accepts); its 401 carries ``WWW-Authenticate: Basic realm=…``."""

    realm: str
    path: Path


def registry_config(
    *, port: int, storage: Path, auth: TokenAuth | HtpasswdAuth | None, log_level: str = "info",
    access_log: bool = True
) -> dict:
    """The registry's config as a dict (pure)."""
    config: dict = {
        "version": "0.1",
        "log": {"level": log_level, "formatter": "text", "accesslog": {"disabled": not access_log}},
        # No `storage.cache`: tag deletion edits storage directly (distribution
        # 2.8 has no tag DELETE), and no cache may hide that change.
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        # With validation on and no allow list, any manifest carrying `urls`
        # (foreign / non-distributable layers) is refused (distribution#2795).
        "validation": {"manifests": {"urls": {"allow": ["^https?://"]}}},
    }
    if isinstance(auth, HtpasswdAuth):
        config["auth"] = {"htpasswd": {"realm": auth.realm, "path": str(auth.path)}}
    elif auth is not None:
        config["auth"] = {
            "token": {
                "realm": auth.realm,
                "service": auth.service,
                "issuer": auth.issuer,
                "rootcertbundle": str(auth.rootcertbundle),
            }
        }
    return config


class RegistryProcess:
    """One ``docker-registry serve`` child process with its storage and log."""

    def __init__(
        self, workdir: Path, *, auth: TokenAuth | HtpasswdAuth | None, binary: str = REGISTRY_BINARY,
        log_level: str = "info"
    ) -> None:
        self.workdir = Path(workdir)
        self.auth = auth
        self.binary = binary
        # "info" logs three lines per request (~1.5 KB); the benchmark's scale
        # world asks for "error" (no access log) to keep the disk and CPU quiet.
        self.log_level = log_level
        self.storage = self.workdir / "storage"
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("registry not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def repositories_root(self) -> Path:
        """Where distribution keeps each repository's links (``<name>/_manifests``)."""
        return self.storage / "docker" / "registry" / "v2" / "repositories"

    async def start(self, *, attempts: int = 5, timeout_s: float = 15.0) -> None:
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise RegistryMissingError(
                f"{self.binary} not found: install the Debian package 'docker-registry' (apt-get install docker-registry)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _ in range(attempts):
            port = free_port()
            config = registry_config(
                port=port, storage=self.storage, auth=self.auth, log_level=self.log_level,
                access_log=self.log_level in ("info", "debug"),
            )
            self.config_path.write_text(json.dumps(config, indent=2))
            if await self._launch(port, timeout_s):
                return
            last_error = self._log_tail()
            if "address already in use" not in last_error:
                break
        raise RegistryStartError(f"docker-registry did not start; log {self.log_path}: {last_error.strip()[-500:]}")

    async def _launch(self, port: int, timeout_s: float) -> bool:
        # Only our own config applies: REGISTRY_* variables would override it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _LIVE.add(self._proc)
        self.port = port
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                if self._proc.poll() is not None:
                    _LIVE.discard(self._proc)
                    self._proc = None
                    return False
                try:
                    async with session.get(f"{self.url}/v2/", timeout=aiohttp.ClientTimeout(total=0.5)) as resp:
                        # 401 proves token auth is on; 200 means auth is off.
                        if resp.status in (200, 401):
                            return True
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass  # not listening yet (or someone else's socket on a clashing port)
                await asyncio.sleep(0.02)  # bounded start-up poll
        await self.stop()
        return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _LIVE.discard(proc)

    def cleanup(self) -> None:
        shutil.rmtree(self.storage, ignore_errors=True)

    # -- storage edits the world owns (distribution 2.8 has no API for these) --

    def tag_dir(self, repository: str, tag: str) -> Path:
        return self.repositories_root / repository / "_manifests" / "tags" / tag

    def remove_tag(self, repository: str, tag: str) -> bool:
        """Delete a tag the way `registry garbage-collect` would see it: remove its links."""
        path = self.tag_dir(repository, tag)
        if not path.is_dir():
            return False
        shutil.rmtree(path)
        return True

    def write_tag(self, repository: str, tag: str, digest: str) -> None:
        """Point ``tag`` at an already-pushed manifest by writing the tag links.

        This is distribution's storage layout (registry/storage/paths.go):
        ``_manifests/tags/<tag>/current/link`` and
        ``_manifests/tags/<tag>/index/<alg>/<hex>/link``. Used for thousands of
        tags, where one manifest PUT per tag would be slow.
        """
        algorithm, hexdigest = digest.split(":", 1)
        base = self.tag_dir(repository, tag)
        (base / "current").mkdir(parents=True, exist_ok=True)
        (base / "current" / "link").write_text(digest)
        index = base / "index" / algorithm / hexdigest
        index.mkdir(parents=True, exist_ok=True)
        (index / "link").write_text(digest)
