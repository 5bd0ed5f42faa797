"""The deletion planner: one package's versions, tags and links in, the
versions it is safe to delete out. Pure; it deletes nothing.

A package's digests are linked parent -> follower: an index to its
children (platform images, buildx attestation manifests), a subject to
its referrers (signatures, attestations, SBOMs, artifacts with a subject,
cosign `.sig/.att/.sbom` tags). Followers are decided by their parents;
every other digest is a *root* decided by the policy:

  - a tagged root is kept when a tag matches `keep_tags`, or it is among
    the `keep_newest_tagged` most recently uploaded tagged roots, or
    tagged deletion is off, or it is younger than `tagged_older_than_days`;
    otherwise it goes (with all its tags);
  - an untagged root (no tag, no parent here) goes when untagged deletion
    is on and it is older than `untagged_older_than_days`; a signature or
    attestation whose subject is not in the package is such a root.

Then *kept* is everything reachable from a kept root (a tag matching
`keep_tags` keeps its digest whatever else points to it), and *going* is
everything reachable from a going root that is not kept. So the plan
never proposes a child of a kept index, a referrer of a kept subject, or
a digest a kept tag points to; and always proposes a going subject's
referrers and a going index's children with it (unless something kept
holds them). `check_plan` asserts exactly that, for every plan made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatchcase

from ..errors import InternalError
from .policy import Policy

__all__ = ["Link", "PackagePlan", "PackageRows", "Proposal", "Version", "check_plan", "plan_package"]

REFERRER_KINDS = frozenset({"signature", "attestation", "sbom"})
PUBLIC_CAVEAT = ("public package: GitHub refuses to delete a version downloaded more than 5,000 times, "
                 "and download counts are not in its API")


@dataclass(frozen=True, slots=True)
class Version:
    digest: str
    version_id: int | None
    uploaded: str | None            # GitHub's version created_at (else first seen), ISO-8601 UTC
    kind: str | None                # index | image | signature | attestation | sbom | artifact
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Link:
    parent: str
    child: str
    how: str                        # child | signature | attestation | sbom | other (a referrer)


@dataclass(frozen=True, slots=True)
class PackageRows:
    """What the inventory knows of one package (crawler/cleanup/load.py)."""

    owner: str
    owner_kind: str                 # org | user
    name: str
    visibility: str | None
    versions: tuple[Version, ...]
    links: tuple[Link, ...]
    blobs: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)   # digest -> (blob, size)
    refused: str | None = None      # why nothing may be concluded here (an incomplete listing...)


@dataclass(frozen=True, slots=True)
class Proposal:
    owner: str
    owner_kind: str
    package: str
    version_id: int
    digest: str
    kind: str | None
    tags: tuple[str, ...]
    reason: str
    bytes: int                      # blobs freed that no earlier proposal of the package frees
    caveat: str | None
    depth: int                      # 0 a root; parents come before their followers


@dataclass(frozen=True, slots=True)
class PackagePlan:
    owner: str
    package: str
    proposals: tuple[Proposal, ...]
    kept: frozenset[str]
    bytes: int                      # distinct blobs freed in the package
    refused: str | None = None
    unlisted: tuple[str, ...] = ()  # going digests GitHub lists no version id for (nothing to delete)


def plan_package(rows: PackageRows, policy: Policy, now: datetime) -> PackagePlan:
    if rows.refused:
        return PackagePlan(rows.owner, rows.name, (), frozenset(v.digest for v in rows.versions), 0, rows.refused)
    by_digest = {v.digest: v for v in rows.versions}
    children: dict[str, list[Link]] = {}
    has_parent: set[str] = set()
    for link in rows.links:
        if link.parent in by_digest and link.child in by_digest and link.parent != link.child:
            children.setdefault(link.parent, []).append(link)
            has_parent.add(link.child)
    roots = [v for v in rows.versions if v.digest not in has_parent]
    kept_roots, going_roots = _decide(roots, policy, now)
    # A tagged follower (a platform image tagged by itself, a cosign tag) is
    # kept by its own tags as a root would be; otherwise its parents decide.
    kept_roots += [v.digest for v in rows.versions
                   if v.digest in has_parent and v.tags and _kept_by_own_tags(v, policy, now)]
    kept = _reach(kept_roots, children)
    reasons: dict[str, tuple[str, int]] = {}
    for digest, why in going_roots.items():
        if digest not in kept:
            reasons[digest] = (why, 0)
    _follow(list(reasons), children, kept, reasons)
    plan = _proposals(rows, by_digest, reasons, kept)
    check_plan(rows, {p.digest for p in plan.proposals} | set(plan.unlisted))
    return plan


def _decide(roots: list[Version], policy: Policy, now: datetime) -> tuple[list[str], dict[str, str]]:
    """(kept roots, going roots with their reason)."""
    tagged = sorted((v for v in roots if v.tags and v.kind not in REFERRER_KINDS),
                    key=lambda v: (v.uploaded or "", v.digest), reverse=True)
    newest = {v.digest for v in tagged[:policy.keep_newest_tagged]}
    kept, going = [], {}
    for v in roots:
        age = _age_days(v.uploaded, now)
        if v.tags and v.kind not in REFERRER_KINDS:
            if (_glob_kept(v, policy) or v.digest in newest or not policy.delete_tagged
                    or age is None or not age >= policy.tagged_older_than_days):
                kept.append(v.digest)
            else:
                going[v.digest] = (f"tagged ({len(v.tags)} tag{'s' if len(v.tags) != 1 else ''}), uploaded "
                                   f"{age:.0f} days ago "
                                   f"(tagged_older_than_days={policy.tagged_older_than_days:g}; not among the "
                                   f"{policy.keep_newest_tagged} newest tagged; no tag matches keep_tags)")
        elif _glob_kept(v, policy) or not policy.delete_untagged or age is None \
                or not age >= policy.untagged_older_than_days:
            kept.append(v.digest)
        else:
            what = "untagged" if not v.tags else f"{v.kind} whose subject is not in the package"
            going[v.digest] = (f"{what}, uploaded {age:.0f} days ago "
                               f"(untagged_older_than_days={policy.untagged_older_than_days:g})")
    return kept, going


def _kept_by_own_tags(v: Version, policy: Policy, now: datetime) -> bool:
    """A tagged follower's own tags: a signature/attestation/SBOM tag keeps
    it only by keep_tags (it goes with its subject); an image's tag as any
    tagged version's would."""
    if _glob_kept(v, policy):
        return True
    if v.kind in REFERRER_KINDS:
        return False
    age = _age_days(v.uploaded, now)
    return not policy.delete_tagged or age is None or not age >= policy.tagged_older_than_days


