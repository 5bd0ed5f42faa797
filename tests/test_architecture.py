"""The structure stays what docs/architecture.md says: the import contracts
hold (import-linter), every module is on the map, the layers on the map
are the ones checked, and no code points to a design document the
repository does not have."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text()


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " 0 broken" in proc.stdout


def test_every_module_is_on_the_map():
    modules = [p.relative_to(ROOT).as_posix() for p in (ROOT / "crawler").rglob("*.py")
               if "sandbox" not in p.parts]
    missing = [m for m in modules if f"`{m}`" not in DOC]
    assert missing == [], f"docs/architecture.md does not name: {missing}"
    named = {word.strip("`") for word in DOC.split() if word.startswith("`crawler/") and word.endswith(".py`")}
    gone = [m for m in named if not (ROOT / m).exists()]
    assert gone == [], f"docs/architecture.md names modules that do not exist: {gone}"


def test_the_map_shows_the_checked_layers():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layered = [c for c in contracts if c["type"] == "layers"]
    assert len(layered) >= 4
    for contract in layered:
        block = "\n".join(contract["layers"])
        assert block in DOC, f"docs/architecture.md does not show the layers of {contract['name']!r}"


def test_code_points_to_the_map_not_to_a_missing_design_document():
    offenders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "crawler").rglob("*.py")
                 if "DESIGN.md" in p.read_text()]
    assert offenders == []
