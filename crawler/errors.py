"""Every error ghcr-inventory raises on purpose, in one hierarchy.

Each error carries the exit code the CLI maps it to and a one-line message a
person can act on (what went wrong and where). Lower-level errors (aiohttp,
sqlite3, orjson, tomllib) are translated once, at the module that talks to
them, with ``raise X from exc``.

    InventoryError                 exit 1   base class
    ├── UsageError                 exit 2   bad command line, config or query
    │   ├── ConfigError                     names the key and the file
    │   └── QueryError                      bad SQL given to `query`/`report`
    ├── AuthError                  exit 3   401/403: bad or under-scoped token
    ├── UnreachableError           exit 4   the API or registry could not be used
    │   ├── RateLimitedError                waiting would exceed the budget
    │   └── RunTimeout                      crawl.run_timeout_s elapsed
    ├── StoreError                 exit 74  the inventory could not be written (EX_IOERR:
    │   │                                   disk full, I/O error)
    │   ├── StoreCreateError       exit 73  cannot create or open for writing (EX_CANTCREAT:
    │   │                                   read-only file system, permission, parent not a
    │   │                                   directory, a planted lock file)
    │   └── StoreBusyError         exit 75  the database stayed locked by another process
    │                                       beyond the busy timeout (EX_TEMPFAIL: retry)
    ├── LockHeldError              exit 75  another sync holds the lock (EX_TEMPFAIL)
    ├── QueryTimeout               exit 124 `query`/`report` ran past --timeout (as timeout(1))
    ├── InterruptedRun             exit 130 SIGINT/SIGTERM stopped the run
    │   └── QueryInterrupted       130/143  a signal stopped a `query`/`report`/`status`
    ├── WebhookRejected            (HTTP)   a delivery `serve` refuses: 401 bad signature,
    │                                       400 bad payload, 413 too large (never an exit)
    ├── PackageError               exit 1   one package failed; the run goes on
    │   ├── ParseError                      a body or header broke its format
    │   │   └── DigestMismatchError         bytes do not hash to their digest
    │   ├── NotFoundError                   404 for a package, tag or blob
    │   ├── HttpStatusError                 any other unexpected HTTP status
    │   ├── GraphQLQueryError               GraphQL answered errors and no data
    │   ├── DiscoveryUnsupportedError       the server cannot list packages this way
    │   └── IncompleteListingError          a listing that did not end as its protocol
    │                                       says: nothing is concluded from it
    └── InternalError              exit 70  a bug: anything unexpected (EX_SOFTWARE)

Parsers are pure and raise only ParseError (or its subclass); the engine
decides whether that fails one package or one owner. `storage_error` is the
one translation of OSError/sqlite3 errors met while writing (or opening) the
inventory into a StoreError with the right exit code.
"""

from __future__ import annotations

import errno


class InventoryError(Exception):
    """Base class. ``str(err)`` is the one-line message shown to the user."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def __reduce__(self):  # keep `where` when pickled or copied
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls, state):
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, f"{err.where}: {err.message}" if err.where else err.message)
    return err


class UsageError(InventoryError):
    exit_code = 2


class ConfigError(UsageError):
    """A config file or option is wrong; ``where`` is 'FILE: key'."""


class QueryError(UsageError):
    """SQL given to `query` failed or tried to write."""


class AuthError(InventoryError):
    """The token was refused (401) or lacks a permission (403).

    ``fatal`` is True when no further request can succeed with these
    credentials (a rejected token); False when only one package is denied.
    """

    exit_code = 3

    def __init__(self, message: str, *, where: str | None = None, fatal: bool = True) -> None:
        super().__init__(message, where=where)
        self.fatal = fatal


class UnreachableError(InventoryError):
    """Connection errors, timeouts and 5xx that survived every retry."""

    exit_code = 4


class RateLimitedError(UnreachableError):
    """Waiting for a rate limit would exceed ``crawl.max_wait_s``."""

    def __init__(self, message: str, *, where: str | None = None, retry_at: float | None = None) -> None:
        super().__init__(message, where=where)
        self.retry_at = retry_at


class RunTimeout(UnreachableError):
    """crawl.run_timeout_s elapsed: the run stops like an interruption."""


class StoreError(InventoryError):
    """The inventory could not be written: disk full, I/O error (EX_IOERR).

    A timer's alerting can tell these apart from "some packages failed" (1)."""

    exit_code = 74


class StoreCreateError(StoreError):
    """The database, its directory or its lock file cannot be created or
    opened for writing: read-only file system, permission, a path component
    that is not a directory, a lock file that is not ours (EX_CANTCREAT)."""

    exit_code = 73


class StoreBusyError(StoreError):
    """Another process kept the database locked beyond the busy timeout
    (EX_TEMPFAIL, like the lock: a timer just retries)."""

    exit_code = 75


class LockHeldError(InventoryError):
    exit_code = 75


class QueryTimeout(InventoryError):
    """`query`/`report` ran longer than --timeout; 124 as timeout(1) uses."""

    exit_code = 124


class InterruptedRun(InventoryError):
    exit_code = 130


class QueryInterrupted(InterruptedRun):
    """A signal stopped a read; the exit code is 128 + the signal number."""

    def __init__(self, message: str, *, where: str | None = None, signum: int = 2) -> None:
        super().__init__(message, where=where)
        self.exit_code = 128 + signum


