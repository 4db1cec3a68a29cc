"""The emulated Azure ML control plane is as slow as Azure and refuses what Azure refuses.

Durations, status codes, long-running-operation headers and bodies are the ones Azure's own
recorded sessions show (tests/recordings/README.md); each refusal names its source in
emulator/ml_control.py. Requests go through the transport the SDKs use."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from azure.core.pipeline import Pipeline
from azure.core.rest import HttpRequest

from emulator.azure import Emulator
from emulator.clock import SimClock
from emulator.scoring import AML_TOKEN, SCORING_KEYS
from shared.rollout.model import TrafficSplit
from tests.emulated import make_world

GREEN = "fraud-model-v2"


class Arm:
    def __init__(self, world) -> None:
        self.world = world
        self.emu = world.emu
        self.pipeline = Pipeline(transport=world.transport, policies=[])

    def __call__(
        self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        if not url.startswith("https://"):
            url = f"https://management.azure.com{url}"
        if "api-version" not in url:
            url += "?api-version=2025-12-01"
        content = json.dumps(body).encode() if body is not None else None
        headers = {**({"Content-Type": "application/json"} if content else {}), **(headers or {})}
        response = self.pipeline.run(HttpRequest(method, url, headers=headers, content=content)).http_response
        response.read()
        payload = response.content
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, parsed

    def endpoint(self, name: str = "fraud-scorer") -> str:
        return self.emu.endpoint_id(name)

    def deployment(self, name: str, endpoint: str = "fraud-scorer") -> str:
        return self.emu.deployment_id(endpoint, name)

    def put_traffic(self, live: dict[str, int], mirror: dict[str, int] | None = None, name: str = "fraud-scorer"):
        _, _, body = self("GET", self.endpoint(name))
        body["properties"]["traffic"] = live
        body["properties"]["mirrorTraffic"] = mirror or {}
        return self("PUT", self.endpoint(name), body)

    def put_deployment(self, name: str, version: str = "2", endpoint: str = "fraud-scorer"):
        _, _, blue = self("GET", self.deployment("blue", endpoint))
        blue["properties"]["model"] = f"{self.emu.workspace_id}/models/fraud-model/versions/{version}"
        for key in ("id", "name", "type", "systemData"):
            blue.pop(key)
        return self("PUT", self.deployment(name, endpoint), blue)

    def poll(self, headers: dict[str, str]) -> dict[str, Any]:
        status, poll_headers, body = self("GET", headers["azure-asyncoperation"])
        assert status == 200
        assert "retry-after" not in poll_headers  # recorded polls carry none
        return body

    def advance(self, seconds: float) -> None:
        self.world.clock.advance(timedelta(seconds=seconds))


@pytest.fixture
def arm() -> Arm:
    return Arm(make_world())


def with_green(arm: Arm) -> Arm:
    """Green created and provisioned (blue holds all live traffic)."""
    status, _, _ = arm.put_deployment(GREEN)
    assert status == 201
    arm.advance(arm.emu.deployment_provisioning.total_seconds() + 1)
    return arm


# -- how long things take ------------------------------------------------------------------------


def test_defaults_are_the_durations_the_recordings_show():
    emu = Emulator(SimClock())
    assert emu.endpoint_creation == timedelta(seconds=90)  # recorded 90.5 s twice
    assert emu.deployment_provisioning == timedelta(seconds=570)  # recorded 582 s and 551 s
    assert emu.endpoint_update == timedelta(seconds=20)  # recorded 20.4 s
    assert emu.poll_retry_after is None  # recorded polls carry no Retry-After


def test_endpoint_create_answers_201_with_the_lro_headers_and_takes_90_seconds(arm):
    status, headers, body = arm("PUT", arm.endpoint("fresh-endpoint"), {"location": "eastus", "properties": {}})
    assert status == 201
    assert headers["x-ms-async-operation-timeout"] == "PT30M"
    assert "/mfeOperationsStatus/" in headers["azure-asyncoperation"]
    assert headers["location"].split("?")[0].endswith("/onlineEndpoints/fresh-endpoint")
    assert "retry-after" not in headers
    assert body["properties"]["provisioningState"] == "Creating"
    assert body["properties"]["scoringUri"] is None
    assert body["identity"]["principalId"]  # Azure made the system-assigned identity
    running = arm.poll(headers)
    assert (running["status"], running["percentComplete"]) == ("Updating", 0.0)
    assert {"id", "name", "startTime"} <= set(running)
    arm.advance(89)
    assert arm.poll(headers)["status"] == "Updating"
    arm.advance(2)
    done = arm.poll(headers)
    assert (done["status"], done["percentComplete"]) == ("Succeeded", 100.0)
    _, _, body = arm("GET", arm.endpoint("fresh-endpoint"))
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert body["properties"]["scoringUri"].endswith("/score")


def test_deployment_create_answers_updating_and_takes_about_ten_minutes(arm):
    status, headers, body = arm.put_deployment(GREEN)
    assert status == 201
    assert headers["x-ms-async-operation-timeout"] == "PT30M"
    assert headers["location"].split("?")[0].endswith(f"/deployments/{GREEN}")
    assert body["properties"]["provisioningState"] == "Updating"  # as recorded for a new deployment
    arm.advance(569)
    assert arm.poll(headers)["status"] == "Updating"
    arm.advance(2)
    assert arm.poll(headers)["status"] == "Succeeded"
    assert arm("GET", arm.deployment(GREEN))[2]["properties"]["provisioningState"] == "Succeeded"


def test_a_traffic_update_shows_the_old_split_while_updating_and_users_follow_it_only_once_it_lands(arm):
    with_green(arm)
    before = arm.emu.routed_split("fraud-scorer")
    started = arm.world.clock.now()
    status, headers, body = arm.put_traffic({"blue": 90, GREEN: 10})
    assert status == 201  # recorded for an update too
    assert body["properties"]["provisioningState"] == "Updating"
    assert body["properties"]["traffic"] == {"blue": 100}  # recorded: the old traffic
    arm.advance(19)
    _, _, shown = arm("GET", arm.endpoint())
    assert shown["properties"]["provisioningState"] == "Updating"
    assert shown["properties"]["traffic"] == {"blue": 100}
    assert arm.emu.routed_split("fraud-scorer") == before == TrafficSplit(live={"blue": 100})
    arm.advance(2)
    _, _, shown = arm("GET", arm.endpoint())
    assert shown["properties"]["provisioningState"] == "Succeeded"
    assert shown["properties"]["traffic"] == {"blue": 90, GREEN: 10}
    assert arm.poll(headers)["status"] == "Succeeded"
    when, _, split = arm.emu.traffic_history[-1]
    assert split == TrafficSplit(live={"blue": 90, GREEN: 10})
    assert when == started + timedelta(seconds=20)  # the users' split changed when the update landed
    assert arm.emu.sim.endpoints["fraud-scorer"].splits[-1] == (when, split)


def test_what_get_shows_during_an_update_is_configurable(arm):
    with_green(arm)
    arm.emu.traffic_visible_during_update = True
    arm.put_traffic({"blue": 90, GREEN: 10})
    _, _, shown = arm("GET", arm.endpoint())
    assert (shown["properties"]["provisioningState"], shown["properties"]["traffic"]) == (
        "Updating",
        {"blue": 90, GREEN: 10},
    )
    assert arm.emu.routed_split("fraud-scorer") == TrafficSplit(live={"blue": 100})  # users: not yet


def test_scoring_follows_the_split_that_landed(arm):
    with_green(arm)
    arm.put_traffic({GREEN: 100})
    score = "https://fraud-scorer.eastus.inference.ml.azure.com/score"
    key = {"Authorization": f"Bearer {SCORING_KEYS[0]}"}
    status, headers, _ = arm("POST", score, {"data": [1]}, key)
    assert (status, headers["azureml-model-deployment"]) == (200, "blue")  # the update has not landed
    arm.advance(21)
    assert arm("POST", score, {"data": [1]}, key)[1]["azureml-model-deployment"] == GREEN


def test_scoring_without_the_endpoints_key_or_token_is_401(arm):
    score = "https://fraud-scorer.eastus.inference.ml.azure.com/score"
    assert arm("POST", score, {"data": [1]})[0] == 401  # no Authorization header
    assert arm("POST", score, {"data": [1]}, {"Authorization": "Bearer not-the-key"})[0] == 401
    assert arm("POST", score, {"data": [1]}, {"Authorization": f"Basic {SCORING_KEYS[0]}"})[0] == 401
    assert arm("POST", score, {"data": [1]}, {"Authorization": f"Bearer {SCORING_KEYS[1]}"})[0] == 200  # either key
    arm.emu.endpoints["fraud-scorer"].body["properties"]["authMode"] = "AMLToken"
    assert arm("POST", score, {"data": [1]}, {"Authorization": f"Bearer {SCORING_KEYS[0]}"})[0] == 401
    assert arm("POST", score, {"data": [1]}, {"Authorization": f"Bearer {AML_TOKEN}"})[0] == 200


# -- 409 while an operation is in flight ---------------------------------------------------------


def test_a_second_endpoint_put_while_the_first_is_in_flight_is_409(arm):
    with_green(arm)
    assert arm.put_traffic({"blue": 90, GREEN: 10})[0] == 201
    status, _, body = arm.put_traffic({"blue": 50, GREEN: 50})
    assert status == 409
    assert body["error"]["code"] == "Conflict"
    assert "another operation on same entity is already running" in body["error"]["message"]
    arm.advance(21)
    assert arm.put_traffic({"blue": 50, GREEN: 50})[0] == 201


def test_a_deployment_put_or_delete_while_it_provisions_is_409(arm):
    assert arm.put_deployment(GREEN)[0] == 201
    status, _, body = arm.put_deployment(GREEN)
    assert (status, body["error"]["code"]) == (409, "Conflict")
    status, _, body = arm("DELETE", arm.deployment(GREEN))
    assert (status, body["error"]["code"]) == (409, "Conflict")
    arm.advance(600)
    assert arm("DELETE", arm.deployment(GREEN))[0] == 202


def test_a_deployment_create_while_the_endpoint_updates_is_refused(arm):
    with_green(arm)
    arm.emu.register_model("fraud-model", "3")
    arm.put_traffic({"blue": 90, GREEN: 10})
    status, _, body = arm.put_deployment("fraud-model-v3", version="3")
    assert status == 409
    assert body["error"]["message"] == (
        "Cannot create a deployment in endpoint fraud-scorer because it is in Updating provisioning state."
    )
    arm.advance(21)
    assert arm.put_deployment("fraud-model-v3", version="3")[0] == 201


def test_a_deployment_that_will_hold_traffic_cannot_be_deleted(arm):
    with_green(arm)
    arm.put_traffic({"blue": 90, GREEN: 10})
    status, _, body = arm("DELETE", arm.deployment(GREEN))
    assert status == 400
    assert "has traffic" in body["error"]["message"]


# -- deletes -------------------------------------------------------------------------------------


def test_deployment_delete_answers_202_and_the_deployment_goes_after_a_while(arm):
    with_green(arm)
    status, headers, body = arm("DELETE", arm.deployment(GREEN))
    assert (status, body) == (202, None)  # recorded body "null"
    assert "/mfeOperationResults/" in headers["location"]
    assert "/mfeOperationsStatus/" in headers["azure-asyncoperation"]
    assert headers["x-ms-async-operation-timeout"] == "PT30M"
    assert arm("GET", arm.deployment(GREEN))[2]["properties"]["provisioningState"] == "Deleting"
    assert arm.poll(headers)["status"] == "Updating"  # recorded for a delete in progress too
    arm.advance(arm.emu.deployment_deletion.total_seconds() + 1)
    assert arm("GET", arm.deployment(GREEN))[0] == 404
    assert arm("DELETE", arm.deployment(GREEN))[0] == 204


def test_endpoint_delete_answers_202_and_takes_its_deployments_with_it(arm):
    status, headers, _ = arm("DELETE", arm.endpoint())
    assert (status, headers["x-ms-async-operation-timeout"]) == (202, "PT30M")
    assert arm("GET", arm.endpoint())[2]["properties"]["provisioningState"] == "Deleting"
    assert arm.put_traffic({"blue": 100})[0] == 409
    arm.advance(arm.emu.endpoint_deletion.total_seconds() + 1)
    assert arm("GET", arm.endpoint())[0] == 404
    assert not [k for k in arm.emu.deployments if k[0] == "fraud-scorer"]


def test_polls_carry_retry_after_only_when_asked(arm):
    arm.emu.poll_retry_after = 3
    _, headers, _ = arm.put_deployment(GREEN)
    status, poll_headers, _ = arm("GET", headers["azure-asyncoperation"])
    assert (status, poll_headers["retry-after"]) == (200, "3")


# -- Kubernetes online endpoints -----------------------------------------------------------------


def kubernetes_world() -> Arm:
    arm = Arm(make_world())
    arm.emu.add_endpoint("k8s-scorer", compute="k8s-cluster")
    arm.emu.add_deployment("k8s-scorer", "blue", ("fraud-model", "1"), traffic=100)
    arm.emu.add_deployment("k8s-scorer", "green", ("fraud-model", "2"))
    return arm


def test_a_kubernetes_endpoint_names_its_compute_and_its_deployments_are_kubernetes_deployments():
    arm = kubernetes_world()
    _, _, endpoint = arm("GET", arm.endpoint("k8s-scorer"))
    assert endpoint["properties"]["compute"].endswith("/computes/k8s-cluster")
    _, _, deployment = arm("GET", arm.deployment("green", "k8s-scorer"))
    props = deployment["properties"]
    assert props["endpointComputeType"] == "Kubernetes"
    assert set(props["containerResourceRequirements"]) == {"containerResourceRequests", "containerResourceLimits"}
    _, _, managed = arm("GET", arm.endpoint())
    assert managed["properties"]["compute"] is None


def test_a_kubernetes_endpoint_refuses_mirrored_traffic_and_takes_live_traffic():
    arm = kubernetes_world()
    status, _, body = arm.put_traffic({"blue": 100}, {"green": 10}, name="k8s-scorer")
    assert status == 400
    assert body["error"]["code"] == "BadRequest"
    (detail,) = body["error"]["details"]
    assert detail["code"] == "NotSupported"
    assert "Kubernetes" in detail["message"]
    assert arm.put_traffic({"blue": 90, "green": 10}, name="k8s-scorer")[0] == 201


def test_the_sdk_reads_kubernetes_deployments_as_kubernetes():
    arm = kubernetes_world()
    from shared.rollout.model import EndpointRef

    state = arm.world.gateway().read_endpoint(EndpointRef(workspace=arm.world.endpoint.workspace, name="k8s-scorer"))
    assert state is not None
    assert {d.compute_type for d in state.deployments.values()} == {"Kubernetes"}
    ml = arm.world.gateway()._ml(arm.world.endpoint)
    assert type(ml.online_endpoints.get("k8s-scorer")).__name__ == "KubernetesOnlineEndpoint"
