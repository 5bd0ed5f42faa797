"""Shell completion scripts, generated from the argparse parser (argparse has
no completion of its own), so they never drift from the real options."""

from __future__ import annotations

import argparse


def _commands(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: sorted(o for a in p._actions for o in a.option_strings)
            for name, p in sub.choices.items()}


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    commands = _commands(parser)
    top = sorted(o for a in parser._actions for o in a.option_strings)
    if shell == "bash":
        cases = "\n".join(f'        {name}) opts="{" ".join(opts)}" ;;' for name, opts in commands.items())
        return f"""# bash completion for ghcr-inventory: source <(ghcr-inventory completion bash)
_ghcr_inventory() {{
    local cur cmd opts i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    cmd=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in {"|".join(commands)}) cmd="${{COMP_WORDS[i]}}"; break ;; esac
    done
    case "$cmd" in
{cases}
        *) opts="{" ".join(top)} {" ".join(commands)}" ;;
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}}
complete -o default -F _ghcr_inventory ghcr-inventory
"""
    lines = "\n".join(f"    '{name}:{parser.prog} {name}'" for name in commands)
    return f"""#compdef ghcr-inventory
# zsh completion for ghcr-inventory: ghcr-inventory completion zsh > "${{fpath[1]}}/_ghcr-inventory"
_ghcr_inventory() {{
  local -a commands
  commands=(
{lines}
  )
  if (( CURRENT == 2 )); then _describe 'command' commands; else _files; fi
}}
compdef _ghcr_inventory ghcr-inventory
"""
