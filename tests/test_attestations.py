"""Issue 16 A: GitHub's artifact attestations — the bundle parser and the
offline verifier on bundles the sandbox's Sigstore signs at test time, the
bulk-list answer parser, batching, and the stage end to end against the
emulator (which validates every request and answer against the vendored
OpenAPI): only due digests asked, paging, honest coverage for a token that
cannot read attestations, `verified` only against the trusted root."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json

import orjson
import pytest

from crawler.attestations import (MAX_SUBJECTS, Listed, attestation_row, batches, check_attestations,
                                  due_owners, parse_bulk_page)
from crawler.errors import AuthError, ParseError
from crawler.oci.bundle import der_utf8, parse_bundle
from crawler.oci.verify import parse_trusted_root, verify_bundle
from crawler.sandbox.sigstore import SPDX, FakeSigstore
from crawler.store import DueDigests
from tests.support import last_run, rows, run_cli

DIGEST = "sha256:" + "ab" * 32
COMMIT = "c0ffee" * 6 + "abcd"


@pytest.fixture(scope="module")
def sigstore():
    return FakeSigstore("unit")


@pytest.fixture(scope="module")
def root(sigstore):
    return parse_trusted_root(orjson.dumps(sigstore.trusted_root()))


def bundle_of(sigstore, **kw) -> dict:
    return sigstore.attest("ghcr.io/acme/webapp", DIGEST, repository="acme/webapp", commit=COMMIT, **kw)


# --- the parser ---------------------------------------------------------------------------

def test_a_bundle_gives_its_statement_and_the_fulcio_identity(sigstore):
    b = parse_bundle(orjson.dumps(bundle_of(sigstore, ref="refs/tags/v1", workflow=".github/workflows/r.yml")))
    assert b.media_type == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert b.statement.predicate_type == "https://slsa.dev/provenance/v1"
    assert b.statement.describes(DIGEST) and not b.statement.describes("sha256:" + "00" * 32)
    s = b.signer
    assert s.workflow == "https://github.com/acme/webapp/.github/workflows/r.yml@refs/tags/v1"
    assert (s.repository, s.ref, s.commit) == ("https://github.com/acme/webapp", "refs/tags/v1", COMMIT)
    assert s.issuer == "https://token.actions.githubusercontent.com"
    assert b.digest.startswith("sha256:") and len(b.tlog) == 1 and b.tlog[0].kind == "dsse"


@pytest.mark.parametrize("spoil,needle", [
    (lambda b: b.pop("dsseEnvelope"), "dsseEnvelope"),
    (lambda b: b.update(mediaType="application/json"), "not a Sigstore bundle"),
    (lambda b: b["dsseEnvelope"].update(payload="%%%"), "base64"),
    (lambda b: b["dsseEnvelope"].update(payloadType="text/plain"), "not an in-toto statement"),
    (lambda b: b["dsseEnvelope"].update(payload=base64.b64encode(b"[1]").decode()), "JSON object"),
    (lambda b: b["verificationMaterial"]["certificate"].update(rawBytes=base64.b64encode(b"nope").decode()),
     "DER X.509"),
    (lambda b: b["verificationMaterial"]["tlogEntries"][0].update(integratedTime="soon"), "integer"),
])
def test_a_malformed_bundle_is_one_parse_error(sigstore, spoil, needle):
    bundle = bundle_of(sigstore)
    spoil(bundle)
    with pytest.raises(ParseError) as err:
        parse_bundle(orjson.dumps(bundle))
    assert needle in str(err.value)


@pytest.mark.parametrize("data,text", [(b"\x0c\x03abc", "abc"), (b"\x0c\x81\x03xyz", "xyz"),
                                       (b"\x0c\x00", "")])
def test_der_utf8_strings_are_decoded_by_tag_and_length(data, text):
    assert der_utf8(data) == text


@pytest.mark.parametrize("data", [b"\x04\x03abc", b"\x0c\x05abc", b"\x0c", b"\x0c\x80", b"\x0c\x02\xff\xfe"])
def test_der_utf8_refuses_anything_else(data):
    with pytest.raises(ParseError):
        der_utf8(data)


# --- the verifier -------------------------------------------------------------------------

def test_a_bundle_of_the_trusted_instance_verifies(sigstore, root):
    verdict = verify_bundle(parse_bundle(bundle_of(sigstore)), root)
    assert verdict.verified and verdict.reason is None and verdict.signed_at is not None


def test_another_instance_does_not_verify_unless_its_root_is_given(sigstore, root, tmp_path):
    rogue = FakeSigstore("rogue")
    bundle = parse_bundle(bundle_of(rogue))
    verdict = verify_bundle(bundle, root)
    assert not verdict.verified and "trusted root" in verdict.reason
    both = parse_trusted_root(sigstore.write_trusted_root(tmp_path / "root.jsonl", rogue).read_bytes())
    assert len(both.authorities) == 2 and verify_bundle(bundle, both).verified


def _spoiled(sigstore, change) -> dict:
    bundle = bundle_of(sigstore)
    change(bundle)
    return bundle


@pytest.mark.parametrize("change,reason", [
    (lambda b: b["dsseEnvelope"].update(payload=base64.b64encode(json.dumps(
        {"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "x", "digest": {"sha256": "ab" * 32}}],
         "predicateType": "evil"}).encode()).decode()), "another payload"),
    (lambda b: b["dsseEnvelope"]["signatures"][0].update(sig=base64.b64encode(b"\x30\x06" + b"\x00" * 6).decode()),
     "another signature"),
    (lambda b: b["verificationMaterial"]["tlogEntries"][0].update(integratedTime="1"), "signed entry timestamp"),
    (lambda b: b["verificationMaterial"]["tlogEntries"][0].pop("inclusionPromise"), "no signed entry timestamp"),
    (lambda b: b["verificationMaterial"].update(tlogEntries=[]), "no transparency-log entry"),
])
def test_a_tampered_bundle_does_not_verify_and_says_why(sigstore, root, change, reason):
    verdict = verify_bundle(parse_bundle(_spoiled(sigstore, change)), root)
    assert not verdict.verified and reason in verdict.reason


def test_an_authority_no_longer_valid_at_the_signing_time_does_not_verify(sigstore):
    doc = sigstore.trusted_root()
    doc["certificateAuthorities"][0]["validFor"]["end"] = "2001-01-01T00:00:00Z"
    verdict = verify_bundle(parse_bundle(bundle_of(sigstore)), parse_trusted_root(orjson.dumps(doc)))
    assert not verdict.verified and "certificate chain" in verdict.reason


@pytest.mark.parametrize("data", [b"", b"not json", b'{"mediaType": "x"}', b'[1, 2]'])
def test_a_file_that_is_no_trusted_root_is_one_parse_error(data):
    with pytest.raises(ParseError):
        parse_trusted_root(data)


# --- the answer, the rows, the batches -------------------------------------------------------

def test_the_bulk_answer_is_parsed_with_its_cursor(sigstore):
    body = orjson.dumps({"attestations_subject_digests": {DIGEST: [{"bundle": bundle_of(sigstore),
                                                                    "repository_id": 7}],
                                                          "sha256:" + "00" * 32: None},
                         "page_info": {"has_next": True, "next": "Y3Vyc29y"}})
    page = parse_bulk_page(body)
    assert list(page.found) == [DIGEST] and page.found[DIGEST][0].repository_id == 7
    assert page.has_next and page.next_cursor == "Y3Vyc29y"


@pytest.mark.parametrize("body", [b"[]", b"{", b'{"attestations_subject_digests": []}',
                                  b'{"attestations_subject_digests": {"sha256:a": [1]}}',
                                  b'{"attestations_subject_digests": {"sha256:a": [{"repository_id": "7"}]}}'])
def test_a_malformed_bulk_answer_is_a_parse_error(body):
    with pytest.raises(ParseError):
        parse_bulk_page(body)


def test_rows_say_what_is_known(sigstore, root):
    listed = Listed(bundle_of(sigstore), 7, None)
    verified = attestation_row(DIGEST, listed, root)
    assert verified.verified and verified.verify_error is None and verified.signed_at
    unchecked = attestation_row(DIGEST, listed, None)
    assert not unchecked.verified and unchecked.verify_error is None      # "not verified here"
    other = attestation_row("sha256:" + "11" * 32, listed, root)
    assert not other.verified and "subjects do not include" in other.verify_error
    unread = attestation_row(DIGEST, Listed({"mediaType": "x"}, 7, None), root)
    assert not unread.verified and unread.verify_error.startswith("unreadable bundle")
    url_only = attestation_row(DIGEST, Listed(None, 7, "https://example.invalid/b"), root)
    assert "bundle_url" in url_only.verify_error


def test_digests_go_in_batches_of_1024():
    assert [len(b) for b in batches([str(i) for i in range(2500)])] == [MAX_SUBJECTS, MAX_SUBJECTS, 452]


class _Client:
    """A stand-in of the bulk-list client: answers every digest with nothing."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def bulk_list(self, owner, kind, digests, *, count_request):
        count_request()
        self.calls.append(len(digests))
        return {}


