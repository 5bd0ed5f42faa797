"""crawler/github.py's paging, as a unit: Link rel="next" followed (never
built), ETags sent and 304s answered from the cache, and a listing that
does not end as the protocol says (a loop, another host) refused."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from crawler import github
from crawler.errors import AuthError, IncompleteListingError, NotFoundError
from crawler.github import GitHubClient, packages_to_payload, parse_packages, payload_to_packages
from crawler.model import CacheEntry
from crawler.secret import Secret
from tests.fakehttp import FakeHttp

API = "https://api.example.test"
FIRST = f"{API}/orgs/acme/packages?package_type=container&per_page=100"


def pkg(name: str, i: int = 1) -> dict:
    return {"id": i, "name": name, "package_type": "container", "visibility": "public",
            "version_count": 1, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z",
            "html_url": f"https://github.com/orgs/acme/packages/container/package/{name}"}


def link(url: str, last: str | None = None) -> dict:
    value = f'<{url}>; rel="next"' + (f', <{last}>; rel="last"' if last else "")
    return {"Link": value, "Content-Type": "application/json; charset=utf-8"}


def full(prefix: str) -> bytes:
    """A full page: GitHub fills every page but the last."""
    return orjson.dumps([pkg(f"{prefix}{i}", i) for i in range(100)])


JSON = {"Content-Type": "application/json; charset=utf-8"}


async def pages(client: GitHubClient, conditional: bool = True) -> list:
    return [p async for p in client.packages("acme", "org", conditional=conditional)]


async def test_follows_next_links_and_keeps_validators():
    http = FakeHttp()
    second = f"{API}/organizations/1/packages?package_type=container&per_page=100&page=2"
    http.answer(FIRST, 200, {**link(second, second), "ETag": '"p1"'}, full("a"))
    http.answer(second, 200, {**JSON, "ETag": 'W/"p2"'}, orjson.dumps([pkg("c", 3)]))
    got = await pages(GitHubClient(http, API, Secret("ghp_" + "x" * 36)))
    assert [len(page.items) for page in got] == [100, 1] and got[1].items[0].name == "c"
    assert [page.cache.etag for page in got] == ['"p1"', 'W/"p2"']
    assert [url for _, url, _ in http.sent] == [FIRST, second]        # the Link, exactly as given
    assert all(h["X-GitHub-Api-Version"] == "2022-11-28" for _, _, h in http.sent)
    assert all(auth.startswith("Bearer ") and origin == API for auth, origin in http.auth)


async def test_a_304_replays_the_cached_page_including_its_next_link():
    http = FakeHttp()
    second = f"{API}/p2"
    cached = {FIRST: CacheEntry(FIRST, '"p1"', packages_to_payload(parse_packages(full("a")), second, second))}

    async def lookup(url):
        return cached.get(url)

    http.answer(FIRST, 304, {"ETag": '"p1"'})
    http.answer(second, 200, JSON, orjson.dumps([pkg("b", 2)]))
    got = await pages(GitHubClient(http, API, None, cache_lookup=lookup))
    assert [page.not_modified for page in got] == [True, False]
    assert [len(page.items) for page in got] == [100, 1] and got[0].last_url == second
    assert http.sent[0][2]["If-None-Match"] == '"p1"' and http.counters.not_modified == 1


async def test_without_conditional_no_validator_is_sent():
    http = FakeHttp()
    http.answer(FIRST, 200, JSON, b"[]")

    async def lookup(url):
        raise AssertionError("--full must not consult the cache")

    await pages(GitHubClient(http, API, None, cache_lookup=lookup), conditional=False)
    assert "If-None-Match" not in http.sent[0][2]


async def test_a_link_that_loops_back_is_refused():
    http = FakeHttp()
    second = f"{API}/p2"
    http.answer(FIRST, 200, link(second), full("a"))
    http.answer(second, 200, link(FIRST), full("b"))
    with pytest.raises(IncompleteListingError, match="loops back"):
        await pages(GitHubClient(http, API, None))


async def test_a_link_to_another_host_is_refused():
    http = FakeHttp()
    http.answer(FIRST, 200, link("https://evil.example/p2"), full("a"))
    with pytest.raises(IncompleteListingError, match="another host"):
        await pages(GitHubClient(http, API, Secret("ghp_" + "y" * 36)))
    assert len(http.sent) == 1                                          # the token never went there


@pytest.mark.parametrize("status, error, text", [
    (401, AuthError, "rejected the token"),
    (403, AuthError, "forbidden"),
    (404, NotFoundError, "not found"),
])
async def test_statuses_become_errors_a_person_can_act_on(status, error, text):
    http = FakeHttp()
    http.answer(FIRST, status, JSON, b'{"message": "nope"}')
    with pytest.raises(error, match=text):
        await pages(GitHubClient(http, API, None))


async def test_versions_url_escapes_a_slash_in_the_package_name():
    client = GitHubClient(FakeHttp(), API, None)
    assert client.versions_url("acme", "org", "team/app") == (
        f"{API}/orgs/acme/packages/container/team%2Fapp/versions?state=active&per_page=100")
    assert client.packages_url("mona", "user").startswith(f"{API}/users/mona/packages?")


async def test_a_short_page_that_links_a_next_one_is_incomplete():
    http = FakeHttp()
    http.answer(FIRST, 200, link(f"{API}/p2"), orjson.dumps([pkg("a")]))
    with pytest.raises(IncompleteListingError, match="holds 1 of 100 entries"):
        await pages(GitHubClient(http, API, None))


async def test_ending_before_the_announced_last_page_is_incomplete():
    http = FakeHttp()
    p2, p5 = f"{API}/x?page=2", f"{API}/x?page=5"
    http.answer(FIRST, 200, link(p2, p5), full("a"))
    http.answer(p2, 200, JSON, orjson.dumps([pkg("b")]))           # no next: shrank to 2 pages
    with pytest.raises(IncompleteListingError, match="before the page its Link announced as last"):
        await pages(GitHubClient(http, API, None))


async def test_the_10000_result_cap_is_an_incomplete_listing():
    http = FakeHttp()
    p2 = f"{API}/x?page=101"
    http.answer(FIRST, 200, link(p2), full("a"))
    http.answer(p2, 400, JSON, b'{"message": "Pagination is limited for this resource."}')
    with pytest.raises(IncompleteListingError, match="at most 10,000"):
        await pages(GitHubClient(http, API, None))


async def test_malformed_entries_are_skipped_with_their_reason():
    body = orjson.dumps([pkg("ok"), {"name": "two words"}, "nonsense", pkg("fine", 2)])
    parsed = parse_packages(body)
    assert [p.name for p in parsed.items] == ["ok", "fine"] and parsed.count == 4
    assert len(parsed.skipped) == 2 and "invalid name" in parsed.skipped[0]
    http = FakeHttp()
    http.answer(FIRST, 200, {**JSON, "ETag": '"e"'}, body)
    [page] = await pages(GitHubClient(http, API, None))
    assert [r.split(": ", 1)[1] for r in page.skipped] == [r.split(": ", 1)[1] for r in parsed.skipped]
    assert page.skipped[0].startswith("org 'acme' (/orgs/acme/packages) [item 1]")   # says where
    cached, _, _ = payload_to_packages(page.cache.payload)       # a 304 replays the skips too
    assert cached.skipped == page.skipped


# --- pages fetched ahead from rel="last" (GitHubClient(page_window=N)) -------------------------------

ORG = f"{API}/organizations/1/packages?package_type=container&per_page=100"


def nth(k: int) -> str:
    return f"{ORG}&page={k}"


def github_link(k: int, last: int) -> dict:
    """The Link GitHub sends on page k of `last` (prev, next, last, first as they apply)."""
    links = ([f'<{nth(k - 1)}>; rel="prev"'] if k > 1 else []) + (
        [f'<{nth(k + 1)}>; rel="next"', f'<{nth(last)}>; rel="last"'] if k < last else []) + (
        [f'<{nth(1)}>; rel="first"'] if k > 1 else [])
    return {**JSON, "Link": ", ".join(links)} if links else JSON


def org_of(http: FakeHttp, last: int, *, tail: int = 7) -> None:
    """An org of `last` pages answered as GitHub does: full pages, then `tail` entries."""
    http.answer(FIRST, 200, {**github_link(1, last), "ETag": '"p1"'}, full("p1-"))
    for k in range(2, last + 1):
        body = full(f"p{k}-") if k < last else orjson.dumps([pkg(f"end{i}", i) for i in range(tail)])
        http.answer(nth(k), 200, {**github_link(k, last), "ETag": f'"p{k}"'}, body)


class Overlapping(FakeHttp):
    """Answers a page past the first only while `together` such requests are
    in flight at once, the latest first: a client that fetched them one by
    one would never be answered (the wait is bounded), and one that yielded
    pages in the order they arrived would yield them backwards."""

    def __init__(self, together: int) -> None:
        super().__init__()
        self.together = together
        self.waiting: list = []

    async def request(self, method, url, **kw):
        if url != FIRST:
            arrived = asyncio.get_running_loop().create_future()
            self.waiting.append(arrived)
            if len(self.waiting) == self.together:
                for future in reversed(self.waiting):
                    future.set_result(None)
                self.waiting = []
            await asyncio.wait_for(arrived, 5)
        return await super().request(method, url, **kw)


async def test_pages_past_the_first_are_fetched_together_and_yielded_in_order():
    http = Overlapping(together=2)     # fetching ahead starts two pages deep
    org_of(http, 5)
    got = await pages(GitHubClient(http, API, None, page_window=4))
    assert [p.items[0].name for p in got] == ["p1-0", "p2-0", "p3-0", "p4-0", "end0"]
    assert sorted(url for _, url, _ in http.sent) == sorted([FIRST] + [nth(k) for k in range(2, 6)])


class Counting(FakeHttp):
    """Records how many requests were in flight at once (each yields to the loop twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.inflight = self.peak = 0

    async def request(self, method, url, **kw):
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        for _ in range(2):
            await asyncio.sleep(0)
        self.inflight -= 1
        return await super().request(method, url, **kw)


async def test_no_more_pages_than_the_window_are_in_flight():
    http = Counting()
    org_of(http, 12)
    got = await pages(GitHubClient(http, API, None, page_window=3))
    assert len(got) == 12 and http.peak == 3 and len(http.sent) == 12


async def test_a_reader_slower_than_the_api_is_fetched_for_only_a_few_pages_ahead(monkeypatch):
    """A cold sync's workers take a page far slower than GitHub answers one:
    pages fetched a whole window ahead would only wait, held in memory."""
    monkeypatch.setattr(github, "HELD_S", -1.0)  # every page that was ready had waited "long"
    http = Counting()
    org_of(http, 30)
    ahead = []
    async for _ in GitHubClient(http, API, None, page_window=12).packages("acme", "org"):
        for _ in range(20):                          # the reader's work: every fetch in flight ends meanwhile
            await asyncio.sleep(0)
        ahead.append(len(http.sent))
    fetched_ahead = [sent - (n + 1) for n, sent in enumerate(ahead)]
    assert len(ahead) == 30 and max(fetched_ahead) <= 4 < 12 and http.peak <= 4


async def test_a_304_no_op_costs_exactly_the_listing_pages():
    first = FakeHttp()
    org_of(first, 6)
    fresh = await pages(GitHubClient(first, API, None, page_window=8))
    cached = {p.cache.url: p.cache for p in fresh}

    async def lookup(url):
        return cached.get(url)

    http = FakeHttp()
    for url, entry in cached.items():
        http.answer(url, 304, {"ETag": entry.etag})
    got = await pages(GitHubClient(http, API, None, cache_lookup=lookup, page_window=8))
    assert len(http.sent) == 6 and all(p.not_modified for p in got)
    assert [h["If-None-Match"] for _, _, h in http.sent] == [f'"p{k}"' for k in range(1, 7)]
    assert [p.items[0].name for p in got] == [p.items[0].name for p in fresh]


@pytest.mark.parametrize("fault, text, third", [
    ("loop", "loops back", "x0"),
    ("short", "holds 10 of 100 entries", "s0"),
    ("shrunk", "before the page its Link announced as last", "x0"),
    ("refused", "at most 10,000", "p3-0"),
])
async def test_anomalies_fetched_ahead_stay_incomplete_listings(fault, text, third):
    http = FakeHttp()
    org_of(http, 5)
    if fault == "loop":
        http.answers[nth(3)] = [(200, {**JSON, "Link": f'<{nth(2)}>; rel="next"'}, full("x"))]
    elif fault == "short":
        http.answers[nth(3)] = [(200, github_link(3, 5), orjson.dumps([pkg(f"s{i}", i) for i in range(10)]))]
    elif fault == "shrunk":
        http.answers[nth(3)] = [(200, github_link(3, 3), full("x"))]      # now the last page
    else:
        http.answers[nth(4)] = [(400, JSON, b'{"message": "Pagination is limited for this resource."}')]
    seen = []
    with pytest.raises(IncompleteListingError, match=text):
        async for page in GitHubClient(http, API, None, page_window=4).packages("acme", "org"):
            seen.append(page)
    assert [p.items[0].name for p in seen] == ["p1-0", "p2-0", third]    # the pages before it, in order


async def test_a_listing_that_grew_is_followed_past_the_announced_last():
    http = FakeHttp()
    org_of(http, 3)
    http.answers[nth(3)] = [(200, github_link(3, 4), full("p3-"))]
    http.answer(nth(4), 200, github_link(4, 4), orjson.dumps([pkg("new")]))
    got = await pages(GitHubClient(http, API, None, page_window=8))
    assert [p.items[0].name for p in got] == ["p1-0", "p2-0", "p3-0", "new"]


async def test_a_link_other_than_the_template_is_followed_and_the_pages_ahead_dropped():
    http = FakeHttp()
    org_of(http, 3)
    elsewhere = f"{API}/organizations/1/packages?per_page=100&package_type=container&page=3"
    http.answers[nth(2)] = [(200, {**JSON, "Link": f'<{elsewhere}>; rel="next"'}, full("p2-"))]
    http.answer(elsewhere, 200, JSON, orjson.dumps([pkg("there")]))
    http.answers[nth(3)] = [(500, JSON, b"{}")]                # fetched ahead, never used
    got = await pages(GitHubClient(http, API, None, page_window=8))
    assert [p.items[0].name for p in got] == ["p1-0", "p2-0", "there"]


@pytest.mark.parametrize("last", [
    "https://evil.example/organizations/1/packages?package_type=container&per_page=100&page=3",
    f"{API}/organizations/2/packages?package_type=container&per_page=100&page=3",     # a foreign template
    f"{API}/organizations/1/packages?package_type=container&per_page=100&page=3&page=3",
    f"{API}/organizations/1/packages?package_type=container&per_page=100&page=%33",
])
async def test_a_last_link_that_is_no_template_means_following_next_links(last):
    http = FakeHttp()
    org_of(http, 3)
    http.answers[FIRST] = [(200, {**JSON, "Link": f'<{nth(2)}>; rel="next", <{last}>; rel="last"'}, full("p1-"))]
    got = await pages(GitHubClient(http, API, None, page_window=8))
    assert [p.items[0].name for p in got] == ["p1-0", "p2-0", "end0"]
    assert [url for _, url, _ in http.sent] == [FIRST, nth(2), nth(3)]    # each Link, in turn, only ours
