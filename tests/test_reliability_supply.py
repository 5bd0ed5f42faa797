"""Faults and bad input around the supply-chain features (issue 16): GitHub's
attestations API refusing, failing or garbling its answers, a bad trusted
root, a bad `--policy`, and plan-cleanup after an incomplete listing. Each
row of RELIABILITY is asserted by the test it names; README's table is
rendered from these rows (tests/reliability.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import crawler.cleanup
from crawler import cli
from crawler.sandbox.faults import FOREVER
from tests.reliability import Row
from tests.support import last_run, rows, run_cli, write_config

RELIABILITY = [
    Row("att-403", "a token that cannot read attestations (403; fine-grained tokens need `attestations:read`)",
        "one warning per owner, the sync goes on (exit 0); each digest's coverage recorded `unknown`, never "
        "`none`, and asked again next run", test="test_a_token_that_cannot_read_attestations_leaves_them_unknown"),
    Row("att-500", "the attestations API answering 500 on every retry",
        "the packages are committed (exit 0); one run error `attestations: …`; the digests `unknown`",
        test="test_a_failing_attestations_api_fails_nothing_else"),
    Row("att-garbled", "a bulk-list answer that is not JSON (transient, then every time)",
        "refetched and stored; every time: that batch `unknown`, the sync goes on",
        test="test_garbled_attestation_answers_are_refetched_then_left_unknown"),
    Row("att-root", "`[attestations] trusted_root` missing, or a file that is not a Sigstore trusted root",
        "exit 2 before any request, one line naming the key and the file",
        test="test_a_bad_trusted_root_is_exit_2_before_any_request"),
    Row("cleanup-incomplete", "`plan-cleanup` after a sync in which a package failed",
        "nothing proposed in that package (one line says why), the others planned; the next good sync lifts it",
        test="test_plan_cleanup_refuses_a_package_whose_last_sync_failed"),
    Row("cleanup-policy", "`plan-cleanup --policy` with an unknown key or a bad value",
        "exit 2, one line naming the option", test="test_a_bad_policy_option_is_exit_2"),
]

BULK = "/attestations/bulk-list"


def _setup(world, owner, tmp_path, monkeypatch, *, token=None):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", token or world.token)
    world.builder.create_repository(owner, "app")
    image = world.builder.push_image(owner, "app", tags=["1.0"], repository=f"{owner}/app")
    world.builder.attest(owner, "app", image, repository=f"{owner}/app")
    config = write_config(world, tmp_path, [(owner, "org")], token_env="GHCR_SANDBOX_TOKEN")
    return config, tmp_path / "inventory.db", image


def test_a_token_that_cannot_read_attestations_leaves_them_unknown(world, fresh_owner, tmp_path, monkeypatch,
                                                                   capsys):
    token = world.add_token(scopes=("read:packages",))          # no repo, no attestations:read
    config, db, image = _setup(world, fresh_owner, tmp_path, monkeypatch, token=token)
    assert run_cli(config, "sync") == 0
    err = capsys.readouterr().err
    assert err.count('"event":"attestations_unreadable"') == 1 and '"level":"warning"' in err
    assert rows(db, "SELECT digest, coverage FROM attestation_checks") == [(image.digest, "unknown")]
    assert rows(db, "SELECT github_coverage FROM v_unattested") == [("unknown",)]
    assert rows(db, "SELECT attestation_unknown_images FROM v_summary") == [(1,)]
    assert last_run(db)["errors"] == 0                          # a permission, not a failure
    assert run_cli(config, "sync") == 0                         # unknown is asked again
    assert json.loads(last_run(db)["requests_by_kind"])["attestations"] == 1


def test_a_failing_attestations_api_fails_nothing_else(world, fresh_owner, tmp_path, monkeypatch):
    config, db, image = _setup(world, fresh_owner, tmp_path, monkeypatch)
    world.api_proxy.inject("status", path=BULK, times=FOREVER, status=500)
    assert run_cli(config, "sync") == 0
    assert rows(db, "SELECT tag FROM v_tags") == [("1.0",)]
    errors = rows(db, "SELECT message FROM run_errors")
    assert len(errors) == 1 and errors[0][0].startswith("attestations: ") and "HTTP 500" in errors[0][0]
    assert rows(db, "SELECT coverage FROM attestation_checks") == [("unknown",)]
    world.clear_faults()
    assert run_cli(config, "sync") == 0
    assert rows(db, "SELECT coverage FROM attestation_checks") == [("listed",)]


def test_garbled_attestation_answers_are_refetched_then_left_unknown(world, fresh_owner, tmp_path, monkeypatch):
    config, db, image = _setup(world, fresh_owner, tmp_path, monkeypatch)
    world.api_proxy.inject("malformed_json", path=BULK, times=1)
    assert run_cli(config, "sync") == 0
    assert rows(db, "SELECT coverage FROM attestation_checks") == [("listed",)]
    assert json.loads(last_run(db)["faults"]).get("bad_body") == 1
    world.builder.push_image(fresh_owner, "app", tags=["2.0"], repository=f"{fresh_owner}/app")
    world.api_proxy.inject("malformed_json", path=BULK, times=FOREVER)
    assert run_cli(config, "sync") == 0
    assert sorted(c for (c,) in rows(db, "SELECT coverage FROM attestation_checks")) == ["listed", "unknown"]
    assert rows(db, "SELECT COUNT(*) FROM attestations") == [(1,)]     # what was known is kept


def test_a_bad_trusted_root_is_exit_2_before_any_request(world, fresh_owner, tmp_path, monkeypatch, capsys):
    config, db, _ = _setup(world, fresh_owner, tmp_path, monkeypatch)
    base = config.read_text()
    bogus = tmp_path / "root.json"
    bogus.write_text('{"mediaType": "application/json"}')
    for path in (tmp_path / "missing.jsonl", bogus):
        config.write_text(base + f'\n[attestations]\ntrusted_root = "{path}"\n')
        world.emulator.reset_logs()
        assert run_cli(config, "sync") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "attestations.trusted_root" in err[0] and str(path) in err[0]
        assert world.emulator.log == [] and not db.exists()


def test_plan_cleanup_refuses_a_package_whose_last_sync_failed(world, fresh_owner, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(crawler.cleanup, "clock", lambda: datetime.now(timezone.utc) + timedelta(days=30))
    config, db, _ = _setup(world, fresh_owner, tmp_path, monkeypatch)
    world.builder.push_image(fresh_owner, "app")                   # an orphan to propose
    world.builder.push_image(fresh_owner, "other")
    world.builder.push_image(fresh_owner, "other", tags=["x"])
    assert run_cli(config, "sync") == 0
    plan = ["--config", str(config), "plan-cleanup", "--format", "json", "--policy", "untagged_older_than_days=0"]

    def proposed():
        assert cli.main(plan) == 0
        out = capsys.readouterr()
        return {p["package"] for p in json.loads(out.out)}, out.err

    assert proposed()[0] == {"app", "other"}
    world.builder.push_image(fresh_owner, "app", tags=["edge"])   # changed: the next sync lists it again
    world.api_proxy.inject("status", path=r"/packages/container/app/versions", times=FOREVER, status=500)
    assert run_cli(config, "sync") == 1
    world.clear_faults()
    packages, err = proposed()
    assert packages == {"other"}
    assert f"refused {fresh_owner}/app: this package's last sync was incomplete" in err
    assert rows(db, "SELECT package, kind FROM v_incomplete_listings") == [("app", "UnreachableError")]
    assert run_cli(config, "sync") == 0                           # a good sync lifts it
    assert proposed()[0] == {"app", "other"}


def test_a_bad_policy_option_is_exit_2(world_config, capsys):
    for option in ("colour=blue", "keep_newest_tagged=many"):
        assert cli.main(["--config", str(world_config), "plan-cleanup", "--policy", option]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--policy '{option}'" in err[0]
