"""Cold start: time to import function_app (no settings, fresh interpreter) and the first call of
each function against the emulator (which loads the Azure SDKs lazily).
Target: import under 0.3 s.  Run: python -m bench.coldstart
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_CALLS = r"""
import json, tempfile, time, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.CRITICAL)
from pathlib import Path
t = time.perf_counter(); import function_app; out = {"import": time.perf_counter() - t}
from emulator.azurite import running_azurite
from emulator.host import user_functions
from tests.functions.harness import make_harness

def timed(name, call):
    t = time.perf_counter(); call(); out[name] = time.perf_counter() - t

with running_azurite() as conn, tempfile.TemporaryDirectory() as tmp:
    h = make_harness(user_functions(function_app.app), conn, "coldstart", Path(tmp))
    timed("model_registered (first)", lambda: h.register("2"))
    timed("reconcile_timer (first)", h.tick)
    timed("list_rollouts (first)", lambda: h.http("list_rollouts"))
    timed("get_rollout (first)", lambda: h.http("get_rollout", route={"rollout_id": h.rollout().id}))
    timed("alert_webhook (first)", lambda: h.alert({"schemaId": "x"}))
    timed("reconcile_timer (second)", h.tick)
print("RESULT " + json.dumps(out), flush=True)
"""


def main() -> int:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    imports = []
    for _ in range(7):
        code = "import time; t = time.perf_counter(); import function_app; print(time.perf_counter() - t)"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        imports.append(float(out.stdout))
    run = subprocess.run(
        [sys.executable, "-c", FIRST_CALLS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SAFE_ROLLOUT_ALERT_SECRET": "x" * 20},
    )
    # azure-ai-ml's pollers print dots on the same line: take what follows the marker
    calls = json.loads(next(line for line in run.stdout.splitlines() if "RESULT " in line).split("RESULT ", 1)[1])
    rows = [f"| import function_app (median of 7, fresh interpreter) | {statistics.median(imports) * 1000:.0f} ms |"]
    rows += [f"| {name} | {seconds * 1000:.0f} ms |" for name, seconds in calls.items() if name != "import"]
    text = (
        "# Cold start\n\n| what | time |\n|---|---|\n"
        + "\n".join(rows)
        + "\n\nTarget: import under 0.3 s (heavy SDKs are imported lazily, on first use).\n"
    )
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "coldstart.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