class _Writer:
    def __init__(self) -> None:
        self.answered: list[str] = []

    async def save_attestations(self, owner_id, answered, rows):
        self.answered += answered
        return len(rows)

    async def mark_attestations_unknown(self, owner_id, digests, reason):
        raise AssertionError("nothing is unknown here")


def test_the_stage_sends_1024_digests_a_request_and_counts_each():
    client, writer, counted = _Client(), _Writer(), []
    due = [DueDigests(1, "acme", "org", tuple(f"sha256:{i:064x}" for i in range(2049)))]
    report = asyncio.run(check_attestations(client, due, writer, root=None,
                                            count_request=lambda: counted.append(1)))
    assert client.calls == [1024, 1024, 1] and len(counted) == 3 == report.requests
    assert len(writer.answered) == 2049 and report.unknown == 0


class _Refusing(_Client):
    """Refuses `owner` (HTTP 403: the token cannot read its attestations)
    and, once `fatal_after` calls were made, everyone (401)."""

    def __init__(self, owner: str, fatal_after: int | None = None) -> None:
        super().__init__()
        self.owner, self.fatal_after, self.asked = owner, fatal_after, []

    async def bulk_list(self, owner, kind, digests, *, count_request):
        if self.fatal_after is not None and len(self.asked) >= self.fatal_after:
            raise AuthError("GitHub answered 401: bad credentials", fatal=True)
        self.asked.append(owner)
        if owner == self.owner:
            raise AuthError("GitHub answered 403: the token cannot read attestations", fatal=False)
        return await super().bulk_list(owner, kind, digests, count_request=count_request)


