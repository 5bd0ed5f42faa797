"""Issue 3: the other discovery backends end to end — `catalog` on a registry
that has one, `static` (anonymous for public images), and clear failures where
the registry cannot serve them."""


from tests.support import dump, last_run, rows, run_cli, run_engine, write_config


def static_config(world, tmp_path, repos, *, registry=None, token_env="GHCR_NO_SUCH_TOKEN"):
    lines = ["[database]", f'path = "{tmp_path / "inventory.db"}"', "[github]", f'api_url = "{world.api_url}"',
             f'token_env = "{token_env}"', "[registry]", f'url = "{registry or world.registry_url}"',
             "[crawl]", "backoff_base_s = 0.001", "[[owners]]", 'name = "acme"', 'discovery = "static"',
             "repositories = [" + ", ".join(f'"{r}"' for r in repos) + "]"]
    path = tmp_path / "static.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_static_discovery_works_anonymously_for_public_images(world, sample, tmp_path, monkeypatch):
    monkeypatch.delenv("GHCR_NO_SUCH_TOKEN", raising=False)
    public = sample.role("nested")
    config = static_config(world, tmp_path, [f"acme/{public.name}"])
    assert run_cli(config, "sync") == 0
    db = tmp_path / "inventory.db"
    got = dict(rows(db, "SELECT tag, digest FROM v_tags WHERE package = ?", (public.name,)))
    assert got == {t: d for (o, p, t), d in sample.tags.items() if (o, p) == ("acme", public.name)}
    kinds = json_kinds(db)
    assert "manifest_head" in kinds and "tags" in kinds and "versions" not in kinds


def json_kinds(db):
    import json
    return json.loads(last_run(db)["requests_by_kind"])


def test_static_discovery_of_a_private_image_needs_a_token(world, sample, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GHCR_NO_SUCH_TOKEN", raising=False)
    private = sample.role("private")
    config = static_config(world, tmp_path, [f"acme/{private.name}"])
    assert run_cli(config, "sync") == 3     # every package refused for its credentials: the run is an auth failure
    message = rows(tmp_path / "inventory.db", "SELECT message FROM run_errors")[0][0]
    assert "anonymous pull refused" in message and "configure a token" in message
    # with the token it works
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    config = static_config(world, tmp_path, [f"acme/{private.name}"], token_env="GHCR_SANDBOX_TOKEN")
    assert run_cli(config, "sync") == 0


def test_second_static_run_heads_with_if_none_match(world, sample, tmp_path, monkeypatch):
    monkeypatch.delenv("GHCR_NO_SUCH_TOKEN", raising=False)
    public = sample.role("multiarch_oci")
    config = static_config(world, tmp_path, [f"acme/{public.name}"])
    assert run_cli(config, "sync") == 0
    assert run_cli(config, "sync") == 0
    run = last_run(tmp_path / "inventory.db")
    kinds = json_kinds(tmp_path / "inventory.db")
    assert kinds.get("manifest", 0) == 0 and kinds.get("config", 0) == 0
    assert run["not_modified"] == kinds["manifest_head"] > 0
    # nothing changed: the package counts as unchanged, not changed
    assert (run["packages_changed"], run["packages_skipped"]) == (0, 1)


def test_a_noop_catalog_sync_changes_nothing_and_says_so(world, sample, tmp_path, monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    config = write_config(world, tmp_path, [("acme", "org")], discovery="catalog", direct=True)
    first = run_engine(config, world.token)
    assert first.exit_code == 0 and first.packages_changed > 0
    db = tmp_path / "inventory.db"
    before = dump(db)
    again = run_engine(config, world.token)
    assert (again.exit_code, again.packages_changed) == (0, 0)
    assert again.packages_skipped == first.packages_changed
    assert dump(db) == before                       # not even last_synced moved


def test_catalog_discovery_on_a_registry_that_has_one(world, sample, tmp_path, monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    config = write_config(world, tmp_path, [("acme", "org")], discovery="catalog", direct=True)
    summary = run_engine(config, world.token)
    assert summary.exit_code == 0, summary.errors
    db = tmp_path / "inventory.db"
    got = {(p, t): d for p, t, d in rows(db, "SELECT package, tag, digest FROM v_tags")}
    want = {(p, t): d for (o, p, t), d in sample.tags.items() if o == "acme"}
    assert want.items() <= got.items()
    assert json_kinds(db)["catalog"] >= 1


def test_catalog_discovery_on_ghcr_says_there_is_none(world, tmp_path, monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    config = write_config(world, tmp_path, [("acme", "org")], discovery="catalog")
    summary = run_engine(config, world.token)
    assert summary.exit_code == 1
    message = rows(tmp_path / "inventory.db", "SELECT owner, message FROM run_errors")[0]
    assert message[0] == "acme" and "no catalog API" in message[1] and 'discovery = "rest"' in message[1]


def test_referrers_api_is_used_where_the_registry_has_it(world, fresh_owner, tmp_path, monkeypatch):
    import orjson
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    img = world.builder.push_image(fresh_owner, "app", tags=["latest"], seed=990)
    bundle = "sha256:" + "e" * 64
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": bundle, "size": 500,
         "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}]}
    world.registry_proxy.inject("status", path=rf"/referrers/{img.digest}", probability=1.0, status=200,
                                body=orjson.dumps(index),
                                headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    config = write_config(world, tmp_path, [(fresh_owner, "org")])
    assert run_cli(config, "sync") == 0
    db = tmp_path / "inventory.db"
    assert rows(db, "SELECT subject_digest, referrer_digest, kind, via FROM v_referrers") == [
        (img.digest, bundle, "signature", "referrers-api")]
    assert rows(db, "SELECT referrers FROM registry_facts") == [(1,)]


def test_a_registry_without_referrers_api_is_asked_once(world, fresh_owner, tmp_path, monkeypatch):
    import json
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    world.builder.push_image(fresh_owner, "one", tags=["latest"], seed=991)
    world.builder.push_image(fresh_owner, "two", tags=["latest"], seed=992)
    config = write_config(world, tmp_path, [(fresh_owner, "org")])
    assert run_cli(config, "sync") == 0
    db = tmp_path / "inventory.db"
    assert json.loads(last_run(db)["requests_by_kind"])["referrers"] == 1
    assert rows(db, "SELECT referrers FROM registry_facts") == [(0,)]
    world.builder.push_image(fresh_owner, "three", tags=["latest"], seed=993)
    assert run_cli(config, "sync") == 0
    assert "referrers" not in json.loads(last_run(db)["requests_by_kind"])
