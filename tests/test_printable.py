"""`output.printable` and where it is applied: terminal-bound text never
carries a control character; machine formats keep the exact data."""

from __future__ import annotations

import csv
import io
import json
import unicodedata

import structlog
from hypothesis import given
from hypothesis import strategies as st

from crawler import logs
from crawler.output import printable, render

EXTRA = {"\u2028", "\u2029", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}


def unsafe(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" or ch in EXTRA


@given(st.text())
def test_printable_output_never_holds_a_control_character(text):
    out = printable(text)
    assert not any(unsafe(ch) for ch in out)
    assert printable(out) == out            # escaping is idempotent on its own output


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"))).filter(
    lambda s: not any(ch in EXTRA for ch in s)))
def test_printable_text_comes_back_unchanged(text):
    assert printable(text) == text


def test_escapes_look_like_python_escapes():
    assert printable("a\x1b]0;t\x07b\nc\td\x7f\x9b\u202e") == "a\\x1b]0;t\\x07b\\x0ac\\x09d\\x7f\\x9b\\u202e"


@given(st.lists(st.tuples(st.text(), st.text() | st.none() | st.integers()), max_size=5))
def test_table_and_markdown_lines_hold_no_control_character(rows):
    for fmt in ("table", "markdown"):
        text = render(fmt, ["name\x1b[31m", "value"], rows)
        assert text.endswith("\n")
        assert not any(unsafe(ch) for line in text.splitlines() for ch in line), fmt
        assert len(text.splitlines()) == len(rows) + (3 if fmt == "table" else 2)   # one line per row


EVIL = "app\x1b]52;c;cHduZWQ=\x07\x1b[2J\r\nfake"


def test_machine_formats_keep_the_exact_data():
    rows = [(EVIL, 1)]
    assert json.loads(render("json", ["package", "n"], rows)) == [{"package": EVIL, "n": 1}]
    assert json.loads(render("ndjson", ["package", "n"], rows).splitlines()[0])["package"] == EVIL
    assert list(csv.reader(io.StringIO(render("csv", ["package", "n"], rows))))[1] == [EVIL, "1"]


def test_console_log_escapes_values_json_keeps_them(capsys):
    stream = io.StringIO()
    logs.configure("console", "info", stream=stream)
    try:
        raise ValueError(f"bad {EVIL}")
    except ValueError:
        structlog.get_logger("t").error("package_failed\x1b[1A", package=EVIL, count=3, exc_info=True)
    text = stream.getvalue()
    # every value escaped (the renderer may quote it too); a traceback keeps
    # its own line breaks, every other control character is escaped in it
    assert not any(unsafe(ch) for ch in text.replace("\n", ""))
    assert "package=" in text and "x1b]52;c;cHduZWQ=" in text and "x07" in text
    assert "package_failed\\x1b[1A" in text and "Traceback (most recent call last)" in text
    assert "ValueError: bad app\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\x0d" in text

    stream = io.StringIO()
    logs.configure("json", "info", stream=stream)
    structlog.get_logger("t").error("package_failed", package=EVIL)
    line = stream.getvalue()
    assert "\x1b" not in line and json.loads(line)["package"] == EVIL
    logs.configure("json", "warning")


def test_the_progress_line_is_escaped():
    class Summary:
        packages_changed, packages_skipped, packages_failed, requests, not_modified = 1, 0, 0, 5, 0

    stream = io.StringIO()
    line = logs.ProgressLine(stream=stream, interval_s=0)
    line.update(Summary(), total=2)
    assert stream.getvalue() == "\r\x1b[2Kpackages 1/2 · changed 1 · requests 5 · 304s 0"