class _Marking(_Writer):
    def __init__(self) -> None:
        super().__init__()
        self.unknown: list[tuple[int, str, str]] = []

    async def mark_attestations_unknown(self, owner_id, digests, reason):
        self.unknown += [(owner_id, d, reason) for d in digests]
        return len(digests)


def _paged(owners: dict[int, int], size: int):
    """A store's pages (StoreReader.attestations_due) over `owners` (id -> digests), `size` a page."""
    keys = [(o, f"sha256:{i:064x}") for o, n in owners.items() for i in range(n)]
    reads = []

    async def read(after):
        reads.append(after)
        rest = [k for k in keys if after is None or k > after][:size]
        out = []
        for owner_id, digest in rest:
            if not out or out[-1].owner_id != owner_id:
                out.append(DueDigests(owner_id, f"o{owner_id}", "org", ()))
            out[-1] = dataclasses.replace(out[-1], digests=out[-1].digests + (digest,))
        return out

    return read, reads


def test_an_unreadable_owner_s_later_pages_are_unknown_unasked_and_the_next_owner_is_asked():
    read, reads = _paged({1: 5, 2: 5, 3: 2}, size=2)
    client, writer = _Refusing("o2"), _Marking()

    async def go():
        return await check_attestations(client, due_owners(read, await read(None)), writer, root=None)

    report = asyncio.run(go())
    assert client.asked == ["o1", "o1", "o1", "o2", "o3"]      # o2 asked once, then no more
    assert [d for o, d, _ in writer.unknown if o == 2] == [f"sha256:{i:064x}" for i in range(5)]
    assert {o for o, _, _ in writer.unknown} == {2} and len(writer.answered) == 7
    assert report.denied == ["o2"] and report.unknown == 5
    assert len(reads) == 7          # 12 digests, 2 a page, and the empty page that ends it


def test_a_stage_stopped_on_a_later_page_records_every_remaining_digest_unknown():
    read, _ = _paged({1: 3, 2: 3}, size=2)
    client, writer = _Refusing("nobody", fatal_after=2), _Marking()

    async def go():
        return await check_attestations(client, due_owners(read, await read(None)), writer, root=None)

    report = asyncio.run(go())
    assert len(writer.answered) == 3 and client.asked == ["o1", "o1"]
    assert [(o, d) for o, d, _ in writer.unknown] == [(2, f"sha256:{i:064x}") for i in range(3)]
    assert all("401" in why for _, _, why in writer.unknown) and report.unknown == 3


# --- end to end against the emulator -------------------------------------------------------------

def _config(world, tmp_path, owner, *, trusted_root=True, extra=""):
    path = tmp_path / "config.toml"
    root = f'trusted_root = "{world.trusted_root_path}"\n' if trusted_root else ""
    path.write_text(world.config_toml(tmp_path / "inventory.db", [(owner, "org")], token_env="GHCR_SANDBOX_TOKEN")
                    + f"\n[attestations]\n{root}{extra}")
    return path


def _att(db):
    return rows(db, "SELECT digest, source, predicate_type, signer_workflow, signer_commit, verified, verification "
                    "FROM v_attestations WHERE source = 'github-api' ORDER BY digest, predicate_type")


