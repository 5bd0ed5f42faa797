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
    ├── LockHeldError              exit 75  another sync holds the lock
    ├── InterruptedRun             exit 130 SIGINT/SIGTERM stopped the run
    └── PackageError               exit 1   one package failed; the run goes on
        ├── ParseError                      a body or header broke its format
        │   └── DigestMismatchError         bytes do not hash to their digest
        ├── NotFoundError                   404 for a package, tag or blob
        ├── HttpStatusError                 any other unexpected HTTP status
        ├── GraphQLQueryError               GraphQL answered errors and no data
        └── DiscoveryUnsupportedError       the server cannot list packages this way

Parsers are pure and raise only ParseError (or its subclass); the engine
decides whether that fails one package or one owner.
"""

from __future__ import annotations


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


class LockHeldError(InventoryError):
    exit_code = 75


class InterruptedRun(InventoryError):
    exit_code = 130


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


class IncompleteListingError(PackageError):
    """A listing that did not end as its protocol says (a Link that loops
    back, a page cap, a page short of its size that still links a next one,
    fewer pages than announced): nothing may be concluded from it — no
    deletions, no tag closures."""
