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

from .errors import ConfigError
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


@dataclass(frozen=True, slots=True)
class OwnerConfig:
    name: str
    kind: str = "org"
    discovery: str = "rest"
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    source: str = "<defaults>"
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    github: GitHubConfig = field(default_factory=GitHubConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    owners: tuple[OwnerConfig, ...] = ()

    def owner(self, name: str) -> OwnerConfig | None:
        return next((o for o in self.owners if o.name.lower() == name.lower()), None)


# --- the pure loader ------------------------------------------------------

_SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "github": GitHubConfig,
    "registry": RegistryConfig,
    "crawl": CrawlConfig,
}
_PATH_KEYS = {"database.path", "database.password_file", "github.token_file", "registry.token_file"}
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def parse_config(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> Config:
    """Build a Config from TOML text. Relative paths resolve against base_dir."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=source) from exc
    base = base_dir or Path.cwd()
    known = set(_SECTIONS) | {"owners"}
    _reject_unknown(data, known, "", source)
    sections = {
        name: _build_section(cls, data.get(name, {}), name, source, base)
        for name, cls in _SECTIONS.items()
    }
    owners = _build_owners(data.get("owners", []), source)
    config = Config(source=source, owners=owners, **sections)
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
        values = {
            key: _coerce(value, OwnerConfig.__dataclass_fields__[key].type, f"{prefix}.{key}", source)
            for key, value in table.items()
        }
        owner = OwnerConfig(**values)
        _check_owner(owner, prefix, source)
        owners.append(owner)
    names = [o.name.lower() for o in owners]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"owner '{name}' is listed twice in 'owners'", where=source)
    return tuple(owners)


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
    if owner.repositories and owner.discovery != "static":
        raise ConfigError(f"'{prefix}.repositories' is only used with discovery = \"static\"", where=source)
    for key in ("include", "exclude"):
        for pattern in getattr(owner, key):
            problem = glob_problem(pattern)
            if problem:
                raise ConfigError(f"'{prefix}.{key}' has a bad glob {pattern!r}: {problem}", where=source)


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
    for key in ("run_timeout_s", "max_wait_s", "rate_limit_reserve", "retries"):
        if getattr(crawl, key) < 0:
            raise ConfigError(f"'crawl.{key}' must not be negative", where=source)
    if crawl.max_manifest_bytes < 1024 or crawl.max_config_bytes < 1024:
        raise ConfigError("'crawl.max_manifest_bytes'/'crawl.max_config_bytes' must be at least 1024",
                          where=source)
    if config.github.enrich_interval_s < 0:
        raise ConfigError("'github.enrich_interval_s' must not be negative", where=source)
    if crawl.tag_source not in ("auto", "versions", "registry"):
        raise ConfigError("'crawl.tag_source' must be auto, versions or registry", where=source)
    _check_database(config.database, source)
    _check_url(config.github.api_url, "github.api_url", config.github.insecure, source)
    _check_url(config.github.graphql_url, "github.graphql_url", config.github.insecure, source)
    _check_url(config.registry.url, "registry.url", config.registry.insecure, source)


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
               environ: Mapping[str, str] | None = None) -> Secret | None:
    """The token from `file` if set, else from the environment; None if neither is set."""
    environ = os.environ if environ is None else environ
    if file is not None:
        try:
            # Bytes as they are: text mode would turn a CR inside the token into LF.
            value = Path(file).read_bytes().decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"'{what}.token_file' cannot be read: {file}: "
                              f"{getattr(exc, 'strerror', None) or exc.__class__.__name__}",
                              where=source) from None
        if not value:
            raise ConfigError(f"'{what}.token_file' is empty: {file}", where=source)
        _check_token(value, f"'{what}.token_file' {file}", source)
        _warn_if_exposed(Path(file), f"{what}.token_file")
        return Secret(value)
    if env_name:
        value = environ.get(env_name, "").strip()
        if value:
            _check_token(value, f"environment variable {env_name} ('{what}.token_env')", source)
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
    return Credentials(github=github, registry=registry or github,
                       database=database_password(config.database, config.source, environ))
