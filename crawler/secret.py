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


def register(value: str) -> None:
    """Remember a value that must never be shown (tokens, Basic blobs, JWTs)."""
    if value and len(value) >= 6:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    if not _known or not text:
        return text
    for value in _known:
        if value in text:
            text = text.replace(value, MASK)
    return text
