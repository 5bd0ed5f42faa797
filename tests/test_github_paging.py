"""crawler/github.py's paging, as a unit: Link rel="next" followed (never
built), ETags sent and 304s answered from the cache, and a listing that
does not end as the protocol says (a loop, another host) refused."""

from __future__ import annotations

import orjson
import pytest

from crawler.errors import AuthError, NotFoundError, ParseError
from crawler.github import GitHubClient, packages_to_payload, parse_packages
from crawler.model import CacheEntry
from crawler.secret import Secret
from tests.fakehttp import FakeHttp

API = "https://api.example.test"
FIRST = f"{API}/orgs/acme/packages?package_type=container&per_page=100"


def pkg(name: str, i: int = 1) -> dict:
    return {"id": i, "name": name, "package_type": "container", "visibility": "public",
            "version_count": 1, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z",
            "html_url": f"https://github.com/orgs/acme/packages/container/package/{name}"}


def link(url: str) -> dict:
    return {"Link": f'<{url}>; rel="next"', "Content-Type": "application/json; charset=utf-8"}


JSON = {"Content-Type": "application/json; charset=utf-8"}


async def pages(client: GitHubClient, conditional: bool = True) -> list:
    return [p async for p in client.packages("acme", "org", conditional=conditional)]


async def test_follows_next_links_and_keeps_validators():
    http = FakeHttp()
    second = f"{API}/organizations/1/packages?package_type=container&per_page=100&page=2"
    http.answer(FIRST, 200, {**link(second), "ETag": '"p1"'}, orjson.dumps([pkg("a"), pkg("b", 2)]))
    http.answer(second, 200, {**JSON, "ETag": 'W/"p2"'}, orjson.dumps([pkg("c", 3)]))
    got = await pages(GitHubClient(http, API, Secret("ghp_" + "x" * 36)))
    assert [[p.name for p in page.items] for page in got] == [["a", "b"], ["c"]]
    assert [page.cache.etag for page in got] == ['"p1"', 'W/"p2"']
    assert [url for _, url, _ in http.sent] == [FIRST, second]        # the Link, exactly as given
    assert all(h["X-GitHub-Api-Version"] == "2022-11-28" for _, _, h in http.sent)
    assert all(auth.startswith("Bearer ") and origin == API for auth, origin in http.auth)


async def test_a_304_replays_the_cached_page_including_its_next_link():
    http = FakeHttp()
    second = f"{API}/p2"
    cached = {FIRST: CacheEntry(FIRST, '"p1"', packages_to_payload(parse_packages(orjson.dumps([pkg("a")])),
                                                                   second))}

    async def lookup(url):
        return cached.get(url)

    http.answer(FIRST, 304, {"ETag": '"p1"'})
    http.answer(second, 200, JSON, orjson.dumps([pkg("b", 2)]))
    got = await pages(GitHubClient(http, API, None, cache_lookup=lookup))
    assert [page.not_modified for page in got] == [True, False]
    assert [p.name for page in got for p in page.items] == ["a", "b"]
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
    http.answer(FIRST, 200, link(second), orjson.dumps([pkg("a")]))
    http.answer(second, 200, link(FIRST), orjson.dumps([pkg("b", 2)]))
    with pytest.raises(ParseError, match="loops back"):
        await pages(GitHubClient(http, API, None))


async def test_a_link_to_another_host_is_refused():
    http = FakeHttp()
    http.answer(FIRST, 200, link("https://evil.example/p2"), orjson.dumps([pkg("a")]))
    with pytest.raises(ParseError, match="another host"):
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
