"""The emulator's REST packages API: paging, conditional requests, budgets, errors, fidelity."""

from __future__ import annotations

import time

from crawler.sandbox.openapi import validate_body


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def links(header: str | None) -> dict[str, str]:
    out = {}
    for part in (header or "").split(","):
        if part.strip():
            url, rel = part.split(";", 1)
            out[rel.strip().removeprefix('rel="').rstrip('"')] = url.strip().strip("<>")
    return out


async def get(http, url, token, **headers):
    async with http.get(url, headers={**auth(token), **headers}) as resp:
        body = await resp.read()
        return resp.status, resp.headers, body


async def test_org_listing_pages_with_link_headers_in_the_organizations_form(world, sample, http):
    org_id = world.call(lambda: world.state.owner("acme").id)
    url = f"{world.api_url}/orgs/acme/packages?package_type=container&per_page=5"
    names: list[str] = []
    pages = 0
    while url:
        async with http.get(url, headers=auth(world.token)) as resp:
            assert resp.status == 200
            page = await resp.json()
            rels = links(resp.headers.get("Link"))
        assert len(page) <= 5
        names += [p["name"] for p in page]
        if pages == 0:
            assert set(rels) == {"next", "last"}
            assert rels["next"].startswith(f"{world.api_url}/organizations/{org_id}/packages?")
            assert "page=5" in rels["last"]
        pages += 1
        url = rels.get("next")
    assert set(rels) == {"prev", "first"}
    assert pages == 5
    assert sorted(names) == sorted(p.name for p in sample.packages_of("acme"))


async def test_per_page_defaults_to_30_and_is_clamped_to_100(world, fresh_owner, http):
    def make_packages():
        for i in range(105):
            world.state.ensure_package(fresh_owner, f"pkg-{i:03d}", visibility="public")

    world.call(make_packages)
    base = f"{world.api_url}/orgs/{fresh_owner}/packages?package_type=container"
    status, headers, body = await get(http, base, world.token)
    assert status == 200 and body.count(b'"package_type"') == 30
    assert "page=4" in links(headers["Link"])["last"]
    status, headers, body = await get(http, base + "&per_page=500", world.token)
    assert body.count(b'"package_type"') == 100
    assert "per_page=500" in links(headers["Link"])["next"] and "page=2" in links(headers["Link"])["next"]
    status, headers, body = await get(http, base + "&per_page=100&page=9", world.token)
    assert status == 200 and body == b"[]"


async def test_nested_names_only_with_percent_encoded_slashes(world, http):
    ok = await get(http, f"{world.api_url}/orgs/acme/packages/container/team%2Fapp%2Fapi", world.token)
    literal = await get(http, f"{world.api_url}/orgs/acme/packages/container/team/app/api", world.token)
    assert ok[0] == 200
    assert b'"name":"team/app/api"' in ok[2]
    assert b"/packages/container/team%2Fapp%2Fapi" in ok[2]
    assert literal[0] == 404


async def test_etag_304_is_not_charged(world, http):
    token = world.add_token(rate_limit=100)
    url = f"{world.api_url}/orgs/acme/packages/container/webapp/versions"
    status, headers, body = await get(http, url, token)
    assert status == 200
    etag = headers["ETag"]
    assert etag.startswith('W/"')
    assert headers["x-ratelimit-remaining"] == "99" and headers["x-ratelimit-used"] == "1"
    for _ in range(3):
        status, h304, body304 = await get(http, url, token, **{"If-None-Match": etag})
        assert status == 304 and body304 == b"" and h304["ETag"] == etag
        assert h304["x-ratelimit-remaining"] == "99"
    status, headers, _ = await get(http, url, token, **{"If-None-Match": 'W/"something-else"'})
    assert status == 200 and headers["x-ratelimit-remaining"] == "98"


async def test_rate_headers_and_an_exhausted_budget(world, http):
    token = world.add_token(rate_limit=2)
    url = f"{world.api_url}/orgs/acme/packages?package_type=container"
    seen = []
    for _ in range(3):
        status, headers, body = await get(http, url, token)
        seen.append((status, headers["x-ratelimit-remaining"], headers["x-ratelimit-used"]))
        assert headers["x-ratelimit-limit"] == "2" and headers["x-ratelimit-resource"] == "core"
        assert int(headers["x-ratelimit-reset"]) > time.time()
    assert seen == [(200, "1", "1"), (200, "0", "2"), (403, "0", "2")]
    assert b"API rate limit exceeded for user ID" in body
    assert b'"documentation_url"' in body


async def test_authentication_and_authorization_errors(world, http):
    url = f"{world.api_url}/orgs/acme/packages?package_type=container"
    async with http.get(url) as resp:
        assert resp.status == 401 and (await resp.json())["message"] == "Requires authentication"
    status, _, body = await get(http, url, "ghp_not_a_token")
    assert status == 401 and b'"Bad credentials"' in body
    no_scope = world.add_token(scopes=("repo",))
    status, headers, body = await get(http, url, no_scope)
    assert status == 403 and b"read:packages" in body
    assert "read:packages" in headers["x-accepted-oauth-scopes"] and headers["x-oauth-scopes"] == "repo"
    assert headers["x-github-request-id"]


