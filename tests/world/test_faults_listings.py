"""Anomalous listings on the wire: looping ``next`` links, short pages, GitHub's page cap, a malformed item.

Each fault is seen by a raw aiohttp client walking the listing the way its
protocol says (follow ``rel="next"``) — on GitHub's packages and versions
listings (API front), ghcr's ``tags/list`` (registry front) and distribution's
``_catalog`` (the plain registry front).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from crawler.sandbox.client import registry_request
from crawler.sandbox.faults import FOREVER, parse_link


def auth(world) -> dict:
    return {"Authorization": f"Bearer {world.token}"}


def rels(headers) -> dict[str, str]:
    return {rel: url for url, rel in parse_link(headers.get("Link"))}


def page_of(url: str) -> int:
    return int(dict(parse_qsl(urlsplit(url).query)).get("page", 1))


async def api_page(http, world, url):
    async with http.get(url, headers=auth(world)) as resp:
        return resp.status, resp.headers, await resp.read()


async def walk_api(http, world, url, limit=10):
    """Follow ``next`` from ``url``: [(page number, item names, headers)], at most ``limit`` pages."""
    pages = []
    while url and len(pages) < limit:
        status, headers, body = await api_page(http, world, url)
        assert status == 200, body
        pages.append((page_of(url), [i["name"] for i in orjson.loads(body)], headers))
        url = rels(headers).get("next")
    return pages


async def walk_registry(http, world, base, path, key, limit=10):
    """Follow a registry listing's relative ``next``: [(path requested, items, headers)]."""
    pages = []
    while path and len(pages) < limit:
        reply = await registry_request(http, base, path, github_token=world.token)
        assert reply.status == 200, reply.body
        pages.append((path, reply.json()[key], reply.headers))
        path = rels(reply.headers).get("next")
    return pages


@pytest.fixture
def seven_packages(world, fresh_owner):
    """An org with 7 (GitHub-side only) packages: 3 pages at per_page=3."""
    names = world.builder.bulk_packages(fresh_owner, 7)
    org_id = world.call(lambda: world.state.owner(fresh_owner).id)
    return fresh_owner, org_id, names


@pytest.fixture
def five_versions(world, fresh_owner):
    digests = world.builder.bulk_versions(fresh_owner, "app", 5)
    return fresh_owner, "app", list(reversed(digests))  # the listing is newest first


def packages_url(world, owner, per_page=3, page=None):
    url = f"{world.api_url}/orgs/{owner}/packages?package_type=container&per_page={per_page}"
    return url + (f"&page={page}" if page else "")


def versions_url(world, owner, package, per_page=2, page=None):
    url = f"{world.api_url}/orgs/{owner}/packages/container/{package}/versions?per_page={per_page}"
    return url + (f"&page={page}" if page else "")


# -- loop_link ---------------------------------------------------------------------------


async def test_loop_link_on_the_packages_listing_points_back_to_page_one(world, http, seven_packages):
    owner, org_id, names = seven_packages
    before = world.api_proxy.injected["loop_link"]
    world.api_proxy.inject("loop_link", path=rf"/organizations/{org_id}/packages\?.*\bpage=3\b", method="GET")
    pages = await walk_api(http, world, packages_url(world, owner))
    assert [p for p, _, _ in pages] == [1, 2, 3, 1, 2, 3]  # looped once (times=1), then ended honestly
    looped = pages[2][2]
    assert set(rels(looped)) == {"prev", "next", "first"}
    assert page_of(rels(looped)["next"]) == 1 and "per_page=3" in rels(looped)["next"]
    assert pages[2][1] == pages[5][1] == names[6:]  # the page itself is intact
    assert "next" not in rels(pages[5][2])
    assert world.api_proxy.injected["loop_link"] == before + 1
    assert [e.fault for e in world.api_proxy.log if f"/organizations/{org_id}/" in e.path].count("loop_link") == 1