def _glob_kept(v: Version, policy: Policy) -> bool:
    return any(fnmatchcase(t, g) for t in v.tags for g in policy.keep_tags)


def _age_days(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (now - then).total_seconds() / 86400


def _reach(start: list[str], children: dict[str, list[Link]]) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        for link in children.get(todo.pop(), ()):
            if link.child not in seen:
                seen.add(link.child)
                todo.append(link.child)
    return seen


def _follow(todo: list[str], children: dict[str, list[Link]], kept: set[str],
            reasons: dict[str, tuple[str, int]]) -> None:
    """Followers of going digests go with them, unless kept."""
    while todo:
        parent = todo.pop(0)
        depth = reasons[parent][1]
        for link in children.get(parent, ()):
            if link.child in kept or link.child in reasons:
                continue
            what = "platform image or attestation manifest" if link.how == "child" else link.how
            reasons[link.child] = (f"{what} of {parent[:19]}…, which goes", depth + 1)
            todo.append(link.child)


def _proposals(rows: PackageRows, by_digest: dict[str, Version], reasons: dict[str, tuple[str, int]],
               kept: set[str]) -> PackagePlan:
    kept_blobs = {b for d in kept for b, _ in rows.blobs.get(d, ())}
    freed: set[str] = set()
    caveat = PUBLIC_CAVEAT if rows.visibility == "public" else None
    out, unlisted = [], []
    order = sorted(reasons, key=lambda d: (reasons[d][1], by_digest[d].uploaded or "", d))
    for digest in order:
        v = by_digest[digest]
        if v.version_id is None:
            unlisted.append(digest)
            continue
        mine = {b: s for b, s in rows.blobs.get(digest, ()) if b not in kept_blobs and b not in freed}
        freed.update(mine)
        why, depth = reasons[digest]
        out.append(Proposal(rows.owner, rows.owner_kind, rows.name, v.version_id, digest, v.kind, v.tags, why,
                            sum(mine.values()), caveat, depth))
    total = sum(p.bytes for p in out)
    return PackagePlan(rows.owner, rows.name, tuple(out), frozenset(kept), total, None, tuple(unlisted))


def check_plan(rows: PackageRows, going: set[str]) -> None:
    """The promise, checked on every plan: deleting `going` leaves every
    digest a kept tag points to, with all its followers (children,
    signatures, attestations, SBOMs), in place. A violation is a bug: the
    plan is refused whole (exit 70) rather than printed."""
    present = {v.digest for v in rows.versions}
    children: dict[str, list[str]] = {}
    for link in rows.links:
        if link.parent in present and link.child in present:
            children.setdefault(link.parent, []).append(link.child)
    tagged_kept = [v.digest for v in rows.versions if v.tags and v.digest not in going]
    for digest in _reach(tagged_kept, {p: [Link(p, c, "") for c in cs] for p, cs in children.items()}):
        if digest in going:
            raise InternalError(f"plan-cleanup would delete {digest} that a kept tag of {rows.owner}/{rows.name} "
                                "reaches; no plan printed")
