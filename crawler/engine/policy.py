"""Error policy: what an exception ends, decided in one place.

A failure stays where it happened (docs/architecture.md "Invariants"):

    raised while...        error                              ends
    syncing a package      PackageError, AuthError(fatal=False),
                           UnreachableError                   the package
    listing an owner       PackageError                       the owner
    anywhere               RateLimitedError, AuthError(fatal), the run
                           InterruptedRun, RunTimeout,
                           StoreError, any other exception
    listing an owner       UnreachableError, AuthError        the run

A run ending early still commits what was done and records why; the run's
status comes from `run_status`.
"""

from __future__ import annotations

import asyncio
import enum

from ..errors import (AuthError, InterruptedRun, InventoryError, PackageError, RateLimitedError, RunTimeout,
                      UnreachableError)


class Ends(enum.Enum):
    PACKAGE = "package"
    OWNER = "owner"
    RUN = "run"


class Stage(enum.Enum):
    PACKAGE = "package"        # a worker syncing one package
    LISTING = "listing"        # discovery listing one owner's packages


def ends(exc: BaseException, stage: Stage) -> Ends:
    """What `exc`, raised during `stage`, brings to an end."""
    if isinstance(exc, RateLimitedError) or (isinstance(exc, AuthError) and exc.fatal):
        return Ends.RUN
    if stage is Stage.PACKAGE and isinstance(exc, (PackageError, UnreachableError, AuthError)):
        return Ends.PACKAGE
    if stage is Stage.LISTING and isinstance(exc, PackageError):
        return Ends.OWNER
    return Ends.RUN


def run_status(exc: BaseException) -> tuple[str, int]:
    """(status, exit code) of a run that `exc` ended."""
    if isinstance(exc, RateLimitedError):
        status = "rate_limited"
    elif isinstance(exc, (InterruptedRun, RunTimeout, asyncio.CancelledError)):
        status = "interrupted"
    else:
        status = "failed"
    if isinstance(exc, asyncio.CancelledError):
        return status, InterruptedRun.exit_code
    return status, getattr(exc, "exit_code", 1)


def expected(exc: BaseException) -> bool:
    """An error the run reports and ends on, as opposed to a bug to re-raise."""
    return isinstance(exc, (InventoryError, asyncio.CancelledError, TimeoutError))
