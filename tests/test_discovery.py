"""crawler/discovery/ as a unit: each backend's pages become PackageRefs,
the scope (include/exclude/--package) selects, every listed name is kept
for deletions, and a listing is complete only when the backend ended."""

from __future__ import annotations

import pytest

from crawler.config import OwnerConfig
from crawler.discovery import Listing, Scope, discover, repository_path
from crawler.errors import NotFoundError, ParseError
from crawler.github import GhPackage, Page
from crawler.registry import Listed


class FakeGitHub:
    def __init__(self, pages, fail_after: int | None = None):
        self.pages, self.fail_after = pages, fail_after

    async def packages(self, owner, kind, *, conditional=True):
        for i, items in enumerate(self.pages):
            if self.fail_after is not None and i == self.fail_after:
                raise ParseError("page cut short")
            yield Page(tuple(items), None, None, False)

    async def package(self, owner, kind, name, *, conditional=True):
        self.named = [*getattr(self, "named", []), name]
        found = [p for items in self.pages for p in items if p.name == name]
        if not found:
            raise NotFoundError(f"package '{owner}/{name}' not found")
        return Page((found[0],), None, None, False)


class FakeRegistry:
    demands_tokens = True

    def __init__(self, repos):
        self.repos = repos

    async def catalog(self):
        return Listed(list(self.repos), 1)


def gh(name: str) -> GhPackage:
    return GhPackage(1, name, "public", "acme/src", None, 2, None, "2026-01-01T00:00:00Z")


async def collect(owner, scope, listing, **clients):
    return [r for refs in [x async for x in discover(owner, scope, listing, **clients)] for r in refs]


async def test_rest_pages_become_refs_and_the_scope_selects():
    owner = OwnerConfig("Acme", discovery="rest")
    listing = Listing()
    github = FakeGitHub([[gh("app"), gh("team/tool")], [gh("old-thing")]])
    refs = await collect(owner, Scope(("*",), ("old-*",)), listing, github=github, registry=None)
    assert [(r.name, r.repository_path, r.discovery, r.repository) for r in refs] == [
        ("app", "acme/app", "rest", "acme/src"), ("team/tool", "acme/team/tool", "rest", "acme/src")]
    assert listing.complete and listing.pages == 2
    assert listing.listed == {"app", "team/tool", "old-thing"}   # excluded, but listed: not deleted


async def test_only_selects_exact_names():
    listing = Listing()
    refs = await collect(OwnerConfig("acme"), Scope(only=("app",)), listing,
                         github=FakeGitHub([[gh("app"), gh("app2")]]), registry=None)
    assert [r.name for r in refs] == ["app"]


async def test_a_few_named_packages_are_fetched_one_by_one_not_listed():
    listing = Listing()
    github = FakeGitHub([[gh("app"), gh("app2"), gh("tool")]])
    with pytest.raises(NotFoundError):
        refs = []
        async for page in discover(OwnerConfig("acme"), Scope(exclude=("tool",), only=("gone", "app", "tool")),
                                   listing, github=github, registry=None):
            refs += page
    assert [r.name for r in refs] == ["app"]            # the 404 is raised after the others were handed on
    assert github.named == ["gone", "app"] and listing.pages == 1   # excluded names are never fetched
    many = tuple(f"p{i}" for i in range(11))
    refs = await collect(OwnerConfig("acme"), Scope(only=many), Listing(), github=FakeGitHub([[gh("p3")]]),
                         registry=None)
    assert [r.name for r in refs] == ["p3"]             # more than NAMED_MAX names: the listing


async def test_a_listing_that_fails_midway_is_not_complete():
    listing = Listing()
    with pytest.raises(ParseError):
        await collect(OwnerConfig("acme"), Scope(), listing,
                      github=FakeGitHub([[gh("a")], [gh("b")]], fail_after=1), registry=None)
    assert not listing.complete and listing.listed == {"a"}


async def test_catalog_keeps_this_owners_repositories():
    listing = Listing()
    registry = FakeRegistry(["acme/app", "acme/team/tool", "other/app", "acme", "acmex/app"])
    refs = await collect(OwnerConfig("acme", discovery="catalog"), Scope(), listing, github=None,
                         registry=registry)
    assert [(r.name, r.repository_path) for r in refs] == [("app", "acme/app"), ("team/tool", "acme/team/tool")]
    assert listing.complete and listing.pages == 1 and listing.tokens == 1


async def test_static_lists_the_configured_repositories():
    owner = OwnerConfig("Acme", discovery="static", repositories=("acme/App", "other/lib"))
    refs = await collect(owner, Scope(), Listing(), github=None, registry=None)
    assert [(r.name, r.repository_path) for r in refs] == [("app", "acme/app"), ("other/lib", "other/lib")]


def test_repository_path_is_lower_case_owner_slash_name():
    assert repository_path("Acme", "Team/App") == "acme/team/app"
