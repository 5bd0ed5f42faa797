"""Pure row builders: parsed content and package results in, the tuples
every store writes out. Shared by each store implementation, so two stores
given the same result write the same rows; SQL stays in the stores.
"""

from __future__ import annotations

import orjson

from ..model import PackageResult, VersionEntry
from ..oci import ImageConfig, ImageIndex, ImageManifest, image_info, predicate_types
from ..oci.mediatypes import REFERENCE_DIGEST, REFERENCE_TYPE
from .protocol import DueDigests

MANIFEST_COLUMNS = (
    "digest", "media_type", "kind", "artifact_type", "size", "content_size", "config_digest",
    "config_size", "layer_count", "subject_digest", "predicate_type", "created", "source", "revision",
    "description", "licenses", "os", "architecture", "variant", "os_version",
)


def manifest_row(m: ImageManifest | ImageIndex, config: ImageConfig | None) -> tuple:
    """The manifests row for a parsed manifest (without fetched_at)."""
    labels = config.labels if config else ()
    info = image_info(labels, m.annotations, config.created if config else None)
    subject = m.subject.digest if m.subject else None
    if isinstance(m, ImageIndex):
        return (m.digest, m.media_type, m.kind, m.artifact_type, m.size, None, None, None, None, subject,
                None, info.created, info.source, info.revision, info.description, info.licenses,
                None, None, None, None)
    return (m.digest, m.media_type, m.kind, m.artifact_type, m.size, m.total_size, m.config.digest,
            m.config.size, len(m.layers), subject, predicate_types(m), info.created, info.source,
            info.revision, info.description, info.licenses, config.os if config else None,
            config.architecture if config else None, config.variant if config else None,
            config.os_version if config else None)


def children_rows(m: ImageIndex) -> list[tuple]:
    rows = []
    for pos, child in enumerate(m.manifests):
        p = child.platform
        rows.append((m.digest, pos, child.digest, child.media_type, child.size,
                     str(p) if p else None, p.os if p else None, p.architecture if p else None,
                     p.variant if p else None, p.os_version if p else None,
                     child.annotation(REFERENCE_TYPE),
                     child.annotation(REFERENCE_DIGEST)))
    return rows


def layer_rows(m: ImageManifest) -> list[tuple]:
    return [(m.digest, pos, layer.digest, layer.media_type, layer.size,
             orjson.dumps(list(layer.urls)).decode() if layer.urls else None)
            for pos, layer in enumerate(m.layers)]


DESCRIPTOR_ROLES = ("child", "layer", "config", "subject")


def descriptor_annotation_rows(m: ImageManifest | ImageIndex) -> list[tuple]:
    """(manifest_digest, role, position, key, value) for every annotation
    on a descriptor the manifest holds: index entries (`buildah manifest
    annotate`), layers, the config and the subject (OCI image-spec
    descriptor.md allows annotations on every descriptor). The manifest's
    own annotations stay in `annotations`; position is the entry's index in
    `manifests` or `layers`, 0 for the config and the subject."""
    if isinstance(m, ImageIndex):
        described = [("child", pos, d) for pos, d in enumerate(m.manifests)]
    else:
        described = [("layer", pos, d) for pos, d in enumerate(m.layers)] + [("config", 0, m.config)]
    if m.subject is not None:
        described.append(("subject", 0, m.subject))
    return [(m.digest, role, pos, key, value) for role, pos, d in described for key, value in d.annotations]


def config_row(c: ImageConfig) -> tuple:
    return (c.digest, c.os, c.architecture, c.variant, c.os_version, c.created)


CONFIG_COLUMNS = ("digest", "os", "architecture", "variant", "os_version", "created")   # config_row's

# The child tables of content, in the order both stores write them, and the
# column naming the object (manifest or config) each row belongs to.
CHILD_TABLES = (("manifest_children", "parent_digest"), ("layers", "manifest_digest"), ("annotations", "digest"),
                ("descriptor_annotations", "manifest_digest"), ("config_labels", "config_digest"))


def manifest_rows(result: PackageResult) -> dict[str, tuple]:
    """A package's manifests rows (without fetched_at), by digest."""
    configs = {c.digest: c for c in result.configs}
    return {m.digest: manifest_row(m, configs.get(m.config.digest) if isinstance(m, ImageManifest) else None)
            for m in result.manifests}


def config_rows(result: PackageResult) -> dict[str, tuple]:
    return {c.digest: config_row(c) for c in result.configs}


