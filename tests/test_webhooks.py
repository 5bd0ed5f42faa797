"""crawler/webhooks.py as a unit: the signature is checked before anything
is parsed, payloads become small values, every bad field is one 400 naming
it, and names outside GitHub's grammar never get through."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest
from hypothesis import given, strategies as st

from crawler.errors import WebhookRejected
from crawler.webhooks import (Ignored, PackageChange, Ping, check_owner, check_package, parse_delivery, parse_event,
                              sign, verify_signature)

SECRET = b"a-webhook-secret-of-32-characters"


def payload(**package) -> dict:
    base = {"name": "team/app", "namespace": "acme", "package_type": "CONTAINER", "ecosystem": "CONTAINER",
            "package_version": {"name": "sha256:" + "a" * 64}}
    return {"action": "published", "registry_package": {**base, **package}}


def test_a_good_signature_passes_and_anything_else_is_401():
    body = orjson.dumps(payload())
    verify_signature(SECRET, body, sign(SECRET, body))
    verify_signature(SECRET, body, sign(SECRET, body).upper().replace("SHA256=", "sha256="))   # hex case
    sha1 = "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest()
    cases = {None: "missing X-Hub-Signature-256", "": "missing", sha1: "must be sha256=<hex>",
             sign(b"another secret", body): "does not match", sign(SECRET, body + b" "): "does not match",
             "sha256=": "does not match", "sha256=zz": "does not match"}
    for header, needle in cases.items():
        with pytest.raises(WebhookRejected) as err:
            verify_signature(SECRET, body, header)
        assert err.value.status == 401 and needle in str(err.value), header


@given(st.binary(max_size=256), st.integers(min_value=0, max_value=255))
def test_any_changed_byte_breaks_the_signature(body, flip):
    header = sign(SECRET, body)
    verify_signature(SECRET, body, header)
    altered = (body or b"\0")[:-1] + bytes([((body or b"\0")[-1] + 1 + flip % 255) % 256])
    with pytest.raises(WebhookRejected):
        verify_signature(SECRET, altered, header)


def test_payloads_become_values():
    change = parse_event("registry_package", orjson.dumps(payload()))
    assert change == PackageChange("registry_package", "published", "acme", "team/app", "sha256:" + "a" * 64)
    package = {"action": "updated", "package": {**payload()["registry_package"], "namespace": None,
                                                "owner": {"login": "Mona-Lisa"}}}
    assert parse_event("package", orjson.dumps(package)).owner == "Mona-Lisa"
    assert parse_event("ping", b'{"zen": "Keep it logically awesome.", "hook_id": 1}') == \
        Ping("Keep it logically awesome.")
    assert parse_event("push", b"{}") == Ignored("push", "event")
    assert parse_event("registry_package", orjson.dumps({**payload(), "action": "deleted"})) == \
        Ignored("registry_package", "action")
    assert parse_event("registry_package", orjson.dumps(payload(package_type="npm"))) == \
        Ignored("registry_package", "ecosystem")


@pytest.mark.parametrize("body, needle", [
    (b"{not json", "body is not valid JSON"),
    (b"[1, 2]", "body is JSON list, not an object"),
    (orjson.dumps({"registry_package": {}}), "'action' must be a non-empty string, not missing"),
    (orjson.dumps({"action": "published", "registry_package": "x"}), "'registry_package' must be an object"),
    (orjson.dumps(payload(name=5)), "'registry_package.name' must be a non-empty string, not int"),
    (orjson.dumps(payload(package_type=None)), "'registry_package.package_type' must be a non-empty string"),
    (orjson.dumps(payload(name="App")), "'registry_package.name' is not a container package name: 'App'"),
    (orjson.dumps(payload(name="app/../etc")), "'registry_package.name' is not a container package name"),
    (orjson.dumps(payload(name="a" * 256)), "'registry_package.name' is not a container package name"),
    (orjson.dumps(payload(namespace="-evil\x1b[31m")), "'registry_package.namespace' is not a GitHub login"),
    (orjson.dumps(payload(namespace=["acme"])), "'registry_package.namespace' must be a string, not list"),
    (orjson.dumps(payload(namespace=None)), "'registry_package.namespace' and 'registry_package.owner.login'"),
])
def test_each_bad_field_is_one_400_naming_it(body, needle):
    with pytest.raises(WebhookRejected) as err:
        parse_event("registry_package", body)
    assert err.value.status == 400 and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_delivery_headers_and_name_grammar():
    assert parse_delivery("registry_package", "72d3162e-cc78-11e3-81ab-4c9367dc0958").event == "registry_package"
    for event, delivery in [(None, "x"), ("registry_package", None), ("Bad Event", "x"), ("ping", "id;drop"),
                            ("ping", "x" * 101)]:
        with pytest.raises(WebhookRejected):
            parse_delivery(event, delivery)
    for good in ("acme", "t-1", "Mona-Lisa", "a" * 39):
        assert check_owner(good) == good
    for bad in ("", "-acme", "acme/x", "a" * 40, "acme\n", "ac me"):
        with pytest.raises(WebhookRejected):
            check_owner(bad)
    for good in ("app", "team/app/api", "my_app.v2", "a--b", "a__b"):
        assert check_package(good) == good
    for bad in ("", "App", "/app", "app/", "a//b", "a._b", ".app", "app\x1b"):
        with pytest.raises(WebhookRejected):
            check_package(bad)
