"""A stand-in for crawler.http.HttpClient in unit tests: canned answers by
URL, every request recorded. Only our own interface is imitated (request +
counters), never a library's."""

from __future__ import annotations

from collections import defaultdict

from multidict import CIMultiDict, CIMultiDictProxy

from crawler.http import Counters, Response


class FakeHttp:
    def __init__(self, answers: dict[str, list[tuple[int, dict, bytes]]] | None = None) -> None:
        self.answers = defaultdict(list, answers or {})
        self.counters = Counters()
        self.sent: list[tuple[str, str, dict]] = []
        self.auth: list[tuple[str | None, str | None]] = []    # (Authorization value, the origin it is for)

    def answer(self, url: str, status: int = 200, headers: dict | None = None, body: bytes = b"") -> None:
        self.answers[url].append((status, headers or {}, body))

    async def request(self, method: str, url: str, *, kind: str, headers=None, auth: str | None = None,
                      auth_origin: str | None = None, **_) -> Response:
        self.sent.append((method, url, dict(headers or {})))
        self.auth.append((auth, auth_origin))
        self.counters.requests[kind] += 1
        queue = self.answers.get(url)
        if not queue:
            raise AssertionError(f"no canned answer for {method} {url}")
        status, hdrs, body = queue.pop(0) if len(queue) > 1 else queue[0]
        if status == 304:
            self.counters.not_modified += 1
        return Response(status, CIMultiDictProxy(CIMultiDict(hdrs)), body, url)
