"""A second real registry: distribution 2.8 with htpasswd (HTTP Basic) auth and
repositories at any path.

What "any OCI registry" means outside ghcr: distribution with ``auth.htpasswd``
(like zot, Artifactory, Nexus) answers ``401`` with ``WWW-Authenticate: Basic
realm=…`` and wants the user's name and password on every request; its
catalog lists top-level repositories (``alpine``) and nested ones (``a/b/c``)
that belong to no GitHub owner. No GitHub side: what is pushed here is the
whole truth, returned as ``Pushed`` records (repository, digest, tags).

distribution accepts only bcrypt hashes in the htpasswd file; they come from
the ``bcrypt`` package (the ``sandbox`` extra).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import aiohttp

from . import content as c
from .content import Blob, Platform
from .registry import HtpasswdAuth, RegistryProcess

REALM = "sandbox-basic"


def htpasswd_line(user: str, password: str) -> str:
    """One ``user:$2b$…`` line (bcrypt, the only scheme distribution reads)."""
    import bcrypt

    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()  # cost 4: tests, not a vault
    return f"{user}:{digest}"


@dataclass(frozen=True)
class BasicPushed:
    repository: str
    digest: str
    media_type: str
    tags: tuple[str, ...]
    children: tuple[str, ...] = ()   # an index's entries, in order
    config: str | None = None


class BasicRegistry:
    """distribution with htpasswd auth; ``users`` maps names to passwords."""

    def __init__(self, workdir: Path, users: Mapping[str, str], *, log_level: str = "info") -> None:
        self.workdir = Path(workdir)
        self.users = dict(users)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.htpasswd = self.workdir / "htpasswd"
        self.htpasswd.write_text("".join(htpasswd_line(u, p) + "\n" for u, p in self.users.items()))
        self.process = RegistryProcess(self.workdir, auth=HtpasswdAuth(REALM, self.htpasswd), log_level=log_level)
        self._session: aiohttp.ClientSession | None = None
        self._user, self._password = next(iter(self.users.items()))
        self._seeds = 0

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    async def start(self) -> "BasicRegistry":
        await self.process.start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.process.stop()

    # -- pushing -----------------------------------------------------------------

    async def push_image(self, repository: str, *, tags: Iterable[str] = ("latest",),
                         platform: str = "linux/amd64", labels: Mapping[str, str] | None = None) -> BasicPushed:
        """A single-platform OCI image at any repository path."""
        tags = tuple(tags)
        raw, config = await self._image(repository, Platform.parse(platform), dict(labels or {}))
        digest = await self._put_manifest(repository, raw, c.OCI_MANIFEST, tags)
        return BasicPushed(repository, digest, c.OCI_MANIFEST, tags, config=config.digest)

    async def push_index(self, repository: str, *, tags: Iterable[str] = ("latest",),
                         platforms: Iterable[str] = ("linux/amd64", "linux/arm64")) -> BasicPushed:
        tags = tuple(tags)
        entries, children = [], []
        for plat in (Platform.parse(p) for p in platforms):
            raw, _ = await self._image(repository, plat, {})
            digest = await self._put_manifest(repository, raw, c.OCI_MANIFEST, ())
            entries.append({"mediaType": c.OCI_MANIFEST, "digest": digest, "size": len(raw),
                            "platform": plat.as_json()})
            children.append(digest)
        raw = c.index_manifest(c.OCI_INDEX, entries)
        digest = await self._put_manifest(repository, raw, c.OCI_INDEX, tags)
        return BasicPushed(repository, digest, c.OCI_INDEX, tags, tuple(children))

    async def _image(self, repository: str, platform: Platform, labels: dict) -> tuple[bytes, Blob]:
        self._seeds += 1
        seed = 7_000_000 + self._seeds
        layer, diff_id = c.layer(seed, 256)
        created = "2025-01-01T00:00:00Z"
        config = c.image_config(platform, labels=labels, created=created, diff_ids=[diff_id], media_type=c.OCI_CONFIG)
        for blob in (layer, config):
            await self._push_blob(repository, blob)
        return c.image_manifest(c.OCI_MANIFEST, config, [layer]), config

    def _auth(self) -> dict:
        token = base64.b64encode(f"{self._user}:{self._password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def _call(self, method: str, path_or_url: str, *, data: bytes | None = None,
                    headers: dict | None = None) -> tuple[int, Mapping[str, str], bytes]:
        assert self._session is not None, "BasicRegistry not started"
        url = path_or_url if path_or_url.startswith("http") else self.url + path_or_url
        async with self._session.request(method, url, data=data, headers={**self._auth(), **(headers or {})},
                                         allow_redirects=False) as resp:
            return resp.status, resp.headers, await resp.read()

    async def _push_blob(self, repository: str, blob: Blob) -> None:
        status, headers, body = await self._call("POST", f"/v2/{repository}/blobs/uploads/")
        if status != 202:
            raise RuntimeError(f"POST upload {repository}: {status} {body[:200]!r}")
        location = headers["Location"]
        location += ("&" if "?" in location else "?") + f"digest={blob.digest}"
        if not location.startswith("http"):
            location = self.url + location
        status, _, body = await self._call("PUT", location, data=blob.data,
                                           headers={"Content-Type": "application/octet-stream"})
        if status != 201:
            raise RuntimeError(f"PUT blob {repository}@{blob.digest}: {status} {body[:200]!r}")

    async def _put_manifest(self, repository: str, raw: bytes, media_type: str, tags: tuple[str, ...]) -> str:
        digest = c.sha256(raw)
        for reference in tags or (digest,):
            status, _, body = await self._call("PUT", f"/v2/{repository}/manifests/{reference}", data=raw,
                                               headers={"Content-Type": media_type})
            if status != 201:
                raise RuntimeError(f"PUT manifest {repository}:{reference}: {status} {body[:200]!r}")
        return digest


class SyncBasicRegistry:
    """``BasicRegistry``'s pushes, callable from any thread (each runs on the world's loop)."""

    def __init__(self, registry: BasicRegistry, call) -> None:
        self.aio = registry
        self._call = call

    @property
    def url(self) -> str:
        return self.aio.url

    @property
    def host(self) -> str:
        return self.aio.host

    @property
    def users(self) -> dict[str, str]:
        return dict(self.aio.users)

    def push_image(self, repository: str, **kw) -> BasicPushed:
        return self._call(self.aio.push_image, repository, **kw)

    def push_index(self, repository: str, **kw) -> BasicPushed:
        return self._call(self.aio.push_index, repository, **kw)
