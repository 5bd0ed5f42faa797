"""Configuration: a typed dataclass tree, a pure loader from TOML text, a file
loader around it, and token resolution from the environment or a file.

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
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import structlog

from .dockerconfig import parse_docker_config
from .errors import ConfigError, ParseError
from .secret import Secret

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


# --- tokens ---------------------------------------------------------------

def read_token(env_name: str | None, file: Path | None, *, what: str, source: str,
               environ: Mapping[str, str] | None = None, key: str = "token") -> Secret | None:
    """The token from `file` if set, else from the environment; None if neither is set.
    `key`: the keys' stem in section `what` (`token` -> token_env/token_file)."""
    environ = os.environ if environ is None else environ
    if file is not None:
        try:
            # Bytes as they are: text mode would turn a CR inside the token into LF.
            value = Path(file).read_bytes().decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"'{what}.{key}_file' cannot be read: {file}: "
                              f"{getattr(exc, 'strerror', None) or exc.__class__.__name__}",
                              where=source) from None
        if not value:
            raise ConfigError(f"'{what}.{key}_file' is empty: {file}", where=source)
        _check_token(value, f"'{what}.{key}_file' {file}", source)
        _warn_if_exposed(Path(file), f"{what}.{key}_file")
        return Secret(value)
    if env_name:
        value = environ.get(env_name, "").strip()
        if value:
            _check_token(value, f"environment variable {env_name} ('{what}.{key}_env')", source)
        return Secret(value) if value else None
    return None


def token_problem(value: str) -> str | None:
    """Why `value` cannot be a token, without showing it: a token travels in
    an HTTP header, so a line break (or any control character) in it would
    be header injection — aiohttp refuses it mid-run; refuse it at load."""
    for pos, ch in enumerate(value, 1):
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            kind = "a line break" if ch in "\r\n" else "a control character"
            return f"{kind} (U+{code:04X}) at character {pos} of {len(value)}"
        if code > 0x7E:
            return f"a non-ASCII character at character {pos} of {len(value)}"
    return None


def _check_token(value: str, origin: str, source: str) -> None:
    problem = token_problem(value)
    if problem:
        raise ConfigError(f"{origin} holds a token with {problem}; a token is one line of printable "
                          f"ASCII", where=source)


_warned_exposed: set[str] = set()


def _warn_if_exposed(file: Path, key: str) -> None:
    """Like ssh with a private key: a token file group or others may read is
    worth a warning (once per file and process); the run goes on."""
    try:
        mode = stat.S_IMODE(os.stat(file).st_mode)
    except OSError:
        return
    if mode & 0o077 and str(file) not in _warned_exposed:
        _warned_exposed.add(str(file))
        log.warning("token_file_exposed", file=str(file), key=key, mode=f"{mode:04o}",
                    hint=f"group or others can access it: chmod 600 {file}")


@dataclass(frozen=True, slots=True)
class Credentials:
    github: Secret | None
    registry: Secret | None
    # The registry login's user name when its source names one (a Docker
    # config entry); None: registry.username. `registry_source` says where
    # the registry's credential came from, for messages (never the value).
    registry_user: str | None = None
    registry_source: str = "the configured token"
    database: Secret | None = None     # PostgreSQL's password (database.url)


def database_password(db: DatabaseConfig, source: str,
                      environ: Mapping[str, str] | None = None) -> Secret | None:
    """PostgreSQL's password: `database.password_file`, else the variable
    `database.password_env` names, else libpq's PGPASSWORD (None: asyncpg
    then reads ~/.pgpass, or the server needs none). Registered as a secret
    wherever it comes from, so it is redacted like a token."""
    environ = os.environ if environ is None else environ
    if db.url is None:
        return None
    if db.password_file is not None:
        try:
            value = Path(db.password_file).read_bytes().decode("utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"'database.password_file' cannot be read: {db.password_file}: "
                              f"{getattr(exc, 'strerror', None) or exc.__class__.__name__}", where=source) from None
        if not value:
            raise ConfigError(f"'database.password_file' is empty: {db.password_file}", where=source)
        _warn_if_exposed(Path(db.password_file), "database.password_file")
        return Secret(value)
    if db.password_env is not None:
        value = environ.get(db.password_env, "")
        if not value:
            raise ConfigError(f"environment variable {db.password_env} is not set ('database.password_env')",
                              where=source)
        return Secret(value)
    value = environ.get("PGPASSWORD", "")
    return Secret(value) if value else None