def test_github_attestations_are_stored_verified_and_asked_only_when_due(world, fresh_owner, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    o = fresh_owner
    world.builder.create_repository(o, "app")
    app = world.builder.push_image(o, "app", tags=["1.0"], repository=f"{o}/app")
    plain = world.builder.push_image(o, "plain", tags=["latest"])
    world.builder.attest(o, "app", app, repository=f"{o}/app")
    world.builder.attest(o, "app", app, repository=f"{o}/app", predicate_type=SPDX)
    config = _config(world, tmp_path, o)
    db = tmp_path / "inventory.db"
    assert run_cli(config, "sync") == 0
    got = _att(db)
    assert [(r[0], r[2], r[5], r[6]) for r in got] == [
        (app.digest, "https://slsa.dev/provenance/v1", 1, "verified against the trusted root"),
        (app.digest, SPDX, 1, "verified against the trusted root")]
    assert got[0][3] == f"https://github.com/{o}/app/.github/workflows/release.yml@refs/heads/main"
    coverage = dict(rows(db, "SELECT digest, coverage FROM attestation_checks"))
    assert coverage == {app.digest: "listed", plain.digest: "none"}
    kinds = json.loads(last_run(db)["requests_by_kind"])
    assert kinds["attestations"] == 1                      # one owner, two digests: one request
    assert rows(db, "SELECT tags, github_coverage FROM v_unattested") == [("latest", "none")]

    # Nothing due on the next run (asked within recheck_interval_s): no request at all.
    assert run_cli(config, "sync") == 0
    assert "attestations" not in json.loads(last_run(db)["requests_by_kind"])

    # Young digests are asked again once the interval passed: a late attestation shows up.
    world.builder.attest(o, "plain", plain, repository=f"{o}/app")
    config = _config(world, tmp_path, o, extra="recheck_interval_s = 0\n")
    assert run_cli(config, "sync") == 0
    assert {r[0] for r in _att(db)} == {app.digest, plain.digest}
    assert rows(db, "SELECT COUNT(*) FROM v_unattested") == [(0,)]


def test_without_a_trusted_root_nothing_is_called_verified(world, fresh_owner, tmp_path, monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    world.builder.create_repository(fresh_owner, "app")
    app = world.builder.push_image(fresh_owner, "app", tags=["1.0"], repository=f"{fresh_owner}/app")
    world.builder.attest(fresh_owner, "app", app, repository=f"{fresh_owner}/app")
    world.builder.attest(fresh_owner, "app", app, repository=f"{fresh_owner}/app", sigstore=FakeSigstore("x"))
    db = tmp_path / "inventory.db"
    assert run_cli(_config(world, tmp_path, fresh_owner, trusted_root=False), "sync") == 0
    assert {(r[5], r[6]) for r in _att(db)} == {(0, "listed by GitHub, not verified here")}
    # With the root: the world's bundle verifies, the stranger's says why not.
    assert run_cli(_config(world, tmp_path, fresh_owner), "sync", "--full") == 0
    assert sorted((r[5], r[6][:40]) for r in _att(db)) == [
        (0, "listed by GitHub, not verified: no trans"), (1, "verified against the trusted root")]


def test_answers_are_paged_by_cursor_and_every_page_counted(world, fresh_owner, tmp_path, monkeypatch):
    monkeypatch.setenv("GHCR_SANDBOX_TOKEN", world.token)
    world.builder.create_repository(fresh_owner, "app")
    app = world.builder.push_image(fresh_owner, "app", tags=["1.0"], repository=f"{fresh_owner}/app")
    for n in range(230):                                   # 3 pages of 100
        world.builder.attest(fresh_owner, "app", app, repository=f"{fresh_owner}/app",
                             workflow=f".github/workflows/w{n}.yml")
    db = tmp_path / "inventory.db"
    assert run_cli(_config(world, tmp_path, fresh_owner, trusted_root=False), "sync") == 0
    assert rows(db, "SELECT COUNT(*) FROM attestations") == [(230,)]
    run = last_run(db)
    assert json.loads(run["requests_by_kind"])["attestations"] == 3
    assert run["requests"] >= run["lower_bound"]


async def test_the_emulator_refuses_more_than_1024_digests_as_the_openapi_says(world, fresh_owner, http):
    async def ask(count: int):
        body = {"subject_digests": [f"sha256:{i:064x}" for i in range(count)]}
        async with http.post(f"{world.api_url}/orgs/{fresh_owner}/attestations/bulk-list", json=body,
                             headers={"Authorization": f"Bearer {world.token}"}) as resp:
            return resp.status

    assert await ask(1024) == 200
    assert await ask(1025) == 422
    assert any("request" in v.message for v in world.emulator.violations)
    world.emulator.violations.clear()
