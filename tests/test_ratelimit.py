"""The rate-limit governor and the HTTP client's retry policy, with injected
time (nothing here sleeps)."""

import asyncio

import pytest

from crawler.errors import RateLimitedError
from crawler.http import RetryPolicy
from crawler.ratelimit import Governor
from tests.support import FakeClock


def gov(clock, **kw):
    return Governor("api.github.com", sleep=clock.sleep, clock=clock.clock, **kw)


def headers(remaining, reset, limit=5000, **extra):
    return {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-used": str(limit - remaining), "x-ratelimit-reset": str(int(reset)),
            "x-ratelimit-resource": "core", **extra}


def test_plenty_left_means_no_wait():
    clock = FakeClock()
    g = gov(clock, reserve=50)
    assert g.observe(200, headers(4000, clock.now + 3000), b"") is None
    asyncio.run(g.before_request())
    assert clock.sleeps == []


def test_reserve_is_never_spent_wait_for_reset():
    clock = FakeClock()
    g = gov(clock, reserve=50, max_wait_s=3600)
    g.observe(200, headers(50, clock.now + 600), b"")
    asyncio.run(g.before_request())
    assert clock.sleeps == [pytest.approx(601)]


def test_slows_down_as_remaining_falls():
    clock = FakeClock()
    g = gov(clock, reserve=50)
    g.observe(200, headers(450, clock.now + 800), b"")   # under 10 % of 5000 left
    asyncio.run(g.before_request())
    assert clock.sleeps == [pytest.approx(800 / 400)]


def test_waiting_beyond_the_budget_stops_cleanly_with_when_to_retry():
    clock = FakeClock()
    g = gov(clock, reserve=50, max_wait_s=60)
    g.observe(200, headers(10, clock.now + 1800), b"")
    with pytest.raises(RateLimitedError) as info:
        asyncio.run(g.before_request())
    assert "retry after" in str(info.value) and "crawl.max_wait_s=60" in str(info.value)
    assert info.value.retry_at == pytest.approx(clock.now + 1801)
    assert info.value.exit_code == 4 and clock.sleeps == []


@pytest.mark.parametrize("status, hdrs, body, wait", [
    (429, {"retry-after": "7"}, b"", 7),
    (429, {}, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"retry-after: 880\xc2\xb5s, allowed: 44000/minute"}]}',
     0.00088),
    (403, {"retry-after": "30"}, b'{"message":"You have exceeded a secondary rate limit."}', 30),
    (403, {}, b'{"message":"You have exceeded a secondary rate limit. Please wait a few minutes."}', 60),
])
def test_refusals_block_for_the_hinted_time(status, hdrs, body, wait):
    clock = FakeClock()
    g = gov(clock)
    assert g.observe(status, hdrs, body) == pytest.approx(wait)
    asyncio.run(g.before_request())
    assert clock.sleeps == [pytest.approx(wait, rel=1e-3)]  # epoch-sized floats: ~1e-7 s resolution


def test_primary_exhaustion_waits_for_reset():
    clock = FakeClock()
    g = gov(clock, reserve=0, max_wait_s=10_000)
    body = b'{"message":"API rate limit exceeded for user ID 1."}'
    assert g.observe(403, headers(0, clock.now + 900), body) == pytest.approx(901)


def test_secondary_limits_back_off_exponentially_then_reset_on_success():
    clock = FakeClock()
    g = gov(clock, max_wait_s=10_000)
    body = b'{"message":"You have exceeded a secondary rate limit"}'
    assert [g.observe(403, {}, body) for _ in range(3)] == [60, 120, 240]
    g.observe(200, {}, b"")
    assert g.observe(403, {}, body) == 60


def test_a_plain_403_is_not_a_rate_limit():
    g = gov(FakeClock())
    assert g.observe(403, headers(4000, 0), b'{"message":"Must have admin rights"}') is None


def test_backoff_is_jittered_exponential_and_capped():
    policy = RetryPolicy(retries=6, base_s=0.5, max_s=4)
    lows = [policy.delay(a, lambda: 0.0) for a in range(6)]
    highs = [policy.delay(a, lambda: 1.0) for a in range(6)]
    assert lows == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert highs == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
