"""Rendering query results: table, json, csv, ndjson, markdown.

Pure functions of (columns, rows) -> text, used by `query`, `report` and
`status`. Bytes (BLOBs) are shown as hex; None as empty (table/csv/markdown)
or null (json/ndjson).
"""

from __future__ import annotations

import csv
import io
from typing import Sequence

import orjson

FORMATS = ("table", "json", "csv", "ndjson", "markdown")


def _cell(value) -> object:
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return value


def _text(value) -> str:
    value = _cell(value)
    return "" if value is None else str(value)


def render(fmt: str, columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    if fmt == "json":
        return orjson.dumps([dict(zip(columns, map(_cell, r))) for r in rows],
                            option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "ndjson":
        return "".join(orjson.dumps(dict(zip(columns, map(_cell, r)))).decode() + "\n" for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in r] for r in rows])
        return buf.getvalue()
    if fmt == "markdown":
        def esc(v: str) -> str:
            return v.replace("|", "\\|").replace("\n", " ")
        lines = ["| " + " | ".join(esc(c) for c in columns) + " |",
                 "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(esc(_text(v)) for v in r) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    if fmt == "table":
        return _table(columns, rows)
    raise ValueError(f"unknown format {fmt!r}")


def _table(columns: Sequence[str], rows: Sequence[Sequence], max_width: int = 72) -> str:
    cells = [[_text(v).replace("\n", " ") for v in r] for r in rows]
    cells = [[v if len(v) <= max_width else v[:max_width - 1] + "…" for v in r] for r in cells]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return "\n".join([line, rule, *body, footer]) + "\n"
