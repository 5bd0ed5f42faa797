"""Secrets: a wrapper that never shows its value, and the redaction list.

Every token the process learns is registered here; the log pipeline and the
error printer pass their text through `redact` as a last line of defence, so a
token that slipped into a message (a URL, an upstream error body) never
reaches a terminal, a journal or the database.
"""

from __future__ import annotations

import base64
import threading

_known: set[str] = set()
_lock = threading.Lock()
MASK = "***"


class Secret:
    """A token. `repr`/`str` show a mask; `reveal()` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def basic_auth(self, username: str) -> str:
        raw = f"{username}:{self._value}".encode()
        encoded = base64.b64encode(raw).decode()
        register(encoded)
        return f"Basic {encoded}"

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        raise TypeError("a Secret cannot be pickled")


_PREFIX = 6          # shortest secret registered; the index key length
_SCAN_ABOVE = 16     # with more secrets than this, scan by prefix instead
_by_prefix: dict[str, list[str]] = {}


def register(value: str) -> None:
    """Remember a value that must never be shown (tokens, Basic blobs, JWTs)."""
    if value and len(value) >= _PREFIX:
        with _lock:
            if value not in _known:
                _known.add(value)
                _by_prefix.setdefault(value[:_PREFIX], []).append(value)


def redact(text: str) -> str:
    """Mask every registered secret in `text`. A run registers one registry
    token per repository, so past a few secrets the check walks the text
    once against a prefix index: its cost does not grow with their number."""
    if not _known or not text or len(text) < _PREFIX:
        return text
    if len(_known) <= _SCAN_ABOVE:
        found = [value for value in tuple(_known) if value in text]
    else:
        get = _by_prefix.get
        found = [value for i in range(len(text) - _PREFIX + 1)
                 for value in get(text[i:i + _PREFIX], ()) if text.startswith(value, i)]
    for value in sorted(set(found), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
