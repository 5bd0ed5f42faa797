"""The emulator's GraphQL endpoint, executed against GitHub's published schema."""

from __future__ import annotations

import aiohttp

from crawler.sandbox.emulator import Emulator
from crawler.sandbox.graphql_api import check_document
from crawler.sandbox.state import WorldState
from crawler.sandbox.tokens import TokenSigner

REPOS = """
query Repos($login: String!, $after: String) {
  rateLimit { limit cost remaining used resetAt nodeCount }
  org: organization(login: $login) {
    login
    repositories(first: 3, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes {
        id name nameWithOwner owner { login } isArchived isPrivate visibility pushedAt url
        defaultBranchRef { name target { oid ... on Commit { oid committedDate } } }
      }
    }
  }
}
"""


async def graphql(http, url, token, query, variables=None):
    async with http.post(url, json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, resp.headers, await resp.json()


async def test_schema_invalid_documents_get_githubs_error_shape(world, http):
    status, _, body = await graphql(http, world.graphql_url, world.token, "{ viewer { login nope } }")
    assert status == 200 and "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "undefinedField"
    assert error["message"] == "Field 'nope' doesn't exist on type 'User'"
    assert error["locations"] == [{"line": 1, "column": 18}]
    status, _, body = await graphql(http, world.graphql_url, world.token, "{ viewer { login ")
    assert status == 200 and body["errors"][0]["extensions"]["code"] == "parseError"
    status, _, body = await graphql(http, world.graphql_url, world.token, '{ organization { login } }')
    assert body["errors"][0]["extensions"]["code"] == "missingRequiredArguments"
    assert world.emulator.graphql_log[-1].errors and not world.emulator.graphql_log[-1].ok


async def test_repositories_resolve_with_pagination_and_aliases(world, sample, http):
    found = {}
    after = None
    costs = []
    while True:
        status, headers, body = await graphql(http, world.graphql_url, world.token, REPOS, {"login": "acme", "after": after})
        assert status == 200 and "errors" not in body, body
        assert headers["x-ratelimit-resource"] == "graphql"
        costs.append(body["data"]["rateLimit"])
        conn = body["data"]["org"]["repositories"]
        assert conn["totalCount"] == len([r for r in sample.repositories if r.startswith("acme/")])
        for node in conn["nodes"]:
            found[node["nameWithOwner"]] = node
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    expected = {k: v for k, v in sample.repositories.items() if k.startswith("acme/")}
    assert set(found) == set(expected)
    for name, facts in expected.items():
        node = found[name]
        assert node["isArchived"] == facts.archived
        assert node["isPrivate"] == facts.private
        assert node["visibility"] == facts.visibility.upper()
        assert node["defaultBranchRef"]["name"] == facts.default_branch
        assert node["defaultBranchRef"]["target"]["oid"] == facts.head_oid
        assert node["owner"] == {"login": "acme"}
    assert [c["cost"] for c in costs] == [1] * len(costs)
    assert costs[0]["nodeCount"] == 3
    assert [c["remaining"] for c in costs] == [costs[0]["remaining"] - i for i in range(len(costs))]


async def test_nodes_and_repository_lookups(world, sample, http):
    webapp_id = world.call(lambda: world.state.repository("acme/webapp").node_id)
    query = """
    query($ids: [ID!]!) {
      nodes(ids: $ids) { id ... on Repository { nameWithOwner isArchived } }
      legacy: repository(owner: "acme", name: "legacy") { isArchived }
      missing: repository(owner: "acme", name: "nope") { id }
      viewer { login }
    }"""
    status, _, body = await graphql(http, world.graphql_url, world.token, query, {"ids": [webapp_id, "R_kgDOnope"]})
    assert status == 200
    assert body["data"]["nodes"] == [{"id": webapp_id, "nameWithOwner": "acme/webapp", "isArchived": False}, None]
    assert body["data"]["legacy"] == {"isArchived": True}
    assert body["data"]["missing"] is None
    assert body["data"]["viewer"] == {"login": world.user}
    errors = {tuple(e["path"]): e for e in body["errors"]}
    assert errors[("nodes", 1)]["type"] == "NOT_FOUND"
    assert errors[("missing",)]["type"] == "NOT_FOUND"


async def test_private_repositories_need_access(world, http):
    outsider = world.add_token(owners=["someone-else"])
    query = '{ repository(owner: "acme", name: "billing") { isPrivate } }'
    _, _, mine = await graphql(http, world.graphql_url, world.token, query)
    _, _, theirs = await graphql(http, world.graphql_url, outsider, query)
    assert mine["data"]["repository"] == {"isPrivate": True}
    assert theirs["data"]["repository"] is None and theirs["errors"][0]["type"] == "NOT_FOUND"


async def test_github_com_lists_no_containers_in_graphql(world, http):
    query = '{ organization(login: "acme") { packages(first: 10, packageType: DOCKER) { totalCount nodes { name } } } }'
    status, _, body = await graphql(http, world.graphql_url, world.token, query)
    assert status == 200
    assert body["data"]["organization"]["packages"] == {"totalCount": 0, "nodes": []}


async def test_ghes_mode_lists_containers():
    state = WorldState()
    state.add_owner("acme")
    state.add_repository("acme", "app")
    state.ensure_package("acme", "app", visibility="public", repository="acme/app")
    state.record_version("acme", "app", "sha256:" + "a" * 64, tags=["old"])
    state.record_version("acme", "app", "sha256:" + "b" * 64, tags=["latest"])
    state.add_token("t", "mona")
    emulator = Emulator(state, TokenSigner(issuer="i", service="s"), graphql_lists_containers=True)
    await emulator.start()
    query = """{ organization(login: "acme") { packages(first: 5, packageType: DOCKER) { totalCount nodes {
        name packageType repository { nameWithOwner } latestVersion { version }
        versions(first: 5) { nodes { version } } statistics { downloadsTotalCount } } } } }"""
    try:
        async with aiohttp.ClientSession() as http:
            status, _, body = await graphql(http, f"{emulator.url}/graphql", "t", query)
    finally:
        await emulator.stop()
    [pkg] = body["data"]["organization"]["packages"]["nodes"]
    assert pkg["name"] == "app" and pkg["packageType"] == "DOCKER"
    assert pkg["repository"] == {"nameWithOwner": "acme/app"}
    assert pkg["latestVersion"] == {"version": "sha256:" + "b" * 64}
    assert [v["version"] for v in pkg["versions"]["nodes"]] == ["sha256:" + "b" * 64, "sha256:" + "a" * 64]


async def test_connections_need_pagination_boundaries(world, http):
    _, _, missing = await graphql(http, world.graphql_url, world.token, '{ organization(login: "acme") { repositories { totalCount } } }')
    _, _, excessive = await graphql(http, world.graphql_url, world.token, '{ organization(login: "acme") { repositories(first: 101) { totalCount } } }')
    assert missing["errors"][0]["type"] == "MISSING_PAGINATION_BOUNDARIES"
    assert excessive["errors"][0]["type"] == "EXCESSIVE_PAGINATION"


async def test_graphql_budget_runs_out_with_githubs_shape(world, http):
    token = world.add_token(graphql_limit=2)
    query = "{ rateLimit { remaining used } }"
    results = [await graphql(http, world.graphql_url, token, query) for _ in range(3)]
    assert [r[2].get("data") for r in results[:2]] == [{"rateLimit": {"remaining": 1, "used": 1}}, {"rateLimit": {"remaining": 0, "used": 2}}]
    status, headers, body = results[2]
    assert status == 200 and body["data"] is None
    assert body["errors"][0]["type"] == "RATE_LIMITED"
    assert body["errors"][0]["message"].startswith("API rate limit exceeded")
    assert headers["x-ratelimit-remaining"] == "0"


async def test_graphql_requires_a_known_token(world, http):
    async with http.post(world.graphql_url, json={"query": "{ viewer { login } }"}) as resp:
        assert resp.status == 401
    status, _, body = await graphql(http, world.graphql_url, "ghp_nope", "{ viewer { login } }")
    assert status == 401 and body["message"] == "Bad credentials"


async def test_graphql_log_records_documents(world, http):
    before = len(world.emulator.graphql_log)
    await graphql(http, world.graphql_url, world.token, "query Who { viewer { login } }")
    call = world.emulator.graphql_log[before]
    assert call.query == "query Who { viewer { login } }" and call.login == world.user and call.ok
    assert check_document(call.query) == []