async def test_loop_link_forever_never_ends_and_to_page_picks_the_target(world, http, seven_packages):
    owner, org_id, _ = seven_packages
    world.api_proxy.inject("loop_link", path=rf"/organizations/{org_id}/packages\?.*\bpage=3\b", times=FOREVER, to_page=2)
    pages = await walk_api(http, world, packages_url(world, owner), limit=7)
    assert [p for p, _, _ in pages] == [1, 2, 3, 2, 3, 2, 3]
    world.clear_faults()
    assert [p for p, _, _ in await walk_api(http, world, packages_url(world, owner))] == [1, 2, 3]


async def test_loop_link_on_the_versions_listing(world, http, five_versions):
    owner, package, newest_first = five_versions
    world.api_proxy.inject("loop_link", path=r"/versions\?.*\bpage=2\b", to_page="first")
    pages = await walk_api(http, world, versions_url(world, owner, package), limit=8)
    assert [p for p, _, _ in pages] == [1, 2, 1, 2, 3]
    assert [n for _, items, _ in pages for n in items] == newest_first[:4] + newest_first
    world.api_proxy.inject("loop_link", path=r"/versions\?.*\bpage=2\b", to_page="self")
    status, headers, _ = await api_page(http, world, versions_url(world, owner, package, page=2))
    assert status == 200 and rels(headers)["next"] == versions_url(world, owner, package, page=2)


async def test_loop_link_on_ghcr_tags_list_goes_back_by_cursor(world, sample, http):
    base, path = world.registry_url, "/v2/acme/many-tags/tags/list"
    honest = await walk_registry(http, world, base, path, "tags")
    assert len(honest) == 3 and "next" not in rels(honest[2][2])
    world.registry_proxy.inject("loop_link", path=r"/many-tags/tags/list\?.*last=", method="GET", to_page=2, times=2)
    pages = await walk_registry(http, world, base, path, "tags", limit=6)
    requested = [p for p, _, _ in pages]
    # page 2 (faulted) → page 2 again (faulted) → page 2 → page 3 (honest end)
    assert requested == [path, honest[1][0], honest[1][0], honest[1][0], honest[2][0]]
    assert [tags for _, tags, _ in pages] == [honest[0][1], honest[1][1], honest[1][1], honest[1][1], honest[2][1]]
    world.registry_proxy.inject("loop_link", path=r"/many-tags/tags/list\?.*last=", method="GET", to_page="first")
    last_page = await registry_request(http, base, honest[2][0], github_token=world.token)
    assert rels(last_page.headers) == {"next": f"{path}?n=100"}  # the end page now claims a next: page 1
    assert world.registry_proxy.log[-1].fault == "loop_link"


async def test_loop_link_on_the_catalog_of_the_plain_front(world, sample, http):
    base, first = world.registry_plain_url, "/v2/_catalog?n=5"
    honest = await walk_registry(http, world, base, first, "repositories", limit=4)
    assert len(honest) == 4 and all(len(items) == 5 for _, items, _ in honest)
    world.registry_plain_proxy.inject("loop_link", path=r"/v2/_catalog\?.*last=", method="GET")
    pages = await walk_registry(http, world, base, first, "repositories", limit=4)
    assert [p for p, _, _ in pages] == [first, honest[1][0], first, honest[1][0]]
    world.registry_plain_proxy.inject("loop_link", path=r"/v2/_catalog\?.*last=", to_page=2)
    third = await registry_request(http, base, honest[2][0], github_token=world.token)
    assert rels(third.headers)["next"] == honest[1][0]  # page 3 → page 2, by page 2's own cursor
    assert world.registry_plain_proxy.injected["loop_link"] >= 2
    # The ghcr front still has no catalog at all.
    assert (await registry_request(http, world.registry_url, first, github_token=world.token)).status == 404


# -- shrink ------------------------------------------------------------------------------


