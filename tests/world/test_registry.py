"""The registry side of the world: token auth, the ghcr-shaped front, the CDN, a third-party client."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from urllib.parse import urlsplit

import aiohttp
import jwt

from crawler.sandbox.client import ACCEPT_MANIFESTS, basic, fetch_token, parse_challenge, registry_request
from crawler.sandbox.emulator import Emulator
from crawler.sandbox.state import WorldState
from crawler.sandbox.tokens import Access, TokenSigner


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_registry_demands_a_bearer_token(world, http):
    async with http.get(f"{world.registry_direct_url}/v2/acme/webapp/manifests/latest") as resp:
        assert resp.status == 401
        challenge = parse_challenge(resp.headers["WWW-Authenticate"])
    assert challenge["scheme"] == "Bearer"
    assert challenge["realm"] == world.emulator.token_url
    assert challenge["service"] == world.service
    assert challenge["scope"] == "repository:acme/webapp:pull"


async def test_front_puts_the_realm_on_the_registry_host(world, http):
    async with http.get(f"{world.registry_url}/v2/") as resp:
        assert resp.status == 401
        challenge = parse_challenge(resp.headers["WWW-Authenticate"])
    assert challenge["realm"] == f"{world.registry_url}/token"
    status, body = await fetch_token(http, challenge["realm"], service=challenge["service"], scopes=[], github_token=world.token)
    assert status == 200 and body["token"]


async def test_registry_accepts_the_emulators_token(world, sample, http):
    want = sample.tags[("acme", "webapp", "latest")]
    downloads = world.package("acme", "webapp").downloads
    reply = await registry_request(
        http, world.registry_url, "/v2/acme/webapp/manifests/latest", github_token=world.token,
        headers={"Accept": ACCEPT_MANIFESTS},
    )
    assert reply.status == 200
    assert reply.headers["Docker-Content-Digest"] == want
    assert sha256(reply.body) == want
    assert reply.body == sample.image("acme", "webapp", want).raw
    assert world.package("acme", "webapp").downloads == downloads + 1  # ghcr counts manifest GETs


async def test_registry_refuses_tokens_it_does_not_trust(world, http):
    url = f"{world.registry_direct_url}/v2/acme/webapp/manifests/latest"
    access = [Access("repository", "acme/webapp", ("pull",))]
    stranger = TokenSigner(issuer=world.issuer, service=world.service)  # same names, other key
    wrong_audience = world.signer.issue("mona", access, audience="not-the-registry")
    good = world.signer.issue("mona", access)
    statuses = {}
    for label, token in (("stranger", stranger.issue("mona", access)), ("audience", wrong_audience), ("good", good)):
        async with http.get(url, headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT_MANIFESTS}) as resp:
            statuses[label] = resp.status
    assert statuses == {"stranger": 401, "audience": 401, "good": 200}


async def test_anonymous_pull_works_only_for_public_packages(world, sample, http):
    assert sample.role("multiarch_oci").visibility == "public"
    assert sample.role("private").visibility == "private"
    public = await registry_request(http, world.registry_url, "/v2/acme/webapp/manifests/latest", headers={"Accept": ACCEPT_MANIFESTS})
    private = await registry_request(http, world.registry_url, "/v2/acme/billing/manifests/latest", headers={"Accept": ACCEPT_MANIFESTS})
    with_token = await registry_request(
        http, world.registry_url, "/v2/acme/billing/manifests/latest", github_token=world.token,
        headers={"Accept": ACCEPT_MANIFESTS},
    )
    assert public.status == 200
    assert private.status == 401
    assert with_token.status == 200
    assert with_token.headers["Docker-Content-Digest"] == sample.tags[("acme", "billing", "latest")]


async def test_private_packages_need_access_to_their_owner(world, http):
    outsider = world.add_token(owners=["someone-else"])
    reply = await registry_request(
        http, world.registry_url, "/v2/acme/billing/manifests/latest", github_token=outsider,
        headers={"Accept": ACCEPT_MANIFESTS},
    )
    assert reply.status == 401
    grant = world.emulator.token_log[-1]
    assert grant.requested == ("repository:acme/billing:pull",) and grant.granted == ()


async def test_token_endpoint_grants_what_the_github_token_allows(world, http):
    realm = world.token_url
    before = world.emulator.token_requests
    status, read = await fetch_token(http, realm, service=world.service, scopes=["repository:acme/webapp:pull,push"], github_token=world.token)
    assert status == 200
    assert read["token"] == read["access_token"]
    assert read["expires_in"] == 300 and read["issued_at"].endswith("Z")
    claims = jwt.decode(read["token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "acme/webapp", "actions": ["pull"]}]
    assert claims["aud"] == world.service and isinstance(claims["exp"], int)
    header = jwt.get_unverified_header(read["token"])
    assert header["alg"] == "ES256" and len(header["x5c"]) == 1

    status, write = await fetch_token(
        http, realm, service=world.service, scopes=["repository:acme/webapp:pull,push"], github_token=world.admin_token
    )
    assert jwt.decode(write["token"], options={"verify_signature": False})["access"][0]["actions"] == ["pull", "push"]

    status, catalog = await fetch_token(http, realm, service=world.service, scopes=["registry:catalog:*"], github_token=None)
    assert jwt.decode(catalog["token"], options={"verify_signature": False})["access"] == [
        {"type": "registry", "name": "catalog", "actions": ["*"]}
    ]
    async with http.get(realm, params={"scope": "repository:acme/webapp:pull"}, headers={"Authorization": basic("x", "ghp_bogus")}) as resp:
        assert resp.status == 401
        assert (await resp.json())["errors"][0]["code"] == "UNAUTHORIZED"
    assert world.emulator.token_requests == before + 4


async def test_token_endpoint_can_omit_expires_in():
    state = WorldState()
    state.add_owner("acme")
    emulator = Emulator(state, TokenSigner(issuer="i", service="s"), token_expires_in=False, token_ttl_s=60)
    await emulator.start()
    try:
        async with aiohttp.ClientSession() as session:
            status, body = await fetch_token(session, emulator.token_url, service="s", scopes=[], github_token=None)
    finally:
        await emulator.stop()
    assert status == 200 and "expires_in" not in body
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60


async def test_front_pages_tags_list_like_ghcr(world, sample, http):
    expected = sorted(t for (o, p, t) in sample.tags if (o, p) == ("acme", "many-tags"))
    assert len(expected) > 250
    path = "/v2/acme/many-tags/tags/list"
    seen: list[str] = []
    pages = 0
    while path:
        reply = await registry_request(http, world.registry_url, path, github_token=world.token)
        assert reply.status == 200
        body = reply.json()
        assert len(body["tags"]) <= 100
        seen += body["tags"]
        pages += 1
        link = reply.headers.get("Link")
        path = link.split(">", 1)[0].lstrip("<") if link else None
        if path:
            assert 'rel="next"' in link and "last=" in path and "n=100" in path
    assert seen == expected and pages == 3

    small = await registry_request(http, world.registry_url, f"{'/v2/acme/many-tags/tags/list'}?n=5&last=build-0100", github_token=world.token)
    assert small.json()["tags"] == [t for t in expected if t > "build-0100"][:5]

    untagged = await registry_request(http, world.registry_url, "/v2/acme/nightly/tags/list", github_token=world.token)
    assert untagged.status == 200 and untagged.json() == {"name": "acme/nightly", "tags": []}

    # distribution 2.8 itself ignores n/last and sends every tag, no Link.
    direct = await registry_request(http, world.registry_direct_url, "/v2/acme/many-tags/tags/list?n=5", github_token=world.token)
    assert len(direct.json()["tags"]) == len(expected) and "Link" not in direct.headers


async def test_front_has_no_referrers_api_and_no_catalog(world, sample, http):
    digest = sample.tags[("acme", "signed-app", "v1")]
    referrers = await registry_request(http, world.registry_url, f"/v2/acme/signed-app/referrers/{digest}", github_token=world.token)
    catalog_front = await registry_request(http, world.registry_url, "/v2/_catalog", github_token=world.token)
    catalog_direct = await registry_request(http, world.registry_direct_url, "/v2/_catalog?n=1000", github_token=world.token)
    assert referrers.status == 404
    assert catalog_front.status == 404
    assert catalog_direct.status == 200
    repos = set(catalog_direct.json()["repositories"])
    assert {f"{o}/{p}" for (o, p) in sample.packages} <= repos


async def test_blob_get_redirects_to_a_cdn_that_never_sees_authorization(world, sample, http):
    image = sample.tagged("acme", "team/app/api", "latest")
    layer = image.layers[0]
    path = f"/v2/acme/team/app/api/blobs/{layer.digest}"
    world.cdn.requests.clear()
    redirect = await registry_request(http, world.registry_url, path, github_token=world.token)
    assert redirect.status == 307
    location = redirect.headers["Location"]
    assert urlsplit(location).netloc != urlsplit(world.registry_url).netloc
    assert urlsplit(location).hostname == world.cdn.host

    followed = await registry_request(http, world.registry_url, path, github_token=world.token, allow_redirects=True)
    assert followed.status == 200
    assert sha256(followed.body) == layer.digest and len(followed.body) == layer.size
    assert world.cdn.requests and not world.cdn.saw_authorization

    # The recorder does notice a client that leaks the header.
    async with http.get(location, headers={"Authorization": "Bearer leaked"}) as resp:
        assert resp.status == 200
    assert world.cdn.saw_authorization
    world.cdn.requests.clear()


async def test_oci_index_needs_the_index_accept_type(world, http):
    reply = await registry_request(
        http, world.registry_url, "/v2/acme/webapp/manifests/latest", github_token=world.token,
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert reply.status == 404
    assert "OCI index found, but accept header does not support OCI indexes" in reply.body.decode()


async def test_manifest_head_gives_digest_and_etag_and_get_revalidates(world, sample, http):
    want = sample.tags[("acme", "cli", "latest")]
    head = await registry_request(
        http, world.registry_url, "/v2/acme/cli/manifests/latest", github_token=world.token, method="HEAD",
        headers={"Accept": ACCEPT_MANIFESTS},
    )
    assert head.status == 200 and head.body == b""
    assert head.headers["Docker-Content-Digest"] == want
    assert int(head.headers["Content-Length"]) == sample.image("acme", "cli", want).size
    etag = head.headers["Etag"]
    again = await registry_request(
        http, world.registry_url, "/v2/acme/cli/manifests/latest", github_token=world.token,
        headers={"Accept": ACCEPT_MANIFESTS, "If-None-Match": etag},
    )
    assert again.status == 304


async def test_skopeo_inspects_through_the_front(world, sample, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}

    def skopeo(ref: str, creds: str | None) -> subprocess.CompletedProcess:
        auth = ["--creds", creds] if creds else ["--no-creds"]
        cmd = ["skopeo", "inspect", "--raw", "--tls-verify=false", *auth, f"docker://{world.registry_host}/{ref}"]
        return subprocess.run(cmd, capture_output=True, env=env, timeout=60, check=False)

    ok, denied = await asyncio.gather(
        asyncio.to_thread(skopeo, "acme/team/app/api:latest", f"x:{world.token}"),
        asyncio.to_thread(skopeo, "acme/billing:latest", None),
    )
    assert ok.returncode == 0, ok.stderr.decode()
    assert sha256(ok.stdout) == sample.tags[("acme", "team/app/api", "latest")]
    assert json.loads(ok.stdout)["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert denied.returncode != 0


async def test_expired_registry_tokens_get_a_fresh_challenge(world, http):
    _, body = await fetch_token(http, world.token_url, service=world.service, scopes=["repository:acme/cli:pull"], github_token=world.token)
    url = f"{world.registry_url}/v2/acme/cli/manifests/latest"
    headers = {"Authorization": f"Bearer {body['token']}", "Accept": ACCEPT_MANIFESTS}
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200
    world.expire_registry_tokens()
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 401
        challenge = parse_challenge(resp.headers["WWW-Authenticate"])
    assert challenge == {"scheme": "Bearer", "realm": world.token_url, "service": world.service, "scope": "repository:acme/cli:pull"}
    refreshed = await registry_request(http, world.registry_url, "/v2/acme/cli/manifests/latest", github_token=world.token, headers={"Accept": ACCEPT_MANIFESTS})
    assert refreshed.status == 200
