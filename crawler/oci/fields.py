"""Typed readers for the JSON fields of OCI documents (manifests, indexes,
image configs): each returns the value or raises a one-line ParseError
naming the field. Shared by `manifest.py` and `imageconfig.py`.
"""

from __future__ import annotations

import orjson

from crawler.errors import ParseError

from .digest import show


def json_object(body: bytes, what: str) -> dict:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ParseError(f"{what} is JSON {type(doc).__name__}, not an object")
    return doc


def capped_list(value: object, where: str, limit: int, *, allow_null: bool) -> list:
    """A JSON array capped at ``limit`` items (checked before building)."""
    if value is None and allow_null:
        return []  # Go marshals a nil slice as null (e.g. a layer-less artifact)
    if not isinstance(value, list):
        raise ParseError(f"{where} is not a list: {show(value)}")
    if len(value) > limit:
        raise ParseError(f"{where} has {len(value)} entries, over the limit of {limit}")
    return value


def optional_str(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{where} is not a string: {show(value)}")
    return value or None


def strings(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseError(f"{where} is not a list of strings: {show(value)}")
    return tuple(value)


def string_map(value: object, where: str) -> tuple[tuple[str, str], ...]:
    """A string-to-string map (null tolerated: Go's nil map)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ParseError(f"{where} is not an object: {show(value)}")
    for key, text in value.items():
        if not isinstance(text, str):
            raise ParseError(f"{where}[{show(key)}] is not a string: {show(text)}")
    return tuple(value.items())


def lookup(pairs: tuple[tuple[str, str], ...], key: str) -> str | None:
    for name, value in pairs:
        if name == key:
            return value
    return None
