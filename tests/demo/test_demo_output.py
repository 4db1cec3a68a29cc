"""The demo's output is its own: no SDK log lines in the live view or the plain lines, whole
reasons in --plain; and the demo installs only what it needs."""

from __future__ import annotations

import logging
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from demo.__main__ import quiet
from demo.view import LiveView

ROOT = Path(__file__).resolve().parents[2]


def test_azure_ai_ml_log_lines_do_not_reach_the_terminal(capfd):
    import azure.ai.ml  # noqa: F401  (gives azure.ai.ml loggers their own INFO level and stderr handler)
    from azure.ai.ml._utils import _endpoint_utils  # noqa: F401

    with quiet():
        logging.getLogger("azure.ai.ml.operations._online_deployment_operations").info("Check: endpoint x exists")
        logging.getLogger("azure.ai.ml._utils._endpoint_utils").warning(".")
        logging.getLogger("azure.ai.ml").warning("Done ")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    # ...and only while the demo runs: the process's logging is as it was afterwards.
    assert logging.root.manager.disable == logging.NOTSET


def _decision(reason: str) -> SimpleNamespace:
    return SimpleNamespace(
        seq=1,
        at=datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        from_phase="Mirroring",
        to_phase="RollingBack",
        actions=("x",),
        actor="safe-rollout",
        reason=reason,
    )


def test_plain_lines_carry_whole_reasons_on_one_line(capsys):
    reason = "mirror 20% failed: latency: green P90 202 ms vs blue 126 ms: +61% exceeds +20% (p<1e-12); " + (
        "tail: tail P99 +59% exceeds +50%: 16.2% of green's requests vs 1.0% of blue's slower than 181 ms (p<1e-12)"
    )
    rollout = SimpleNamespace(id="r1", model=SimpleNamespace(label="fraud-model:3"))
    store = SimpleNamespace(find=lambda: [SimpleNamespace(rollout=rollout)], decisions=lambda _id: [_decision(reason)])
    view = LiveView(plain=True)
    view.update(SimpleNamespace(service=SimpleNamespace(store=store)))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].endswith(reason)


def test_the_demo_bootstraps_without_the_test_tools():
    demo = (ROOT / "scripts/demo.sh").read_text()
    assert "./scripts/bootstrap.sh --demo" in demo
    bootstrap = (ROOT / "scripts/bootstrap.sh").read_text()
    assert '[ "$PROFILE" = all ] && [ ! -x .tools/checkov/bin/checkov ]' in bootstrap
    assert "./scripts/bootstrap.sh\n" in (ROOT / "scripts/test.sh").read_text()  # the tests: everything
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/bootstrap.sh"), "--nope"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "unknown argument --nope" in result.stderr


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line and not line.startswith("-r"):
            pins[re.split(r"[~=<>!]", line)[0].lower()] = line
    return pins


def test_the_demos_requirements_are_the_dev_requirements_pins():
    demo, dev = _pins("requirements-demo.txt"), _pins("requirements-dev.txt")
    assert demo, "requirements-demo.txt lists the demo's extras"
    assert {name: dev.get(name) for name in demo} == demo
    assert "-r requirements.txt" in (ROOT / "requirements-demo.txt").read_text()
