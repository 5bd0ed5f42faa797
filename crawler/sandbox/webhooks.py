"""GitHub's webhook deliveries, emulated: signed package events for what the builder pushes.

Hooks are registered on the world (``World.add_webhook``) for one owner (an
org or user hook) or for all of them. When a version of a package is
recorded (``WorldState.record_version``: a manifest pushed, a tag added), a
package that is connected to a source repository fires, for every hook of
its owner, one ``registry_package`` delivery (and ``package`` if the hook
asks for it): action ``published`` for a new version, ``updated`` for new
tags on one — so a multi-platform push with attestations fires one event
per manifest, as on GitHub. A package without a source repository fires
nothing, as on GitHub (the ``org.opencontainers.image.source`` caveat).

Each delivery is POSTed like GitHub's (``User-Agent: GitHub-Hookshot/…``,
``X-GitHub-Event``, ``X-GitHub-Delivery`` (a GUID), ``X-GitHub-Hook-ID``,
``X-GitHub-Hook-Installation-Target-ID/Type``, ``X-Hub-Signature`` (SHA-1)
and ``X-Hub-Signature-256`` (HMAC-SHA256 of the body with the hook's
secret)); its body is validated against the vendored webhook schemas
(``reference/github-webhooks-package-events.openapi.json``) and violations
join the emulator's. Deliveries run on the world's loop; ``drain`` waits for
them (the synchronous builder does, so a push returns once its events were
answered). GitHub does not retry a failed delivery by itself; ``redeliver``
resends one with the same delivery id and body, as its "Redeliver" button.
Hook URLs must be loopback addresses: the sandbox sends nothing elsewhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from . import render
from .openapi import Violation, validate_webhook
from .state import Owner, Package, Repository, Version, WorldState, iso

TIMEOUT_S = 10.0   # GitHub gives a hook 10 s to answer
EVENTS = ("registry_package", "package")


@dataclass
class Hook:
    id: int
    url: str
    secret: bytes
    owner: str | None = None                 # None: every owner (like an App installation)
    events: tuple[str, ...] = ("registry_package",)
    active: bool = True


@dataclass
class Delivery:
    """One delivery and what became of it (``status`` None: no answer, see ``error``)."""

    id: str
    hook_id: int
    event: str
    action: str
    owner: str
    package: str
    body: bytes = field(repr=False)
    status: int | None = None
    error: str | None = None
    attempts: int = 0


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookSender:
    """The hooks of a world and their deliveries (runs on the world's loop)."""

    def __init__(self, state: WorldState, violations: list[Violation], *, validate: bool = True,
                 api_url: str = "https://api.github.com") -> None:
        self.state = state
        self.violations = violations
        self.validate = validate
        self.api_url = api_url
        self.hooks: dict[int, Hook] = {}
        self.deliveries: list[Delivery] = []
        self._ids = itertools.count(480_000_001)
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None
        state.version_observers.append(self.version_recorded)

    def add(self, url: str, secret: str, *, owner: str | None = None,
            events: tuple[str, ...] = ("registry_package",)) -> Hook:
        if not _is_loopback(url):
            raise ValueError(f"a sandbox webhook must point at a loopback address, not {url!r}")
        unknown = [e for e in events if e not in EVENTS]
        if unknown:
            raise ValueError(f"unknown webhook event {unknown[0]!r}; the sandbox sends {EVENTS}")
        hook = Hook(next(self._ids), url, secret.encode(), owner, tuple(events))
        self.hooks[hook.id] = hook
        return hook

    def remove(self, hook_id: int) -> None:
        self.hooks.pop(hook_id, None)

    # -- firing ---------------------------------------------------------------------------

    def version_recorded(self, pkg: Package, version: Version, new: bool) -> None:
        """WorldState's observer: a version was added (``new``) or tagged."""
        if pkg.repository is None:
            return   # GitHub fires nothing for a package without a source repository
        action = "published" if new else "updated"
        for hook in list(self.hooks.values()):
            if not hook.active or (hook.owner is not None and hook.owner.lower() != pkg.owner.lower()):
                continue
            for event in hook.events:
                body = self.payload(event, action, pkg, version)
                if self.validate:
                    self.violations.extend(validate_webhook(event, action, body))
                delivery = Delivery(str(uuid.uuid4()), hook.id, event, action, pkg.owner, pkg.name,
                                    orjson.dumps(body))
                self.deliveries.append(delivery)
                self._start(hook, delivery)

    def _start(self, hook: Hook, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._send(hook, delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float = TIMEOUT_S + 5) -> None:
        """Wait until every delivery started so far was answered (or failed)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again: same id, same body (GitHub's "Redeliver")."""
        delivery = next(d for d in self.deliveries if d.id == delivery_id)
        hook = self.hooks[delivery.hook_id]
        self._start(hook, delivery)
        return delivery

    async def close(self) -> None:
        await self.drain(1.0)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _send(self, hook: Hook, delivery: Delivery) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        owner = self.state.owner(delivery.owner)
        headers = self.headers(hook, delivery, owner.id if owner else 0)
        delivery.attempts += 1
        try:
            async with self._session.post(hook.url, data=delivery.body, headers=headers) as resp:
                await resp.read()
                delivery.status, delivery.error = resp.status, None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            delivery.status, delivery.error = None, f"{type(exc).__name__}: {exc}"

    @staticmethod
    def headers(hook: Hook, delivery: Delivery, target_id: int) -> dict[str, str]:
        return {
            "User-Agent": "GitHub-Hookshot/sandbox",
            "Content-Type": "application/json",
            "X-GitHub-Event": delivery.event,
            "X-GitHub-Delivery": delivery.id,
            "X-GitHub-Hook-ID": str(hook.id),
            "X-GitHub-Hook-Installation-Target-ID": str(target_id if hook.owner else hook.id),
            "X-GitHub-Hook-Installation-Target-Type": "organization" if hook.owner else "integration",
            "X-Hub-Signature": "sha1=" + hmac.new(hook.secret, delivery.body, hashlib.sha1).hexdigest(),
            "X-Hub-Signature-256": "sha256=" + hmac.new(hook.secret, delivery.body, hashlib.sha256).hexdigest(),
        }

    # -- the payload -------------------------------------------------------------------------

    def payload(self, event: str, action: str, pkg: Package, version: Version) -> dict[str, Any]:
        """The body GitHub sends: ``{action, registry_package|package, sender, organization?}``."""
        owner = self.state.owner(pkg.owner)
        repo = self.state.repository(pkg.repository) if pkg.repository else None
        body: dict[str, Any] = {"action": action, event: self._package(pkg, version, owner, repo),
                                "sender": render.owner_json(owner, self.api_url)}
        if owner.kind == "org":
            body["organization"] = _organization(owner, self.api_url)
        return body

    def _package(self, pkg: Package, version: Version, owner: Owner, repo: Repository | None) -> dict:
        registry = f"ghcr.io/{owner.login.lower()}/{pkg.name}"
        tag = version.tags[-1] if version.tags else ""
        user = render.owner_json(owner, self.api_url)
        return {
            "id": pkg.id,
            "name": pkg.name,
            "namespace": owner.login,
            "description": None,
            "ecosystem": "CONTAINER",
            "package_type": "CONTAINER",
            "html_url": render.package_html_url(pkg, owner),
            "created_at": iso(pkg.created_at),
            "updated_at": iso(pkg.updated_at),
            "owner": user,
            "package_version": {
                "id": version.id,
                "version": version.name,
                "name": version.name,
                "description": "",
                "summary": "",
                "body": "",
                "body_html": "",
                "html_url": f"{render.package_html_url(pkg, owner)}/{version.id}",
                "target_commitish": repo.default_branch if repo else "",
                "target_oid": repo.head_oid if repo else "",
                "created_at": iso(version.created_at),
                "updated_at": iso(version.updated_at),
                "metadata": [],
                "container_metadata": {"tag": {"name": tag, "digest": version.name},
                                       "labels": {}, "manifest": {}},
                "package_files": [],
                "author": user,
                "installation_command": f"docker pull {registry}{':' + tag if tag else '@' + version.name}",
                "package_url": f"{registry}{':' + tag if tag else ''}",
            },
            "registry": {"about_url": "https://docs.github.com/packages/learn-github-packages/introduction-to-github-packages",
                         "name": "GitHub CONTAINER registry", "type": "CONTAINER",
                         "url": f"https://ghcr.io/{owner.login.lower()}", "vendor": "GitHub Inc"},
        }


def _organization(owner: Owner, api: str) -> dict:
    base = f"{api}/orgs/{owner.login}"
    return {"login": owner.login, "id": owner.id, "node_id": owner.node_id, "url": base,
            "repos_url": f"{base}/repos", "events_url": f"{base}/events", "hooks_url": f"{base}/hooks",
            "issues_url": f"{base}/issues", "members_url": f"{base}/members{{/member}}",
            "public_members_url": f"{base}/public_members{{/member}}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{owner.id}?v=4", "description": owner.name}
