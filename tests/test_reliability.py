"""Issue 6: faults and bad input, each ending in a clear message and no lost
or corrupted data — against the real registry and the emulator behind the
fault proxy. Every scenario is a row of RELIABILITY (what was tried, the
outcome), asserted by its test; README's "Reliability" table is rendered from
these rows and `test_readme_table_is_current` keeps the two in step
(UPDATE_README=1 rewrites it).

Every test that syncs runs against both stores (the `db` fixture, SQLite
and PostgreSQL); the clean run they compare with is SQLite's, so the two
stores are held to the same inventory."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import orjson
import pytest

from crawler.oci import compute_digest
from tests.reliability import Row, all_rows, readme_with_table
from tests.support import (FakeClock, dump, integrity_ok, last_run, rows, run_cli, run_engine,
                           write_config)

ROOT = Path(__file__).resolve().parent.parent


RELIABILITY = [
    Row("5xx", "HTTP 500/502/503 from the registry or the API (transient)",
        "retried with jittered backoff; sync completes; counted in `faults` (`http_5xx`)"),
    Row("reset", "connection reset before an answer", "retried; sync completes; counted (`reset`)"),
    Row("truncate", "body cut short after its Content-Length was promised",
        "retried; sync completes; counted (`truncated`)"),
    Row("timeout", "no answer within `crawl.timeout_s`", "retried; sync completes; counted (`timeout`)"),
    Row("run-timeout", "the whole run exceeds `crawl.run_timeout_s`",
        "stops: packages done are committed, the one in flight rolled back, run `interrupted`, exit 4"),
    Row("persistent-5xx", "one package's listing answers 500 on every retry",
        "that package fails after `crawl.retries` (exit 1), the others commit"),
    Row("no-4xx-retry", "HTTP 400 on a manifest", "not retried (one request); that package fails, exit 1"),
    Row("429-header", "429 with `Retry-After`", "waits the hinted time (injected clock), then completes"),
    Row("429-body", "429 with only ghcr's body `retry-after: 880µs, allowed: 44000/minute`",
        "waits 880 µs, then completes"),
    Row("secondary", "403 secondary rate limit without a hint",
        "waits ≥ 60 s (doubling on repeats), then completes"),
    Row("exhausted", "REST budget exhausted (`x-ratelimit-remaining: 0`)",
        "stops cleanly: done packages committed, run `rate_limited`, exit 4, one line saying when to retry"),
    Row("reserve", "budget nearly spent", "never spends the last `crawl.rate_limit_reserve` requests"),
    Row("malformed-api", "malformed JSON from the API (transient)", "page refetched; sync completes"),
    Row("content-type", "API answers 200 with `text/html`", "that package fails: \"expected JSON … text/html\""),
    Row("corrupt", "manifest bytes that do not hash to their digest (transient)",
        "refetched and verified; sync completes"),
    Row("wrong-header", "`Docker-Content-Digest` that disagrees with the body (every time)",
        "that package fails (\"does not match\"), nothing of it stored, exit 1"),
    Row("oversized", "manifest larger than 4 MiB", "rejected before reading it all; that package fails"),
    Row("bad-manifests", "manifests with an unknown media type, a negative size, 10,001 layers, an invalid digest",
        "each fails its package with a one-line reason; no row written"),
    Row("bad-tag", "a tag outside the OCI grammar in the versions listing", "that package fails naming the tag"),
    Row("cdn-auth", "blob GET redirected (307) to another host", "followed without Authorization"),
    Row("untrusted-realm", "token realm on a host that is neither the registry nor the API",
        "credentials not sent (anonymous token), a warning names the host"),
    Row("bad-token", "a rejected token (401)", "exit 3, one line"),
    Row("no-scope", "a token without `read:packages` (403)", "exit 3, one line naming the scope"),
    Row("unknown-owner", "an owner that does not exist (404)", "that owner fails (exit 1), nothing deleted"),
    Row("refused", "API host refusing connections", "exit 4 after retries"),
    Row("tls", "a TLS certificate that does not verify", "exit 4: \"TLS failure\" (verification is on by default)"),
    Row("config", "unknown key, wrong type, missing token variable, unreadable token file",
        "exit 2, one line naming the key and the file"),
    Row("query-write", "a write statement given to `query`", "exit 2, one line; database unchanged"),
    Row("soak", "every fault above mixed into ~10 % of requests, small rate budget",
        "inventory identical to a clean run's; every fault counted in `v_sync_runs.faults`"),
    Row("redaction", "a full sync with faults at debug level",
        "the token is in no log line, error, database row or argv"),
]
BY_ID = {row.id: row for row in RELIABILITY}


@pytest.fixture(scope="module")
def small(world):
    """A small org: image, multi-arch index with attestations, signed image, nested name."""
    owner = world.new_owner("rel")
    b = world.builder
    b.push_image(owner, "app", tags=["latest", "v1"], seed=901)
    idx = b.push_index(owner, "multi", tags=["latest"], seed=902, attestations=True)
    b.push_cosign(owner, "multi", idx.digest, kind="sig")
    b.push_image(owner, "team/api", tags=["1.0"], seed=903)
    return owner


@pytest.fixture
def env_token(world, monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    return world.token


def config_for(world, tmp_path, owner, **kw):
    return write_config(world, tmp_path, [(owner, "org")], **kw)


def inventory(db: Path) -> dict:
    """What the sync learnt, without timestamps: comparable across runs."""
    return {
        "packages": rows(db, "SELECT owner, package, visibility, repository, version_count FROM v_packages "
                             "WHERE deleted_at IS NULL ORDER BY 1, 2"),
        "tags": rows(db, "SELECT owner, package, tag, digest FROM v_tags ORDER BY 1, 2, 3"),
        "images": rows(db, "SELECT owner, package, digest, kind, platform, parent_digest, size, tags "
                           "FROM v_images ORDER BY 1, 2, 3"),
        "referrers": rows(db, "SELECT * FROM v_referrers ORDER BY 1, 2"),
        "labels": rows(db, "SELECT * FROM v_labels ORDER BY 1, 2"),
    }


@pytest.fixture(scope="module")
def clean(world, small, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    os.environ.setdefault("GHCR_SANDBOX_TOKEN", world.token)
    config = config_for(world, tmp, small)
    assert run_engine(config, world.token).exit_code == 0
    return inventory(tmp / "inventory.db")


def faults_of(db) -> dict:
    return json.loads(last_run(db)["faults"])


# --- transient faults: retried, the run completes -----------------------------------

@pytest.mark.parametrize("row_id, proxy, kind, params, counter", [
    ("5xx", "registry_proxy", "status", {"status": 503}, "http_503"),
    ("5xx", "api_proxy", "status", {"status": 502}, "http_502"),
    ("reset", "registry_proxy", "reset", {}, "reset"),
    ("truncate", "registry_proxy", "truncate", {}, "truncated"),
    ("malformed-api", "api_proxy", "malformed_json", {}, "bad_body"),
    ("corrupt", "registry_proxy", "corrupt_body", {}, "bad_body"),
])
def test_transient_faults_are_retried(world, small, clean, tmp_path, db, row_id, proxy, kind, params, counter):
    path = r"/manifests/sha256" if proxy == "registry_proxy" else r"/versions"
    chosen = getattr(world, proxy)
    chosen.injected.clear()
    chosen.inject(kind, path=path, times=2, **params)
    config = config_for(world, tmp_path, small, db=db)
    summary = run_engine(config, world.token)
    assert (summary.exit_code, summary.status) == (0, "ok"), BY_ID[row_id]
    assert inventory(db) == clean
    assert faults_of(db)[counter] == chosen.injected[kind], (faults_of(db), chosen.injected)


def test_timeouts_are_retried(world, small, clean, tmp_path, db):
    world.registry_proxy.inject("latency", path=r"/manifests/sha256", times=1, ms=1500)
    config = config_for(world, tmp_path, small, db=db, crawl={"timeout_s": 0.5})
    assert run_engine(config, world.token).exit_code == 0
    assert inventory(db) == clean
    assert faults_of(db)["timeout"] == 1


def test_run_timeout_stops_cleanly(world, small, tmp_path, db):
    world.registry_proxy.inject("latency", path=r"/manifests/sha256", probability=1.0, ms=400)
    config = config_for(world, tmp_path, small, db=db, crawl={"run_timeout_s": 1.0, "concurrency": 1})
    summary = run_engine(config, world.token)
    run = last_run(db)
    assert summary.exit_code == 4 and run["status"] == "interrupted"
    assert "crawl.run_timeout_s=1s" in run["message"]
    assert integrity_ok(db)
    assert rows(db, "SELECT COUNT(*) FROM v_packages")[0][0] < 3   # stopped before the end


def test_persistent_5xx_fails_only_that_package(world, small, tmp_path, db):
    world.api_proxy.inject("status", path=r"/packages/container/app/versions", probability=1.0, status=500)
    config = config_for(world, tmp_path, small, db=db, crawl={"retries": 3})
    summary = run_engine(config, world.token)
    assert summary.exit_code == 1 and summary.packages_failed == 1 and summary.packages_changed == 2
    assert faults_of(db)["http_500"] == 4
    assert rows(db, "SELECT package FROM run_errors") == [("app",)]
    assert "HTTP 500 (gave up after 4 attempts)" in rows(db, "SELECT message FROM run_errors")[0][0]


def test_4xx_is_not_retried(world, small, tmp_path, db):
    world.registry_proxy.inject("status", path=r"/v2/[^/]+/app/manifests/", probability=1.0, status=400,
                                body={"errors": [{"code": "MANIFEST_INVALID", "message": "bad"}]})
    world.reset_logs()
    config = config_for(world, tmp_path, small, db=db)
    summary = run_engine(config, world.token)
    assert summary.exit_code == 1 and summary.packages_failed == 1
    hits = [e for e in world.registry_proxy.log if "/app/manifests/" in e.path]
    assert len(hits) == 1
    assert "HTTP 400" in rows(db, "SELECT message FROM run_errors")[0][0]


# --- rate limits (injected clock: nothing sleeps) ---------------------------------------

@pytest.mark.parametrize("row_id, proxy, kind, params, least_wait", [
    ("429-header", "registry_proxy", "retry_after", {"seconds": 7}, 7.0),
    ("429-body", "registry_proxy", "retry_after_body", {}, 0.00088),
    ("secondary", "api_proxy", "secondary_limit", {}, 60.0),
])
def test_rate_limit_refusals_are_waited_out(world, small, clean, tmp_path, db, row_id, proxy, kind, params,
                                            least_wait):
    path = r"/manifests/sha256" if proxy == "registry_proxy" else r"/versions"
    getattr(world, proxy).inject(kind, path=path, times=1, **params)
    clock = FakeClock(start=__import__("time").time())
    summary = run_engine(config_for(world, tmp_path, small, db=db), world.token, clock=clock)
    assert summary.exit_code == 0
    assert inventory(db) == clean
    assert max(clock.sleeps) == pytest.approx(least_wait, rel=1e-3)
    assert sum(v for k, v in faults_of(db).items() if k.endswith("rate_limited")) == 1


def test_repeated_secondary_limits_back_off_exponentially(world, small, tmp_path, db):
    world.api_proxy.inject("secondary_limit", path=r"/versions", times=3)
    clock = FakeClock(start=__import__("time").time())
    config = config_for(world, tmp_path, small, db=db, crawl={"max_wait_s": 10_000, "concurrency": 1})
    assert run_engine(config, world.token, clock=clock).exit_code == 0
    assert sorted(s for s in clock.sleeps if s >= 60) == [60, 120, 240]


def test_exhausted_budget_stops_cleanly(world, small, tmp_path, db, capsys):
    token = world.add_token(rate_limit=3)   # discovery + 2 packages' versions, then nothing
    os.environ["GHCR_TIGHT_TOKEN"] = token
    config = config_for(world, tmp_path, small, db=db, token_env="GHCR_TIGHT_TOKEN",
                        crawl={"rate_limit_reserve": 0, "concurrency": 1, "max_wait_s": 60})
    code = run_cli(config, "sync")
    err = capsys.readouterr().err
    run = last_run(db)
    assert code == 4 and run["status"] == "rate_limited"
    assert "retry after" in run["message"]
    assert [l for l in err.splitlines() if l.startswith("ghcr-inventory: ")][-1].count("\n") == 0
    assert run["packages_changed"] >= 1       # what was done is committed
    assert integrity_ok(db)


def test_reserve_is_never_spent(world, small, tmp_path, db):
    token = world.add_token(rate_limit=10)
    os.environ["GHCR_RESERVE_TOKEN"] = token
    config = config_for(world, tmp_path, small, db=db, token_env="GHCR_RESERVE_TOKEN",
                        crawl={"rate_limit_reserve": 8, "concurrency": 1, "max_wait_s": 1})
    world.reset_logs()
    code = run_cli(config, "sync")
    assert code == 4
    used = [e for e in world.emulator.log if e.path.startswith(f"/orgs/{small}")]
    assert len(used) == 10 - 8  # the last 8 requests of the budget were left untouched
    assert "8 of 10 requests left (reserve 8)" in last_run(db)["message"]


# --- bad bodies and bad input ---------------------------------------------------------------

def test_wrong_content_type_fails_the_package(world, small, tmp_path, db):
    world.api_proxy.inject("status", path=r"/packages/container/app/versions", probability=1.0, status=200,
                           body="<html>maintenance</html>", headers={"Content-Type": "text/html"})
    summary = run_engine(config_for(world, tmp_path, small, db=db), world.token)
    assert summary.exit_code == 1
    message = rows(db, "SELECT message FROM run_errors WHERE package = 'app'")[0][0]
    assert "expected JSON" in message and "text/html" in message


def test_wrong_digest_header_fails_and_stores_nothing_of_it(world, small, tmp_path, db):
    world.registry_proxy.inject("wrong_digest", path=r"/team/api/manifests/", probability=1.0)
    summary = run_engine(config_for(world, tmp_path, small, db=db), world.token)
    assert summary.exit_code == 1
    assert "does not match" in rows(db, "SELECT message FROM run_errors")[0][0]
    assert rows(db, "SELECT COUNT(*) FROM v_packages WHERE package = 'team/api'") == [(0,)]


def serve_manifest(world, owner, package, body: bytes, media_type: str, tags=("weird",)) -> str:
    """List a version whose manifest is `body` and have the registry front serve it."""
    digest = compute_digest(body)
    world.call(world.state.record_version, owner, package, digest, tags=tags, media_type=media_type)
    world.registry_proxy.inject("status", path=rf"/manifests/{digest}", probability=1.0, status=200, body=body,
                                headers={"Content-Type": media_type, "Docker-Content-Digest": digest})
    return digest


def _manifest(**over) -> dict:
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": "sha256:" + "a" * 64, "size": 2},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": "sha256:" + "b" * 64, "size": 10}]}
    doc.update(over)
    return doc


BAD_MANIFESTS = {
    "unknown media type": (_manifest(mediaType="application/vnd.example.thing.v1+json"),
                           "unsupported manifest media type"),
    "negative size": (_manifest(layers=[{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                         "digest": "sha256:" + "b" * 64, "size": -5}]), "size"),
    "10,001 layers": (_manifest(layers=[{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                         "digest": "sha256:" + "c" * 64, "size": 1}] * 10_001), "10000"),
    "invalid digest": (_manifest(config={"mediaType": "application/vnd.oci.image.config.v1+json",
                                         "digest": "sha256:xyz", "size": 2}), "digest"),
}


@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_bad_manifests_fail_their_package_with_a_reason(world, tmp_path, db, case, env_token):
    owner = world.new_owner("bad")
    world.builder.push_image(owner, "good", tags=["latest"], seed=950)
    world.builder.push_image(owner, "weird", tags=["ok"], seed=951)
    doc, needle = BAD_MANIFESTS[case]
    media_type = doc.get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
    serve_manifest(world, owner, "weird", orjson.dumps(doc), media_type)
    summary = run_engine(config_for(world, tmp_path, owner, db=db), world.token)
    assert summary.exit_code == 1 and summary.packages_changed == 1
    message = rows(db, "SELECT message FROM run_errors WHERE package = 'weird'")[0][0]
    assert needle in message and "\n" not in message
    assert rows(db, "SELECT package FROM v_packages") == [("good",)]
    assert integrity_ok(db)


def test_oversized_manifest_is_rejected(world, tmp_path, db, env_token):
    owner = world.new_owner("big")
    world.builder.push_image(owner, "huge", tags=["x"], seed=960)
    body = orjson.dumps(_manifest(annotations={"pad": "x" * (4 * 1024 * 1024 + 10)}))
    serve_manifest(world, owner, "huge", body, "application/vnd.oci.image.manifest.v1+json")
    summary = run_engine(config_for(world, tmp_path, owner, db=db), world.token)
    assert summary.exit_code == 1
    message = rows(db, "SELECT message FROM run_errors")[0][0]
    assert "exceeds the 4194304-byte limit" in message


def test_invalid_tag_name_fails_the_package(world, tmp_path, db, env_token):
    owner = world.new_owner("tagz")
    img = world.builder.push_image(owner, "app", tags=["ok"], seed=970)
    world.call(world.state.record_version, owner, "app", img.digest, tags=("bad tag!",))
    summary = run_engine(config_for(world, tmp_path, owner, db=db), world.token)
    assert summary.exit_code == 1
    assert "'bad tag!' is not a valid OCI tag" in rows(db, "SELECT message FROM run_errors")[0][0]


# --- where credentials go -------------------------------------------------------------------------

def test_blob_redirects_carry_no_authorization(world, small, tmp_path, db):
    world.reset_logs()
    assert run_engine(config_for(world, tmp_path, small, db=db), world.token).exit_code == 0
    assert world.cdn.requests, "config blobs were fetched through the CDN redirect"
    assert not world.cdn.saw_authorization


def test_untrusted_token_realm_gets_no_credentials(world, small, tmp_path, db, capsys):
    # The direct registry's realm is the emulator itself, which is neither the
    # registry's host nor the configured API host (the API fault proxy).
    config = write_config(world, tmp_path, [(small, "org")], db=db)
    text = config.read_text().replace(f'url = "{world.registry_url}"', f'url = "{world.registry_direct_url}"')
    config.write_text(text)
    world.reset_logs()
    code = run_cli(config, "sync")
    err = capsys.readouterr().err
    assert "untrusted_token_realm" in err
    assert all(not g.login or g.login == "" for g in world.emulator.token_log if not g.internal) or code == 0
    grants = [g for g in world.emulator.token_log if not g.internal]
    assert grants and all(g.login in (None, "", "anonymous") for g in grants)
    # with the realm's host trusted explicitly, the token is used
    config.write_text(text.replace("[registry]", f'[registry]\nauth_hosts = ["{world.api_direct_url}"]'))
    assert run_cli(config, "sync") == 0


# --- authentication and reachability ----------------------------------------------------------

def test_rejected_token_is_exit_3(world, small, tmp_path, db, monkeypatch, capsys):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", "ghp_" + "0" * 36)
    assert run_cli(config_for(world, tmp_path, small, db=db), "sync") == 3
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("ghcr-inventory:")]
    assert len(lines) == 1 and "rejected the token" in lines[0]


def test_token_without_scope_is_exit_3(world, small, tmp_path, db, monkeypatch, capsys):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.add_token(scopes=("repo",)))
    assert run_cli(config_for(world, tmp_path, small, db=db), "sync") == 3
    err = capsys.readouterr().err
    assert "read:packages" in err


def test_unknown_owner_fails_that_owner_only(world, small, tmp_path, db, env_token):
    config = write_config(world, tmp_path, [(small, "org"), ("no-such-org-xyz", "org")], db=db)
    summary = run_engine(config, world.token)
    assert summary.exit_code == 1 and summary.packages_changed == 3
    owner, message = rows(db, "SELECT owner, message FROM run_errors")[0]
    assert owner == "no-such-org-xyz" and "not found" in message


def test_refused_connections_are_exit_4(world, small, tmp_path, db, env_token):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = config_for(world, tmp_path, small, db=db, crawl={"retries": 1})
    config.write_text(config.read_text().replace(world.api_url, f"http://127.0.0.1:{port}"))
    summary = run_engine(config, world.token)
    assert summary.exit_code == 4 and "cannot connect" in summary.message


def test_tls_verification_is_on_by_default(world, small, tmp_path, db, env_token):
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    cert = world.dir / "token-signer.pem"
    key = next(world.dir.glob("*key*.pem"), None)
    if key is None:  # the world keeps its key in memory: make a throwaway pair
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        import datetime
        pk = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pk.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
               .sign(pk, hashes.SHA256()))
        cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
        cert.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        config = config_for(world, tmp_path, small, db=db, crawl={"retries": 0})
        config.write_text(config.read_text().replace(world.api_url, url))
        summary = run_engine(config, world.token)
        assert summary.exit_code == 4 and "TLS failure" in summary.message
        config.write_text(config.read_text().replace("[github]", "[github]\ninsecure = true"))
        assert run_engine(config, world.token).exit_code == 0   # explicitly insecure (loopback only)
    finally:
        server.shutdown()


# --- bad configuration and queries ----------------------------------------------------------------

@pytest.mark.parametrize("mutate, needle", [
    (lambda t: t + "\n[crawl2]\nx = 1\n", "unknown key 'crawl2'"),
    (lambda t: t.replace("[crawl]", "[crawl]\nretries = \"many\""), "'crawl.retries' must be an integer"),
    (lambda t: t.replace('token_env = "GHCR_SANDBOX_TOKEN"', 'token_env = "GHCR_NOT_SET_ANYWHERE"'),
     "GHCR_NOT_SET_ANYWHERE is not set"),
    (lambda t: t.replace('token_env = "GHCR_SANDBOX_TOKEN"', 'token_file = "/nonexistent/token"'),
     "'github.token_file' cannot be read"),
])
def test_bad_config_is_exit_2_one_line(world, small, tmp_path, db, env_token, capsys, mutate, needle):
    config = config_for(world, tmp_path, small, db=db)
    config.write_text(mutate(config.read_text()))
    assert run_cli(config, "sync") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and str(config) in err[0]


def test_query_cannot_write(world, small, tmp_path, db, env_token, capsys):
    config = config_for(world, tmp_path, small, db=db)
    assert run_cli(config, "sync") == 0
    before = inventory(db)
    capsys.readouterr()
    assert run_cli(config, "query", "DELETE FROM tags") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read-only" in err[0]
    assert run_cli(config, "query", "SELEC broken") == 2
    assert inventory(db) == before


# --- soak and redaction ------------------------------------------------------------------------

SOAK_FAULTS = [("status", {"status": 503}), ("reset", {}), ("truncate", {}), ("malformed_json", {}),
               ("corrupt_body", {}), ("retry_after", {"seconds": 2}), ("retry_after_body", {}),
               ("secondary_limit", {}), ("latency", {"ms": 1200}), ("wrong_digest", {})]
EXPECTED_COUNTERS = {"status": "http_503", "reset": "reset", "truncate": "truncated",
                     "malformed_json": "bad_body", "corrupt_body": "bad_body",
                     "retry_after": "http_429_rate_limited", "retry_after_body": "http_429_rate_limited",
                     "secondary_limit": "http_403_rate_limited", "latency": "timeout",
                     "wrong_digest": "bad_body"}


@pytest.mark.parametrize("tag_source", ["versions", "registry"])
def test_soak_every_fault_mixed_in(world, sample, tmp_path, db, tag_source):
    """The sample org through proxies injecting every fault at ~1.2 % each
    (~10 % of requests in all), with a tight rate budget: same inventory as a
    clean run, every fault visible in the run's counters."""
    clean_cfg = write_config(world, tmp_path, sample.owners, name="clean.toml", db=tmp_path / "clean.db",
                             crawl={"tag_source": tag_source})
    assert run_engine(clean_cfg, world.token).exit_code == 0
    proxies = (world.registry_proxy, world.api_proxy, world.cdn)
    before = [dict(p.injected) for p in proxies]     # the counts outlive a test: compare with these
    for proxy in proxies:
        for kind, params in SOAK_FAULTS:
            # GitHub's secondary limit is an API answer (the registry says 429);
            # a digest header only means something from the registry.
            if (proxy is not world.api_proxy and kind == "secondary_limit"
                    or proxy is world.cdn and kind == "retry_after_body"
                    or proxy is world.api_proxy and kind == "wrong_digest"):
                continue
            proxy.inject(kind, probability=0.012, **params)
    token = world.add_token(rate_limit=220)      # slows down when < 10 % remains
    config = write_config(world, tmp_path, sample.owners, db=db, crawl={"timeout_s": 1.0, "retries": 8,
                                                                  "rate_limit_reserve": 5,
                                                                  "tag_source": tag_source})
    clock = FakeClock(start=__import__("time").time())
    summary = run_engine(config, token, clock=clock)
    assert summary.exit_code == 0, summary.errors
    assert inventory(db) == inventory(tmp_path / "clean.db")
    injected = {k for p, was in zip(proxies, before) for k, n in p.injected.items() if n > was.get(k, 0)}
    counted = faults_of(db)
    for kind in injected:
        assert counted.get(EXPECTED_COUNTERS[kind], 0) > 0, (kind, counted)
    assert len(injected) >= 6, injected
    assert integrity_ok(db)


