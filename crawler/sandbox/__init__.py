"""The sandbox world: a real registry, a GitHub emulator and fault proxies on loopback.

Used by the tests, ``ghcr-inventory demo`` and the benchmark. Modules, one role each:

- ``world``     — ``World``: everything started on a background loop, sync facade
- ``registry``  — run distribution 2.8 (``docker-registry``) with token auth
- ``basic``     — a second distribution with htpasswd (Basic) auth, repositories at any path
- ``tokens``    — signing key, certificate bundle, registry JWTs
- ``state``     — the GitHub-side data model (owners, repos, packages, tokens)
- ``emulator``  — REST packages API, GraphQL, ``/token`` (aiohttp)
- ``attest_api`` — the attestations API (``bulk-list``), validated against its OpenAPI
- ``sigstore``  — a stand-in Sigstore: CA, log key, attestation bundles, trusted root
- ``webhooks``  — signed ``registry_package`` deliveries for pushes (packages with a source repository)
- ``graphql_api`` / ``render`` / ``openapi`` — GraphQL resolvers, REST JSON, schema checks
- ``proxy`` / ``faults`` — ghcr-shaped fault proxy, blob CDN, fault kinds
- ``content`` / ``builder`` — image bytes; pushing + registering (the source of truth)
- ``sample``    — the sample org and its expectations (``SampleOrg``)
- ``hostile``   — a foreign SQLite write lock, a full disk, a read-only file system
- ``pgserver``  — a real PostgreSQL server (``initdb`` + ``pg_ctl``) on loopback
"""

from __future__ import annotations

__all__ = ["World", "build_sample_org", "SampleOrg", "Pushed"]


def __getattr__(name: str):  # lazy: importing crawler.sandbox stays cheap
    if name == "World":
        from .world import World

        return World
    if name in ("build_sample_org", "SampleOrg"):
        from . import sample

        return getattr(sample, name)
    if name == "Pushed":
        from .builder import Pushed

        return Pushed
    raise AttributeError(name)