async def test_shrink_keeps_next_or_drops_it_on_the_packages_listing(world, http, seven_packages):
    owner, org_id, names = seven_packages
    _, honest_headers, _ = await api_page(http, world, packages_url(world, owner))
    world.api_proxy.inject("shrink", path=rf"/orgs/{owner}/packages\?", keep=1)
    pages = await walk_api(http, world, packages_url(world, owner))
    assert [(p, items) for p, items, _ in pages] == [(1, names[:1]), (2, names[3:6]), (3, names[6:])]
    assert set(rels(pages[0][2])) == {"next", "last"}  # still claims more after a short page
    assert pages[0][2]["ETag"] != honest_headers["ETag"]
    world.api_proxy.inject("shrink", path=rf"/orgs/{owner}/packages\?", keep=2, drop_next=True)
    status, headers, body = await api_page(http, world, packages_url(world, owner))
    assert status == 200 and [i["name"] for i in orjson.loads(body)] == names[:2]
    assert "Link" not in headers  # looks like a complete two-package listing
    assert world.api_proxy.injected["shrink"] >= 2


async def test_shrink_on_the_versions_listing(world, http, five_versions):
    owner, package, newest_first = five_versions
    world.api_proxy.inject("shrink", path=r"/versions\?.*\bpage=2\b")  # keep: half of the page
    pages = await walk_api(http, world, versions_url(world, owner, package))
    assert [n for _, items, _ in pages for n in items] == newest_first[:2] + newest_first[2:3] + newest_first[4:]
    assert "next" in rels(pages[1][2])


async def test_shrink_on_tags_list_skips_tags_silently(world, sample, http):
    base, path = world.registry_url, "/v2/acme/many-tags/tags/list"
    honest = [t for _, tags, _ in await walk_registry(http, world, base, path, "tags") for t in tags]
    world.registry_proxy.inject("shrink", path=r"/many-tags/tags/list$", keep=10)
    pages = await walk_registry(http, world, base, path, "tags")
    seen = [t for _, tags, _ in pages for t in tags]
    assert len(pages) == 3 and len(pages[0][1]) == 10
    assert sorted(set(honest) - set(seen)) == honest[10:100]
    world.registry_proxy.inject("shrink", path=r"/many-tags/tags/list$", keep=0, drop_next=True)
    reply = await registry_request(http, base, path, github_token=world.token)
    assert reply.json() == {"name": "acme/many-tags", "tags": []} and "Link" not in reply.headers


async def test_shrink_on_the_catalog(world, sample, http):
    base = world.registry_plain_url
    world.registry_plain_proxy.inject("shrink", path=r"/v2/_catalog", keep=2, drop_next=True)
    reply = await registry_request(http, base, "/v2/_catalog?n=5", github_token=world.token)
    honest = await registry_request(http, base, "/v2/_catalog?n=5", github_token=world.token)
    assert reply.json()["repositories"] == honest.json()["repositories"][:2]
    assert "Link" not in reply.headers and "next" in rels(honest.headers)


# -- GitHub's page cap -------------------------------------------------------------------


async def test_lowered_page_cap_answers_400_on_the_packages_listing_only(world, http, seven_packages,
                                                                          five_versions):
    owner, _, _ = seven_packages
    world.set_page_cap(6)
    ok, _, _ = await api_page(http, world, packages_url(world, owner, page=2))  # 2 × 3 = 6: allowed
    status, headers, body = await api_page(http, world, packages_url(world, owner, page=3))
    assert ok == 200 and status == 400
    error = orjson.loads(body)
    assert error["message"] == "The value of `per_page` multiplied by `page` cannot be greater than 6."
    assert error["documentation_url"].endswith("#list-packages-for-an-organization")
    assert error["status"] == "400" and headers["Content-Type"].startswith("application/json")
    v_owner, package, _ = five_versions
    status, _, body = await api_page(http, world, versions_url(world, v_owner, package, per_page=4, page=2))
    assert status == 200 and len(orjson.loads(body)) == 1      # 2 × 4 > 6, but versions have no cap
    pages = await walk_api(http, world, versions_url(world, v_owner, package, per_page=1))
    assert len(pages) == 5
    world.clear_faults()  # restores GitHub's 10,000
    assert (await api_page(http, world, packages_url(world, owner, page=3)))[0] == 200
    assert world.emulator.page_cap == 10_000


