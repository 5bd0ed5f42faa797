"""Configuration: a typed dataclass tree, a pure loader from TOML text, a file
loader around it. Where the secrets it names are read: crawler/credentials.py.

The keys are a user-facing contract (README "Configuration"); every key is
documented in config.example.toml. Unknown keys and wrong types are rejected
with a ConfigError naming the key and the file. Tokens never come from argv,
nor from a URL (user:password@host is refused without echoing it); a token
with a control character is refused at load (it would become header
injection), and a token file others can read earns one warning.
"""

from __future__ import annotations

import difflib
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import structlog

from .errors import ConfigError

log = structlog.get_logger("crawler.config")

DISCOVERY_KINDS = ("rest", "graphql", "catalog", "static")
OWNER_KINDS = ("org", "user")
# GitHub allows at most 100 concurrent requests per token (secondary limits);
# stay well below it so a retry burst cannot cross it.
MAX_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    path: Path | None = Path("inventory.db")
    # PostgreSQL instead of the SQLite file (exactly one of path and url):
    # postgresql://USER@HOST:PORT/DATABASE, never with a password in it.
    url: str | None = None
    password_env: str | None = None     # default: libpq's PGPASSWORD, then ~/.pgpass
    password_file: Path | None = None
    sslmode: str | None = None          # default: the URL's ?sslmode=, PGSSLMODE, else prefer
    connect_timeout_s: float = 10.0
    lock_timeout_s: float = 10.0        # a row or lock another crawler holds: wait at most this
    statement_timeout_s: float = 300.0  # no statement of the crawler runs longer
    reconnect_attempts: int = 5         # after a lost connection, then exit 4

    @property
    def target(self) -> str:
        """The inventory as a person names it: the file, or the URL."""
        return self.url if self.url else str(self.path)


@dataclass(frozen=True, slots=True)
class GitHubConfig:
    api_url: str = "https://api.github.com"
    graphql_url: str = "https://api.github.com/graphql"
    token_env: str | None = "GITHUB_TOKEN"
    token_file: Path | None = None
    insecure: bool = False
    # GraphQL enrichment of the packages' source repositories (archived,
    # visibility, default-branch head) after each sync; a repository is asked
    # again only when its facts are older than enrich_interval_s (or --full).
    enrich: bool = True
    enrich_interval_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    url: str = "https://ghcr.io"
    insecure: bool = False
    # The registry's token endpoint gets the credentials (Basic) only when its
    # host is the registry's or the API's, or listed here.
    auth_hosts: tuple[str, ...] = ()
    username: str = "ghcr-inventory"
    # Credentials for a non-GitHub registry; default: the GitHub token.
    token_env: str | None = None
    token_file: Path | None = None
    # A Docker config.json whose `auths` entry for the registry's host holds
    # the login (default: $DOCKER_CONFIG/config.json when DOCKER_CONFIG is set).
    docker_config: Path | None = None


@dataclass(frozen=True, slots=True)
class CrawlConfig:
    concurrency: int = 16
    timeout_s: float = 30.0
    run_timeout_s: float = 0.0  # 0 = no limit on the whole run
    max_wait_s: float = 900.0
    rate_limit_reserve: int = 50
    retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_config_bytes: int = 4 * 1024 * 1024
    referrers: bool = True
    # "versions": tag->digest from GitHub's versions listing (cheapest);
    # "registry": tags/list + HEAD per tag, for registries without that API.
    tag_source: str = "auto"
    # A changed package reads only its newest versions pages while its last
    # whole listing is younger than this (crawler/engine/versions.py); 0 = always whole.
    full_listing_interval_s: float = 86400.0


@dataclass(frozen=True, slots=True)
class AttestationsConfig:
    # After enrichment, ask GitHub's attestations API (bulk-list, 1,024
    # digests a request) about the image digests of GitHub owners: each digest
    # once, and again while it is younger than recheck_within_s, at most every
    # recheck_interval_s (attestations may be added after a push).
    enabled: bool = True
    recheck_within_s: float = 7 * 86400.0
    recheck_interval_s: float = 86400.0
    # A Sigstore trusted root (`gh attestation trusted-root > FILE`); without
    # one nothing is called verified.
    trusted_root: Path | None = None


