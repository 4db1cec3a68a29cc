"""Structural rules that keep the design honest."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "shared" / "rollout"
FORBIDDEN_IN_CORE = (
    "azure",
    "shared.adapters",
    "shared.bootstrap",
    "shared.service",
    "functions",
    "emulator",
    "requests",
    "urllib",
    "socket",
    "time",
    "os",
    "random",
    "logging",
)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_azure_no_io_no_clock():
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in CORE.rglob("*.py")
        for name in imports_of(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_CORE)
    }
    assert not offenders, offenders


def test_core_never_reads_the_clock():
    for path in CORE.rglob("*.py"):
        text = path.read_text()
        assert ".now(" not in text, f"{path.name} reads the clock"
        assert "utcnow" not in text, f"{path.name} reads the clock"


def test_function_app_imports_with_no_settings_and_no_heavy_sdk():
    """A failing import makes Azure load zero functions; heavy SDKs must load lazily."""
    code = (
        "import sys, time; t = time.perf_counter(); import function_app; "
        "heavy = [m for m in ('azure.ai.ml', 'azure.monitor.query', 'azure.monitor.querymetrics', "
        "'azure.data.tables', 'azure.identity', 'scipy') if m in sys.modules]; "
        "print(heavy)"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
