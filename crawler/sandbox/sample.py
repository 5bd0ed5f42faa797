"""A deterministic sample org (and one user) pushed through the builder, with the expectations it implies.

``build_sample_org(world)`` pushes 22 packages for the org ``acme`` and 2 for the
user ``mona``: multi-arch OCI index with buildx attestations, a Docker manifest
list, cosign ``.sig/.att/.sbom`` tags, OCI artifacts with and without
``subject``, nested names, private/internal/public packages, a package with 260
tags, a foreign-layer image, orphans, and packages linked to source
repositories (archived, private, head commit equal to the image's ``revision``
label or not). It returns a ``SampleOrg`` computed from the builder's records and
the world's state — the inventory a correct crawler must produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .builder import Pushed

Key = tuple[str, str]  # (owner, package)
DigestKey = tuple[str, str, str]  # (owner, package, digest)

REPORT_TYPE = "application/vnd.acme.scan-report.v1+json"
BUNDLE_TYPE = "application/vnd.acme.bundle.v1+json"


@dataclass(frozen=True)
class ExpectedPackage:
    owner: str
    name: str
    visibility: str  # public | private | internal
    repository: str | None  # linked source repository "owner/name"
    tags: Mapping[str, str] = field(hash=False)  # current tag → digest
    digests: frozenset[str] = frozenset()  # active versions (what the REST versions listing shows)
    version_count: int = 0

    @property
    def key(self) -> Key:
        return (self.owner, self.name)


@dataclass(frozen=True)
class RepoFacts:
    full_name: str
    visibility: str
    private: bool
    archived: bool
    default_branch: str
    head_oid: str


@dataclass(frozen=True)
class Referrer:
    owner: str
    package: str
    subject: str  # digest described
    referrer: str  # digest of the signature/attestation/sbom/artifact manifest
    kind: str  # signature | attestation | sbom | artifact
    artifact_type: str | None
    via: str  # "cosign-tag" | "buildx" | "subject"


@dataclass(frozen=True)
class SampleOrg:
    """What the sample holds, computed from what was pushed.

    - ``images``: every manifest pushed, by (owner, package, digest): images,
      index children (``parent`` set, ``platform`` set), attestation
      manifests, cosign manifests, artifacts. ``Pushed.kind`` is the expected
      ``v_images.kind``.
    - ``tags``: (owner, package, tag) → digest, as of now (after moves).
    - ``orphans``: active versions that are untagged, not a child of an
      active index, and not describing anything (no ``subject``).
    - ``signed``/``attested``/``sboms``: digests with a cosign ``.sig``;
      with a cosign ``.att`` or a buildx attestation manifest; with a cosign
      ``.sbom``.
    - ``roles``: names for the special packages (see ``ROLES``).
    - ``github_attested``: digests with attestations in GitHub's attestation
      store (not in the registry), and whether they verify.
    """

    owner: str
    user: str
    owners: tuple[tuple[str, str], ...]  # (login, "org" | "user")
    packages: Mapping[Key, ExpectedPackage] = field(hash=False)
    images: Mapping[DigestKey, Pushed] = field(hash=False)
    tags: Mapping[tuple[str, str, str], str] = field(hash=False)
    repositories: Mapping[str, RepoFacts] = field(hash=False)
    referrers: frozenset[Referrer] = frozenset()
    orphans: frozenset[DigestKey] = frozenset()
    signed: frozenset[DigestKey] = frozenset()
    attested: frozenset[DigestKey] = frozenset()
    sboms: frozenset[DigestKey] = frozenset()
    revision_matches_head: frozenset[DigestKey] = frozenset()
    roles: Mapping[str, Key] = field(hash=False, default_factory=dict)
    # GitHub's attestation store: digest -> True when signed by the world's
    # Sigstore (verifies against world.trusted_root_path), False when by one
    # the trusted root does not know.
    github_attested: Mapping[DigestKey, bool] = field(hash=False, default_factory=dict)

    def package(self, owner: str, name: str) -> ExpectedPackage:
        return self.packages[(owner, name)]

    def packages_of(self, owner: str) -> list[ExpectedPackage]:
        return [p for (o, _), p in sorted(self.packages.items()) if o == owner]

    def image(self, owner: str, package: str, digest: str) -> Pushed:
        return self.images[(owner, package, digest)]

    def role(self, name: str) -> ExpectedPackage:
        return self.packages[self.roles[name]]

    def tagged(self, owner: str, package: str, tag: str) -> Pushed:
        return self.images[(owner, package, self.tags[(owner, package, tag)])]

    @property
    def active_digests(self) -> frozenset[DigestKey]:
        return frozenset((p.owner, p.name, d) for p in self.packages.values() for d in p.digests)


ROLES = (
    "multiarch_oci",  # OCI index, 3 platforms + buildx attestations, cosign sig + att
    "multiarch_docker",  # Docker manifest list, 2 platforms
    "nested",  # team/app/api
    "private",  # private package (private repo)
    "internal",  # internal package
    "public_from_private_repo",
    "archived_repo",
    "many_tags",  # 260 tags
    "foreign_layer",  # Docker v2 windows image with a foreign layer
    "signed",  # cosign .sig, .att and .sbom
    "artifact",  # image + untagged OCI artifact with subject
    "artifact_only",  # tagged OCI artifact without subject
    "orphaned",  # a tag moved away leaves an orphan
    "revision_matches_head",
    "revision_stale",
    "user_package",
)


def build_sample_org(world, owner: str = "acme") -> SampleOrg:
    """Push the sample into ``world`` (a started ``World``) and return its expectations."""
    b = world.builder
    user = world.user
    b.create_owner(owner, "org", name="Acme Corp")
    repo = {}
    for name, kw in (
        ("webapp", {}),
        ("api", {}),
        ("platform", {}),
        ("legacy", {"archived": True}),
        ("billing", {"visibility": "private"}),
        ("secret-tools", {"visibility": "private"}),
        ("scanner", {"visibility": "internal"}),
        ("metrics", {"default_branch": "trunk"}),
    ):
        repo[name] = b.create_repository(owner, name, description=f"The {name} repository", **kw)
    b.create_repository(user, "dotfiles")
    o = owner
    roles: dict[str, Key] = {}

    # 1. multi-arch OCI index with buildx attestations, signed and attested (revision == head).
    webapp = b.push_index(
        o, "webapp", tags=["latest", "1.4.0", "1.4"], platforms=["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
        attestations=True, repository=f"{o}/webapp", revision=repo["webapp"].head_oid,
        description="The Acme web application", licenses="Apache-2.0",
    )
    b.push_cosign(o, "webapp", webapp, "sig")
    b.push_cosign(o, "webapp", webapp, "att")
    roles["multiarch_oci"] = (o, "webapp")
    roles["revision_matches_head"] = (o, "webapp")

    # 2. Docker manifest list; its revision goes stale when the repo gets a new commit.
    api_index = b.push_index(
        o, "api", tags=["latest", "v2.1.0"], format="docker", platforms=["linux/amd64", "linux/arm64"],
        repository=f"{o}/api", revision=repo["api"].head_oid, licenses="MIT",
    )
    b.push_commit(f"{o}/api")
    roles["multiarch_docker"] = (o, "api")
    roles["revision_stale"] = (o, "api")

    # 3-5, 19. nested names.
    b.push_image(o, "team/app/api", tags=["latest", "3.0.0"], repository=f"{o}/platform", revision=repo["platform"].head_oid)
    b.push_image(o, "team/app/web", tags=["latest"], format="docker", repository=f"{o}/platform")
    b.push_image(o, "team/tools", tags=["edge"], repository=f"{o}/platform")
    b.push_image(o, "base-images/alpine", tags=["3.19", "latest"], description="Acme's Alpine base")
    roles["nested"] = (o, "team/app/api")

    # 6-8. visibility and repository links.
    b.push_image(o, "billing", tags=["latest", "2024.01"], visibility="private", repository=f"{o}/billing")
    b.push_image(o, "secret-cli", tags=["latest"], visibility="public", repository=f"{o}/secret-tools")
    b.push_image(o, "legacy-worker", tags=["latest", "0.9"], format="docker", repository=f"{o}/legacy")
    b.push_image(o, "internal-tool", tags=["latest"], visibility="internal", repository=f"{o}/scanner")
    roles["private"] = (o, "billing")
    roles["public_from_private_repo"] = (o, "secret-cli")
    roles["archived_repo"] = (o, "legacy-worker")
    roles["internal"] = (o, "internal-tool")

    # 9. 260 tags over three images (more than two tags/list pages and REST pages).
    many = [b.push_image(o, "many-tags", layers=1, layer_size=128) for _ in range(3)]
    for n, image in enumerate(many):
        # Written straight into storage: 260 manifest PUTs would cost ~2 s.
        b.add_tags(o, "many-tags", image, [f"build-{i:04d}" for i in range(n, 260, 3)], fast=True)
    b.tag(o, "many-tags", "latest", many[-1])
    roles["many_tags"] = (o, "many-tags")

    # 10. foreign (non-distributable) layer.
    b.push_image(o, "win-agent", tags=["ltsc2022"], format="docker", platform="windows/amd64", foreign_layer=True)
    roles["foreign_layer"] = (o, "win-agent")

    # 11. cosign signature, attestation and SBOM.
    signed = b.push_image(o, "signed-app", tags=["v1"], licenses="BSD-3-Clause")
    for kind in ("sig", "att", "sbom"):
        b.push_cosign(o, "signed-app", signed, kind)
    roles["signed"] = (o, "signed-app")

    # 12-13. OCI artifacts.
    scanned = b.push_image(o, "scanner", tags=["latest"], repository=f"{o}/scanner")
    b.push_artifact(o, "scanner", artifact_type=REPORT_TYPE, subject=scanned)
    b.push_artifact(o, "bundle", artifact_type=BUNDLE_TYPE, tags=["v1"])
    roles["artifact"] = (o, "scanner")
    roles["artifact_only"] = (o, "bundle")

    # 14. a moved tag leaves an orphan; 21. a package whose only version is untagged.
    b.push_image(o, "orphaned", tags=["latest"])
    b.push_image(o, "orphaned", tags=["latest"])
    b.push_image(o, "nightly")
    roles["orphaned"] = (o, "orphaned")

    # 15-18, 20, 22. plain images and indexes.
    cli_image = b.push_image(o, "cli", tags=["latest", "0.1.0"], description="Acme command line", licenses="Apache-2.0")
    b.push_index(o, "db-migrations", tags=["latest"], platforms=["linux/amd64", "linux/arm64"],
                 child_annotations={"linux/arm64": {"org.opencontainers.image.description": "Graviton build",
                                                    "com.acme.tested": "false"}})
    b.push_image(o, "docs", tags=["latest"], format="docker", repository=f"{o}/webapp")
    sidecar = b.push_image(o, "sidecar", tags=["latest", "stable"], format="docker")
    b.push_index(
        o, "metrics-exporter", tags=["latest"], platforms=["linux/amd64", "linux/s390x"], attestations=True,
        repository=f"{o}/metrics", revision="0" * 40,
    )

    # The user's packages.
    b.push_image(user, "dotfiles", tags=["latest"], repository=f"{user}/dotfiles", revision=None)
    b.push_image(user, "scratch", tags=["latest"], format="docker", visibility="private")
    roles["user_package"] = (user, "dotfiles")

    # 23. GitHub's attestation store (attest-build-provenance without push-to-registry):
    # webapp has registry attestations too; cli has provenance and an SBOM only there;
    # api's was signed at the repository's new head, not at the image's revision label;
    # sidecar's comes from a Sigstore the world's trusted root does not know.
    from .sigstore import SPDX, FakeSigstore

    github = {(o, "webapp", webapp.digest): True, (o, "cli", cli_image.digest): True,
              (o, "api", api_index.digest): True, (o, "sidecar", sidecar.digest): False}
    b.attest(o, "webapp", webapp, repository=f"{o}/webapp")
    b.attest(o, "cli", cli_image, repository=f"{o}/platform", workflow=".github/workflows/cli.yml")
    b.attest(o, "cli", cli_image, repository=f"{o}/platform", workflow=".github/workflows/cli.yml",
             predicate_type=SPDX)
    b.attest(o, "api", api_index, repository=f"{o}/api")
    b.attest(o, "sidecar", sidecar, repository=f"{o}/webapp", sigstore=FakeSigstore("rogue"))

    world.sample = world.call(expectations, world, (owner, user), roles, github)
    return world.sample


def expectations(world, owners: tuple[str, ...], roles: Mapping[str, Key],
                 github: Mapping[DigestKey, bool] | None = None) -> SampleOrg:
    """Compute a ``SampleOrg`` from the world's state and the builder's records (run on the world loop)."""
    state = world.state
    records = world.builder.records
    packages: dict[Key, ExpectedPackage] = {}
    images: dict[DigestKey, Pushed] = {}
    tags: dict[tuple[str, str, str], str] = {}
    repositories: dict[str, RepoFacts] = {}
    for login in owners:
        for pkg in state.packages_of(login):
            active = frozenset(v.name for v in pkg.listed_versions())
            tag_map = pkg.tag_map()
            packages[(pkg.owner, pkg.name)] = ExpectedPackage(
                pkg.owner, pkg.name, pkg.visibility, pkg.repository, dict(tag_map), active, pkg.version_count
            )
            tags.update({(pkg.owner, pkg.name, t): d for t, d in tag_map.items()})
            for digest in active:
                images[(pkg.owner, pkg.name, digest)] = records[(pkg.owner, pkg.name, digest)]
        for repo in state.repositories.values():
            if repo.owner.lower() == login.lower():
                repositories[repo.full_name] = RepoFacts(
                    repo.full_name, repo.visibility, repo.private, repo.archived, repo.default_branch, repo.head_oid
                )

    referrers = set()
    for (own, pkg, digest), image in images.items():
        if image.subject is None:
            continue
        via = "subject" if image.kind == "artifact" else ("buildx" if image.parent else "cosign-tag")
        referrers.add(Referrer(own, pkg, image.subject, digest, image.kind, image.artifact_type, via))
    children = {(o, p, ch.digest) for (o, p, _), img in images.items() for ch in img.children}
    tagged = {(o, p, d) for (o, p, _), d in tags.items()}
    orphans = frozenset(
        key for key, image in images.items() if key not in children and key not in tagged and image.subject is None
    )
    by_kind = {k: frozenset((r.owner, r.package, r.subject) for r in referrers if r.kind == k) for k in ("signature", "attestation", "sbom")}
    heads = {name: facts.head_oid for name, facts in repositories.items()}
    revision_matches = frozenset(
        key
        for key, image in images.items()
        if image.revision and state.packages[(key[0].lower(), key[1])].repository
        and heads.get(state.packages[(key[0].lower(), key[1])].repository) == image.revision
    )
    return SampleOrg(
        owner=owners[0],
        user=owners[1],
        owners=tuple((login, state.owner(login).kind) for login in owners),
        packages=packages,
        images=images,
        tags=tags,
        repositories=repositories,
        referrers=frozenset(referrers),
        orphans=orphans,
        signed=by_kind["signature"],
        attested=by_kind["attestation"],
        sboms=by_kind["sbom"],
        revision_matches_head=revision_matches,
        roles=dict(roles),
        github_attested=dict(github or {}),
    )
