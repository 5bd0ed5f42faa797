"""Credentials: the tokens, passwords and webhook secret a Config names, read
from the environment or a file (never argv), checked, and registered as
secrets so they are redacted; a token file others can read earns a warning."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

import structlog

from .config import Config, DatabaseConfig
from .dockerconfig import parse_docker_config
from .errors import ConfigError, ParseError
from .secret import Secret

log = structlog.get_logger("crawler.credentials")


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
