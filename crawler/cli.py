"""The command line: parse, load config, configure logging once, call the
engine, map errors to exit codes (README "Exit codes"):

  0 done · 1 done but some packages failed · 2 usage/config error ·
  3 authentication/authorization · 4 API/registry unreachable or rate-limited ·
  70 internal error (a bug; -vv shows the traceback) ·
  73 the inventory (database, its directory, lock or metrics file) cannot be
     created or opened for writing: read-only file system, permission, a parent
     that is not a directory, a lock file that is not ours ·
  74 the inventory could not be written: disk full, I/O error ·
  75 another sync holds the lock, or the database stayed locked beyond the busy
     timeout (a timer just retries) ·
  124 `query`/`report` ran past --timeout ·
  130/143 stopped by SIGINT/SIGTERM · 141 the reader of stdout left (`| head`)
  (`serve`, a service, exits 0 when SIGTERM/SIGINT stop it)

Whatever happens, the user sees one line naming what and where (a traceback
only at debug level) and a documented code.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import signal
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

import structlog

from . import logs
from .config import Config, load_config
from .credentials import database_password, resolve_credentials
from .errors import (InternalError, InterruptedRun, InventoryError, UsageError,
                     storage_error)
from .output import FORMATS, printable, render
from .store.reading import guard, open_reader, run_sql, user_query
from .secret import redact

PROG = "ghcr-inventory"
DEFAULT_CONFIG = "ghcr-inventory.toml"
DEFAULT_TIMEOUT_S = 30.0

log = structlog.get_logger("crawler.cli")

EXAMPLES = {
    "sync": "example: GITHUB_TOKEN=... ghcr-inventory --config inventory.toml sync --owner acme",
    "query": "example: ghcr-inventory query \"SELECT package, tag, digest FROM v_tags WHERE owner = 'acme'\" "
             "--format csv",
    "report": "example: ghcr-inventory report unsigned --format markdown   (ghcr-inventory report --list)",
    "status": "example: ghcr-inventory status --max-age 2h   # exit 1 when the last good sync is older",
    "demo": "example: ghcr-inventory demo --db /tmp/demo.db",
    "completion": "example: source <(ghcr-inventory completion bash)",
    "check": "example: GITHUB_TOKEN=... ghcr-inventory check --format json   # exit 0 good, 3 token, 4 unreachable",
    "plan-cleanup": "example: ghcr-inventory plan-cleanup --owner acme --policy untagged_older_than_days=30 "
                    "--format script > cleanup.sh   # review, then run it yourself",
    "serve": "example: GHCR_INVENTORY_WEBHOOK_SECRET=... ghcr-inventory --config inventory.toml serve",
    "migrate": "example: PGPASSWORD=... ghcr-inventory migrate --to postgresql://crawler@db:5432/inventory",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Inventory of container images on ghcr.io or any OCI registry, in SQLite.",
        epilog="Tokens come from the environment or a file named in the config, never from the "
               "command line. See config.example.toml.")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _global_options(p.add_argument_group("global options (also accepted before the command)"),
                        after=True)
        return p

    p = command("sync", "Sync the configured owners' packages into the database.")
    p.add_argument("--full", action="store_true", help="ignore every cache, re-verify and repair")
    p.add_argument("--owner", action="append", default=[], metavar="NAME", help="only this owner (repeatable)")
    p.add_argument("--package", action="append", default=[], metavar="NAME",
                   help="only this package (repeatable); deletions are not concluded")
    p.add_argument("--metrics-file", metavar="PATH",
                   help="write Prometheus textfile-collector metrics here (atomically)")

    p = command("query", "Run read-only SQL against the database.")
    p.add_argument("sql", metavar="SQL")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--db", metavar="PATH", help="SQLite file or postgresql:// URL (default: the config's "
                   "database.path or database.url)")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"stop the query after this long, exit 124 (default {DEFAULT_TIMEOUT_S:g}; 0 = no limit)")

    p = command("report", "Run a canned report (see --list).")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--list", action="store_true", help="list the reports")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--db", metavar="PATH")
    p.add_argument("--days", type=int, default=7, help="window for time-based reports (default 7)")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"stop the report after this long, exit 124 (default {DEFAULT_TIMEOUT_S:g}; 0 = no limit)")

    p = command("status", "Show the last runs per owner; a monitoring probe with --max-age.")
    p.add_argument("--max-age", metavar="AGE", help="exit 1 if the newest successful sync is older "
                   "(e.g. 90m, 2h, 1d)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--db", metavar="PATH")

    p = command("check", "Check that the token can do the job: kind, scopes, SSO, each owner's listing and "
                         "registry pull, GraphQL, rate limit.")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--owner", action="append", default=[], metavar="NAME", help="only this owner (repeatable)")

    p = command("plan-cleanup", "Propose package versions safe to delete (read-only: deletes nothing).")
    p.add_argument("--owner", action="append", default=[], metavar="NAME", help="only this owner (repeatable)")
    p.add_argument("--package", action="append", default=[], metavar="NAME", help="only this package (repeatable)")
    p.add_argument("--policy", action="append", default=[], metavar="KEY=VALUE",
                   help="override a [cleanup] key for this run (repeatable), e.g. keep_newest_tagged=5")
    p.add_argument("--format", choices=(*FORMATS, "script"), default="table",
                   help="script: `gh api -X DELETE` lines to review and run by hand")
    p.add_argument("--db", metavar="PATH")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"stop reading after this long, exit 124 (default {DEFAULT_TIMEOUT_S:g}; 0 = no limit)")

    p = command("demo", "Start the local sandbox (registry + GitHub emulator), sync it, show results.")
    p.add_argument("--db", metavar="PATH", help="database to fill (default: a temporary file)")

    p = command("completion", "Print a shell completion script.")
    p.add_argument("shell", choices=("bash", "zsh"))

    command("serve", "Receive GitHub's package webhooks and sync each changed package within seconds; "
                     "reconcile on a period ([serve] in the config).")

    p = command("migrate", "Copy an SQLite inventory, history included, into PostgreSQL (idempotent).")
    p.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://USER@HOST:PORT/DATABASE (password: PGPASSWORD or ~/.pgpass, or the "
                        "config's database.password_* when its database.url is this URL)")
    p.add_argument("--from", dest="source", metavar="PATH", help="SQLite file (default: database.path)")
    return parser


GLOBAL_DESTS = ("config", "log_format", "log_level", "verbose")
_AFTER = "after_"


def _global_options(parser, *, after: bool = False) -> None:
    """The global options, on the main parser and again on every command
    (`ghcr-inventory sync -v` as well as `ghcr-inventory -v sync`). A
    command's copies default to SUPPRESS under their own names, so an option
    given only before the command keeps its value; `parse_args` then lets
    one given after the command win (the later one)."""
    def opts(dest: str, default):
        return {"dest": _AFTER + dest if after else dest,
                "default": argparse.SUPPRESS if after else default}

    parser.add_argument("--config", metavar="FILE", help=f"config file (default: ./{DEFAULT_CONFIG})",
                        **opts("config", None))
    parser.add_argument("--log-format", choices=("auto", "json", "console"),
                        help="auto: console on a terminal, JSON lines otherwise", **opts("log_format", "auto"))
    parser.add_argument("--log-level", choices=tuple(logs.LEVELS), help="default: warning on a "
                        "terminal, info otherwise", **opts("log_level", None))
    parser.add_argument("-v", "--verbose", action="count", help="-v info, -vv debug", **opts("verbose", 0))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for dest in GLOBAL_DESTS:
        if hasattr(args, _AFTER + dest):
            setattr(args, dest, getattr(args, _AFTER + dest))
            delattr(args, _AFTER + dest)
    return args


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: use a number of seconds >= 0 (0 = no limit)")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    level = args.log_level or {0: None, 1: "info"}.get(args.verbose, "debug")
    if level is None and args.command == "demo":
        level = "warning"  # the demo prints its own story
    if level is None and args.command == "serve":
        level = "info"     # a service: one line per delivery and per sync, on a terminal too
    progress = logs.ProgressLine() if args.command == "sync" else None
    console = logs.configure(args.log_format, level, progress=progress)
    try:
        handler = {"sync": cmd_sync, "query": cmd_query, "report": cmd_report, "status": cmd_status,
                   "demo": cmd_demo, "completion": cmd_completion, "check": cmd_check,
                   "plan-cleanup": cmd_plan_cleanup, "serve": cmd_serve, "migrate": cmd_migrate}[args.command]
        return handler(args, console=console, progress=progress if console else None)
    except InventoryError as exc:
        say(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        say("interrupted")
        return InterruptedRun.exit_code
    except BrokenPipeError:
        # `ghcr-inventory query ... | head`: the reader left. Not a storage
        # failure; stay quiet as a process killed by SIGPIPE would (128 + 13).
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except OSError as exc:
        # Last resort: a file operation nobody translated. Still one line and
        # EX_CANTCREAT/EX_IOERR, by the same translator the store uses.
        err = storage_error(exc, where=str(exc.filename) if exc.filename else "")
        _traceback_if(level)
        say(f"error: {err}")
        return err.exit_code
    except Exception as exc:
        _traceback_if(level)
        say(f"internal error: {type(exc).__name__}: {exc} (rerun with -vv for the traceback)")
        return InternalError.exit_code
    finally:
        if progress is not None:
            progress.clear()


def say(text: str) -> None:
    """Every line the CLI prints about an outcome: one line (a line break or
    an escape sequence from a server shows as an escape), prefixed, redacted."""
    print(f"{PROG}: {printable(redact(text))}", file=sys.stderr)


def _traceback_if(level: str | None) -> None:
    if level == "debug":
        lines = redact(traceback.format_exc()).splitlines()
        sys.stderr.write("".join(printable(line) + "\n" for line in lines))


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _config(args) -> Config:
    return load_config(Path(args.config or DEFAULT_CONFIG))


def _db_path(args):
    """The inventory to read: --db (a file or a postgresql:// URL, whose
    password comes from PGPASSWORD or ~/.pgpass), else the config's."""
    if getattr(args, "db", None):
        return args.db
    return _config(args).database


