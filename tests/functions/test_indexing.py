"""What the Functions host will index: exactly our functions, with bindings that match parameters."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "model_registered": ("eventGridTrigger", None),
    "notify": ("eventGridTrigger", None),
    "reconcile_timer": ("timerTrigger", None),
    "judge_queue": ("queueTrigger", None),
    "alert_webhook": ("httpTrigger", "alerts"),
    "list_rollouts": ("httpTrigger", "rollouts"),
    "start_rollout": ("httpTrigger", "rollouts"),
    "get_rollout": ("httpTrigger", "rollouts/{rollout_id}"),
    "override_rollout": ("httpTrigger", "rollouts/{rollout_id}/{action}"),
    "openapi": ("httpTrigger", "openapi.json"),
    "rollout_report": ("httpTrigger", "rollouts/{rollout_id}/report"),
}


def test_app_registers_exactly_the_expected_functions_with_matching_bindings():
    """In a fresh interpreter with no settings at all, as the host would load it."""
    code = """
import inspect, json, function_app
out = {}
for f in function_app.app.get_functions():
    params = list(inspect.signature(f.get_user_function()).parameters)
    out[f.get_function_name()] = {
        "params": params,
        "bindings": [b.get_dict_repr() for b in f.get_bindings()],
    }
print(json.dumps(out, default=str))
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(result.stdout)
    assert set(found) == set(EXPECTED)
    for name, (trigger, route) in EXPECTED.items():
        bindings = found[name]["bindings"]
        triggers = [b for b in bindings if b["type"] == trigger]
        assert len(triggers) == 1, name
        if route is not None:
            assert triggers[0]["route"] == route
        for binding in bindings:
            if binding["name"] != "$return":
                assert binding["name"] in found[name]["params"], f"{name}: binding {binding['name']} has no parameter"


def test_timer_schedule_comes_from_an_app_setting():
    import function_app  # already imported by the session fixture; importing again is free

    del function_app
    from functions import reconcile_timer

    source = inspect.getsource(reconcile_timer)
    assert "%SAFE_ROLLOUT_RECONCILE_SCHEDULE%" in source


def test_the_queue_worker_reads_the_queue_named_by_an_app_setting_through_the_identity_based_connection():
    """The host resolves %SAFE_ROLLOUT_WORK_QUEUE% from app settings, and `SAFE_ROLLOUT_QUEUE` as a
    connection: a connection string locally, or SAFE_ROLLOUT_QUEUE__queueServiceUri with the app's
    identity in Azure (set by infra/main.bicep)."""
    code = """
import json, function_app
print(json.dumps([b.get_dict_repr() for f in function_app.app.get_functions() if f.get_function_name() == "judge_queue"
                  for b in f.get_bindings()], default=str))
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    (trigger,) = [b for b in json.loads(result.stdout) if b["type"] == "queueTrigger"]
    assert trigger["queueName"] == "%SAFE_ROLLOUT_WORK_QUEUE%"
    assert trigger["connection"] == "SAFE_ROLLOUT_QUEUE"
    bicep = (ROOT / "infra" / "main.bicep").read_text()
    assert "SAFE_ROLLOUT_QUEUE__queueServiceUri" in bicep


def test_http_functions_require_a_function_key():
    code = """
import json, function_app
print(json.dumps([b.get_dict_repr().get("authLevel") for f in function_app.app.get_functions()
                  for b in f.get_bindings() if b.get_dict_repr()["type"] == "httpTrigger"], default=str))
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    levels = json.loads(result.stdout)
    assert levels
    assert all(str(level).upper().endswith("FUNCTION") for level in levels), levels