def resolve_credentials(config: Config, environ: Mapping[str, str] | None = None) -> Credentials:
    """Load tokens; a missing token is an error only where an owner needs one."""
    gh = config.github
    github = read_token(gh.token_env, gh.token_file, what="github", source=config.source, environ=environ)
    needs_api = [o.name for o in config.owners if o.discovery in ("rest", "graphql")]
    if github is None and needs_api:
        how = (f"environment variable {gh.token_env} is not set ('github.token_env')"
               if gh.token_env else "set 'github.token_env' or 'github.token_file'")
        raise ConfigError(f"no GitHub token for owner '{needs_api[0]}' (discovery needs the API): {how}",
                          where=config.source)
    reg = config.registry
    registry = read_token(reg.token_env, reg.token_file, what="registry", source=config.source,
                          environ=environ)
    if registry is None and reg.token_env and reg.token_file is None:
        if reg.token_env not in (environ if environ is not None else os.environ):
            raise ConfigError(f"environment variable {reg.token_env} is not set ('registry.token_env')",
                              where=config.source)
    database = database_password(config.database, config.source, environ)
    if registry is not None:
        where = f"registry.token_file {reg.token_file}" if reg.token_file else f"registry.token_env {reg.token_env}"
        return Credentials(github=github, registry=registry, registry_source=where, database=database)
    login, where = docker_login(config, environ)
    if login is not None:
        return Credentials(github=github, registry=login.secret, registry_user=login.username,
                           registry_source=where, database=database)
    return Credentials(github=github, registry=github, registry_source="the GitHub token", database=database)


def docker_config_path(config: Config, environ: Mapping[str, str] | None = None) -> tuple[Path | None, str]:
    """The Docker config.json to read and the key that named it:
    `registry.docker_config`, else `$DOCKER_CONFIG/config.json` (the
    standard variable, a directory), else none."""
    environ = os.environ if environ is None else environ
    if config.registry.docker_config is not None:
        return config.registry.docker_config, "registry.docker_config"
    directory = environ.get("DOCKER_CONFIG", "").strip()
    if directory:
        return Path(directory).expanduser() / "config.json", "environment variable DOCKER_CONFIG"
    return None, ""


def docker_login(config: Config, environ: Mapping[str, str] | None = None):
    """(DockerLogin | None, where) for the registry's host from the Docker
    config.json, if one is configured. Credential helpers are not run: one
    warning says so when the file names one for this host."""
    path, key = docker_config_path(config, environ)
    if path is None:
        return None, ""
    host = urlsplit(config.registry.url).netloc.lower()
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"the Docker config named by {key} cannot be read: {path}: "
                          f"{exc.strerror or exc.__class__.__name__}", where=config.source) from None
    try:
        found = parse_docker_config(text, host)
    except ParseError as exc:
        raise ConfigError(f"the Docker config named by {key} ({path}): {exc.message}",
                          where=config.source) from None
    if found.helper:
        log.warning("docker_config_helper_ignored", file=str(path), host=host, helper=found.helper,
                    hint="credential helpers are out of scope: "
                         + ("its `auths` entry is used" if found.login else
                            "no login for this host from that file; add an `auths` entry or use "
                            "registry.token_file"))
    if found.login is None:
        return None, ""
    _warn_if_exposed(path, key)
    token_kind = "identitytoken" if found.login.identity_token else "auth"
    problem = token_problem(found.login.secret.reveal())
    if problem:
        raise ConfigError(f"the Docker config {path} holds a {token_kind} for {host} with {problem}",
                          where=config.source)
    return found.login, f"docker config {path} (auths entry for {host}, {token_kind})"


MIN_WEBHOOK_SECRET = 16


def resolve_webhook_secret(config: Config, environ: Mapping[str, str] | None = None) -> Secret:
    """The webhook secret `serve` checks signatures with, from serve.secret_file
    or serve.secret_env; required (ConfigError, exit 2, without it). At least
    MIN_WEBHOOK_SECRET characters: a short secret is guessable, and every
    secret is registered for redaction (crawler/secret.py)."""
    serve = config.serve
    secret = read_token(serve.secret_env, serve.secret_file, what="serve", source=config.source,
                        environ=environ, key="secret")
    if secret is None:
        how = (f"environment variable {serve.secret_env} is not set ('serve.secret_env')"
               if serve.secret_env else "set 'serve.secret_env' or 'serve.secret_file'")
        raise ConfigError(f"serve needs the webhook secret GitHub signs deliveries with: {how}",
                          where=config.source)
    if len(secret.reveal()) < MIN_WEBHOOK_SECRET:
        origin = "'serve.secret_file'" if serve.secret_file else f"environment variable {serve.secret_env}"
        raise ConfigError(f"{origin} holds a webhook secret shorter than {MIN_WEBHOOK_SECRET} characters; "
                          f"use a random one (openssl rand -hex 32)", where=config.source)
    return secret
