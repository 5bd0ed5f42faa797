"""GitHub's artifact attestations: the stage after enrichment that asks
GitHub's attestations API which Sigstore bundles it holds for the
inventory's image digests (`actions/attest-build-provenance` and `gh
attestation` store them there, in the registry only with
`push-to-registry`).

`POST /orgs/{org}/attestations/bulk-list` (`/users/{username}/…`) takes up
to 1,024 subject digests and answers digest -> bundles, cursor-paged
(`page_info.has_next` / `page_info.next`, sent back as `after`). Asked, per
owner, are only the digests due (`StoreReader.attestations_due`: never
asked, last answered `unknown`, or young and not asked lately), read from
the store a page of 1,024 at a time; every
page goes through the one HTTP client and governor and counts in the lower
bound. Each batch is stored in one transaction (`save_attestations`).

Honest coverage: a digest becomes `listed` or `none` only from a complete
answer. A token that cannot read attestations (403; fine-grained tokens
need `attestations:read`) or an owner GitHub does not know here (404)
earns one warning per owner, and its digests are recorded `unknown` —
never `none`; the sync goes on. A rejected token (401), an exhausted rate
limit or an unreachable API end the stage; a malformed or cut-short answer
loses its batch only (`unknown` too). Bundles are parsed by
`crawler/oci/bundle.py` and, given a trusted root, checked by
`crawler/oci/verify.py`, whose docstring says what "verified" means.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence
from urllib.parse import quote, urlencode

import orjson
import structlog

from .config import Config
from .errors import (AuthError, ConfigError, IncompleteListingError, InventoryError, NotFoundError, PackageError,
                     ParseError, UnreachableError)
from .github import API_VERSION, check_status
from .http import HttpClient, refetch_bad_bodies
from .oci.bundle import Bundle, load_object, parse_bundle
from .oci.verify import TrustedRoot, parse_trusted_root, verify_bundle
from .secret import Secret
from .store import AttestationRow, DueDigests

log = structlog.get_logger("crawler.attestations")

MAX_SUBJECTS = 1024          # subject digests per bulk-list request (GitHub's maxItems)
PER_PAGE = 100
MAX_PAGES = 1000
NOT_VERIFIED = None          # verify_error when no trusted root was given


@dataclass(frozen=True, slots=True)
class Listed:
    """One attestation of a bulk-list answer, as GitHub gave it."""

    bundle: dict | None
    repository_id: int | None
    bundle_url: str | None


@dataclass(frozen=True, slots=True)
class BulkPage:
    found: dict[str, tuple[Listed, ...]]
    has_next: bool
    next_cursor: str | None


class AttestationWriter(Protocol):
    async def save_attestations(self, owner_id: int, answered: Sequence[str],
                                rows: Sequence[AttestationRow]) -> int: ...

    async def mark_attestations_unknown(self, owner_id: int, digests: Sequence[str], reason: str) -> int: ...


@dataclass(slots=True)
class AttestationReport:
    asked: int = 0                   # digests asked
    requests: int = 0                # pages
    listed: int = 0                  # attestations stored
    verified: int = 0
    unknown: int = 0                 # digests left unknown
    denied: list[str] = field(default_factory=list)         # owners whose token cannot read them
    problems: list[InventoryError] = field(default_factory=list)


# --- pure parts -----------------------------------------------------------------------

def parse_bulk_page(body: bytes, *, where: str = "attestations") -> BulkPage:
    """One bulk-list answer page, or ParseError."""
    data = load_object(body, where, "JSON from the attestations API")
    mapping = data.get("attestations_subject_digests")
    mapping = {} if mapping is None else mapping
    if not isinstance(mapping, dict):
        raise ParseError("'attestations_subject_digests' is not an object", where=where)
    found: dict[str, tuple[Listed, ...]] = {}
    for digest, items in mapping.items():
        if items is None:
            continue
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ParseError(f"the attestations of {digest[:80]} are not a list of objects", where=where)
        found[digest] = tuple(_listed(i, where) for i in items)
    info = data.get("page_info") if isinstance(data.get("page_info"), dict) else {}
    cursor = info.get("next") if isinstance(info.get("next"), str) and info.get("next") else None
    return BulkPage(found, info.get("has_next") is True, cursor)


def _listed(item: dict, where: str) -> Listed:
    bundle, rid, url = item.get("bundle"), item.get("repository_id"), item.get("bundle_url")
    if bundle is not None and not isinstance(bundle, dict):
        raise ParseError("an attestation's 'bundle' is not an object", where=where)
    if rid is not None and (not isinstance(rid, int) or isinstance(rid, bool)):
        raise ParseError("an attestation's 'repository_id' is not an integer", where=where)
    return Listed(bundle, rid, url if isinstance(url, str) else None)


def batches(digests: Sequence[str], size: int = MAX_SUBJECTS) -> list[list[str]]:
    return [list(digests[i:i + size]) for i in range(0, len(digests), size)]


def attestation_row(digest: str, listed: Listed, root: TrustedRoot | None) -> AttestationRow:
    """The row for one listed attestation: what its bundle says, and (given
    a trusted root) whether it verifies. A bundle that cannot be read is
    still a row — GitHub listed it — saying why it could not be read."""
    raw = orjson.dumps(listed.bundle, option=orjson.OPT_SORT_KEYS) if listed.bundle is not None else b""
    base = dict(digest=digest, bundle_digest="sha256:" + hashlib.sha256(raw or (listed.bundle_url or "").encode())
                .hexdigest(), repository_id=listed.repository_id, bundle_url=listed.bundle_url, bundle=raw)
    if listed.bundle is None:
        return _unread(base, None, "GitHub listed only a bundle_url; the bundle was not fetched")
    try:
        bundle = parse_bundle(listed.bundle, where=f"attestation of {digest}")
    except ParseError as exc:
        media = listed.bundle.get("mediaType")
        return _unread(base, media if isinstance(media, str) else None, f"unreadable bundle: {exc.message}")
    error, verified, signed_at = _judge(bundle, digest, root)
    s = bundle.signer
    return AttestationRow(**base, media_type=bundle.media_type, predicate_type=bundle.statement.predicate_type,
                          signer_workflow=s.workflow, signer_repository=s.repository, signer_ref=s.ref,
                          signer_commit=s.commit, signer_issuer=s.issuer, signed_at=signed_at,
                          verified=verified, verify_error=error)


def _judge(bundle: Bundle, digest: str, root: TrustedRoot | None) -> tuple[str | None, bool, str | None]:
    if not bundle.statement.describes(digest):
        return "the in-toto statement's subjects do not include this digest", False, None
    if root is None:
        return NOT_VERIFIED, False, None
    verdict = verify_bundle(bundle, root)
    stamp = verdict.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if verdict.signed_at else None
    return verdict.reason, verdict.verified, stamp


def _unread(base: dict, media_type: str | None, why: str) -> AttestationRow:
    return AttestationRow(**base, media_type=media_type, predicate_type=None, signer_workflow=None,
                          signer_repository=None, signer_ref=None, signer_commit=None, signer_issuer=None,
                          signed_at=None, verified=False, verify_error=why)


def load_trusted_root(config: Config) -> TrustedRoot | None:
    """The configured trusted root, or None; a bad one is a ConfigError (exit 2)."""
    path = config.attestations.trusted_root
    if path is None:
        return None
    where = f"{config.source}: attestations.trusted_root"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the trusted root {path}: {exc.strerror or exc}", where=where) from None
    try:
        return parse_trusted_root(data, where=str(path))
    except ParseError as exc:
        raise ConfigError(f"{path} is not a Sigstore trusted root ({exc.message}); write one with "
                          f"`gh attestation trusted-root > FILE`", where=where) from None


# --- the client -------------------------------------------------------------------------

class AttestationsClient:
    """The bulk-list endpoint through the run's one HTTP client."""

    def __init__(self, http: HttpClient, api_url: str, token: Secret) -> None:
        self.http = http
        self.api = api_url.rstrip("/")
        self.token = token

    def url(self, owner: str, kind: str) -> str:
        base = "orgs" if kind == "org" else "users"
        return f"{self.api}/{base}/{quote(owner, safe='')}/attestations/bulk-list"

    async def bulk_list(self, owner: str, kind: str, digests: Sequence[str], *,
                        count_request: Callable[[], None]) -> dict[str, list[Listed]]:
        """Every page of GitHub's answer for `digests` (at most 1,024),
        merged; raises on anything but a complete answer."""
        url, what = self.url(owner, kind), f"attestations of {kind} '{owner}'"
        body = orjson.dumps({"subject_digests": list(digests)})
        found: dict[str, list[Listed]] = {}
        cursor, seen = None, set()
        for _ in range(MAX_PAGES):
            count_request()    # once per page: a refetch of a garbled body is not needed work
            query = {"per_page": PER_PAGE, **({"after": cursor} if cursor else {})}
            page = await refetch_bad_bodies(lambda: self._page(f"{url}?{urlencode(query)}", body, what),
                                            self.http.counters, what)
            for digest, items in page.found.items():
                found.setdefault(digest, []).extend(items)
            if not page.has_next:
                return found
            if page.next_cursor is None or page.next_cursor in seen:
                raise IncompleteListingError("page_info says there is a next page but gives no new cursor; "
                                             "nothing concluded from this answer", where=what)
            seen.add(page.next_cursor)
            cursor = page.next_cursor
        raise IncompleteListingError(f"more than {MAX_PAGES} pages; nothing concluded", where=what)


    async def _page(self, url: str, body: bytes, what: str) -> BulkPage:
        resp = await self.http.request(
            "POST", url, kind="attestations", body=body,
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                     "Content-Type": "application/json"},
            auth=f"Bearer {self.token.reveal()}", auth_origin=self.api, max_bytes=64 * 1024 * 1024)
        _check(resp, what)
        return parse_bulk_page(resp.body, where=what)


