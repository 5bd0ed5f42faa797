"""The whole sandbox world, run on its own thread and event loop behind a synchronous facade.

``World`` = the GitHub emulator + the real registry (token auth) + a ghcr-shaped
fault proxy in front of the registry (with a blob CDN on a second host) + a
plain fault proxy in front of the registry (distribution as itself, with
``_catalog``) + a fault proxy in front of the emulator. The servers run on a dedicated background
thread's event loop, so callers may block (pytest, ``asyncio.run`` of the CLI in
process, a subprocess) while the world keeps serving::

    with World(tmp_path) as world:
        world.builder.push_image("acme", "app", tags=["latest"])
        run_crawler(api=world.api_url, registry=world.registry_url, token=world.token)
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import itertools
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from .builder import Builder
from .emulator import PAGE_CAP, Emulator
from .faults import FOREVER, Fault
from .graphql_api import github_schema
from .proxy import BlobCdn, FaultProxy
from .registry import RegistryProcess, TokenAuth
from .state import Package, Token, WorldState
from .sigstore import FakeSigstore
from .tokens import TokenSigner
from .webhooks import Delivery, Hook, WebhookSender

SERVICE = "ghcr.io"  # the service name ghcr.io's challenge carries; clients must echo the challenge
ISSUER = "ghcr-sandbox"
DEFAULT_USER = "mona"
ADMIN_USER = "sandbox-admin"
_BUILDER_METHODS = frozenset(
    {
        "create_owner",
        "create_repository",
        "push_commit",
        "archive_repository",
        "push_image",
        "push_index",
        "push_cosign",
        "attest",
        "push_artifact",
        "tag",
        "add_tags",
        "untag",
        "delete_version",
        "restore_version",
        "delete_package",
        "restore_package",
        "set_visibility",
        "remove_manifest",
        "bulk_packages",
        "bulk_versions",
    }
)


# GitHub's token prefixes by kind (github.blog 2021-04-05 "Behind GitHub's new
# authentication token formats"; fine-grained PATs 2022).
TOKEN_PREFIXES = {"classic": "ghp_", "fine_grained": "github_pat_", "actions": "ghs_", "app": "ghs_",
                  "oauth": "gho_", "user_to_server": "ghu_"}


def fake_token(seed: str, kind: str = "classic") -> str:
    """A sandbox token shaped like GitHub's of that kind (``ghp_`` + 36 chars…); worthless outside the world."""
    return TOKEN_PREFIXES[kind] + hashlib.sha256(f"sandbox:{seed}".encode()).hexdigest()[:36]


class SyncBuilder:
    """``Builder``'s methods, callable from any thread; each runs on the world's loop.

    Methods: create_owner, create_repository, push_commit, archive_repository,
    push_image, push_index, push_cosign, push_artifact, tag, add_tags, untag,
    delete_version, restore_version, delete_package, restore_package,
    set_visibility, remove_manifest, bulk_packages, bulk_versions (same
    signatures as ``Builder``).
    """

    def __init__(self, world: "World") -> None:
        self._world = world

    @property
    def records(self):
        return self._world._builder.records  # noqa: SLF001

    @property
    def aio(self) -> Builder:
        """The async builder (for code already running on the world's loop)."""
        return self._world._builder  # noqa: SLF001

    def __getattr__(self, name: str) -> Callable:
        if name not in _BUILDER_METHODS:
            raise AttributeError(name)
        method = getattr(self._world._builder, name)  # noqa: SLF001

        async def and_deliver(*args, **kwargs):
            result = await method(*args, **kwargs)
            await self._world.webhooks.drain()   # a push returns once its webhooks were answered
            return result

        def call(*args, **kwargs):
            return self._world.call(and_deliver, *args, **kwargs)

        call.__name__ = name
        call.__doc__ = method.__doc__
        return call