@dataclass(frozen=True, slots=True)
class CleanupPolicy:
    """What `plan-cleanup` keeps and proposes ([cleanup]); an override sets
    only some of these keys (the others None: inherited)."""

    keep_newest_tagged: int | None = 10      # the N most recently uploaded tagged versions are kept
    keep_tags: tuple[str, ...] | None = ("latest",)   # globs: a version any matching tag points to is kept
    delete_untagged: bool | None = True
    untagged_older_than_days: float | None = 7.0
    delete_tagged: bool | None = False
    tagged_older_than_days: float | None = 90.0


@dataclass(frozen=True, slots=True)
class CleanupOverride:
    """[[cleanup.overrides]]: policy keys for one owner's packages matching a glob."""

    owner: str
    package: str = "*"
    policy: CleanupPolicy = CleanupPolicy(None, None, None, None, None, None)


@dataclass(frozen=True, slots=True)
class CleanupConfig:
    defaults: CleanupPolicy = CleanupPolicy()
    overrides: tuple[CleanupOverride, ...] = ()


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """`ghcr-inventory serve`: the webhook receiver (crawler/serve/)."""

    listen: str = "127.0.0.1:8080"      # loopback: TLS ends at a reverse proxy in front
    secret_env: str | None = "GHCR_INVENTORY_WEBHOOK_SECRET"
    secret_file: Path | None = None
    reconcile_interval_s: float = 3600.0    # a full incremental sync this often (0 = never: timers do it)
    debounce_s: float = 5.0                 # events for one package within this become one sync


