"""The cleanup policy of one package: [cleanup] defaults, then every
[[cleanup.overrides]] whose owner and package glob match (in file order,
a later one winning), then the command line's `--policy KEY=VALUE`.

Pure: the config tree and strings in, a complete `Policy` out; a bad
`--policy` is a UsageError naming it (exit 2)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from fnmatch import fnmatchcase

from ..config import CleanupConfig, CleanupPolicy, glob_problem
from ..errors import UsageError

__all__ = ["Policy", "parse_policy_options", "policy_for"]


@dataclass(frozen=True, slots=True)
class Policy:
    """Every key decided (no None)."""

    keep_newest_tagged: int
    keep_tags: tuple[str, ...]
    delete_untagged: bool
    untagged_older_than_days: float
    delete_tagged: bool
    tagged_older_than_days: float

    def describe(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))


def _merge(base: CleanupPolicy, top: CleanupPolicy) -> CleanupPolicy:
    return replace(base, **{f.name: getattr(top, f.name) for f in fields(top) if getattr(top, f.name) is not None})


def policy_for(config: CleanupConfig, owner: str, package: str, options: CleanupPolicy | None = None) -> Policy:
    merged = config.defaults
    for override in config.overrides:
        if override.owner.lower() == owner.lower() and fnmatchcase(package, override.package):
            merged = _merge(merged, override.policy)
    if options is not None:
        merged = _merge(merged, options)
    return Policy(**{f.name: getattr(merged, f.name) for f in fields(merged)})


def parse_policy_options(items: list[str]) -> CleanupPolicy:
    """`--policy keep_newest_tagged=5 --policy keep_tags=latest,v*` -> the keys they set."""
    values: dict = {f.name: None for f in fields(CleanupPolicy)}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in values:
            raise UsageError(f"--policy {item!r}: use KEY=VALUE with KEY one of {', '.join(values)}")
        values[key] = _value(key, text.strip(), item)
    return CleanupPolicy(**values)


def _value(key: str, text: str, item: str):
    if key == "keep_tags":
        globs = tuple(g.strip() for g in text.split(",") if g.strip())
        bad = [g for g in globs if glob_problem(g)]
        if bad:
            raise UsageError(f"--policy {item!r}: bad glob {bad[0]!r} ({glob_problem(bad[0])})")
        return globs
    if key.startswith("delete_"):
        if text.lower() in ("true", "yes", "1"):
            return True
        if text.lower() in ("false", "no", "0"):
            return False
        raise UsageError(f"--policy {item!r}: use true or false")
    try:
        number = int(text) if key == "keep_newest_tagged" else float(text)
    except ValueError:
        raise UsageError(f"--policy {item!r}: use a number") from None
    if not number >= 0:   # NaN too
        raise UsageError(f"--policy {item!r}: use a number >= 0")
    return number
