"""Config loader: defaults, types, unknown keys, tokens, URL safety."""

from pathlib import Path

import pytest

from crawler.config import load_config, parse_config
from crawler.credentials import resolve_credentials
from crawler.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_parses_with_documented_defaults():
    config = load_config(ROOT / "config.example.toml")
    assert config.crawl.concurrency == 16
    assert config.crawl.timeout_s == 30.0
    assert config.registry.url == "https://ghcr.io"
    assert config.github.token_env == "GITHUB_TOKEN"
    assert config.database.path == ROOT / "inventory.db"
    assert [(o.name, o.kind, o.discovery) for o in config.owners] == [("acme", "org", "rest")]


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    f = tmp_path / "sub" / "c.toml"
    f.write_text('[database]\npath = "db/inv.db"\n[github]\ntoken_file = "tok"\n')
    config = load_config(f)
    assert config.database.path == tmp_path / "sub" / "db" / "inv.db"
    assert config.github.token_file == tmp_path / "sub" / "tok"


@pytest.mark.parametrize("text, needle", [
    ("[crawl]\nconcurency = 3", "unknown key 'crawl.concurency' (did you mean 'crawl.concurrency'?)"),
    ("[crawl]\nconcurrency = '3'", "'crawl.concurrency' must be an integer"),
    ("[crawl]\nconcurrency = 500", "'crawl.concurrency' must be between 1 and 64"),
    ("[crawl]\ntimeout_s = 0", "'crawl.timeout_s' must be positive"),
    ("[crawl]\nreferrers = 'yes'", "'crawl.referrers' must be true or false"),
    ("[github]\ninsecure = true\napi_url = 'https://api.github.com'", "'github.insecure'"),
    ("[registry]\nurl = 'http://registry.example.com'", "plain http to a non-loopback host"),
    ("[registry]\nurl = 'ftp://x'", "'registry.url' must be an http(s) URL"),
    ("[[owners]]\nkind = 'org'", "'owners[0].name' is required"),
    ("[[owners]]\nname = 'a'\nkind = 'team'", "'owners[0].kind' must be one of org, user"),
    ("[[owners]]\nname = 'a'\ndiscovery = 'magic'", "'owners[0].discovery' must be one of"),
    ("[[owners]]\nname = 'a'\ninclude = ['app-[x']", "bad glob 'app-[x': unclosed '['"),
    ("[[owners]]\nname = 'a'\ninclude = 'app'", "'owners[0].include' must be a list"),
    ("[[owners]]\nname = 'a'\ndiscovery = 'static'", "'owners[0].repositories' is required"),
    ("[[owners]]\nname = 'a'\n[[owners]]\nname = 'A'", "owner 'a' is listed twice"),
    ("[[owners]]\nname = 'a'\nbogus = 1", "unknown key 'owners[0].bogus'"),
    ("crawl = 3", "'crawl' must be a table"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_config_is_one_line_naming_key_and_file(text, needle):
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="/etc/inv.toml")
    message = str(info.value)
    assert needle in message
    assert message.startswith("/etc/inv.toml: ")
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_loopback_http_and_insecure_are_allowed():
    config = parse_config("[registry]\nurl = 'http://127.0.0.1:5000'\ninsecure = true\n"
                          "[github]\napi_url = 'http://localhost:8080'\n")
    assert config.registry.insecure is True


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_token_from_env_and_file(tmp_path):
    config = parse_config("[[owners]]\nname = 'a'\n[github]\ntoken_env = 'MY_TOKEN'")
    creds = resolve_credentials(config, environ={"MY_TOKEN": "ghp_secretvalue123"})
    assert creds.github.reveal() == "ghp_secretvalue123"
    assert "ghp_secretvalue123" not in repr(creds)
    assert creds.registry == creds.github
    tok = tmp_path / "tok"
    tok.write_text("ghp_fromfile456\n")
    config = parse_config(f"[[owners]]\nname = 'a'\n[github]\ntoken_file = '{tok}'")
    assert resolve_credentials(config, environ={}).github.reveal() == "ghp_fromfile456"


def test_missing_token_names_the_variable():
    config = parse_config("[[owners]]\nname = 'a'\n", source="c.toml")
    with pytest.raises(ConfigError, match=r"c.toml: no GitHub token for owner 'a'.*GITHUB_TOKEN is not set"):
        resolve_credentials(config, environ={})


def test_unreadable_token_file_names_key_and_file(tmp_path):
    config = parse_config(f"[[owners]]\nname = 'a'\n[github]\ntoken_file = '{tmp_path}/missing'",
                          source="c.toml")
    with pytest.raises(ConfigError, match=r"c.toml: 'github.token_file' cannot be read"):
        resolve_credentials(config, environ={})


def test_static_owner_needs_no_token():
    config = parse_config("[[owners]]\nname = 'library'\ndiscovery = 'static'\n"
                          "repositories = ['library/alpine']\n")
    creds = resolve_credentials(config, environ={})
    assert creds.github is None and creds.registry is None


def test_redaction_masks_every_registered_secret_however_many():
    from crawler import secret
    values = [f"tok_{n:04d}_" + "x" * 20 for n in range(40)]
    for v in values:
        secret.register(v)
    text = f"a {values[0]} b {values[39]} c {values[17]}{values[18]}"
    assert secret.redact(text) == "a *** b *** c ******"
    assert secret.redact("nothing here at all") == "nothing here at all"


@pytest.mark.parametrize("key, url", [
    ("github.api_url", "http://user:s3cret-pw@127.0.0.1:8080"),
    ("github.graphql_url", "https://x-access-token:s3cret-pw@api.github.com/graphql"),
    ("registry.url", "https://s3cret-pw@ghcr.io"),
    ("registry.url", "ftp://user:s3cret-pw@ghcr.io"),     # refused for the credentials, not echoed
])
def test_credentials_in_a_url_are_refused_without_echoing_them(key, url):
    section, name = key.split(".")
    with pytest.raises(ConfigError) as info:
        parse_config(f"[{section}]\n{name} = '{url}'\n", source="/etc/inv.toml")
    message = str(info.value)
    assert message.startswith("/etc/inv.toml: ") and f"'{key}' must not carry credentials" in message
    assert "s3cret-pw" not in message and "\n" not in message


def test_an_invalid_port_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'registry.url' has an invalid port"):
        parse_config("[registry]\nurl = 'https://ghcr.io:99999999'\n")


@pytest.mark.parametrize("token, problem", [
    ("ghp_abc\r\nX-Injected: yes", "a line break (U+000D) at character 8 of 24"),
    ("ghp_abc\ndef", "a line break (U+000A) at character 8"),
    ("ghp_\x1b[31mred", "a control character (U+001B) at character 5"),
    ("ghp_\x00abc", "a control character (U+0000)"),
    ("ghp_\x7fabc", "a control character (U+007F)"),
    ("ghp_\x9babc", "a control character (U+009B)"),
    ("ghp_tökén", "a non-ASCII character at character 6"),
])
def test_a_token_with_a_control_character_is_refused_naming_its_source(tmp_path, token, problem):
    config = parse_config("[[owners]]\nname = 'a'\n[github]\ntoken_env = 'MY_TOKEN'", source="c.toml")
    with pytest.raises(ConfigError) as info:
        resolve_credentials(config, environ={"MY_TOKEN": token})
    message = str(info.value)
    assert message.startswith("c.toml: environment variable MY_TOKEN ('github.token_env') holds a token with ")
    assert problem in message and token not in message and "ghp_" not in message and "\n" not in message
    tok = tmp_path / "tok"
    tok.write_text(token + "\n", encoding="utf-8")
    tok.chmod(0o600)
    config = parse_config(f"[[owners]]\nname = 'a'\n[github]\ntoken_file = '{tok}'", source="c.toml")
    with pytest.raises(ConfigError) as info:
        resolve_credentials(config, environ={})
    assert f"'github.token_file' {tok} holds a token with " in str(info.value) and problem in str(info.value)
    assert "ghp_" not in str(info.value)


def test_a_token_file_others_can_read_is_warned_about_once(tmp_path):
    from structlog.testing import capture_logs
    tok = tmp_path / "tok"
    tok.write_text("ghp_fromfile456\n")
    tok.chmod(0o644)
    config = parse_config(f"[[owners]]\nname = 'a'\n[github]\ntoken_file = '{tok}'")
    with capture_logs() as logs:
        assert resolve_credentials(config, environ={}).github.reveal() == "ghp_fromfile456"
        resolve_credentials(config, environ={})
    warnings = [e for e in logs if e["event"] == "token_file_exposed"]
    assert len(warnings) == 1 and warnings[0]["file"] == str(tok) and warnings[0]["mode"] == "0644"
    assert warnings[0]["log_level"] == "warning" and "ghp_fromfile456" not in repr(logs)
    private = tmp_path / "private"
    private.write_text("ghp_private789\n")
    private.chmod(0o600)
    config = parse_config(f"[[owners]]\nname = 'a'\n[github]\ntoken_file = '{private}'")
    with capture_logs() as logs:
        resolve_credentials(config, environ={})
    assert not [e for e in logs if e["event"] == "token_file_exposed"]


@pytest.mark.parametrize("text, needle", [
    ("[serve]\nlisten = '8080'", "'serve.listen' must be HOST:PORT"),
    ("[serve]\nlisten = '::1:8080'", "'serve.listen' must be HOST:PORT"),
    ("[serve]\ndebounce_s = -1", "'serve.debounce_s' must not be negative"),
    ("[serve]\nreconcile_interval_s = 'hourly'", "'serve.reconcile_interval_s' must be a number"),
    ("[serve]\nsecret = 'x'", "unknown key 'serve.secret'"),
])
def test_serve_keys_are_checked(text, needle):
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="c.toml")
    assert needle in str(err.value) and "c.toml" in str(err.value)


def test_the_webhook_secret_is_required_long_enough_and_never_echoed(tmp_path):
    from crawler.credentials import resolve_webhook_secret
    config = parse_config("[serve]\nlisten = '[::1]:0'", source="c.toml")
    assert config.serve.listen == "[::1]:0" and config.serve.secret_env == "GHCR_INVENTORY_WEBHOOK_SECRET"
    with pytest.raises(ConfigError, match="'serve.secret_env'"):
        resolve_webhook_secret(config, environ={})
    with pytest.raises(ConfigError, match="shorter than 16") as err:
        resolve_webhook_secret(config, environ={"GHCR_INVENTORY_WEBHOOK_SECRET": "tooShort-42"})
    assert "tooShort-42" not in str(err.value)
    assert resolve_webhook_secret(config, environ={"GHCR_INVENTORY_WEBHOOK_SECRET": "s" * 32}).reveal() == "s" * 32
    secret = tmp_path / "secret"
    secret.write_text("f" * 40 + "\n")
    secret.chmod(0o600)
    from_file = parse_config(f"[serve]\nsecret_file = '{secret}'", source="c.toml")
    assert resolve_webhook_secret(from_file, environ={}).reveal() == "f" * 40
    with pytest.raises(ConfigError, match="'serve.secret_file' cannot be read"):
        resolve_webhook_secret(parse_config("[serve]\nsecret_file = '/nonexistent/s'", source="c.toml"), environ={})


@pytest.mark.parametrize("text, needle", [
    ("[database]\npath = 'a.db'\nurl = 'postgresql://u@h/db'", "both set: use exactly one"),
    ("[database]\nurl = 'postgresql://u:hunter22@h/db'", "must not carry a password"),
    ("[database]\nurl = 'mysql://u@h/db'", "must be a postgresql:// URL"),
    ("[database]\nurl = 'postgresql://u@h'", "names no database"),
    ("[database]\nurl = 'postgresql://u@h:99999/db'", "invalid port"),
    ("[database]\nurl = 'postgresql://u@h/db'\nsslmode = 'sometimes'", "'database.sslmode' must be one of"),
    ("[database]\npassword_env = 'PW'", "'database.password_env' is only used with 'database.url'"),
    ("[database]\nurl = 'postgresql://u@h/db'\nlock_timeout_s = 0", "'database.lock_timeout_s' must be positive"),
])
def test_bad_postgres_settings_are_one_line(text, needle):
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="/etc/inv.toml")
    assert needle in str(info.value) and "hunter22" not in str(info.value)


def test_postgres_url_and_its_password(tmp_path):
    from crawler.credentials import database_password
    from crawler.secret import redact
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pg-password\n")
    config = parse_config(f"[database]\nurl = 'postgresql://crawler@db:5432/inv'\npassword_file = '{pw}'\n"
                          "sslmode = 'verify-full'", source="c.toml")
    assert config.database.path is None and config.database.url == "postgresql://crawler@db:5432/inv"
    assert database_password(config.database, config.source).reveal() == "s3cret-pg-password"
    assert redact("connecting with s3cret-pg-password") == "connecting with ***"
    from_env = parse_config("[database]\nurl = 'postgresql://crawler@db/inv'\npassword_env = 'INV_PW'", source="c")
    assert database_password(from_env.database, "c", {"INV_PW": "from-the-env-1"}).reveal() == "from-the-env-1"
    with pytest.raises(ConfigError, match="INV_PW is not set"):
        database_password(from_env.database, "c", {})
    libpq = parse_config("[database]\nurl = 'postgresql://crawler@db/inv'", source="c")
    assert database_password(libpq.database, "c", {"PGPASSWORD": "libpq-password"}).reveal() == "libpq-password"
    assert database_password(libpq.database, "c", {}) is None
