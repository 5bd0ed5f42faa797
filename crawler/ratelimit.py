"""The rate-limit governor: one per host (and per GitHub resource).

It reads what the server says (x-ratelimit-*, Retry-After in the header or
ghcr's body form) and decides how long the next request must wait. GitHub's
rules (docs "Rate limits for the REST API"; docs/architecture.md "Facts"):
  - primary limit: never spend the last `reserve` requests; when remaining
    reaches it, wait for `reset`; slow down (spread the rest until reset)
    as remaining falls below 10 % of the limit;
  - 403/429: honour retry-after; else if remaining == 0 wait for reset; else
    wait >= 60 s, doubling for each further hit (secondary limits).
Waiting longer in total than `max_wait_s` raises RateLimitedError, which the
engine turns into a clean stop (status rate_limited, exit 4).
All time comes from injected `clock`/`sleep`, so tests never sleep.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Awaitable, Callable, Mapping

from .errors import RateLimitedError
from .headers import (RateLimit, is_secondary_rate_limit, parse_rate_limit, parse_retry_after,
                      parse_retry_after_body)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

SECONDARY_BASE_S = 60.0
SECONDARY_MAX_S = 15 * 60.0
SLOWDOWN_FRACTION = 0.10


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class Governor:
    """Pacing for one host/resource; shared by every request to it."""

    def __init__(self, name: str, *, reserve: int = 50, max_wait_s: float = 900.0,
                 sleep: Sleep = asyncio.sleep, clock: Clock = time.time,
                 secondary_base_s: float = SECONDARY_BASE_S) -> None:
        self.name = name
        self.reserve = reserve
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.clock = clock
        self.secondary_base_s = secondary_base_s
        self.rate_limit = RateLimit()    # the latest the server said
        self.blocked_until = 0.0
        self.strikes = 0
        self.waited_s = 0.0
        self.waits = 0

    def delay(self) -> tuple[float, str]:
        """How long the next request should wait, and why."""
        now = self.clock()
        if self.blocked_until > now:
            return self.blocked_until - now, "rate limited by the server"
        b = self.rate_limit
        if b.remaining is None or b.reset is None or b.reset <= now:
            return 0.0, ""
        if b.remaining <= self.reserve:
            return b.reset - now + 1.0, (f"{b.remaining} of {b.limit} requests left "
                                         f"(reserve {self.reserve})")
        if b.limit and b.remaining < b.limit * SLOWDOWN_FRACTION:
            spendable = max(b.remaining - self.reserve, 1)
            return (b.reset - now) / spendable, "pacing: rate limit running low"
        return 0.0, ""

    async def before_request(self) -> None:
        wait, why = self.delay()
        if wait <= 0:
            return
        if self.waited_s + wait > self.max_wait_s:
            retry_at = self.clock() + wait
            raise RateLimitedError(
                f"{why}; waiting {wait:.0f}s would exceed crawl.max_wait_s={self.max_wait_s:g}; "
                f"retry after {_when(retry_at)}", where=self.name, retry_at=retry_at)
        self.waited_s += wait
        self.waits += 1
        await self.sleep(wait)

    def observe(self, status: int, headers: Mapping[str, str], body: bytes) -> float | None:
        """Update from a response; return the penalty wait when it was a
        rate-limit refusal (the caller retries after it), else None."""
        now = self.clock()
        rl = parse_rate_limit(headers)
        if rl is not None and rl.remaining is not None:
            self.rate_limit = replace(rl, reset=float(rl.reset) if rl.reset else None)
        if not self._is_refusal(status, headers, body, rl):
            if status < 400:
                self.strikes = 0
            return None
        wait = parse_retry_after(headers.get("retry-after"), now=now)
        if wait is None:
            wait = parse_retry_after_body(body)
        if wait is None and rl is not None and rl.remaining == 0 and rl.reset:
            wait = max(rl.reset - now, 0.0) + 1.0
        if wait is None:
            wait = min(self.secondary_base_s * (2 ** self.strikes), SECONDARY_MAX_S)
        self.strikes += 1
        self.blocked_until = max(self.blocked_until, now + wait)
        return wait

    def note(self, rate: RateLimit) -> None:
        """A budget the response body reported (GraphQL's `rateLimit` field),
        for servers whose headers do not carry it; what it leaves out keeps
        the value known before."""
        if rate.remaining is None:
            return
        b = self.rate_limit
        self.rate_limit = RateLimit(rate.limit if rate.limit is not None else b.limit, rate.remaining,
                                    rate.used, rate.reset if rate.reset is not None else b.reset,
                                    rate.resource or b.resource, rate.cost)

    def refuse(self) -> float:
        """A refusal the body told instead of the status (GitHub GraphQL's
        200 with `type: RATE_LIMITED`): block until the budget resets, or
        back off as for a secondary limit when the reset is unknown.
        Returns the wait; the caller retries through `before_request`."""
        now = self.clock()
        b = self.rate_limit
        if b.reset is not None and b.reset > now:
            wait = b.reset - now + 1.0
        else:
            wait = min(self.secondary_base_s * (2 ** self.strikes), SECONDARY_MAX_S)
        self.strikes += 1
        self.blocked_until = max(self.blocked_until, now + wait)
        return wait

    @staticmethod
    def _is_refusal(status: int, headers: Mapping[str, str], body: bytes, rl) -> bool:
        if status == 429:
            return True
        if status != 403:
            return False
        if rl is not None and rl.remaining == 0:
            return True
        return is_secondary_rate_limit(status, headers, body)
