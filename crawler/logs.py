"""Logging (structlog) and the interactive progress line.

JSON lines for machines (timers, pipes, `--log-format json`), a readable
console rendering for a person at a terminal, plus a one-line progress
display on long interactive runs. Every event passes through `redact` before
it is rendered: a token can never reach a journal. The console rendering
also escapes control characters in every value (`output.printable`): a
package name holding an escape sequence cannot drive the terminal. JSON
keeps the exact data (orjson escapes control characters itself).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO

import orjson
import structlog

from .output import printable
from .secret import redact

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}

# The level `configure` set, for hot paths that build an event per request:
# structlog's filtering logger drops a debug event only after its arguments
# were built and a logger bound (loggers are not cached, so that reconfiguring
# takes effect), which costs more than the request's own bookkeeping.
# None: not configured, structlog's default passes everything.
_threshold: int | None = None


def enabled(level: int) -> bool:
    """Whether an event at `level` would be emitted."""
    return _threshold is None or level >= _threshold


def _redact_event(_logger, _name, event: dict) -> dict:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, BaseException):
            event[key] = redact(f"{type(value).__name__}: {value}")
    return event


def _printable_event(_logger, _name, event: dict) -> dict:
    """For the console only: every string value escaped; a traceback keeps
    its line breaks (each line escaped), it is meant to be read as lines."""
    for key, value in event.items():
        if isinstance(value, str):
            if key == "exception":
                event[key] = "\n".join(printable(line) for line in value.split("\n"))
            else:
                event[key] = printable(value)
    return event


def _json_dumps(obj, **_kw) -> str:
    return redact(orjson.dumps(obj, default=str).decode())


class _ConsoleStream:
    """Clears the progress line before a log line is written over it."""

    def __init__(self, stream: IO[str], progress: "ProgressLine | None") -> None:
        self.stream = stream
        self.progress = progress

    def write(self, text: str) -> None:
        if self.progress is not None:
            self.progress.clear()
        self.stream.write(redact(text))

    def flush(self) -> None:
        self.stream.flush()


class _Stderr:
    """sys.stderr looked up at each write, so a logger configured once keeps
    working when the process (or a test harness) swaps the stream."""

    def write(self, text: str) -> None:
        sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def wants_console(fmt: str, stream: IO[str]) -> bool:
    if fmt == "auto":
        return bool(getattr(stream, "isatty", lambda: False)())
    return fmt == "console"


def configure(fmt: str = "auto", level: str | None = None, stream: IO[str] | None = None,
              progress: "ProgressLine | None" = None) -> bool:
    """Configure structlog once; returns True when rendering for a person."""
    global _threshold
    stream = stream or _Stderr()
    console = wants_console(fmt, stream)
    # A person sees warnings and the progress line; a timer's journal gets info.
    threshold = LEVELS[level] if level else (logging.WARNING if console else logging.INFO)
    _threshold = threshold
    shared = [structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
              structlog.processors.TimeStamper(fmt="iso", utc=True), _redact_event]
    if console:
        renderers = [_printable_event,
                     structlog.dev.ConsoleRenderer(colors=stream.isatty(), pad_event_to=22)]
        out = _ConsoleStream(stream, progress)
    else:
        renderers = [structlog.processors.JSONRenderer(serializer=_json_dumps)]
        out = stream
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, *renderers],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False)
    return console


class ProgressLine:
    """`packages 12/50 · requests 340 · 304s 12 · failed 1` on one line."""

    def __init__(self, stream: IO[str] | None = None, interval_s: float = 0.1) -> None:
        self.stream = stream or _Stderr()
        self.interval_s = interval_s
        self._last = 0.0
        self._shown = False

    def update(self, summary, total: int) -> None:
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return
        self._last = now
        done = summary.packages_changed + summary.packages_skipped + summary.packages_failed
        text = (f"packages {done}/{total} · changed {summary.packages_changed} · "
                f"requests {summary.requests} · 304s {summary.not_modified}")
        if summary.packages_failed:
            text += f" · failed {summary.packages_failed}"
        self.stream.write("\r\x1b[2K" + printable(text))
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False
