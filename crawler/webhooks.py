"""GitHub webhook deliveries, from bytes and headers to small values: the
signature check, the delivery headers and the `package` / `registry_package`
payloads. Pure functions, no I/O; `crawler/serve/` does the HTTP.

Order matters (README "Serve"): `verify_signature` runs on the raw body
before anything parses it — HMAC-SHA256 keyed with the webhook secret,
`X-Hub-Signature-256: sha256=<hex>`, compared in constant time
(`hmac.compare_digest`); GitHub's older `X-Hub-Signature` (SHA-1) is never
accepted. Only then is the body read as JSON, and only the fields used are
checked (types, GitHub's owner and package name grammar) rather than the
whole published schema: a field GitHub adds or changes elsewhere in the
payload must not make us drop an event. A field that is wrong is one
`WebhookRejected` (400) naming it.

Events (GitHub docs, "Webhook events and payloads"): `ping` when a hook is
created; `package` and `registry_package` with action `published` or
`updated` when a version is pushed — only for packages connected to a
repository (no `org.opencontainers.image.source` label, no event), which is
why `serve` also reconciles on a period.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from .errors import ParseError, WebhookRejected
from .oci.fields import json_object

__all__ = ["Delivery", "Ignored", "PackageChange", "Ping", "check_owner", "check_package", "parse_delivery",
           "parse_event", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
PACKAGE_EVENTS = {"package": "package", "registry_package": "registry_package"}   # event -> payload key
ACTIONS = frozenset({"published", "updated"})
CONTAINER_TYPES = frozenset({"container"})    # `package_type`, compared lower-case (GitHub sends CONTAINER)

# GitHub logins: letters, digits and hyphens, at most 39, not starting with a
# hyphen (older accounts may hold doubled or trailing hyphens, so those pass).
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}", re.ASCII)
# ghcr package names are registry repository paths below the owner: lower-case
# components of the distribution grammar (`[a-z0-9]+` joined by `.`, `_`, `__`
# or runs of `-`), separated by `/`.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", re.ASCII)
MAX_PACKAGE = 255
# GitHub's delivery ids are GUIDs; accept any short token of that alphabet.
_DELIVERY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,99}", re.ASCII)
_EVENT = re.compile(r"[a-z_]{1,64}", re.ASCII)
_SHOW = 60


@dataclass(frozen=True, slots=True)
class Delivery:
    """The headers that say what a delivery is."""

    event: str              # X-GitHub-Event: ping, package, registry_package, ...
    delivery_id: str        # X-GitHub-Delivery: unique per delivery (a redelivery keeps it)


@dataclass(frozen=True, slots=True)
class Ping:
    """`ping`: a hook was created or tested."""

    zen: str | None = None


@dataclass(frozen=True, slots=True)
class PackageChange:
    """A container package GitHub says was published or updated."""

    event: str              # package | registry_package
    action: str             # published | updated
    owner: str              # the package's namespace (org or user login)
    package: str            # the package name (may hold '/')
    version: str | None     # the version GitHub names (the digest, on ghcr), for the log only


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed delivery that needs no sync; `reason` says why (a metric label)."""

    event: str
    reason: str             # event | action | ecosystem


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[:_SHOW] + "…"


def sign(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Accept `body` only if `header` is its HMAC-SHA256 under `secret`.

    Raises WebhookRejected(401): no header, another algorithm (`sha1=`, the
    legacy `X-Hub-Signature`), not 64 hex digits, or a digest that differs
    (compared in constant time, so the comparison leaks nothing about the
    expected value)."""
    if not header:
        raise WebhookRejected(f"missing {SIGNATURE_HEADER}", status=401)
    algorithm, _, given = header.strip().partition("=")
    if algorithm != "sha256":
        raise WebhookRejected(f"{SIGNATURE_HEADER} must be sha256=<hex>, not {_show(algorithm)}=…", status=401)
    expected = sign(secret, body).removeprefix("sha256=")
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise WebhookRejected("signature does not match the body (wrong secret or altered body)", status=401)


def parse_delivery(event: str | None, delivery_id: str | None) -> Delivery:
    """The X-GitHub-Event and X-GitHub-Delivery headers, checked."""
    if not event or not _EVENT.fullmatch(event):
        raise WebhookRejected(f"{EVENT_HEADER} is missing or malformed: {_show(event)}")
    if not delivery_id or not _DELIVERY.fullmatch(delivery_id):
        raise WebhookRejected(f"{DELIVERY_HEADER} is missing or malformed: {_show(delivery_id)}")
    return Delivery(event, delivery_id)


def parse_event(event: str, body: bytes) -> Ping | PackageChange | Ignored:
    """A verified body of event `event`. Raises WebhookRejected(400) naming
    the first field that is missing, of the wrong type or outside GitHub's
    grammar."""
    try:
        data = json_object(body, "body")
    except ParseError as exc:
        raise WebhookRejected(exc.message) from None
    if event == "ping":
        zen = data.get("zen")
        return Ping(zen if isinstance(zen, str) else None)
    key = PACKAGE_EVENTS.get(event)
    if key is None:
        return Ignored(event, "event")
    action = _string(data, "action", "action")
    if action not in ACTIONS:
        return Ignored(event, "action")
    package = data.get(key)
    if not isinstance(package, dict):
        raise WebhookRejected(f"'{key}' must be an object, not {_type(package)}")
    kind = _string(package, "package_type", f"{key}.package_type")
    if kind.lower() not in CONTAINER_TYPES:
        return Ignored(event, "ecosystem")
    name = check_package(_string(package, "name", f"{key}.name"), f"{key}.name")
    owner = check_owner(_owner_login(package, key), f"{key}.namespace")
    version = package.get("package_version")
    digest = version.get("name") if isinstance(version, dict) else None
    return PackageChange(event, action, owner, name, digest if isinstance(digest, str) else None)


def _owner_login(package: dict, key: str) -> str:
    """The owner: `namespace` (always present on container packages), else `owner.login`."""
    namespace = package.get("namespace")
    if namespace is not None and namespace != "":
        if not isinstance(namespace, str):
            raise WebhookRejected(f"'{key}.namespace' must be a string, not {_type(namespace)}")
        return namespace
    owner = package.get("owner")
    if isinstance(owner, dict):
        return _string(owner, "login", f"{key}.owner.login")
    raise WebhookRejected(f"'{key}.namespace' and '{key}.owner.login' are both missing")


def _string(obj: dict, field: str, name: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not value:
        raise WebhookRejected(f"'{name}' must be a non-empty string, not {_type(value)}")
    return value


def _type(value: object) -> str:
    return "missing" if value is None else type(value).__name__


def check_owner(login: str, name: str = "owner") -> str:
    """`login` if it is a GitHub login; WebhookRejected naming field `name` otherwise."""
    if not _LOGIN.fullmatch(login):
        raise WebhookRejected(f"'{name}' is not a GitHub login: {_show(login)}")
    return login


def check_package(package: str, name: str = "package") -> str:
    """`package` if it is a ghcr package name (lower-case repository path)."""
    if len(package) > MAX_PACKAGE or not all(_COMPONENT.fullmatch(c) for c in package.split("/")):
        raise WebhookRejected(f"'{name}' is not a container package name: {_show(package)}")
    return package
