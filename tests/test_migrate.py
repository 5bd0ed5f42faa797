"""Issue 14, "moving in": `ghcr-inventory migrate --to postgresql://…`
copies an SQLite inventory, history included, into PostgreSQL; every view
then holds the same rows; a second migration copies nothing; and a sync
against PostgreSQL continues incrementally (an unchanged org: only 304s)."""

from __future__ import annotations

import json

from tests.support import dump, execute, last_run, new_pg_db, rows, run_cli, view_differences, write_config


def test_migrate_copies_history_once_and_syncs_continue_incrementally(world, pg_server, fresh_owner, tmp_path,
                                                                       monkeypatch, capsys):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    b = world.builder
    b.push_image(fresh_owner, "app", tags=["latest", "v1"], seed=4100)
    b.push_index(fresh_owner, "multi", tags=["stable"], seed=4101, attestations=True)
    lite = tmp_path / "inventory.db"
    config = write_config(world, tmp_path, [(fresh_owner, "org")], db=lite)
    assert run_cli(config, "sync") == 0
    b.push_image(fresh_owner, "app", tags=["latest"], seed=4102)      # a move: history
    b.untag(fresh_owner, "app", "v1")
    assert run_cli(config, "sync") == 0
    assert len(rows(lite, "SELECT * FROM v_tag_history WHERE package = 'app'")) == 3

    pg = new_pg_db(pg_server, "migrated")
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    capsys.readouterr()
    assert run_cli(config, "migrate", "--to", pg.url) == 0
    line = capsys.readouterr().err.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("migrated ") and "sync_runs" in line[0]
    differences = view_differences(lite, pg)
    filled = differences.pop(None)
    assert differences == {} and "v_tag_moves" in filled and "v_sync_runs" in filled
    assert rows(pg, "SELECT COUNT(*) FROM http_cache") == rows(lite, "SELECT COUNT(*) FROM http_cache")

    before = dump(pg, skip=())
    assert run_cli(config, "migrate", "--to", pg.url) == 0        # idempotent
    assert "nothing new" in capsys.readouterr().err
    assert dump(pg, skip=()) == before

    pg_config = write_config(world, tmp_path, [(fresh_owner, "org")], db=pg, name="pg.toml")
    assert run_cli(pg_config, "sync") == 0
    run = last_run(pg)
    assert run["requests"] == run["not_modified"] > 0 and run["packages_changed"] == 0
    assert set(json.loads(run["requests_by_kind"])) == {"discovery"}
    assert [r for (r,) in rows(pg, "SELECT id FROM sync_runs ORDER BY id")] == [1, 2, 3]


def test_runs_started_in_one_second_are_matched_one_to_one(world, pg_server, fresh_owner, tmp_path,
                                                            monkeypatch, capsys):
    """Two runs of one process may share their whole natural key (start to
    the second, mode, owners, pid, host): a second migration must match
    them one to one, not fold both onto one target run (which copied the
    first run's package changes again, under the second run's id)."""
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    world.builder.push_image(fresh_owner, "app", tags=["latest"], seed=4110)
    world.builder.push_image(fresh_owner, "lib", tags=["latest"], seed=4112)
    lite = tmp_path / "inventory.db"
    config = write_config(world, tmp_path, [(fresh_owner, "org")], db=lite)
    assert run_cli(config, "sync") == 0
    world.builder.push_image(fresh_owner, "other", tags=["latest"], seed=4111)
    assert run_cli(config, "sync") == 0
    execute(lite, "UPDATE sync_runs SET started_at = (SELECT MIN(started_at) FROM sync_runs)")
    assert rows(lite, "SELECT COUNT(DISTINCT started_at || pid || host), COUNT(*) FROM sync_runs") == [(1, 2)]
    assert rows(lite, "SELECT COUNT(DISTINCT run_id) FROM package_changes") == [(2,)]

    pg = new_pg_db(pg_server, "same_second")
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    assert run_cli(config, "migrate", "--to", pg.url) == 0
    before = dump(pg, skip=())
    capsys.readouterr()
    assert run_cli(config, "migrate", "--to", pg.url) == 0
    assert "nothing new" in capsys.readouterr().err
    assert dump(pg, skip=()) == before