@dataclass(frozen=True, slots=True)
class OwnerConfig:
    name: str
    kind: str = "org"
    discovery: str = "rest"
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()
    # discovery = "catalog": the repository path prefix this owner covers
    # ("team" -> team/…; "" -> the whole registry, package names then being
    # full paths); None: the owner's name (OWNER/…).
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    source: str = "<defaults>"
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    github: GitHubConfig = field(default_factory=GitHubConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    owners: tuple[OwnerConfig, ...] = ()
    attestations: AttestationsConfig = field(default_factory=AttestationsConfig)
    cleanup: CleanupConfig = field(default_factory=CleanupConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def owner(self, name: str) -> OwnerConfig | None:
        return next((o for o in self.owners if o.name.lower() == name.lower()), None)


# --- the pure loader ------------------------------------------------------

_SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "github": GitHubConfig,
    "registry": RegistryConfig,
    "crawl": CrawlConfig,
    "attestations": AttestationsConfig,
    "serve": ServeConfig,
}
_PATH_KEYS = {"database.path", "database.password_file", "github.token_file", "registry.token_file",
              "registry.docker_config", "attestations.trusted_root", "serve.secret_file"}
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def parse_config(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> Config:
    """Build a Config from TOML text. Relative paths resolve against base_dir."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=source) from exc
    base = base_dir or Path.cwd()
    known = set(_SECTIONS) | {"owners", "cleanup"}
    _reject_unknown(data, known, "", source)
    sections = {
        name: _build_section(cls, data.get(name, {}), name, source, base)
        for name, cls in _SECTIONS.items()
    }
    owners = _build_owners(data.get("owners", []), source)
    cleanup = build_cleanup(data.get("cleanup", {}), source)
    config = Config(source=source, owners=owners, cleanup=cleanup, **sections)
    _check_semantics(config)
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found (pass --config FILE; see config.example.toml)",
                          where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc.__class__.__name__}: {exc}",
                          where=str(path)) from exc
    return parse_config(text, source=str(path), base_dir=path.resolve().parent)


def _reject_unknown(table: Mapping[str, Any], known: set[str], prefix: str, source: str) -> None:
    for key in table:
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            suggestion = f" (did you mean '{prefix}{hint[0]}'?)" if hint else ""
            raise ConfigError(f"unknown key '{prefix}{key}'{suggestion}", where=source)


def _build_section(cls: type, table: Any, name: str, source: str, base: Path):
    if not isinstance(table, dict):
        raise ConfigError(f"'{name}' must be a table", where=source)
    fields = cls.__dataclass_fields__
    _reject_unknown(table, set(fields), f"{name}.", source)
    values = {}
    for key, raw in table.items():
        dotted = f"{name}.{key}"
        value = _coerce(raw, fields[key].type, dotted, source)
        if dotted in _PATH_KEYS and value is not None:
            value = (base / Path(value).expanduser()).resolve()
        values[key] = value
    if name == "database" and "path" in values and "url" in values:
        raise ConfigError("'database.path' and 'database.url' are both set: use exactly one "
                          "(path: an SQLite file; url: PostgreSQL)", where=source)
    if name == "database" and "url" in values:
        values["path"] = None
    elif name == "database" and "path" not in values:
        values["path"] = (base / DatabaseConfig().path).resolve()
    return cls(**values)


def _coerce(raw: Any, annotation: str, key: str, source: str) -> Any:
    """Check one value against its field's declared type (annotation text)."""
    kind = annotation.split("|")[0].strip()
    optional = "None" in annotation
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        raise ConfigError(f"'{key}' must be true or false, not {raw!r}", where=source)
    if kind == "int":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        raise ConfigError(f"'{key}' must be an integer, not {raw!r}", where=source)
    if kind == "float":
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        raise ConfigError(f"'{key}' must be a number, not {raw!r}", where=source)
    if kind in ("str", "Path"):
        if isinstance(raw, str) and (raw or optional):
            return raw or None
        raise ConfigError(f"'{key}' must be a non-empty string, not {raw!r}", where=source)
    if kind.startswith("tuple"):
        if isinstance(raw, list) and all(isinstance(x, str) and x for x in raw):
            return tuple(raw)
        raise ConfigError(f"'{key}' must be a list of non-empty strings", where=source)
    raise AssertionError(f"unhandled config type {annotation} for {key}")  # pragma: no cover


def _build_owners(raw: Any, source: str) -> tuple[OwnerConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("'owners' must be an array of tables ([[owners]])", where=source)
    owners = []
    for i, table in enumerate(raw):
        prefix = f"owners[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"'{prefix}' must be a table", where=source)
        _reject_unknown(table, set(OwnerConfig.__dataclass_fields__), f"{prefix}.", source)
        if "name" not in table:
            raise ConfigError(f"'{prefix}.name' is required", where=source)
        if table["name"] == "":
            raise ConfigError(f"'{prefix}.name' must not be empty; to cover a whole registry, give the owner a "
                              f"name of your choice with discovery = \"catalog\" and prefix = \"\"", where=source)
        values = {
            key: _coerce(value, OwnerConfig.__dataclass_fields__[key].type, f"{prefix}.{key}", source)
            for key, value in table.items() if key != "prefix"
        }
        if "prefix" in table:
            values["prefix"] = _repository_prefix(table["prefix"], f"{prefix}.prefix", source)
        owner = OwnerConfig(**values)
        _check_owner(owner, prefix, source)
        owners.append(owner)
    names = [o.name.lower() for o in owners]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"owner '{name}' is listed twice in 'owners'", where=source)
    return tuple(owners)


def build_cleanup(table: Any, source: str) -> CleanupConfig:
    """[cleanup]: the policy keys, and [[cleanup.overrides]] tables of an
    `owner`, a `package` glob and the keys they change."""
    if not isinstance(table, dict):
        raise ConfigError("'cleanup' must be a table", where=source)
    keys = set(CleanupPolicy.__dataclass_fields__)
    _reject_unknown(table, keys | {"overrides"}, "cleanup.", source)
    defaults = CleanupPolicy(**cleanup_values(table, "cleanup", source, keys))
    raw = table.get("overrides", [])
    if not isinstance(raw, list):
        raise ConfigError("'cleanup.overrides' must be an array of tables ([[cleanup.overrides]])", where=source)
    overrides = []
    for i, item in enumerate(raw):
        prefix = f"cleanup.overrides[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"'{prefix}' must be a table", where=source)
        _reject_unknown(item, keys | {"owner", "package"}, f"{prefix}.", source)
        owner, package = item.get("owner"), item.get("package", "*")
        if not isinstance(owner, str) or not owner:
            raise ConfigError(f"'{prefix}.owner' is required (a non-empty string)", where=source)
        if not isinstance(package, str) or not package or glob_problem(package):
            raise ConfigError(f"'{prefix}.package' must be a package-name glob", where=source)
        values = {k: None for k in keys} | cleanup_values(item, prefix, source, keys)
        overrides.append(CleanupOverride(owner, package, CleanupPolicy(**values)))
    return CleanupConfig(defaults, tuple(overrides))


def cleanup_values(table: Mapping[str, Any], prefix: str, source: str, keys: set[str]) -> dict:
    """The policy keys present in `table`, type-checked like every key."""
    out = {}
    for key in sorted(keys & set(table)):
        value = _coerce(table[key], CleanupPolicy.__dataclass_fields__[key].type.replace(" | None", ""),
                        f"{prefix}.{key}", source)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"'{prefix}.{key}' must not be negative", where=source)
        if key == "keep_tags":
            for pattern in value:
                if glob_problem(pattern):
                    raise ConfigError(f"'{prefix}.keep_tags' has a bad glob {pattern!r}: {glob_problem(pattern)}",
                                      where=source)
        out[key] = value
    return out


def _check_owner(owner: OwnerConfig, prefix: str, source: str) -> None:
    if owner.kind not in OWNER_KINDS:
        raise ConfigError(f"'{prefix}.kind' must be one of {', '.join(OWNER_KINDS)}, not {owner.kind!r}",
                          where=source)
    if owner.discovery not in DISCOVERY_KINDS:
        raise ConfigError(
            f"'{prefix}.discovery' must be one of {', '.join(DISCOVERY_KINDS)}, not {owner.discovery!r}",
            where=source)
    if owner.discovery == "static" and not owner.repositories:
        raise ConfigError(f"'{prefix}.repositories' is required with discovery = \"static\"", where=source)
    if owner.prefix is not None and owner.discovery != "catalog":
        raise ConfigError(f"'{prefix}.prefix' is only used with discovery = \"catalog\"", where=source)
    if owner.repositories and owner.discovery != "static":
        raise ConfigError(f"'{prefix}.repositories' is only used with discovery = \"static\"", where=source)
    for key in ("include", "exclude"):
        for pattern in getattr(owner, key):
            problem = glob_problem(pattern)
            if problem:
                raise ConfigError(f"'{prefix}.{key}' has a bad glob {pattern!r}: {problem}", where=source)


def _repository_prefix(raw: Any, key: str, source: str) -> str:
    """A repository path prefix: "" (everything) or path components
    ("team", "a/b"), lower-cased as registry paths are; slashes around it
    are dropped."""
    if not isinstance(raw, str):
        raise ConfigError(f"'{key}' must be a string (\"\" = the whole registry), not {raw!r}", where=source)
    value = raw.strip("/").lower()
    if any(ch.isspace() for ch in value) or "//" in value:
        raise ConfigError(f"'{key}' is not a repository path prefix: {raw!r}", where=source)
    return value


def glob_problem(pattern: str) -> str | None:
    """fnmatch accepts anything; catch what is surely a typo."""
    depth = 0
    for ch in pattern:
        if ch == "[":
            if depth:
                return "nested '['"
            depth = 1
        elif ch == "]" and depth:
            depth = 0
    if depth:
        return "unclosed '['"
    if any(ch.isspace() for ch in pattern):
        return "package names contain no whitespace"
    return None


def _check_semantics(config: Config) -> None:
    crawl, source = config.crawl, config.source
    if not 1 <= crawl.concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"'crawl.concurrency' must be between 1 and {MAX_CONCURRENCY} "
                          f"(GitHub allows 100 concurrent requests per token)", where=source)
    for key in ("timeout_s", "backoff_base_s", "backoff_max_s"):
        if getattr(crawl, key) <= 0:
            raise ConfigError(f"'crawl.{key}' must be positive", where=source)
    for key in ("run_timeout_s", "max_wait_s", "rate_limit_reserve", "retries", "full_listing_interval_s"):
        if getattr(crawl, key) < 0:
            raise ConfigError(f"'crawl.{key}' must not be negative", where=source)
    if crawl.max_manifest_bytes < 1024 or crawl.max_config_bytes < 1024:
        raise ConfigError("'crawl.max_manifest_bytes'/'crawl.max_config_bytes' must be at least 1024",
                          where=source)
    if config.github.enrich_interval_s < 0:
        raise ConfigError("'github.enrich_interval_s' must not be negative", where=source)
    for key in ("recheck_within_s", "recheck_interval_s"):
        if getattr(config.attestations, key) < 0:
            raise ConfigError(f"'attestations.{key}' must not be negative", where=source)
    if crawl.tag_source not in ("auto", "versions", "registry"):
        raise ConfigError("'crawl.tag_source' must be auto, versions or registry", where=source)
    _check_database(config.database, source)
    _check_url(config.github.api_url, "github.api_url", config.github.insecure, source)
    _check_url(config.github.graphql_url, "github.graphql_url", config.github.insecure, source)
    _check_url(config.registry.url, "registry.url", config.registry.insecure, source)
    _check_serve(config.serve, source)


