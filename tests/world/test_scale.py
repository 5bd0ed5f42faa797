"""The benchmark's scale world (crawler.sandbox.scale): a deterministic shape, a
storage layout the real registry serves, churn that the next build undoes."""

from __future__ import annotations

import json
from pathlib import Path

from crawler.oci import ImageIndex, parse_manifest
from crawler.sandbox import scale
from crawler.sandbox.state import TickClock, WorldState

SPEC = scale.ScaleSpec.org(30, owner="acme-scale", giants=1, giant_tags=130)


def _tag_links(root: Path) -> dict[tuple[str, str], str]:
    """(repository, tag) -> digest, read from distribution's tag links."""
    repos = scale.Storage(root).v2 / "repositories"
    out = {}
    for current in repos.glob("**/_manifests/tags/*/current/link"):
        tag_dir = current.parent.parent
        repository = str(tag_dir.parent.parent.parent.relative_to(repos))
        out[(repository, tag_dir.name)] = current.read_text()
    return out


def test_the_shape_follows_the_spec():
    plans = list(scale.plan(SPEC))
    assert len(plans) == 30
    giant, *ordinary = plans
    assert giant.name == "nightly-0" and len(giant.releases) == 130
    multiarch = [p for p in ordinary if SPEC.kind_of(p.index)[1]]
    signed = [p for p in ordinary if SPEC.kind_of(p.index)[2]]
    assert len(multiarch) == 3 and len(signed) == 6  # every 10th and every 5th of 30
    for p in multiarch:
        top = parse_manifest(p.releases[0].manifests[-1].raw, digest=p.releases[0].top)
        assert isinstance(top, ImageIndex)
        assert len(top.platform_children()) == 3 and len(top.attestations()) == 3
    for p in signed:
        sig_tags = [t for _, _, tags in p.versions() for t in tags if t.endswith(".sig")]
        assert len(sig_tags) == len(p.releases)
    assert any("/" in p.name for p in plans)
    latest = [p.versions()[-1 if not SPEC.kind_of(p.index)[2] else -2] for p in plans]
    assert all("latest" in tags for _, _, tags in latest)


def test_the_plan_is_deterministic():
    first = [p.versions() for p in scale.plan(SPEC)]
    again = [p.versions() for p in scale.plan(SPEC)]
    assert first == again
    other = [p.versions() for p in scale.plan(scale.ScaleSpec.org(30, owner="acme-scale", giants=1, giant_tags=130, seed=8))]
    assert other != first


def test_storage_holds_every_tag_and_the_build_is_reused(tmp_path):
    layout = scale.prepare(tmp_path, [SPEC])
    assert layout.built
    links = _tag_links(scale.storage_root(tmp_path))
    expected = {(scale.repository_of(SPEC.owner, p["name"]), t): d
                for p in layout.packages[SPEC.owner] for d, _, tags in p["versions"] for t in tags}
    assert links == expected
    blob = scale.Storage(scale.storage_root(tmp_path)).v2 / "blobs" / "sha256"
    some = next(iter(expected.values()))
    data = (blob / some[7:9] / some[7:] / "data").read_bytes()
    assert scale.c.sha256(data) == some
    again = scale.prepare(tmp_path, [SPEC])
    assert not again.built and again.packages == json.loads(json.dumps(layout.packages))


def test_churn_changes_about_the_fraction_and_the_next_build_undoes_it(tmp_path):
    layout = scale.prepare(tmp_path, [SPEC])
    before = _tag_links(scale.storage_root(tmp_path))
    state = WorldState(TickClock())
    scale.register(state, layout)
    tags_before = {p.name: p.tag_map() for p in state.packages_of(SPEC.owner)}
    summary = scale.churn(state, tmp_path, layout, SPEC, fraction=0.05)
    total = layout.stats()[SPEC.owner]["tags"]
    last = layout.packages[SPEC.owner][-1]["name"]
    assert summary["package_deleted"] == last and state.package(SPEC.owner, last) is None
    assert summary["package_added"] in {p.name for p in state.packages_of(SPEC.owner)}
    assert summary["tags_moved"] + summary["tags_deleted"] >= 1
    changed = [n for n, tags in tags_before.items()
               if state.package(SPEC.owner, n) and state.package(SPEC.owner, n).tag_map() != tags]
    assert len(changed) == summary["packages_changed"]
    # The registry side moved with the GitHub side.
    after = _tag_links(scale.storage_root(tmp_path))
    for name in changed:
        repository = scale.repository_of(SPEC.owner, name)
        assert {t: d for (r, t), d in after.items() if r == repository} == state.package(SPEC.owner, name).tag_map()
    assert summary["tags_changed"] >= round(total * 0.05) - 2
    # The next prepare puts the world back as built.
    again = scale.prepare(tmp_path, [SPEC])
    assert not again.built
    assert _tag_links(scale.storage_root(tmp_path)) == before
    assert not (tmp_path / "churned.json").exists()


def test_register_matches_the_layout():
    layout = scale.Layout([SPEC], {SPEC.owner: [{"index": p.index, "name": p.name, "visibility": p.visibility,
                                                   "versions": p.versions()} for p in scale.plan(SPEC)]})
    state = WorldState(TickClock())
    scale.register(state, layout)
    pkgs = state.packages_of(SPEC.owner)
    assert len(pkgs) == 30
    giant = state.package(SPEC.owner, "nightly-0")
    assert len(giant.tag_map()) == 131 and giant.version_count == 130
    assert all(p.repository == f"{SPEC.owner}/{p.name.replace('/', '-')}" for p in pkgs)