class WebhookRejected(InventoryError):
    """A webhook delivery `serve` refuses, answered with `status` (401: the
    signature is missing or wrong; 400: not JSON, or a field GitHub's schema
    or name grammar does not allow, named in the message; 413: over the body
    cap). It never ends the process; the exit code is that of bad input."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, status: int = 400) -> None:
        super().__init__(message, where=where)
        self.status = status


class InternalError(InventoryError):
    """Anything nobody planned for: a bug (EX_SOFTWARE)."""

    exit_code = 70


class PackageError(InventoryError):
    """A failure confined to one package (or one owner's listing)."""


class ParseError(PackageError):
    """Bytes or a header that do not follow their format."""


class DigestMismatchError(ParseError):
    """Content whose sha256/sha512 is not the digest it was fetched by."""


class NotFoundError(PackageError):
    """404: the package, tag, manifest or blob is not there."""


class HttpStatusError(PackageError):
    """An HTTP status the caller did not expect (after retries)."""

    def __init__(self, message: str, *, where: str | None = None, status: int = 0) -> None:
        super().__init__(message, where=where)
        self.status = status


class GraphQLQueryError(PackageError):
    """The GraphQL API answered only errors (no data) for a document:
    a schema drift, a server-side timeout, a resource that does not exist."""

    def __init__(self, message: str, *, where: str | None = None, types: tuple[str, ...] = ()) -> None:
        super().__init__(message, where=where)
        self.types = types


class DiscoveryUnsupportedError(PackageError):
    """The configured discovery cannot list this owner's packages on this
    server (github.com answers GraphQL's `packages` with nothing for
    containers); the message names the `discovery` value that works."""


# --- translating storage failures -------------------------------------------------

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_CANT_CREATE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                          errno.ENOENT, errno.EEXIST, errno.ELOOP, errno.ENAMETOOLONG, errno.EMLINK,
                          errno.ENXIO, errno.ETXTBSY})
# SQLite's primary result codes (sqlite3.Error.sqlite_errorname, Python >= 3.11)
# and, for errors that carry none (aiosqlite wrappers, older builds), the text
# sqlite3_errstr() gives each of them.
_SQLITE_NAMES = (("SQLITE_FULL", "full"), ("SQLITE_BUSY", "busy"), ("SQLITE_LOCKED", "busy"),
                 ("SQLITE_READONLY", "create"), ("SQLITE_CANTOPEN", "create"), ("SQLITE_PERM", "create"),
                 ("SQLITE_IOERR", "io"))
_SQLITE_TEXTS = (("database or disk is full", "full"), ("database is locked", "busy"),
                 ("database table is locked", "busy"), ("busy", "busy"),
                 ("attempt to write a readonly database", "create"),
                 ("unable to open database file", "create"), ("readonly", "create"),
                 ("disk i/o error", "io"))
_WHAT = {
    "full": (StoreError, "the inventory could not be written: the disk is full"),
    "io": (StoreError, "the inventory could not be written"),
    "create": (StoreCreateError, "cannot create or open for writing"),
    "busy": (StoreBusyError, "the database stayed locked by another process beyond the busy "
                             "timeout; try again later"),
}


def storage_kind(exc: BaseException) -> str:
    """'full', 'create', 'busy' or 'io' for an OSError or sqlite3 error."""
    if isinstance(exc, OSError):
        if exc.errno in _FULL:
            return "full"
        if exc.errno in _CANT_CREATE:
            return "create"
        return "io"
    name = getattr(exc, "sqlite_errorname", None) or ""
    for prefix, kind in _SQLITE_NAMES:
        if name.startswith(prefix):
            return kind
    text = str(exc).lower()
    for needle, kind in _SQLITE_TEXTS:
        if needle in text:
            return kind
    return "io"


def storage_error(exc: BaseException, where: str, *, note: str = "") -> StoreError:
    """Translate an OSError or sqlite3 error met on the inventory's files
    (`where`: the database, its lock file, the metrics file) into the
    StoreError subclass that carries its exit code: ENOSPC/EDQUOT and
    "database or disk is full" 74; EROFS/EACCES/EPERM/ENOTDIR/EISDIR and
    "readonly"/"unable to open" 73; "database is locked"/"busy" 75; any other
    I/O failure 74. `note` is appended ("; " + note): what the failure does
    not undo. Pure: it only builds the error, the caller raises it
    (``raise storage_error(exc, where) from exc``)."""
    if isinstance(exc, StoreError):
        if note:
            return type(exc)(f"{exc.message}; {note}", where=exc.where)
        return exc
    cls, what = _WHAT[storage_kind(exc)]
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        other = exc.filename2 or exc.filename
        if other is not None and str(other) != where:
            reason += f": {other}"
    else:
        reason = str(exc) or type(exc).__name__
    message = f"{what} ({' '.join(reason.split())})"
    return cls(f"{message}; {note}" if note else message, where=where)


class IncompleteListingError(PackageError):
    """A listing that did not end as its protocol says (a Link that loops
    back, a page cap, a page short of its size that still links a next one,
    fewer pages than announced): nothing may be concluded from it — no
    deletions, no tag closures."""
