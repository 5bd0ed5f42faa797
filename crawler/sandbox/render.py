"""REST JSON bodies of the packages API, shaped like GitHub's published OpenAPI.

Pure functions from the world's state to the ``package``, ``package-version``,
``simple-user`` and ``minimal-repository`` objects (see
``reference/github-rest-packages.openapi.json``). ``api`` is the API base URL the
client used, so ``url`` fields point back through whatever proxy it went through.
"""

from __future__ import annotations

from urllib.parse import quote

from .state import Owner, Package, Repository, Version, iso

WEB = "https://github.com"


def quote_name(name: str) -> str:
    """A package name as one path segment: ``team/app/api`` → ``team%2Fapp%2Fapi``."""
    return quote(name, safe="")


def owner_json(owner: Owner, api: str) -> dict:
    base = f"{api}/users/{owner.login}"
    return {
        "login": owner.login,
        "id": owner.id,
        "node_id": owner.node_id,
        "avatar_url": f"https://avatars.githubusercontent.com/u/{owner.id}?v=4",
        "gravatar_id": "",
        "url": base,
        "html_url": f"{WEB}/{owner.login}",
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "type": owner.type_name,
        "user_view_type": "public",
        "site_admin": False,
    }


def user_json(owner: Owner, api: str) -> dict:
    """``GET /users/{username}`` as GitHub answers it for someone else's account
    (the "Public User" shape; an org answers the same with ``type: Organization``)."""
    stamp = iso(owner.created_at)
    return {
        **owner_json(owner, api),
        "name": owner.name,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": stamp,
        "updated_at": stamp,
    }


_REPO_TEMPLATES = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
}


def repository_json(repo: Repository, owner: Owner, api: str) -> dict:
    base = f"{api}/repos/{repo.full_name}"
    body = {
        "id": repo.id,
        "node_id": repo.node_id,
        "name": repo.name,
        "full_name": repo.full_name,
        "private": repo.private,
        "owner": owner_json(owner, api),
        "html_url": f"{WEB}/{repo.full_name}",
        "description": repo.description,
        "fork": False,
        "url": base,
    }
    body.update({key: base + suffix for key, suffix in _REPO_TEMPLATES.items()})
    return body


def package_api_path(pkg: Package, owner: Owner) -> str:
    scope = "orgs" if owner.kind == "org" else "users"
    return f"/{scope}/{owner.login}/packages/container/{quote_name(pkg.name)}"


def package_html_url(pkg: Package, owner: Owner) -> str:
    scope = "orgs" if owner.kind == "org" else "users"
    return f"{WEB}/{scope}/{owner.login}/packages/container/package/{quote_name(pkg.name)}"


def package_json(pkg: Package, owner: Owner, repo: Repository | None, repo_owner: Owner | None, api: str) -> dict:
    body = {
        "id": pkg.id,
        "name": pkg.name,
        "package_type": "container",
        "owner": owner_json(owner, api),
        "version_count": pkg.version_count,
        "visibility": pkg.visibility,
        "url": api + package_api_path(pkg, owner),
        "created_at": iso(pkg.created_at),
        "updated_at": iso(pkg.updated_at),
        "html_url": package_html_url(pkg, owner),
    }
    if repo is not None and repo_owner is not None:
        body["repository"] = repository_json(repo, repo_owner, api)
    return body


def version_json(version: Version, pkg: Package, owner: Owner, api: str) -> dict:
    scope = "orgs" if owner.kind == "org" else "users"
    body = {
        "id": version.id,
        "name": version.name,
        "url": f"{api}{package_api_path(pkg, owner)}/versions/{version.id}",
        "package_html_url": package_html_url(pkg, owner),
        "created_at": iso(version.created_at),
        "updated_at": iso(version.updated_at),
        "html_url": f"{WEB}/{scope}/{owner.login}/packages/container/{quote_name(pkg.name)}/{version.id}",
        "metadata": {"package_type": "container", "container": {"tags": list(version.tags)}},
    }
    if version.deleted_at is not None:
        body["deleted_at"] = iso(version.deleted_at)
    return body


def error_json(message: str, documentation_url: str = "https://docs.github.com/rest", status: int | None = None) -> dict:
    body = {"message": message, "documentation_url": documentation_url}
    if status is not None:
        body["status"] = str(status)
    return body
