"""Every command is documented: its --help shows an example, README.md shows
how to run it, and the shell completion knows it."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from crawler import cli
from crawler.completion import script

README = Path(__file__).resolve().parent.parent / "README.md"


def commands() -> list[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_the_cli_has_the_documented_commands():
    assert set(commands()) >= {"sync", "query", "report", "status", "demo", "completion"}


@pytest.mark.parametrize("command", commands())
def test_every_command_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: {cli.PROG} {command}" in out
    example = re.search(r"^example: (.+)$", out, re.M)
    assert example, f"`{cli.PROG} {command} --help` shows no example"
    assert f"{cli.PROG}" in example.group(1) and command in example.group(1)


@pytest.mark.parametrize("command", commands())
def test_readme_documents_every_command(command):
    text = README.read_text()
    lines = [line for line in text.splitlines() if re.search(rf"\b{cli.PROG}\b.*\b{command}\b", line)]
    assert lines, f"README.md never shows `{cli.PROG} {command}`"


def test_readme_shows_the_summary_report():
    assert re.search(rf"\b{cli.PROG} report summary\b", README.read_text()), \
        "README.md should show `ghcr-inventory report summary` output from the demo"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_knows_every_command(shell):
    text = script(shell, cli.build_parser())
    assert all(command in text for command in commands())
    assert "--metrics-file" in text if shell == "bash" else "_describe" in text
