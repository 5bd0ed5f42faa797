"""The README's "Reliability" table, gathered from the test modules that
assert it.

Each `tests/test_reliability*.py` module defines `RELIABILITY`, a list of
`Row`s; every row names the test function (in the same module) that asserts
its outcome. `render_table` joins them in module order (the original module
first, then by name), so helpers working on different fault classes never
edit one shared list. `UPDATE_README=1 scripts/test tests/test_reliability.py`
rewrites the table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"


@dataclass(frozen=True)
class Row:
    id: str
    tried: str
    outcome: str
    test: str = ""          # the test function asserting it; "" = the parametrized fault test


def modules() -> list:
    names = sorted(p.stem for p in HERE.glob("test_reliability*.py"))
    names.sort(key=lambda n: n != "test_reliability")
    return [importlib.import_module(f"tests.{n}") for n in names]


def all_rows() -> list[tuple[object, Row]]:
    return [(m, row) for m in modules() for row in getattr(m, "RELIABILITY", [])]


def render_table() -> str:
    lines = ["| fault or bad input | observed outcome |", "|---|---|"]
    lines += [f"| {row.tried} | {row.outcome} |" for _, row in all_rows()]
    return "\n".join(lines)


def readme_with_table(text: str) -> str:
    head = text[:text.index(BEGIN) + len(BEGIN)]
    return head + "\n" + render_table() + "\n" + text[text.index(END):]
