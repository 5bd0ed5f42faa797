"""Validate the emulator's REST bodies (and webhook payloads) against GitHub's published OpenAPI.

The schemas come from ``reference/github-rest-packages.openapi.json`` (all
``$ref`` already inlined). OpenAPI 3.0 schema objects are JSON Schema plus
``nullable``; we rewrite ``nullable: true`` into a ``null`` type and validate with
jsonschema, checking the ``date-time`` and ``uri`` formats too.

One documented deviation is patched in: the ``package.visibility`` enum lists only
``private``/``public``, yet the same document's ``visibility`` query parameter
says ``internal`` exists for registries with granular permissions — ghcr is one,
and GitHub serves ``"visibility": "internal"`` for such packages.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlparse

SPEC_FILE = "github-rest-packages.openapi.json"
# More paths of the same document, vendored apart (reference/README.md).
EXTRA_SPEC_FILES = ("github-rest-users-ratelimit.openapi.json",)
ATTESTATIONS_SPEC_FILE = "github-rest-attestations.openapi.json"


@dataclass(frozen=True)
class Violation:
    """One served body that broke the published schema."""

    operation: str
    status: int
    path: str
    message: str


def reference_text(name: str) -> str:
    return resources.files("crawler.sandbox").joinpath("reference", name).read_text(encoding="utf-8")


def _openapi_to_jsonschema(node):
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k not in ("nullable", "example", "examples")}
    if node.get("nullable") is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _patch_internal_visibility(node) -> None:
    """Add ``internal`` to the visibility enum of every Package object schema."""
    if isinstance(node, list):
        for item in node:
            _patch_internal_visibility(item)
        return
    if not isinstance(node, dict):
        return
    props = node.get("properties")
    if isinstance(props, dict) and "package_type" in props and "visibility" in props:
        enum = props["visibility"].get("enum")
        if enum is not None and "internal" not in enum:
            props["visibility"]["enum"] = [*enum, "internal"]
    for value in node.values():
        _patch_internal_visibility(value)


@functools.cache
def _spec(path_template: str = "") -> dict:
    """The vendored OpenAPI document that describes ``path_template``."""
    name = ATTESTATIONS_SPEC_FILE if "/attestations" in path_template else SPEC_FILE
    return _load_spec(name)


@functools.cache
def _load_spec(name: str) -> dict:
    spec = json.loads(reference_text(name))
    if name == SPEC_FILE:
        for extra in EXTRA_SPEC_FILES:
            spec["paths"].update(json.loads(reference_text(extra))["paths"])
    return spec


@functools.cache
def response_validator(path_template: str, method: str, status: int):
    """A jsonschema validator for one operation's response, or None if undocumented."""
    operation = _spec(path_template)["paths"].get(path_template, {}).get(method.lower())
    if operation is None:
        raise KeyError(f"no operation {method.upper()} {path_template} in the vendored OpenAPI")
    response = operation["responses"].get(str(status))
    if not response or "application/json" not in response.get("content", {}):
        return None
    schema = _openapi_to_jsonschema(copy.deepcopy(response["content"]["application/json"]["schema"]))
    _patch_internal_visibility(schema)
    import jsonschema  # only validating worlds (tests) need it

    return jsonschema.Draft7Validator(schema, format_checker=_format_checker())


WEBHOOKS_FILE = "github-webhooks-package-events.openapi.json"


@functools.cache
def webhook_validator(name: str):
    """A jsonschema validator for one webhook's body (``registry-package-published`` …).

    That document is OpenAPI 3.1, whose schema objects are JSON Schema 2020-12
    (nullable is already ``type: [..., "null"]``); its ``$ref``s point into
    ``#/components``, so the validated schema carries the components beside
    the reference to resolve them.
    """
    spec = json.loads(reference_text(WEBHOOKS_FILE))
    if name not in spec["webhooks"]:
        raise KeyError(f"no webhook {name!r} in {WEBHOOKS_FILE}")
    schema = dict(spec["webhooks"][name]["post"]["requestBody"]["content"]["application/json"]["schema"])
    schema["components"] = spec["components"]
    import jsonschema

    return jsonschema.Draft202012Validator(schema, format_checker=_format_checker())


def validate_webhook(event: str, action: str, body) -> list[Violation]:
    """Every schema violation of a webhook body (event ``registry_package``, action ``published``)."""
    name = f"{event.replace('_', '-')}-{action}"
    return [Violation(f"webhook {name}", 0, "/".join(str(p) for p in err.absolute_path), err.message)
            for err in webhook_validator(name).iter_errors(body)]


def operation_id(path_template: str, method: str) -> str:
    return _spec(path_template)["paths"][path_template][method.lower()]["operationId"]


@functools.cache
def request_validator(path_template: str, method: str):
    """A jsonschema validator for one operation's JSON request body, or None."""
    operation = _spec(path_template)["paths"][path_template][method.lower()]
    content = (operation.get("requestBody") or {}).get("content", {})
    if "application/json" not in content:
        return None
    schema = _openapi_to_jsonschema(copy.deepcopy(content["application/json"]["schema"]))
    import jsonschema

    return jsonschema.Draft7Validator(schema, format_checker=_format_checker())


def validate_request(path_template: str, method: str, body) -> list[Violation]:
    """Every schema violation of a client's request ``body`` (decoded JSON)."""
    validator = request_validator(path_template, method)
    if validator is None:
        return []
    op = operation_id(path_template, method)
    return [Violation(op, 0, "/".join(str(p) for p in err.absolute_path), f"request: {err.message}")
            for err in validator.iter_errors(body)]


def validate_body(path_template: str, method: str, status: int, body) -> list[Violation]:
    """Every schema violation of ``body`` (decoded JSON) for that operation and status."""
    validator = response_validator(path_template, method, status)
    if validator is None:
        return []
    op = operation_id(path_template, method)
    return [
        Violation(op, status, "/".join(str(p) for p in err.absolute_path), err.message)
        for err in validator.iter_errors(body)
    ]


@functools.cache
def _format_checker():
    """``date-time`` and ``uri`` checks without jsonschema's optional format packages."""
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_is_datetime)
    checker.checks("uri")(_is_uri)
    return checker


def _is_datetime(value) -> bool:
    if not isinstance(value, str):
        return True
    if "T" not in value:
        raise ValueError("not an RFC 3339 date-time")
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _is_uri(value) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlparse(value)
    return bool(parts.scheme) and bool(parts.netloc or parts.path)
