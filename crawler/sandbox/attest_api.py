"""The emulator's attestations API: ``POST /orgs/{org}/attestations/bulk-list``
and ``POST /users/{username}/attestations/bulk-list``.

As GitHub documents it (``reference/github-rest-attestations.openapi.json``):
the body is ``{"subject_digests": [...]}`` (1 to 1,024, validated against
the published request schema; a body that breaks it is a 422 and a recorded
violation), the answer maps each digest to its bundles
(``attestations_subject_digests``; ``null`` for a digest without any),
filtered by what the token may read, cursor-paged: ``per_page`` attestations
a page (default 30, max 100), ``page_info.next`` is the cursor to send back
as ``?after=`` (also in a ``Link: rel="next"`` header). Permission is a
model: a token needs the ``attestations:read`` permission (fine-grained) or
the classic ``repo`` scope, else 403 "Resource not accessible by personal
access token".
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import urlencode

from multidict import MultiDictProxy

from . import render
from .openapi import Violation, validate_request
from .state import Token, WorldState

DOCS = "https://docs.github.com/rest/orgs/attestations#list-attestations-by-bulk-subject-digests"
ROUTE = re.compile(r"^/(?P<base>orgs|users)/(?P<owner>[^/]+)/attestations/bulk-list$")


def template(match: re.Match) -> str:
    return "/orgs/{org}/attestations/bulk-list" if match["base"] == "orgs" else \
        "/users/{username}/attestations/bulk-list"


def can_read(token: Token) -> bool:
    return token.has_scope("attestations:read") or token.has_scope("repo")


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int | None:
    if not cursor:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return int(number) if kind == "offset" and int(number) >= 0 else None
    except (ValueError, UnicodeDecodeError):
        return None


def bulk_list(state: WorldState, token: Token, match: re.Match, body: Any, query: MultiDictProxy,
              api: str) -> tuple[int, Any, dict, list[Violation]]:
    """(status, JSON body, headers, request violations) for one bulk-list call."""
    owner = state.owner(match["owner"])
    kind = "org" if match["base"] == "orgs" else "user"
    if owner is None or owner.kind != kind:
        return 404, render.error_json("Not Found", DOCS, 404), {}, []
    if not can_read(token):
        return 403, render.error_json("Resource not accessible by personal access token", DOCS, 403), {}, []
    violations = validate_request(template(match), "post", body)
    if violations:
        return 422, render.error_json("Invalid request.", DOCS, 422), {}, violations
    try:
        per_page = min(100, max(1, int(query.get("per_page", 30))))
    except ValueError:
        per_page = 30
    offset = _offset(query.get("after"))
    if offset is None:
        return 422, render.error_json("Invalid cursor.", DOCS, 422), {}, []
    digests = list(dict.fromkeys(body["subject_digests"]))
    flat = [(d, a) for d in digests for a in state.attestations_of(token, owner.login, d)]
    page = flat[offset:offset + per_page]
    mapping: dict[str, list | None] = {}
    if offset == 0:
        mapping = {d: None for d in digests}
    for digest, att in page:
        items = mapping.get(digest) or []
        items.append({"bundle": att.bundle, "repository_id": att.repository_id,
                      "bundle_url": f"{api}/attestations/bundles/{att.repository_id}"})
        mapping[digest] = items
    end = offset + len(page)
    info: dict = {"has_next": end < len(flat), "has_previous": offset > 0}
    headers = {}
    if end < len(flat):
        info["next"] = _cursor(end)
        headers["Link"] = (f'<{api}/{match["base"]}/{owner.login}/attestations/bulk-list?'
                           f'{urlencode({"per_page": per_page, "after": info["next"]})}>; rel="next"')
    if offset > 0:
        info["previous"] = _cursor(max(0, offset - per_page))
    return 200, {"attestations_subject_digests": mapping, "page_info": info}, headers, []
