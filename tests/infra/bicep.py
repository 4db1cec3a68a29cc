"""The Bicep in infra/, parsed into a structure tests can walk.

The Bicep CLI cannot be installed here (its npm and PyPI wrappers download a native binary), so the
files are parsed with pycep, the Bicep parser checkov itself uses (installed with checkov in
`.tools/checkov` by scripts/bootstrap.sh). pycep turns a file into JSON: `parameters`, `variables`,
`resources` (each with `type`, `api_version`, `existing`, `config`), `outputs`. A resource with a
loop or a condition has its body one level down (`config.config`); identifiers and literal strings
both come back as plain strings, so names of variables are resolved here.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHECKOV_PYTHON = ROOT / ".tools" / "checkov" / "bin" / "python"

_PARSE = """
import json, sys
from pathlib import Path
from pycep import BicepParser
print(json.dumps(BicepParser().parse(file_path=Path(sys.argv[1])), default=str))
"""


@cache
def parse(name: str) -> dict[str, Any]:
    return parse_file(INFRA / name)


@cache
def parse_file(path: Path) -> dict[str, Any]:
    """Any Bicep file (e.g. a mode's variant written by tests/infra/modes.py)."""
    assert CHECKOV_PYTHON.exists(), "pycep comes with checkov, installed by scripts/bootstrap.sh"
    run = subprocess.run(
        [str(CHECKOV_PYTHON), "-c", _PARSE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, f"pycep could not parse {path}: {run.stderr[-2000:]}"
    parsed: dict[str, Any] = json.loads(run.stdout)
    return parsed


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource's own properties, under any loop or condition."""
    config: dict[str, Any] = resource["config"]
    while "config" in config and ("loop_type" in config or "condition" in config):
        config = config["config"]
    return config


def condition(resource: dict[str, Any]) -> Any:
    """The resource's `if (...)` condition as pycep gives it, or None."""
    config = resource["config"]
    while isinstance(config, dict):
        if "condition" in config and "config" in config:
            return config["condition"]
        if "loop_type" in config and "config" in config:
            config = config["config"]
            continue
        return None
    return None


def resources(name: str, type_: str) -> dict[str, dict[str, Any]]:
    """Symbolic name -> resource, for every resource of that type in infra/{name}."""
    return {sym: r for sym, r in parse(name)["resources"].items() if r["type"].lower() == type_.lower()}


def resolve(name: str, value: Any) -> Any:
    """A variable's value when `value` names a variable of infra/{name}; else `value` itself."""
    variables = parse(name).get("variables", {})
    if isinstance(value, str) and value in variables:
        return variables[value]["value"]
    return value


def mentions(tree: Any, word: str) -> bool:
    """Whether an identifier or string anywhere in a pycep expression equals `word`."""
    if isinstance(tree, str):
        return tree == word
    if isinstance(tree, dict):
        return any(mentions(v, word) for v in tree.values())
    if isinstance(tree, list):
        return any(mentions(v, word) for v in tree)
    return False