async def test_unknown_owner_and_package_are_404(world, http):
    cases = {
        "/orgs/no-such-org/packages?package_type=container": b"Not Found",
        "/orgs/mona/packages?package_type=container": b"Not Found",  # a user is not an org
        "/orgs/acme/packages/container/no-such-package": b"Package not found.",
        "/orgs/acme/packages/container/webapp/versions/1": b"Package version not found.",
        "/users/acme/packages/container/webapp": b"Not Found",
    }
    for path, message in cases.items():
        status, _, body = await get(http, world.api_url + path, world.token)
        assert (path, status) == (path, 404)
        assert message in body


async def test_private_and_internal_packages_need_access(world, sample, http):
    outsider = world.add_token(owners=["someone-else"])
    url = f"{world.api_url}/orgs/acme/packages?package_type=container&per_page=100"
    _, _, mine = await get(http, url, world.token)
    _, _, theirs = await get(http, url, outsider)
    assert b'"name":"billing"' in mine and b'"name":"internal-tool"' in mine
    assert b'"name":"billing"' not in theirs and b'"name":"internal-tool"' not in theirs
    assert b'"name":"webapp"' in theirs
    status, _, _ = await get(http, f"{world.api_url}/orgs/acme/packages/container/billing", outsider)
    assert status == 404
    _, _, private_only = await get(http, url + "&visibility=private", world.token)
    assert private_only.count(b'"package_type"') == sum(1 for p in sample.packages_of("acme") if p.visibility == "private")


async def test_package_and_versions_match_the_sample(world, sample, http):
    expected = sample.role("multiarch_oci")
    async with http.get(f"{world.api_url}/orgs/acme/packages/container/webapp", headers=auth(world.token)) as resp:
        package = await resp.json()
    assert package["version_count"] == expected.version_count
    assert package["repository"]["full_name"] == expected.repository
    assert package["owner"]["type"] == "Organization"
    async with http.get(f"{world.api_url}/orgs/acme/packages/container/webapp/versions?per_page=100", headers=auth(world.token)) as resp:
        versions = await resp.json()
    assert {v["name"] for v in versions} == expected.digests
    stamps = [(v["created_at"], v["id"]) for v in versions]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    tags = {t: v["name"] for v in versions for t in v["metadata"]["container"]["tags"]}
    assert tags == dict(expected.tags)
    index = sample.image("acme", "webapp", expected.tags["latest"])
    untagged = {v["name"] for v in versions if not v["metadata"]["container"]["tags"]}
    assert {c.digest for c in index.children} <= untagged


async def test_versions_link_header_uses_the_organizations_form(world, http):
    org_id = world.call(lambda: world.state.owner("acme").id)
    status, headers, _ = await get(http, f"{world.api_url}/orgs/acme/packages/container/many-tags/versions?per_page=1", world.token)
    nxt = links(headers["Link"])["next"]
    assert nxt == f"{world.api_url}/organizations/{org_id}/packages/container/many-tags/versions?per_page=1&page=2"
    status, _, body = await get(http, nxt, world.token)
    assert status == 200 and body.count(b'"package_html_url"') == 1


async def test_user_packages_routes(world, sample, http):
    mine = {p.name for p in sample.packages_of(world.user)}
    for path in (f"/users/{world.user}/packages?package_type=container", "/user/packages?package_type=container"):
        async with http.get(world.api_url + path, headers=auth(world.token)) as resp:
            assert resp.status == 200
            assert {p["name"] for p in await resp.json()} == mine
    async with http.get(f"{world.api_url}/users/{world.user}/packages/container/dotfiles/versions", headers=auth(world.token)) as resp:
        body = await resp.json()
    assert body[0]["package_html_url"].startswith("https://github.com/users/mona/packages/container/package/")


async def test_every_body_validates_and_a_broken_one_is_caught(world, http):
    def drop_version_count(template, body):
        if template.endswith("/packages"):
            for item in body:
                item.pop("version_count", None)
                item["visibility"] = "secret"
        return body

    assert world.emulator.violations == []
    world.emulator.tamper = drop_version_count
    try:
        status, _, _ = await get(http, f"{world.api_url}/orgs/acme/packages?package_type=container", world.token)
    finally:
        world.emulator.tamper = None
    caught = list(world.emulator.violations)
    world.emulator.violations.clear()
    assert status == 200
    assert any("version_count" in v.message for v in caught)
    assert any(v.path.endswith("visibility") for v in caught)
    assert {v.operation for v in caught} == {"packages/list-packages-for-organization"}


def test_validator_checks_formats_and_nullable_fields():
    good = {"id": 1, "name": "v", "url": "u", "package_html_url": "h", "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}
    assert validate_body("/orgs/{org}/packages/{package_type}/{package_name}/versions", "get", 200, [good]) == []
    bad = dict(good, created_at="yesterday")
    problems = validate_body("/orgs/{org}/packages/{package_type}/{package_name}/versions", "get", 200, [bad])
    assert [p.path for p in problems] == ["0/created_at"]