def _open_db(args):
    target = _db_path(args)
    if isinstance(target, str):
        return target, open_reader(target)
    config = _config(args)
    return target.target, open_reader(target, database_password(target, config.source))


# --- sync --------------------------------------------------------------------------

def _fewer_collections() -> None:
    """A sync allocates millions of short-lived objects (responses, parsed
    documents) that reference counting frees; the cyclic collector's default
    (a young collection every 700 net allocations) spent ≈ 5 % of a cold
    sync's CPU finding almost nothing. Collect young objects every 10,000."""
    gc.set_threshold(10_000, 50, 20)


def cmd_sync(args, *, console: bool, progress) -> int:
    from .engine import SyncOptions
    config = _config(args)
    creds = resolve_credentials(config)
    options = SyncOptions(full=args.full, owners=tuple(args.owner), packages=tuple(args.package))
    _fewer_collections()
    summary = asyncio.run(_sync_with_signals(config, creds, options, progress))
    if progress is not None:
        progress.clear()
    _print_summary(summary)
    if args.metrics_file:
        from .metrics import write_metrics
        write_metrics(Path(args.metrics_file), summary, config.database, creds.database)   # StoreError: 73/74
    return summary.exit_code


async def _sync_with_signals(config, creds, options, progress):
    from .engine import run_sync
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        structlog.get_logger("crawler.cli").warning("stopping", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        summary = await run_sync(config, creds, options, progress=progress, stop=stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    if received and summary.status == "interrupted":
        summary.exit_code = 128 + received[0]
    return summary


def _print_summary(s) -> None:
    line = (f"sync {s.status}: {s.packages_changed} changed, {s.packages_skipped} unchanged, "
            f"{s.packages_failed} failed, {s.packages_deleted} deleted; {s.requests} requests "
            f"({s.not_modified} not modified, lower bound {s.lower_bound})")
    if s.rows_corrected:
        line += f"; {s.rows_corrected} rows corrected"
    if getattr(s, "broken_children", 0):
        line += f"; {s.broken_children} index child(ren) missing in the registry (report broken)"
    print(printable(line), file=sys.stderr)
    # The first failures and their reasons, so a mail from cron says what broke;
    # the fatal message (if any) gets its own line below.
    failures = [e for e in s.errors if e != s.message]
    for text in _failure_lines(failures, len(failures)):
        print(text, file=sys.stderr)
    if s.status not in ("ok",) and s.message:
        say(s.message)


SHOWN_FAILURES = 5


def _failure_lines(failures: list[str], total: int) -> list[str]:
    """`  owner/package: reason` for the first few, then how many more."""
    lines = [f"  {printable(redact(text))}" for text in failures[:SHOWN_FAILURES]]
    if total > SHOWN_FAILURES:
        lines.append(f"  … and {total - SHOWN_FAILURES} more (see `v_sync_runs`/`run_errors`)")
    return lines


# --- query / report / status ----------------------------------------------------------

def cmd_query(args, **_) -> int:
    db, conn = _open_db(args)
    try:
        with guard(conn, args.timeout, what="query"):
            log.debug("query_started", db=str(db), timeout_s=args.timeout or None)
            columns, rows = user_query(conn, args.sql)
    finally:
        conn.close()
    sys.stdout.write(render(args.format, columns, rows))
    return 0


def cmd_report(args, **_) -> int:
    from .reports import REPORTS, run_report
    if args.list or not args.name:
        for name, report in REPORTS.items():
            print(f"{name:<22} {report.description}")
        return 0 if args.list else 2
    db, conn = _open_db(args)
    try:
        with guard(conn, args.timeout, what=f"report {args.name}"):
            log.debug("report_started", db=str(db), report=args.name, timeout_s=args.timeout or None)
            columns, rows, note = run_report(conn, args.name, days=args.days)
    finally:
        conn.close()
    sys.stdout.write(render(args.format, columns, rows))
    if note:
        print(printable(note), file=sys.stderr)
    return 0


_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """'90m', '2h', '1d', '1h30m', '3600' -> seconds."""
    pos, total = 0, 0.0
    text = text.strip().lower()
    while pos < len(text):
        m = _AGE.match(text, pos)
        if not m or m.end() == pos:
            raise UsageError(f"--max-age {text!r}: use a duration like 90m, 2h, 1d")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or total <= 0:
        raise UsageError(f"--max-age {text!r}: use a duration like 90m, 2h, 1d")
    return total


STATUS_SQL = """
SELECT o.name AS owner,
       (SELECT r.status FROM sync_runs r WHERE ',' || r.owners || ',' LIKE '%,' || o.name || ',%'
         ORDER BY r.id DESC LIMIT 1) AS last_status,
       (SELECT COALESCE(r.finished_at, r.started_at) FROM sync_runs r
         WHERE ',' || r.owners || ',' LIKE '%,' || o.name || ',%' ORDER BY r.id DESC LIMIT 1) AS last_run,
       (SELECT r.finished_at FROM sync_runs r WHERE ',' || r.owners || ',' LIKE '%,' || o.name || ',%'
           AND r.status IN ('ok', 'partial') ORDER BY r.id DESC LIMIT 1) AS last_success,
       (SELECT COUNT(*) FROM packages p WHERE p.owner_id = o.id AND p.deleted_at IS NULL) AS packages,
       (SELECT COUNT(*) FROM tags t JOIN packages p ON p.id = t.package_id
         WHERE p.owner_id = o.id AND t.last_seen IS NULL AND p.deleted_at IS NULL) AS tags
FROM owners o ORDER BY o.name
"""


LAST_RUN_SQL = """
SELECT r.id, r.status, (SELECT COUNT(*) FROM run_errors e WHERE e.run_id = r.id)
FROM sync_runs r ORDER BY r.id DESC LIMIT 1
"""
LAST_FAILURES_SQL = """
SELECT CASE WHEN e.owner IS NULL THEN e.message
            WHEN e.package IS NULL THEN e.owner || ': ' || e.message
            ELSE e.owner || '/' || e.package || ': ' || e.message END
FROM run_errors e WHERE e.run_id = (SELECT MAX(id) FROM sync_runs) ORDER BY e.rowid LIMIT :limit
"""


def _age_s(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (now - then).total_seconds()


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def cmd_status(args, **_) -> int:
    max_age = parse_age(args.max_age) if args.max_age else None
    _, conn = _open_db(args)
    try:
        with guard(conn, None, what="status"):   # a probe: Ctrl-C/SIGTERM stop it at once
            _, rows = run_sql(conn, STATUS_SQL)
            _, last = run_sql(conn, LAST_RUN_SQL)
            _, failures = run_sql(conn, LAST_FAILURES_SQL, {"limit": SHOWN_FAILURES})
    finally:
        conn.close()
    now = datetime.now(timezone.utc)
    table = []
    stale = []
    for owner, status, last_run, last_ok, packages, tags in rows:
        age = _age_s(last_ok, now)
        table.append((owner, status or "never", last_run, _human(_age_s(last_run, now)), last_ok,
                      _human(age), packages, tags))
        if max_age is not None and (age is None or age > max_age):
            stale.append(f"{owner} (last successful sync {_human(age)} ago)" if age is not None
                         else f"{owner} (never synced successfully)")
    columns = ["owner", "last_status", "last_run", "age", "last_success", "success_age", "packages", "tags"]
    sys.stdout.write(render(args.format, columns, table))
    if last and last[0][2]:
        run_id, run_status, count = last[0]
        # Below the table for a person; machine formats keep stdout to their data.
        out = sys.stdout if args.format in ("table", "markdown") else sys.stderr
        print(f"last run {run_id} ({printable(str(run_status))}): {count} failure(s)", file=out)
        for text in _failure_lines([what for (what,) in failures], count):
            print(text, file=out)
    if max_age is not None and (stale or not rows):
        what = ", ".join(stale) if stale else "no owner has ever been synced"
        say(f"stale: {what}; --max-age is {_human(max_age)}")
        return 1
    return 0


# --- check ------------------------------------------------------------------------------

def cmd_check(args, **_) -> int:
    """One line per check (✓/✗ and the fix), or JSON; exit 0 / 3 / 4 (crawler/check.py)."""
    from .check import exit_code, render_checks, run
    config = _config(args)
    unknown = [o for o in args.owner if config.owner(o) is None]
    if unknown:
        raise UsageError(f"--owner {unknown[0]!r} is not in the config's [[owners]]")
    checks = run(config, resolve_credentials(config), owners=tuple(args.owner))
    sys.stdout.write(render_checks(checks, args.format))
    return exit_code(checks)


def cmd_plan_cleanup(args, **_) -> int:
    """Read-only: the plan (crawler/cleanup/), never a deletion."""
    from .cleanup import make_plan, parse_policy_options
    from .cleanup.render import COLUMNS, plan_rows, script, summary
    options = parse_policy_options(args.policy)
    # --db alone: the policy of ./ghcr-inventory.toml if there is one, else the defaults.
    config = _config(args) if args.config or not args.db or Path(DEFAULT_CONFIG).exists() else Config()
    _, conn = _open_db(args)
    try:
        with guard(conn, args.timeout, what="plan-cleanup"):
            plans = make_plan(conn, config.cleanup, owners=args.owner, packages=args.package, options=options)
    finally:
        conn.close()
    sys.stdout.write(script(plans) if args.format == "script" else render(args.format, COLUMNS, plan_rows(plans)))
    for plan in plans:
        if plan.refused:
            print(printable(f"refused {plan.owner}/{plan.package}: {plan.refused}"), file=sys.stderr)
    print(printable(summary(plans)), file=sys.stderr)
    return 0


# --- serve -------------------------------------------------------------------------------

def cmd_serve(args, **_) -> int:
    """Until SIGTERM/SIGINT, then 0 (README "Serve"). Without the webhook
    secret it refuses to start (exit 2)."""
    from .credentials import resolve_webhook_secret
    config = _config(args)
    creds = resolve_credentials(config)
    secret = resolve_webhook_secret(config)
    _fewer_collections()
    return asyncio.run(_serve_with_signals(config, creds, secret))


async def _serve_with_signals(config, creds, secret) -> int:
    from .serve import serve
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        log.warning("stopping", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await serve(config, creds, secret, stop=stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


# --- demo / completion --------------------------------------------------------------------

def cmd_demo(args, **_) -> int:
    from .demo import run_demo
    return run_demo(Path(args.db) if args.db else None)


def cmd_migrate(args, **_) -> int:
    from .config import DatabaseConfig, database_url_problem
    from .store.migrate import migrate
    from .store.pgconnect import PgTarget
    problem = database_url_problem(args.to)
    if problem:
        raise UsageError(f"--to {problem}")
    config = _config(args) if (args.config or Path(DEFAULT_CONFIG).exists() or not args.source) else None
    source = Path(args.source) if args.source else (config.database.path if config else None)
    if source is None:
        raise UsageError("--from PATH: the config names no SQLite database.path to migrate")
    database = DatabaseConfig(path=None, url=args.to)
    password = None
    if config is not None and config.database.url == args.to:
        database, password = config.database, database_password(config.database, config.source)
    elif os.environ.get("PGPASSWORD"):
        password = database_password(database, "PGPASSWORD")
    done = asyncio.run(migrate(source, PgTarget.of(database, password)))
    print(printable(done.line(str(source), PgTarget.of(database, None).where)), file=sys.stderr)
    return 0


def cmd_completion(args, **_) -> int:
    from .completion import script
    sys.stdout.write(script(args.shell, build_parser()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