def _check_serve(serve: ServeConfig, source: str) -> None:
    parse_listen(serve.listen, source)
    if serve.debounce_s < 0 or serve.reconcile_interval_s < 0:
        key = "debounce_s" if serve.debounce_s < 0 else "reconcile_interval_s"
        raise ConfigError(f"'serve.{key}' must not be negative", where=source)


def parse_listen(text: str, source: str = "<string>") -> tuple[str, int]:
    """'HOST:PORT' ('[::1]:8080' for IPv6) -> (host, port); ConfigError naming serve.listen."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""   # a bare IPv6 address is ambiguous: it needs brackets
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"'serve.listen' must be HOST:PORT (e.g. \"127.0.0.1:8080\"), not {text!r}",
                          where=source)
    return host, int(port)


def _check_database(db: DatabaseConfig, source: str) -> None:
    if db.url is None:
        for key in ("password_env", "password_file", "sslmode"):
            if getattr(db, key) is not None:
                raise ConfigError(f"'database.{key}' is only used with 'database.url' (PostgreSQL)", where=source)
        return
    problem = database_url_problem(db.url)
    if problem:
        raise ConfigError(f"'database.url' {problem}", where=source)
    if db.sslmode is not None and db.sslmode not in SSLMODES:
        raise ConfigError(f"'database.sslmode' must be one of {', '.join(SSLMODES)}, not {db.sslmode!r}",
                          where=source)
    for key in ("connect_timeout_s", "lock_timeout_s", "statement_timeout_s"):
        if getattr(db, key) <= 0:
            raise ConfigError(f"'database.{key}' must be positive", where=source)
    if db.reconnect_attempts < 0:
        raise ConfigError("'database.reconnect_attempts' must not be negative", where=source)


def database_url_problem(url: str) -> str | None:
    """Why `url` cannot name a PostgreSQL inventory (None: it can). A
    password in it is refused without echoing the URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return "must be a postgresql:// URL (or use database.path for an SQLite file)"
    if parts.password is not None:
        return ("must not carry a password (user:password@host); use database.password_env, "
                "database.password_file, PGPASSWORD or ~/.pgpass")
    try:
        parts.port
    except ValueError:
        return "has an invalid port"
    if not parts.path.strip("/"):
        return f"names no database: {url!r} (postgresql://USER@HOST:PORT/DATABASE)"
    return None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(url: str, key: str, insecure: bool, source: str) -> None:
    parts = urlsplit(url)
    if "@" in parts.netloc:
        # Checked first, and the URL never echoed: it holds a password.
        raise ConfigError(f"'{key}' must not carry credentials (user:password@host); the token comes "
                          f"from token_env or token_file", where=source)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"'{key}' must be an http(s) URL, not {url!r}", where=source)
    try:
        parts.port
    except ValueError:
        raise ConfigError(f"'{key}' has an invalid port: {url!r}", where=source) from None
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"'{key}' uses plain http to a non-loopback host: the token would travel "
                          f"in clear text; use https", where=source)
    if insecure and not is_loopback(parts.hostname):
        section = key.split(".")[0]
        raise ConfigError(f"'{section}.insecure' (no TLS verification) is allowed only for loopback "
                          f"hosts, not {parts.hostname}", where=source)
