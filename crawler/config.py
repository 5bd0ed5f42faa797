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
    path: Path = Path("inventory.db")


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


@dataclass(frozen=True, slots=True)
class Config:
    source: str = "<defaults>"
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    github: GitHubConfig = field(default_factory=GitHubConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    owners: tuple[OwnerConfig, ...] = ()
    serve: ServeConfig = field(default_factory=ServeConfig)

    def owner(self, name: str) -> OwnerConfig | None:
        return next((o for o in self.owners if o.name.lower() == name.lower()), None)


# --- the pure loader ------------------------------------------------------

_SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "github": GitHubConfig,
    "registry": RegistryConfig,
    "crawl": CrawlConfig,
    "serve": ServeConfig,
}
_PATH_KEYS = {"database.path", "github.token_file", "registry.token_file", "serve.secret_file"}


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
    if name == "database" and "path" not in values:
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
    return Credentials(github=github, registry=registry or github)


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