class World:
    """Emulator + registry + proxies + CDN on a background loop. Use as a context manager."""

    def __init__(
        self,
        base_dir: str | Path | None = None,
        *,
        validate: bool = True,
        graphql_lists_containers: bool = False,
        token_ttl_s: int = 300,
        token_expires_in: bool = True,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        registry_latency_ms: float = 0.0,
        registry_connect_latency_ms: float = 0.0,
        api_latency_ms: float = 0.0,
        api_connect_latency_ms: float = 0.0,
        start_timeout_s: float = 30.0,
        registry_log_level: str = "info",
        page_cap: int = PAGE_CAP,
    ) -> None:
        self._own_dir = base_dir is None
        self.dir = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="ghcr-world-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self.service = SERVICE
        self.issuer = ISSUER
        self.user = DEFAULT_USER
        self.start_timeout_s = start_timeout_s
        self.registry_log_level = registry_log_level
        self.state = WorldState(clock)
        self.signer = TokenSigner(issuer=ISSUER, service=SERVICE)
        self.emulator = Emulator(
            self.state,
            self.signer,
            validate=validate,
            graphql_lists_containers=graphql_lists_containers,
            token_ttl_s=token_ttl_s,
            token_expires_in=token_expires_in,
            page_cap=page_cap,
        )
        self.page_cap = page_cap  # what clear_faults() restores after set_page_cap()
        self.webhooks = WebhookSender(self.state, self.emulator.violations, validate=validate)
        self.cdn = BlobCdn(seed=seed)
        self.registry: RegistryProcess | None = None
        self.registry_proxy: FaultProxy | None = None
        self.registry_plain_proxy: FaultProxy | None = None
        self.api_proxy: FaultProxy | None = None
        self._proxy_options = dict(
            registry_latency_ms=registry_latency_ms,
            registry_connect_latency_ms=registry_connect_latency_ms,
            api_latency_ms=api_latency_ms,
            api_connect_latency_ms=api_connect_latency_ms,
        )
        self.token = fake_token(f"{seed}:default")
        self.admin_token = fake_token(f"{seed}:admin")
        self.builder = SyncBuilder(self)
        # GitHub's Sigstore stand-in: it signs the attestations the builder
        # stores (Builder.attest); its trusted root is written at start.
        self.sigstore = FakeSigstore("sandbox")
        self.trusted_root_path = self.dir / "trusted-root.jsonl"
        self.sample = None  # the SampleOrg, once build_sample_org(world) ran
        self._builder: Builder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._owner_counter = itertools.count(1)
        self._started = False
        self._basic: list = []  # BasicRegistry instances started by basic_registry()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> "World":
        if self._started:
            return self
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ghcr-world", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._astart(), self._loop).result(self.start_timeout_s)
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    async def _astart(self) -> None:
        # Build GitHub's GraphQL schema (~1 s) off the loop while the registry
        # starts, so no request ever stalls the world's loop on it.
        schema = asyncio.get_running_loop().run_in_executor(None, github_schema)
        await self.emulator.start()
        bundle = self.signer.write_bundle(self.dir / "token-signer.pem")
        self.registry = RegistryProcess(
            self.dir / "registry",
            auth=TokenAuth(self.emulator.token_url, SERVICE, ISSUER, bundle),
            log_level=self.registry_log_level,
        )
        await self.registry.start()
        await schema
        await self.cdn.start()
        opts = self._proxy_options
        self.registry_proxy = FaultProxy(
            self.registry.url,
            ghcr=True,
            token_upstream=self.emulator.url,
            cdn=self.cdn,
            seed=self.seed,
            latency_ms=opts["registry_latency_ms"],
            connect_latency_ms=opts["registry_connect_latency_ms"],
            name="registry",
            service=SERVICE,
        )
        await self.registry_proxy.start()
        self.registry_plain_proxy = FaultProxy(self.registry.url, seed=self.seed + 2, name="registry-plain")
        await self.registry_plain_proxy.start()
        self.webhooks.api_url = self.emulator.url
        self.api_proxy = FaultProxy(
            self.emulator.url,
            seed=self.seed + 1,
            latency_ms=opts["api_latency_ms"],
            connect_latency_ms=opts["api_connect_latency_ms"],
            name="api",
        )
        await self.api_proxy.start()
        self.state.add_owner(DEFAULT_USER, "user", name="Mona Lisa Octocat")
        self.state.add_token(self.token, DEFAULT_USER, scopes=("read:packages", "repo"))
        self.state.add_token(
            self.admin_token, ADMIN_USER, scopes=("read:packages", "write:packages", "delete:packages", "repo")
        )
        self._builder = Builder(
            state=self.state,
            registry=self.registry,
            token_url=self.emulator.token_url,
            service=SERVICE,
            admin_token=self.admin_token,
            seed=self.seed,
            sigstore=self.sigstore,
        )
        self.sigstore.write_trusted_root(self.trusted_root_path)
        self.registry_proxy.on_exchange.append(self._count_download)
        self.registry_proxy.known_repository = self._package_exists

    def _package_exists(self, repository: str) -> bool:
        owner, _, name = repository.partition("/")
        return self.state.package(owner, name) is not None

    def _count_download(self, method: str, target: str, status: int) -> None:
        # ghcr counts every manifest GET as a package download.
        path = target.split("?", 1)[0]
        if method == "GET" and status == 200 and "/manifests/" in path and path.startswith("/v2/"):
            self.state.count_download(path[len("/v2/") : path.index("/manifests/")])

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._astop(), loop).result(30)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                if self._thread is not None:
                    self._thread.join(10)
        loop.close()
        self._started = False
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    async def _astop(self) -> None:
        for basic in self._basic:
            try:
                await basic.stop()
            except Exception:  # noqa: BLE001 - keep tearing down the rest
                pass
        for closer in (
            self.webhooks.close,
            self._builder.close if self._builder else None,
            self.api_proxy.stop if self.api_proxy else None,
            self.registry_proxy.stop if self.registry_proxy else None,
            self.registry_plain_proxy.stop if self.registry_plain_proxy else None,
            self.cdn.stop,
            self.registry.stop if self.registry else None,
            self.emulator.stop,
        ):
            if closer is not None:
                try:
                    await closer()
                except Exception:  # noqa: BLE001 - keep tearing down the rest
                    pass

    def __enter__(self) -> "World":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- URLs --------------------------------------------------------------------------

    @property
    def registry_url(self) -> str:
        """The ghcr-shaped front (fault proxy); use this like https://ghcr.io."""
        return self.registry_proxy.url

    @property
    def registry_host(self) -> str:
        """``host:port`` of the front, for image references (``HOST/acme/app:latest``)."""
        return self.registry_url.removeprefix("http://")

    @property
    def registry_direct_url(self) -> str:
        """distribution 2.8 itself (has ``_catalog``, no tags/list paging, no redirects)."""
        return self.registry.url

    @property
    def registry_plain_url(self) -> str:
        """distribution 2.8 as itself behind a fault proxy: ``_catalog`` (paged by ``n``/``last``), no
        tags/list paging, no CDN redirect, the realm on the emulator. Inject on ``registry_plain_proxy``."""
        return self.registry_plain_proxy.url

    @property
    def api_url(self) -> str:
        """The GitHub API front (fault proxy); use this like https://api.github.com."""
        return self.api_proxy.url

    @property
    def api_direct_url(self) -> str:
        return self.emulator.url

    @property
    def graphql_url(self) -> str:
        return f"{self.api_url}/graphql"

    @property
    def graphql_direct_url(self) -> str:
        return f"{self.api_direct_url}/graphql"

    @property
    def token_url(self) -> str:
        """The registry token endpoint on the registry front (like https://ghcr.io/token)."""
        return f"{self.registry_url}/token"

    # -- running things on the world's loop ---------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("world not started")
        return self._loop

    def call(self, fn: Callable | Any, *args, timeout: float = 120.0, **kwargs) -> Any:
        """Run ``fn(*args, **kwargs)`` (a function or coroutine function) on the world's loop; return its result."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("World.call from the world's own thread would deadlock; await the coroutine instead")

        async def runner():
            result = fn(*args, **kwargs) if callable(fn) else fn
            if inspect.isawaitable(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    # -- conveniences --------------------------------------------------------------------

    def add_token(
        self,
        value: str | None = None,
        *,
        login: str | None = None,
        scopes: tuple[str, ...] | list[str] = ("read:packages",),
        owners: list[str] | None = None,
        rate_limit: int = 5000,
        graphql_limit: int = 5000,
        window_s: float = 3600.0,
        kind: str = "classic",
        sso_blocked: tuple[str, ...] | list[str] = (),
    ) -> str:
        """Register a GitHub token; ``owners`` limits whose private packages it reads (None = all).

        ``kind`` (classic, fine_grained, actions, app, oauth, user_to_server) picks
        the prefix and how the emulator treats it (fine-grained PATs refused by
        the packages API, an Actions ``GITHUB_TOKEN`` answered 400 on org
        listings, scopes reported only for classic/OAuth); ``sso_blocked``
        names SAML SSO orgs the token is not authorized for.
        """
        number = next(self._owner_counter)
        value = value or fake_token(f"{self.seed}:extra:{number}", kind)
        login = login or f"bot-{number}"

        def add() -> Token:
            return self.state.add_token(
                value, login, scopes=scopes, owners=owners, rate_limit=rate_limit, graphql_limit=graphql_limit,
                window_s=window_s, kind=kind, sso_blocked=sso_blocked,
            )

        self.call(add)
        return value

    def basic_registry(self, users: dict[str, str] | None = None):
        """Start another real registry with htpasswd (Basic) auth and no GitHub side
        (``crawler.sandbox.basic``); stopped with the world. Push to any path::

            reg = world.basic_registry({"ci": "s3cret"})
            reg.push_image("alpine", tags=["3.20"])
        """
        from .basic import BasicRegistry, SyncBasicRegistry

        number = len(self._basic) + 1
        registry = BasicRegistry(self.dir / f"basic-registry-{number}", users or {"ci": "s3cret"},
                                 log_level=self.registry_log_level)
        self.call(registry.start)
        self._basic.append(registry)
        return SyncBasicRegistry(registry, self.call)

    def add_webhook(self, url: str, secret: str, *, owner: str | None = None,
                    events: tuple[str, ...] = ("registry_package",)) -> Hook:
        """A webhook on ``owner`` (None: every owner) POSTing signed package events to ``url`` (loopback only)."""
        return self.call(self.webhooks.add, url, secret, owner=owner, events=events)

    def remove_webhook(self, hook_id: int) -> None:
        self.call(self.webhooks.remove, hook_id)

    def deliveries(self, owner: str | None = None, package: str | None = None) -> list[Delivery]:
        """The webhook deliveries so far (optionally of one owner / package), oldest first."""
        return self.call(lambda: [d for d in self.webhooks.deliveries
                                  if (owner is None or d.owner.lower() == owner.lower())
                                  and (package is None or d.package == package)])

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again, same id and body (GitHub's "Redeliver"); returns once it was answered."""

        async def again() -> Delivery:
            delivery = self.webhooks.redeliver(delivery_id)
            await self.webhooks.drain()
            return delivery

        return self.call(again)

    def new_owner(self, prefix: str = "org", kind: str = "org") -> str:
        """A fresh, empty owner with a unique login (for tests that mutate)."""
        login = f"{prefix}-{next(self._owner_counter)}"
        self.call(self.state.add_owner, login, kind)
        return login

    def tags_of(self, owner: str, package: str) -> dict[str, str]:
        """The GitHub side's current tag → digest map of a package."""

        def read() -> dict[str, str]:
            pkg = self.state.package(owner, package)
            return dict(pkg.tag_map()) if pkg else {}

        return self.call(read)

    def package(self, owner: str, name: str, *, include_deleted: bool = False) -> Package | None:
        """The live state object (read it; mutate only through the builder)."""
        return self.call(self.state.package, owner, name, include_deleted=include_deleted)

    def expire_registry_tokens(self) -> None:
        """Every registry token issued so far is refused by the front from now on (401 + challenge).

        distribution 2.8 honours a token up to 60 s past ``exp``; this makes a
        client's cached token stale at once, so token refresh can be tested.
        """
        self.registry_proxy.revoked_upto = self.signer.issued

    def deny_repository(self, owner: str, package: str, *, method: str | None = None) -> Fault:
        """The ghcr front answers 403 ``DENIED`` to every request for one repository until ``clear_faults()``.

        Covers ``/v2/<owner>/<package>/manifests/…``, ``/blobs/…`` and
        ``/tags/…`` (GET and HEAD, or only ``method``); other repositories,
        nested names below this one included, are untouched. The token
        endpoint still grants the scope (ghcr, too, refuses at the resource).
        Returns the rule (its ``fired`` counts the refusals).
        """
        path = rf"^/v2/{re.escape(f'{owner}/{package}')}/(?:manifests|blobs|tags)/"
        return self.registry_proxy.inject("denied", path=path, method=method, times=FOREVER)

    def set_page_cap(self, cap: int) -> None:
        """Lower (or raise) the packages listing's ``page × per_page`` cap (GitHub: 10,000) until ``clear_faults()``.

        Test-only: with ``set_page_cap(60)`` a listing at ``per_page=30`` answers
        400 on page 3, as GitHub does past item 10,000.
        """
        if cap < 1:
            raise ValueError("the page cap must be at least 1")
        self.emulator.page_cap = cap

    def clear_faults(self) -> None:
        """Remove every fault rule (all proxies and the CDN) and restore the page cap; logs and counts stay."""
        self.registry_proxy.clear()
        self.registry_plain_proxy.clear()
        self.api_proxy.clear()
        self.cdn.clear()
        self.emulator.page_cap = self.page_cap

    def reset_logs(self) -> None:
        """Forget request logs and counters (proxies, CDN, emulator); faults and data stay."""

        def reset() -> None:
            self.registry_proxy.reset_log()
            self.registry_plain_proxy.reset_log()
            self.api_proxy.reset_log()
            self.cdn.requests.clear()
            self.cdn.faults.injected.clear()
            self.emulator.reset_logs()

        self.call(reset)

    def describe(self) -> dict:
        """URLs and (fake) tokens as one JSON-able dict."""
        return {
            "registry_url": self.registry_url,
            "registry_direct_url": self.registry_direct_url,
            "registry_plain_url": self.registry_plain_url,
            "api_url": self.api_url,
            "api_direct_url": self.api_direct_url,
            "graphql_url": self.graphql_url,
            "token_url": self.token_url,
            "cdn_url": self.cdn.url,
            "service": self.service,
            "user": self.user,
            "token": self.token,
            "admin_token": self.admin_token,
            "registry_log": str(self.registry.log_path),
        }

    def config_toml(
        self,
        db_path: str | Path,
        owners: list[tuple[str, str]] = (("acme", "org"),),
        *,
        token_env: str = "GITHUB_TOKEN",
        direct: bool = False,
        discovery: str = "rest",
        plain: bool = False,
        trusted_root: bool = False,
    ) -> str:
        """A ghcr-inventory config (its fixed keys: config.example.toml) pointing at this world.

        ``direct``: both services without proxies; ``plain``: the registry at the
        plain fault front (``_catalog`` with faults), the API at its front.
        """
        api = self.api_direct_url if direct else self.api_url
        registry = self.registry_direct_url if direct else (self.registry_plain_url if plain else self.registry_url)
        lines = [
            "[database]",
            f'path = "{db_path}"',
            "",
            "[github]",
            f'api_url = "{api}"',
            f'graphql_url = "{api}/graphql"',
            f'token_env = "{token_env}"',
            "",
            "[registry]",
            f'url = "{registry}"',
            "",
        ]
        if trusted_root:  # the world's Sigstore: its attestations verify
            lines += ["[attestations]", f'trusted_root = "{self.trusted_root_path}"', ""]
        for name, kind in owners:
            lines += ["[[owners]]", f'name = "{name}"', f'kind = "{kind}"', f'discovery = "{discovery}"', ""]
        return "\n".join(lines)
