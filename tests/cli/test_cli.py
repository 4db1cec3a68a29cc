"""`safe-rollout` against the real app: its HTTP transport routed to the function handlers (the
harness's emulator and Azurite), output captured."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner
from rich.console import Console

from cli.main import app
from shared.rollout.model import RolloutPhase as P

_ONE = re.compile(r"^/rollouts/(?P<rollout_id>[^/]+)$")
_REPORT = re.compile(r"^/rollouts/(?P<rollout_id>[^/]+)/report$")
_ACTION = re.compile(r"^/rollouts/(?P<rollout_id>[^/]+)/(?P<action>[^/]+)$")


def transport_to(harness, on_get: Callable[[], None] | None = None):
    """What the Functions host does with the CLI's requests: route them to the handlers."""

    def send(method: str, path: str, params: Any, body: Any) -> tuple[int, Any]:
        route: dict[str, str] = {}
        if path == "/rollouts":
            name = "list_rollouts" if method == "GET" else "start_rollout"
        elif m := _ONE.match(path):
            name, route = "get_rollout", m.groupdict()
            if on_get is not None:
                on_get()
        elif (m := _REPORT.match(path)) and method == "GET":
            name, route = "rollout_report", m.groupdict()
        elif m := _ACTION.match(path):
            name, route = "override_rollout", m.groupdict()
        else:
            return 404, {"detail": "no such route"}
        response = harness.http(name, method, route=route, params=dict(params or {}), body=body)
        if response.mimetype == "text/html":
            return response.status_code, response.get_body().decode()
        return response.status_code, json.loads(response.get_body())

    return send


def run(harness, *args: str, on_get: Callable[[], None] | None = None, console: Console | None = None):
    obj: dict[str, Any] = {"transport": transport_to(harness, on_get)}
    if console is not None:
        obj["console"] = console
    return CliRunner().invoke(app, list(args), obj=obj, env={"SAFE_ROLLOUT_ACTOR": "ana"})


def in_canary(harness) -> str:
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.CANARY)
    return harness.rollout().id


def test_list_and_json_output(harness):
    rollout_id = in_canary(harness)
    result = run(harness, "list")
    assert result.exit_code == 0, result.output
    assert rollout_id in result.stdout
    assert "fraud-model:2" in result.stdout
    result = run(harness, "-o", "json", "list", "--endpoint", "fraud-scorer")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed["count"] == 1
    assert listed["rollouts"][0]["phase"] == "Canary"
    assert json.loads(run(harness, "-o", "json", "list", "--phase", "Succeeded").stdout)["count"] == 0


def test_get_by_id_and_by_model_version(harness):
    rollout_id = in_canary(harness)
    by_id = run(harness, "-o", "json", "get", rollout_id)
    assert by_id.exit_code == 0, by_id.output
    assert json.loads(by_id.stdout)["id"] == rollout_id
    by_model = run(harness, "-o", "json", "get", "fraud-model:2")
    assert by_model.exit_code == 0, by_model.output
    view = json.loads(by_model.stdout)
    assert view["id"] == rollout_id
    assert view["decisions"]
    drawn = run(harness, "get", "fraud-model:2")
    assert drawn.exit_code == 0, drawn.output
    assert "Canary" in drawn.stdout
    assert "last decisions" in drawn.stdout


def test_a_command_is_recorded_with_the_actor(harness):
    rollout_id = in_canary(harness)
    result = run(harness, "pause", rollout_id, "--reason", "looking into it")
    assert result.exit_code == 0, result.output
    assert "pause:" in result.stdout
    assert harness.phase() == P.PAUSED
    last = harness.service.store.decisions(rollout_id)[-1]
    assert (last.actor, "looking into it" in last.reason) == ("ana", True)
    assert run(harness, "resume", "fraud-model:2").exit_code == 0
    assert harness.phase() != P.PAUSED
    refused = run(harness, "approve", rollout_id)  # no approval gate here
    assert refused.exit_code == 1
    assert "refused (409)" in refused.stderr


def test_start_by_hand_and_its_repeat(harness):
    workspace = harness.world.emu.workspace_id
    result = run(harness, "start", "fraud-scorer", "fraud-model:2", "--workspace", workspace, "--reason", "hotfix")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("started: r-")
    again = run(
        harness, "-o", "json", "start", "fraud-scorer", "fraud-model", "--version", "2", "--workspace", workspace
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["outcome"]["status"] == "duplicate"
    older = run(harness, "start", "fraud-scorer", "fraud-model:1", "--workspace", workspace)
    assert older.exit_code == 1
    assert "already runs" in older.stderr
    assert len(harness.rollouts()) == 1


def test_exit_codes(harness):
    assert run(harness, "get", "r-00000000000000000000").exit_code == 1  # unknown id: the API says 404
    assert run(harness, "get", "fraud-model:9").exit_code == 1  # no such rollout
    assert run(harness, "get", "not-an-id").exit_code == 2
    assert run(harness, "start", "fraud-scorer", "fraud-model").exit_code == 2  # which version?
    assert run(harness, "list", "--phase", "Sideways").exit_code == 2
    assert run(harness, "frobnicate").exit_code == 2
    unconfigured = CliRunner().invoke(app, ["list"], env={"SAFE_ROLLOUT_URL": ""})
    assert unconfigured.exit_code == 2
    unreachable = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", "--key", "k", "list"])
    assert unreachable.exit_code == 3, unreachable.output
    assert "cannot reach" in unreachable.stderr


def test_a_503_is_exit_code_3(harness):
    from emulator.azure import Fault

    harness.world.emu.faults.append(Fault("endpoint.get", status=503, times=100))
    workspace = harness.world.emu.workspace_id
    result = run(harness, "start", "fraud-scorer", "fraud-model:2", "--workspace", workspace)
    assert result.exit_code == 3, result.output
    assert "unavailable (503)" in result.stderr


def test_watch_redraws_frames_as_the_rollout_moves(harness):
    rollout_id = in_canary(harness)
    console = Console(file=io.StringIO(), force_terminal=True, width=110, record=True, color_system=None)
    result = run(
        harness,
        "get",
        rollout_id,
        "--watch",
        "--frames",
        "3",
        "--interval",
        "0",
        on_get=lambda: harness.tick(2),
        console=console,
    )
    assert result.exit_code == 0, result.output
    text = console.export_text()
    frames = re.findall(r"frame (\d) · next refresh in 0s", text)
    assert list(dict.fromkeys(frames)) == ["1", "2", "3"]  # Live draws the last frame once more as it stops
    assert "stage" in text
    assert "2 of 4" in text  # mirror, 10%, 50%, bake: the 10% step
    assert "green live" in text
    assert " 10%" in text
    assert "minimum time" in text
    assert "last decisions" in text
    # the interim bounds of every check against its margins, as the judge last saw them
    assert "checks on the last judged window" in text
    assert re.search(r"errors\s+│?\s*(Pass|Inconclusive|NoData)", text)
    assert "bounds" in text
    print(text[text.rfind("╭") :])  # the last frame, for the record


def test_watch_stops_when_the_rollout_ends(harness):
    rollout_id = in_canary(harness)
    assert run(harness, "rollback", rollout_id, "--reason", "enough").exit_code == 0
    harness.until_traffic_lands()
    harness.tick_until(lambda: harness.phase().terminal)
    console = Console(file=io.StringIO(), force_terminal=True, width=110, record=True, color_system=None)
    result = run(harness, "get", rollout_id, "--watch", "--interval", "0", console=console)
    assert result.exit_code == 0, result.output
    assert "RolledBack: finished" in console.export_text()
