"""Rendering query results: table, json, csv, ndjson, markdown; and
`printable`, the escaping of every string a person's terminal shows.

Pure functions of (columns, rows) -> text, used by `query`, `report` and
`status`. Bytes (BLOBs) are shown as hex; None as empty (table/csv/markdown)
or null (json/ndjson).

Package names, tags, labels and error bodies come from the API and the
registry, so they may hold escape sequences (`ESC ] 0 ; title BEL` retitles a
terminal, OSC 52 writes its clipboard, CSI sequences move the cursor over
earlier lines) and other control characters. The human formats (table,
markdown), the console log, the progress line and every line the CLI prints
pass through `printable`; JSON/NDJSON (orjson escapes control characters)
and CSV (for machines) keep the exact data.
"""

from __future__ import annotations

import csv
import io
from typing import Sequence

import orjson

FORMATS = ("table", "json", "csv", "ndjson", "markdown")

# C0 (newline and tab included: one value, one line), DEL and C1 as \x1b-style
# escapes; the Unicode line/paragraph separators and the bidirectional
# overrides and isolates (which reorder what a terminal shows, CVE-2021-42574)
# as \u202e-style ones.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({code: f"\\u{code:04x}" for code in (0x2028, 0x2029, *range(0x202A, 0x202F),
                                                      *range(0x2066, 0x206A))})


def printable(text: str) -> str:
    """`text` with every control character shown as an escape: safe to write
    to a terminal. Printable text comes back unchanged."""
    return text.translate(_ESCAPES)


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
            return printable(v).replace("|", "\\|")
        lines = ["| " + " | ".join(esc(c) for c in columns) + " |",
                 "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(esc(_text(v)) for v in r) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    if fmt == "table":
        return _table(columns, rows)
    raise ValueError(f"unknown format {fmt!r}")


def _table(columns: Sequence[str], rows: Sequence[Sequence], max_width: int = 72) -> str:
    columns = [printable(str(c)) for c in columns]
    cells = [[printable(_text(v)) for v in r] for r in rows]
    cells = [[v if len(v) <= max_width else v[:max_width - 1] + "…" for v in r] for r in cells]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return "\n".join([line, rule, *body, footer]) + "\n"