async def test_real_page_cap_past_ten_thousand_packages(world, http, fresh_owner):
    started = time.monotonic()
    world.builder.bulk_packages(fresh_owner, 10_001)
    assert time.monotonic() - started < 10
    status, headers, body = await api_page(http, world, packages_url(world, fresh_owner, per_page=100, page=100))
    assert status == 200 and len(orjson.loads(body)) == 100
    nxt = rels(headers)["next"]
    assert page_of(nxt) == 101 and page_of(rels(headers)["last"]) == 101
    status, _, body = await api_page(http, world, nxt)  # the listing says there is more; GitHub refuses
    assert status == 400 and "cannot be greater than 10000" in orjson.loads(body)["message"]
    clamped, _, _ = await api_page(http, world, packages_url(world, fresh_owner, per_page=1000, page=101))
    assert clamped == 400  # per_page is clamped to 100 before the cap applies


# -- bad_item ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "check"),
    [
        ({}, lambda item: "name" not in item and "id" in item),
        ({"variant": "bad_name"}, lambda item: item["name"] == "bad name\t\x07 \n"),
        ({"variant": "wrong_types"}, lambda item: isinstance(item["id"], str) and item["name"] == 12345
         and item["version_count"] == "many"),
        ({"variant": "not_object"}, lambda item: item == "garbage"),
        ({"item": {"name": None}}, lambda item: item == {"name": None}),
    ],
)
async def test_bad_item_replaces_one_package_of_a_page(world, http, seven_packages, params, check):
    owner, _, names = seven_packages
    _, _, honest = await api_page(http, world, packages_url(world, owner))
    world.api_proxy.inject("bad_item", path=rf"/orgs/{owner}/packages\?", index=1, **params)
    status, headers, body = await api_page(http, world, packages_url(world, owner))
    items, good = orjson.loads(body), orjson.loads(honest)
    assert status == 200 and len(items) == 3
    assert check(items[1])
    assert items[0] == good[0] and items[2] == good[2]
    assert "next" in rels(headers)
    assert world.api_proxy.log[-1].fault == "bad_item"
    assert world.emulator.violations == []  # spoiled after the emulator validated: hygiene stays green


async def test_bad_item_in_versions_and_tags(world, sample, http, five_versions):
    owner, package, newest_first = five_versions
    world.api_proxy.inject("bad_item", path=r"/versions", index=-1, variant="bad_name")
    _, _, body = await api_page(http, world, versions_url(world, owner, package))
    assert [v["name"] for v in orjson.loads(body)] == [newest_first[0], "bad name\t\x07 \n"]
    world.registry_proxy.inject("bad_item", path=r"/many-tags/tags/list", variant="bad_name")
    reply = await registry_request(http, world.registry_url, "/v2/acme/many-tags/tags/list", github_token=world.token)
    assert reply.json()["tags"][0] == "bad tag\t\x07" and len(reply.json()["tags"]) == 100


async def test_listing_faults_wait_for_a_listing(world, sample, http):
    """A listing kind offered to a non-listing answer stays pending (a manifest, a package GET)."""
    world.api_proxy.inject("shrink", path=r"/orgs/acme/packages")
    status, _, body = await api_page(http, world, f"{world.api_url}/orgs/acme/packages/container/cli")
    assert status == 200 and orjson.loads(body)["name"] == "cli"
    assert len(world.api_proxy.faults.rules) == 1
    status, _, body = await api_page(http, world, f"{world.api_url}/orgs/acme/packages?package_type=container&per_page=4")
    assert len(orjson.loads(body)) == 2 and world.api_proxy.faults.rules == []


def test_listing_fault_parameters_are_checked(world):
    with pytest.raises(ValueError, match="variant"):
        world.api_proxy.inject("bad_item", variant="nonsense")
    with pytest.raises(ValueError, match="to_page"):
        world.api_proxy.inject("loop_link", to_page=0)