def child_rows(result: PackageResult) -> dict[str, dict[str, list[tuple]]]:
    """A package's child rows: table (CHILD_TABLES) -> object digest -> its rows."""
    manifests = {m.digest: m for m in result.manifests}
    return {
        "manifest_children": {d: children_rows(m) for d, m in manifests.items() if isinstance(m, ImageIndex)},
        "layers": {d: layer_rows(m) for d, m in manifests.items() if isinstance(m, ImageManifest)},
        "annotations": {d: [(d, k, v) for k, v in m.annotations] for d, m in manifests.items()},
        "descriptor_annotations": {d: descriptor_annotation_rows(m) for d, m in manifests.items()},
        "config_labels": {c.digest: [(c.digest, k, v) for k, v in c.labels] for c in result.configs},
    }


def diff_tags(current: dict[str, str], new: dict[str, str], complete: bool
              ) -> tuple[list[str], list[tuple[str, str]]]:
    """Tags to close and (tag, digest) spans to open. A tag missing from `new`
    is closed only when the listing was complete."""
    close = [t for t, d in current.items() if (t in new and new[t] != d) or (t not in new and complete)]
    opened = [(t, d) for t, d in new.items() if current.get(t) != d]
    return sorted(close), sorted(opened)



# The live digests of a package with their current tags (`stored_versions`):
# one row per (digest, tag), tag NULL for an untagged digest; a current tag
# on a digest with no live row comes with version_id NULL and no timestamps.
# The packages columns a `StoredPackage` is built from, in its field order.
STORED_PACKAGE_COLUMNS = "id, updated_at, version_count, visibility, repository, last_synced, deleted_at, full_listed_at"

STORED_VERSIONS_SQL = (
    "SELECT pd.digest, pd.version_id, pd.created_at, pd.updated_at, t.tag FROM package_digests pd "
    "LEFT JOIN tags t ON t.package_id = pd.package_id AND t.digest = pd.digest AND t.last_seen IS NULL "
    "WHERE pd.package_id = ? AND pd.last_seen IS NULL "
    "UNION ALL SELECT t.digest, NULL, NULL, NULL, t.tag FROM tags t WHERE t.package_id = ? "
    "AND t.last_seen IS NULL AND NOT EXISTS (SELECT 1 FROM package_digests pd WHERE pd.package_id = ? "
    "AND pd.digest = t.digest AND pd.last_seen IS NULL)")


def stored_versions(rows) -> list[VersionEntry]:
    """`STORED_VERSIONS_SQL`'s rows as one entry per digest, tags sorted."""
    heads: dict[str, tuple] = {}
    tags: dict[str, list[str]] = {}
    for digest, version_id, created_at, updated_at, tag in rows:
        heads.setdefault(digest, (version_id, created_at, updated_at))
        tags.setdefault(digest, [])
        if tag is not None:
            tags[digest].append(tag)
    return [VersionEntry(d, tuple(sorted(tags[d])), *head) for d, head in heads.items()]


def full_listed(result: PackageResult, now: str) -> tuple[str | None, bool]:
    """packages.full_listed_at after `result`: (the new value, keep the
    stored one instead). A whole versions listing stamps it; one synthesised
    from the newest pages keeps it (the interval runs from the last whole
    one); anything else clears it, so the next change reads every page."""
    if result.complete and result.listing == "whole":
        return now, False
    return None, result.complete and result.listing == "synthesised"


def restamp(result: PackageResult, full_listed_at: str | None, last_synced: str | None) -> bool:
    """Must a package row that is otherwise unchanged be written for
    `result`? Yes when a whole versions listing follows one cut short (or
    none on record): else the stamp would stay old and every later run would
    list the package whole again."""
    return result.listing == "whole" and (full_listed_at is None or full_listed_at < (last_synced or ""))


def due_digests(rows) -> list[DueDigests]:
    """(owner id, owner, kind, digest) rows in owner id then digest order,
    one DueDigests per owner."""
    out: list[DueDigests] = []
    owner, digests = None, []
    for owner_id, name, kind, digest in rows:
        if owner is None or owner[0] != owner_id:
            if owner is not None:
                out.append(DueDigests(*owner, tuple(digests)))
            owner, digests = (owner_id, name, kind), []
        digests.append(digest)
    if owner is not None:
        out.append(DueDigests(*owner, tuple(digests)))
    return out
