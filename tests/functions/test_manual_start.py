"""POST /api/rollouts: a rollout started by a person, through the same path as a ModelRegistered
event (policy matching, idempotency, refusals), against the emulator and Azurite."""

from __future__ import annotations

import json

from shared.rollout.model import RolloutPhase
from tests.functions.harness import DEFAULT_POLICY, make_harness

P = RolloutPhase


def start(harness, model: str, *, endpoint: str = "fraud-scorer", workspace: str | None = "default", **extra):
    body = {"endpoint": endpoint, "model": model, "actor": "ana", "reason": "hotfix", **extra}
    if workspace == "default":
        body["workspace"] = harness.world.emu.workspace_id
    elif workspace is not None:
        body["workspace"] = workspace
    response = harness.http("start_rollout", "POST", body=body)
    return response.status_code, json.loads(response.get_body())


def test_a_workspace_model_starts_like_an_event_with_the_caller_in_the_audit_trail(harness):
    status, view = start(harness, "fraud-model:2")
    assert status == 201, view
    assert view["outcome"]["status"] == "started"
    assert view["phase"] == "Pending"
    assert view["trigger"] == "manual:ana"
    assert view["model"] == {"name": "fraud-model", "version": "2", "registry": None}
    first = harness.service.store.decisions(view["id"])[0]
    assert first.actor == "ana"
    assert "started by ana" in first.reason
    assert "hotfix" in first.reason
    green = harness.world.emu.deployments[("fraud-scorer", view["green"])].body["properties"]["model"]
    assert green.endswith(
        "/workspaces/" + harness.world.emu.workspace_id.rsplit("/", 1)[1] + "/models/fraud-model/versions/2"
    )
    harness.tick_until(lambda: harness.phase() == P.MIRRORING)


def test_a_registry_model_gives_green_the_registry_asset_id(harness):
    harness.world.emu.register_model("fraud-model", "3")  # the emulator holds it; Azure reads the registry
    status, view = start(harness, "azureml://registries/shared-models/models/fraud-model/versions/3")
    assert status == 201, view
    assert view["model"]["registry"] == "shared-models"
    green = harness.world.emu.deployments[("fraud-scorer", view["green"])].body["properties"]["model"]
    assert green == "azureml://registries/shared-models/models/fraud-model/versions/3"


def test_a_repeated_request_returns_the_same_rollout(harness):
    status, first = start(harness, "fraud-model:2")
    assert status == 201
    status, again = start(harness, "fraud-model:2")
    assert status == 200
    assert again["id"] == first["id"]
    assert again["outcome"]["status"] == "duplicate"
    assert len(harness.rollouts()) == 1


def test_an_older_version_is_refused_with_the_reason(harness):
    status, body = start(harness, "fraud-model:1")
    assert status == 409
    assert "already runs fraud-model:1" in body["detail"]
    assert harness.rollouts() == []


def test_a_model_the_policy_does_not_send_there_is_refused(harness):
    status, body = start(harness, "fraud-model:2", endpoint="other-scorer")
    assert status == 404
    assert "sends model fraud-model to endpoint fraud-scorer, not other-scorer" in body["detail"]
    status, body = start(harness, "churn-model:2")
    assert status == 404
    assert "no target in the policy file matches model churn-model" in body["detail"]
    assert harness.rollouts() == []


def test_an_endpoint_azure_does_not_have_is_not_found(fns, azurite, table_name, tmp_path):
    policy = DEFAULT_POLICY + "  - model: churn-model\n    endpoint: churn-scorer\n"
    harness = make_harness(fns, azurite, table_name, tmp_path, policy=policy)
    status, body = start(harness, "churn-model:2", endpoint="churn-scorer")
    assert status == 404
    assert "churn-scorer was not found" in body["detail"]
    assert "Traceback" not in json.dumps(body)


def test_the_workspace_may_be_left_out_only_when_the_policy_names_one(fns, azurite, table_name, tmp_path, harness):
    status, body = start(harness, "fraud-model:2", workspace=None)
    assert status == 409
    assert "give the workspace" in body["detail"]
    policy = DEFAULT_POLICY + f"    workspace: {harness.world.emu.workspace_id}\n"
    named = make_harness(fns, azurite, table_name, tmp_path, policy=policy)
    status, view = start(named, "fraud-model:2", workspace=None)
    assert status == 201, view
    assert view["workspace"].lower() == harness.world.emu.workspace_id.lower()


def test_bad_bodies_are_422_without_a_traceback(harness):
    for body in (
        b"not json",
        b"{}",
        json.dumps({"endpoint": "fraud-scorer", "model": "fraud-model", "actor": "ana"}).encode(),
        json.dumps({"endpoint": "fraud-scorer", "model": "fraud-model:2", "actor": "event:x"}).encode(),
        json.dumps({"endpoint": "fraud-scorer", "model": "a:b", "actor": "ana", "workspace": "nope"}).encode(),
        json.dumps({"endpoint": "fraud-scorer", "model": "a:b", "actor": "ana", "extra": 1}).encode(),
        json.dumps({"endpoint": "x", "model": "fraud-model:2", "actor": "ana"}).encode(),
    ):
        response = harness.http("start_rollout", "POST", body=body)
        assert response.status_code == 422, body
        assert "Traceback" not in response.get_body().decode()
    assert harness.rollouts() == []


def test_azure_unreachable_is_503_with_retry_after(harness):
    from emulator.azure import Fault

    harness.world.emu.faults.append(Fault("endpoint.get", status=503, times=100))
    response = harness.http(
        "start_rollout",
        "POST",
        body={
            "endpoint": "fraud-scorer",
            "model": "fraud-model:2",
            "actor": "ana",
            "workspace": harness.world.emu.workspace_id,
        },
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert harness.rollouts() == []