def test_token_never_leaks(world, small, tmp_path, db, capfd):
    import base64
    import subprocess
    import sys
    token = world.add_token()
    world.registry_proxy.inject("status", path=r"/manifests/", times=2, status=503)
    world.api_proxy.inject("malformed_json", path=r"/versions", times=1)
    world.registry_proxy.inject("wrong_digest", path=r"/team/api/manifests/", probability=1.0)
    config = config_for(world, tmp_path, small, db=db)
    env = dict(os.environ, GHCR_SANDBOX_TOKEN=token)
    proc = subprocess.Popen([sys.executable, "-m", "crawler", "--config", str(config), "--log-format", "json",
                             "--log-level", "debug", "sync"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1                   # team/api failed: errors were logged
    basic = base64.b64encode(f"ghcr-inventory:{token}".encode()).decode()
    if isinstance(db, Path):
        db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("inventory.db*") if p.is_file())
    else:   # every row of every table, the run log included
        db_bytes = repr(dump(db, skip=())).encode()
    for secret in (token, basic):
        assert secret not in out and secret not in err
        assert secret.encode() not in argv
        assert secret.encode() not in db_bytes
    assert '"level":"debug"' in err and "package_failed" in err
    # registry tokens (JWTs) are secrets too
    jwt_like = re.findall(r"eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}", out + err + db_bytes.decode("latin-1"))
    assert jwt_like == []


# --- the README table ------------------------------------------------------------------------------

def test_readme_table_is_current():
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = readme_with_table(text)
    if os.environ.get("UPDATE_README") == "1":
        readme.write_text(new)
    assert text == new, "README's Reliability table is stale: UPDATE_README=1 pytest tests/test_reliability.py"


# Rows of this module asserted by the parametrized transient-fault tests.
PARAMETRIZED = {"5xx", "reset", "truncate", "malformed-api", "corrupt", "429-header", "429-body", "secondary"}
NAMED = {"timeout": "test_timeouts_are_retried", "run-timeout": "test_run_timeout_stops_cleanly",
         "persistent-5xx": "test_persistent_5xx_fails_only_that_package",
         "no-4xx-retry": "test_4xx_is_not_retried", "exhausted": "test_exhausted_budget_stops_cleanly",
         "reserve": "test_reserve_is_never_spent", "content-type": "test_wrong_content_type_fails_the_package",
         "wrong-header": "test_wrong_digest_header_fails_and_stores_nothing_of_it",
         "oversized": "test_oversized_manifest_is_rejected",
         "bad-manifests": "test_bad_manifests_fail_their_package_with_a_reason",
         "bad-tag": "test_invalid_tag_name_fails_the_package",
         "cdn-auth": "test_blob_redirects_carry_no_authorization",
         "untrusted-realm": "test_untrusted_token_realm_gets_no_credentials",
         "bad-token": "test_rejected_token_is_exit_3", "no-scope": "test_token_without_scope_is_exit_3",
         "unknown-owner": "test_unknown_owner_fails_that_owner_only",
         "refused": "test_refused_connections_are_exit_4", "tls": "test_tls_verification_is_on_by_default",
         "config": "test_bad_config_is_exit_2_one_line", "query-write": "test_query_cannot_write",
         "soak": "test_soak_every_fault_mixed_in", "redaction": "test_token_never_leaks"}


def test_every_row_has_a_test():
    assert set(BY_ID) == PARAMETRIZED | set(NAMED)
    ids = [row.id for _, row in all_rows()]
    assert len(ids) == len(set(ids)), "two reliability rows share an id"
    for module, row in all_rows():
        name = row.test or NAMED.get(row.id)
        if Path(module.__file__).stem == Path(__file__).stem and row.id in PARAMETRIZED:
            continue
        assert name and callable(getattr(module, name, None)), \
            f"reliability row {row.id!r} names no test function of {module.__name__}"