def _check(resp, what: str) -> None:
    if resp.status == 403:
        raise AuthError("the token cannot read attestations (HTTP 403); fine-grained tokens need the "
                        "attestations:read permission, classic ones access to the repositories",
                        where=what, fatal=False)
    if resp.status == 404:
        raise NotFoundError("GitHub answered 404: no attestations API for this owner here (a GHES "
                            "without it, or the owner's kind is wrong)", where=what)
    check_status(resp, what)


# --- the stage --------------------------------------------------------------------------

# A page of what is due after a (owner id, digest) key (StoreReader.attestations_due).
DuePages = Callable[[tuple[int, str] | None], Awaitable[list[DueDigests]]]


async def due_owners(read: DuePages, first: list[DueDigests]) -> AsyncIterator[DueDigests]:
    """`first` and every later page `read` gives, one owner's run of
    digests at a time: the stage holds one page, whatever the org's size."""
    page = first
    while page:
        for owner in page:
            yield owner
        last = page[-1]
        page = await read((last.owner_id, last.digests[-1]))


async def check_attestations(client: AttestationsClient, due: AsyncIterable[DueDigests] | Iterable[DueDigests],
                             writer: AttestationWriter, *, root: TrustedRoot | None,
                             count_request: Callable[[], None] = lambda: None) -> AttestationReport:
    """Ask about `due` (an owner may come in several runs of digests),
    store through `writer` (the engine's single writer). Once the stage
    stops, or an owner is found unreadable, what remains of it is recorded
    `unknown` without asking."""
    report = AttestationReport()
    stopped: str | None = None           # why the stage stopped
    unreadable: dict[int, str] = {}      # owner id -> why its attestations cannot be read
    async for owner in _each(due):
        why = stopped or unreadable.get(owner.owner_id)
        if why is not None:
            await _unknown(writer, owner, list(owner.digests), why, report)
            continue
        ended = await _owner(client, owner, writer, root, count_request, report)
        if ended is not None:
            scope, why = ended
            if scope == "stage":
                stopped = why
            else:
                unreadable[owner.owner_id] = why
    log.info("attestations_done", asked=report.asked, requests=report.requests, listed=report.listed,
             verified=report.verified, unknown=report.unknown, problems=len(report.problems))
    return report


