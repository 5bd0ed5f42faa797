"""Wiring: the clients a run uses, built from the config in one place.

One HttpClient (one governor per host, one set of counters) serves the
registry, the REST API and GraphQL; credentials go only to their own
origins (the registry's token realm only when trusted; docs/architecture.md
"Invariants"). GraphQL is built — and gql imported — on first use, so a
run that needs no GraphQL stays cheap.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable
from urllib.parse import urlsplit

from ..config import Config
from ..credentials import Credentials
from ..github import GitHubClient
from ..http import HttpClient, RetryPolicy, origin
from ..registry import RegistryClient
from ..model import RegistryFacts
from ..store import StoreReader

if TYPE_CHECKING:
    from ..graphql import GraphQLClient


@dataclass(frozen=True, slots=True)
class Clocks:
    """Injected time, so tests never sleep through backoff or rate limits."""

    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.time


def registry_host(config: Config) -> str:
    return urlsplit(config.registry.url).netloc.lower()


def http_client(config: Config, clocks: Clocks) -> HttpClient:
    crawl, gh, reg = config.crawl, config.github, config.registry
    insecure = {urlsplit(u).hostname for u, flag in
                ((gh.api_url, gh.insecure), (gh.graphql_url, gh.insecure), (reg.url, reg.insecure)) if flag}
    return HttpClient(timeout_s=crawl.timeout_s, concurrency=crawl.concurrency,
                      retry=RetryPolicy(crawl.retries, crawl.backoff_base_s, crawl.backoff_max_s),
                      reserve=crawl.rate_limit_reserve, max_wait_s=crawl.max_wait_s,
                      insecure_hosts=frozenset(insecure), sleep=clocks.sleep, clock=clocks.clock)


def trusted_origins(config: Config) -> set[tuple]:
    """Origins a token realm may be on and still get the registry's credentials
    (besides the registry's own): the GitHub API's and `registry.auth_hosts`."""
    gh, reg = config.github, config.registry
    return {origin(gh.api_url)} | {origin(h if "://" in h else f"https://{h}") for h in reg.auth_hosts}


def registry_client(config: Config, creds: Credentials, http: HttpClient, clocks: Clocks, *,
                    facts: RegistryFacts | None = None,
                    save_facts: Callable[[RegistryFacts], Awaitable[None]] | None = None) -> RegistryClient:
    reg = config.registry
    return RegistryClient(
        http, reg.url, credentials=creds.registry, username=creds.registry_user or reg.username,
        credential_source=creds.registry_source, trusted_origins=trusted_origins(config),
        max_manifest_bytes=config.crawl.max_manifest_bytes, max_config_bytes=config.crawl.max_config_bytes,
        facts=facts, save_facts=save_facts, clock=clocks.clock)


class Clients:
    """The registry, REST and (lazily) GraphQL clients of one run."""

    def __init__(self, config: Config, creds: Credentials, http: HttpClient, clocks: Clocks, *,
                 facts: RegistryFacts | None, reader: StoreReader,
                 save_facts: Callable[[RegistryFacts], Awaitable[None]]) -> None:
        self.http = http
        self._config = config
        self._creds = creds
        self.registry = registry_client(config, creds, http, clocks, facts=facts, save_facts=save_facts)
        self.github = GitHubClient(http, config.github.api_url, creds.github, cache_lookup=reader.cache_lookup,
                                   page_window=config.crawl.concurrency)
        self._graphql: GraphQLClient | None = None

    def graphql(self) -> GraphQLClient | None:
        """The GraphQL client (None without a token), made on first use."""
        if self._graphql is None and self._creds.github is not None:
            from ..graphql import GraphQLClient  # gql is heavy to import: only when GraphQL is used
            self._graphql = GraphQLClient(self.http, self._config.github.graphql_url, self._creds.github)
        return self._graphql
