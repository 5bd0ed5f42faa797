"""Pure row builders: parsed content and package results in, the tuples
every store writes out. Shared by each store implementation, so two stores
given the same result write the same rows; SQL stays in the stores.
"""

from __future__ import annotations

import orjson

from ..oci import ImageConfig, ImageIndex, ImageManifest, image_info, predicate_types
from ..oci.mediatypes import REFERENCE_DIGEST, REFERENCE_TYPE

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


def diff_tags(current: dict[str, str], new: dict[str, str], complete: bool
              ) -> tuple[list[str], list[tuple[str, str]]]:
    """Tags to close and (tag, digest) spans to open. A tag missing from `new`
    is closed only when the listing was complete."""
    close = [t for t, d in current.items() if (t in new and new[t] != d) or (t not in new and complete)]
    opened = [(t, d) for t, d in new.items() if current.get(t) != d]
    return sorted(close), sorted(opened)