async def _each(due: AsyncIterable[DueDigests] | Iterable[DueDigests]) -> AsyncIterator[DueDigests]:
    if isinstance(due, AsyncIterable):
        async for owner in due:
            yield owner
    else:
        for owner in due:
            yield owner


async def _owner(client: AttestationsClient, owner: DueDigests, writer: AttestationWriter,
                 root: TrustedRoot | None, count_request: Callable[[], None],
                 report: AttestationReport) -> tuple[str, str] | None:
    """One run of an owner's digests, in batches. None, or how it ended:
    ("owner", why) when this owner's attestations cannot be read, ("stage",
    why) when the stage must stop (the rest would fail alike); the digests
    not asked are recorded unknown for that reason."""
    def counted() -> None:
        report.requests += 1
        count_request()

    for n, chunk in enumerate(batches(owner.digests)):
        start = n * MAX_SUBJECTS       # where the digests not yet asked begin
        report.asked += len(chunk)
        try:
            found = await client.bulk_list(owner.owner, owner.kind, chunk, count_request=counted)
        except (AuthError, NotFoundError) as exc:
            if isinstance(exc, AuthError) and exc.fatal:
                report.problems.append(exc)
                await _unknown(writer, owner, list(owner.digests[start:]), str(exc), report)
                return "stage", str(exc)
            report.denied.append(owner.owner)
            log.warning("attestations_unreadable", owner=owner.owner, error=str(exc), coverage="unknown")
            await _unknown(writer, owner, list(owner.digests[start:]), exc.message, report)
            return "owner", exc.message
        except UnreachableError as exc:     # RateLimitedError too
            report.problems.append(exc)
            await _unknown(writer, owner, list(owner.digests[start:]), str(exc), report)
            return "stage", str(exc)
        except PackageError as exc:         # this batch's answer was unusable
            report.problems.append(exc)
            await _unknown(writer, owner, chunk, exc.message, report)
            continue
        asked = set(chunk)
        rows = [attestation_row(d, item, root) for d, items in found.items() if d in asked for item in items]
        await writer.save_attestations(owner.owner_id, chunk, rows)
        report.listed += len(rows)
        report.verified += sum(r.verified for r in rows)
    return None


async def _unknown(writer: AttestationWriter, owner: DueDigests, digests: list[str], reason: str,
                   report: AttestationReport) -> None:
    if digests:
        await writer.mark_attestations_unknown(owner.owner_id, digests, reason)
        report.unknown += len(digests)
