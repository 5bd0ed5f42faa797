"""Property tests for the engine's own pure parsers (GitHub REST pages, the
config loader, age durations): any input gives a value or the project's own
error — never another exception."""

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.cli import parse_age
from crawler.config import parse_config
from crawler.errors import ConfigError, ParseError, UsageError
from crawler.github import parse_packages, parse_versions

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)

version_like = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(-2**63, 2**63 - 1), st.text(max_size=5), st.none()),
     "name": st.one_of(st.just("sha256:" + "a" * 64), st.text(max_size=80), st.integers(0, 10)),
     "metadata": st.one_of(st.none(), json_values,
                           st.fixed_dictionaries({"container": st.one_of(json_values, st.fixed_dictionaries(
                               {"tags": st.one_of(json_values, st.lists(st.text(max_size=20), max_size=5))}))}))},
    optional={"created_at": json_values, "updated_at": json_values})

package_like = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=30), st.integers(0, 10), st.none())},
    optional={"id": json_values, "visibility": json_values, "version_count": json_values,
              "repository": st.one_of(json_values, st.fixed_dictionaries({"full_name": json_values})),
              "package_type": st.sampled_from(["container", "npm", 3]), "updated_at": json_values})


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps),
                 st.lists(version_like, max_size=5).map(orjson.dumps)))
def test_versions_page_parser_raises_only_parse_error(body):
    try:
        versions = parse_versions(body).items
    except ParseError:
        return
    for v in versions:
        assert v.digest.startswith(("sha256:", "sha512:")) and isinstance(v.tags, tuple)


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps),
                 st.lists(package_like, max_size=5).map(orjson.dumps)))
def test_packages_page_parser_raises_only_parse_error(body):
    try:
        packages = parse_packages(body).items
    except ParseError:
        return
    assert all(isinstance(p.name, str) and p.name for p in packages)


toml_sections = st.dictionaries(
    st.sampled_from(["database", "github", "registry", "crawl", "owners", "bogus"]),
    st.one_of(json_values, st.dictionaries(
        st.sampled_from(["path", "concurrency", "timeout_s", "url", "insecure", "token_env", "name", "kind",
                         "include", "api_url", "retries", "max_wait_s", "discovery", "repositories"]),
        st.one_of(st.integers(-5, 500), st.booleans(), st.text(max_size=30),
                  st.lists(st.text(max_size=10), max_size=3)), max_size=5)), max_size=4)


def _to_toml(data: dict) -> str:
    lines = []
    for section, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{section}]")
            for key, value in table.items():
                lines.append(f"{key} = {_toml_value(value)}")
        else:
            lines.append(f"{section} = {_toml_value(table)}")
    return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None and not isinstance(v, dict)) + "]"
    return '""'


@settings(max_examples=200)
@given(st.one_of(st.text(max_size=200), toml_sections.map(_to_toml)))
def test_config_loader_raises_only_config_error(text):
    try:
        config = parse_config(text, source="fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml: ") and "\n" not in str(exc)
        return
    assert 1 <= config.crawl.concurrency <= 64


@given(st.text(max_size=20))
def test_age_parser_raises_only_usage_error(text):
    try:
        assert parse_age(text) > 0
    except UsageError:
        pass
