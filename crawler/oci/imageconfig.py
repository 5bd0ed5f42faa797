"""Image config blobs (image-spec config.md) and the image facts read from
labels and annotations (image-spec annotations.md): pure parsers.

A config blob is size-capped and verified against its digest before it is
decoded, like a manifest. Timestamps are normalised to
``YYYY-MM-DDTHH:MM:SSZ`` UTC so they sort and compare as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from crawler.errors import ParseError

from .digest import show, verify_digest
from .fields import json_object, lookup, optional_str, string_map

MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The fields of an image config blob (image-spec config.md) we keep."""

    digest: str
    os: str | None = None
    architecture: str | None = None
    variant: str | None = None
    os_version: str | None = None
    created: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def label(self, key: str) -> str | None:
        return lookup(self.labels, key)


def parse_config(body: bytes, *, digest: str) -> ImageConfig:
    """Parse an image config blob fetched by ``digest``.

    Labels come from ``config.Labels``; Docker writes ``null`` for an image
    without labels, and ``config`` itself may be absent or null.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ParseError(f"config body is not bytes: {type(body).__name__}")
    body = bytes(body)
    if len(body) > MAX_CONFIG_BYTES:
        raise ParseError(f"image config is {len(body)} bytes, over the {MAX_CONFIG_BYTES}-byte limit")
    verify_digest(body, digest)
    doc = json_object(body, "image config")
    inner = doc.get("config")
    if inner is not None and not isinstance(inner, dict):
        raise ParseError(f"image config 'config' is not an object: {show(inner)}")
    created = optional_str(doc.get("created"), "image config created")
    return ImageConfig(
        digest=digest,
        os=optional_str(doc.get("os"), "image config os"),
        architecture=optional_str(doc.get("architecture"), "image config architecture"),
        variant=optional_str(doc.get("variant"), "image config variant"),
        os_version=optional_str(doc.get("os.version"), "image config os.version"),
        created=normalize_timestamp(created) if created else None,
        labels=string_map((inner or {}).get("Labels"), "image config config.Labels"),
    )


_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


# Whole seconds in UTC (GitHub's form): normalizing returns such text
# unchanged, a real instant or not (seconds past 59 would be clamped, hence [0-5]).
_CANONICAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:[0-5]\dZ", re.ASCII)


def normalize_timestamp(value: str) -> str:
    """RFC 3339 text -> ``YYYY-MM-DDTHH:MM:SSZ`` in UTC; else ``value``.

    Go writes nanoseconds (``…05.123456789Z``) and sometimes offsets;
    GitHub's API writes whole seconds with ``Z``. Truncating to seconds in
    UTC makes both sort and compare as text. Text without an offset, or
    that is not a real instant, is returned unchanged.
    """
    if isinstance(value, str) and _CANONICAL.fullmatch(value):
        return value   # already the normal form: parsing would give it back
    match = _TIMESTAMP.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return value
    year, month, day, hh, mm, ss, _frac, _z, sign, oh, om = match.groups()
    try:
        offset = timedelta(hours=int(oh or 0), minutes=int(om or 0))
        tz = timezone(-offset if sign == "-" else offset)
        when = datetime(int(year), int(month), int(day), int(hh), int(mm), min(int(ss), 59), tzinfo=tz)
        utc = when.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return value
    # not strftime: glibc's %Y does not zero-pad years before 1000
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"


# --- image info (org.opencontainers.image.* annotations) -------------------------

_INFO_PREFIX = "org.opencontainers.image."


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """Pre-defined OCI annotations (image-spec annotations.md)."""

    source: str | None = None
    revision: str | None = None
    description: str | None = None
    licenses: str | None = None
    created: str | None = None


def image_info(
    labels: Iterable[tuple[str, str]],
    annotations: Iterable[tuple[str, str]],
    config_created: str | None,
) -> ImageInfo:
    """Config labels first, then manifest annotations; ``created`` falls
    back to the config's own ``created`` field. Empty values are skipped."""
    found: dict[str, str] = {}
    for pairs in (labels, annotations):
        for key, value in pairs:
            name = key[len(_INFO_PREFIX):] if key.startswith(_INFO_PREFIX) else None
            if name in ImageInfo.__slots__ and value and name not in found:
                found[name] = value
    created = found.get("created") or config_created
    found["created"] = normalize_timestamp(created) if created else None
    return ImageInfo(**found)
