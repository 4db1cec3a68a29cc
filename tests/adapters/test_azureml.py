"""The Azure ML adapter through the real azure-ai-ml SDK against the emulator: what was sent, and
what was understood."""

from __future__ import annotations

from datetime import timedelta

import pytest

from emulator.azure import Fault
from emulator.traffic import Scenario
from shared.ports import OperationInProgressError, ProviderError
from shared.rollout.actions import CreateDeployment
from shared.rollout.model import ModelRef, TrafficSplit
from shared.rollout.observation import PROVISIONING_IN_PROGRESS
from tests.emulated import make_world

GREEN = "fraud-model-v2"


def puts(world, fragment: str) -> list[dict]:
    return [b for m, u, b in world.emu.requests if m == "PUT" and fragment in u.split("?")[0]]


def create_green(world, gateway, name: str = GREEN, version: str = "2") -> None:
    gateway.create_deployment(
        world.endpoint,
        CreateDeployment(
            name=name,
            model=ModelRef(name="fraud-model", version=version),
            copy_from="blue",
            tags={"rollout-role": "RELEASE_CANDIDATE"},
        ),
    )


def test_reads_traffic_states_and_tags():
    world = make_world()
    state = world.gateway().read_endpoint(world.endpoint)
    assert state is not None
    assert state.traffic == TrafficSplit(live={"blue": 100})
    assert state.deployments["blue"].provisioning_state == "Succeeded"
    assert state.deployments["blue"].model.endswith("/models/fraud-model/versions/1")


def test_missing_endpoint_reads_as_none():
    world = make_world()
    world.emu.delete_behind_our_back("fraud-scorer")
    assert world.gateway().read_endpoint(world.endpoint) is None


def test_green_is_a_copy_of_blue_with_the_new_model_and_is_not_waited_for():
    world = make_world()
    gateway = world.gateway()
    create_green(world, gateway)
    (body,) = puts(world, f"/deployments/{GREEN}")
    blue = world.emu.deployments[("fraud-scorer", "blue")].body["properties"]
    props = body["properties"]
    assert props["model"].endswith("/models/fraud-model/versions/2")
    for key in ("instanceType", "environmentId", "codeConfiguration", "livenessProbe", "appInsightsEnabled"):
        assert props[key] == blue[key], key
    # Every serving field carries over, maxQueueWait included (azure-ai-ml's entities would drop it).
    assert props["requestSettings"] == blue["requestSettings"]
    assert {k: v for k, v in props.items() if k != "model"} == {
        k: v for k, v in blue.items() if k not in ("model", "provisioningState", "properties")
    }
    assert "properties" not in props  # Azure's own property bag entries stay with blue
    assert body["sku"]["capacity"] == 2
    assert body["tags"] == {"rollout-role": "RELEASE_CANDIDATE"}
    # returned at once: still provisioning on the simulated clock (Azure shows a new deployment as
    # Updating, as the recorded sessions do)
    assert gateway.read_endpoint(world.endpoint).deployments[GREEN].provisioning_state in PROVISIONING_IN_PROGRESS
    world.advance(10)
    assert gateway.read_endpoint(world.endpoint).deployments[GREEN].provisioning_state == "Succeeded"


def test_green_keeps_blues_data_collector_startup_probe_and_mount_path():
    """Fields of the 2025-12-01 OnlineDeployment that azure-ai-ml 1.35's entities do not all carry."""
    world = make_world()
    blue = world.emu.deployments[("fraud-scorer", "blue")].body["properties"]
    blue["dataCollector"] = {
        "collections": {"model_inputs": {"dataCollectionMode": "Enabled", "samplingRate": 0.5}},
        "requestLogging": {"captureHeaders": ["x-request-id"]},
    }
    blue["startupProbe"] = {"initialDelay": "PT60S", "period": "PT5S", "timeout": "PT2S", "failureThreshold": 60}
    blue["modelMountPath"] = "/models/custom"
    create_green(world, world.gateway())
    (body,) = puts(world, f"/deployments/{GREEN}")
    for key in ("dataCollector", "startupProbe", "modelMountPath"):
        assert body["properties"][key] == blue[key], key
    assert "provisioningState" not in body["properties"]
    assert "id" not in body
    assert "systemData" not in body


def test_creating_twice_is_harmless():
    world = make_world()
    gateway = world.gateway()
    create_green(world, gateway)
    with pytest.raises(OperationInProgressError, match="409"):  # told apart from a failure
        create_green(world, gateway)
    assert gateway.read_endpoint(world.endpoint).deployments[GREEN].provisioning_state in PROVISIONING_IN_PROGRESS


def test_unknown_model_version_is_a_clear_provider_error():
    world = make_world()
    with pytest.raises(ProviderError, match=r"creating deployment .*was not found"):
        create_green(world, world.gateway(), name="fraud-model-v9", version="9")


def test_failed_provisioning_surfaces_as_failed_state():
    world = make_world()
    world.emu.provisioning_outcomes[GREEN] = "Failed"
    gateway = world.gateway()
    create_green(world, gateway)
    world.advance(10)
    assert gateway.read_endpoint(world.endpoint).deployments[GREEN].provisioning_state == "Failed"


def test_mirror_to_live_is_one_put_that_clears_the_mirror():
    world = make_world()
    gateway = world.gateway()
    create_green(world, gateway)
    world.advance(10)
    gateway.set_traffic(world.endpoint, TrafficSplit(live={"blue": 100}, mirror={GREEN: 20}))
    world.advance(2)
    assert gateway.read_endpoint(world.endpoint).traffic == TrafficSplit(live={"blue": 100}, mirror={GREEN: 20})
    before = len(puts(world, "/onlineEndpoints/fraud-scorer"))
    gateway.set_traffic(world.endpoint, TrafficSplit(live={"blue": 90, GREEN: 10}))
    sent = puts(world, "/onlineEndpoints/fraud-scorer")[before:]
    assert len(sent) == 1
    assert sent[0]["properties"]["traffic"] == {"blue": 90, GREEN: 10}
    assert sent[0]["properties"]["mirrorTraffic"] == {}
    assert sent[0]["properties"]["authMode"] == "Key"  # GET-mutate-PUT kept the endpoint's settings
    assert "scoringUri" not in sent[0]["properties"]  # read-only fields are not sent back
    world.advance(2)
    assert gateway.read_endpoint(world.endpoint).traffic == TrafficSplit(live={"blue": 90, GREEN: 10})


def test_a_traffic_change_is_started_not_waited_for():
    world = make_world()
    world.emu.endpoint_update = timedelta(seconds=40)
    gateway = world.gateway()
    create_green(world, gateway)
    world.advance(10)
    polls_before = sum(1 for m, u, _ in world.emu.requests if "mfeOperations" in u)
    gateway.set_traffic(world.endpoint, TrafficSplit(live={"blue": 100}, mirror={GREEN: 20}))
    assert sum(1 for m, u, _ in world.emu.requests if "mfeOperations" in u) == polls_before  # no polling
    assert gateway.read_endpoint(world.endpoint).provisioning_state == "Updating"
    world.advance(1)
    state = gateway.read_endpoint(world.endpoint)
    assert state.provisioning_state == "Succeeded"
    assert state.traffic == TrafficSplit(live={"blue": 100}, mirror={GREEN: 20})


def test_green_created_while_the_endpoint_updates_is_refused_and_ordered_again_by_the_core():
    """Azure refuses a deployment create while its endpoint is Updating (Azure/azure-sdk-for-net#36961):
    the gateway says so, and nothing is created that a later tick would not order again."""
    world = make_world()
    gateway = world.gateway()
    gateway.set_traffic(world.endpoint, TrafficSplit(live={"blue": 100}))
    with pytest.raises(OperationInProgressError, match="provisioning state"):
        create_green(world, gateway)
    assert GREEN.lower() not in gateway.read_endpoint(world.endpoint).deployments
    world.advance(1)
    create_green(world, gateway)
    assert GREEN.lower() in gateway.read_endpoint(world.endpoint).deployments


def test_a_409_while_azure_is_busy_is_told_apart_from_a_failure():
    world = make_world()
    world.emu.faults.append(Fault("endpoint.put", status=409, times=1))
    with pytest.raises(OperationInProgressError, match="HTTP 409"):
        world.gateway().set_traffic(world.endpoint, TrafficSplit(live={"blue": 100}))


def test_azure_refuses_what_the_core_would_refuse():
    """The emulator enforces Azure's rules on a raw PUT (nothing of ours in the way)."""
    from azure.core.exceptions import HttpResponseError

    world = make_world()
    ml = world.gateway()._ml(world.endpoint)
    endpoint = ml.online_endpoints.get("fraud-scorer")
    endpoint.traffic = {"blue": 60}
    with pytest.raises(HttpResponseError, match="sum to 0 or 100"):
        ml.online_endpoints.begin_create_or_update(endpoint).result()
    endpoint.traffic = {"blue": 100, "ghost": 0}
    endpoint.mirror_traffic = {"ghost": 10}
    with pytest.raises(HttpResponseError, match="does not exist"):
        ml.online_endpoints.begin_create_or_update(endpoint).result()


def test_delete_refused_while_it_has_traffic_then_accepted():
    world = make_world()
    gateway = world.gateway()
    with pytest.raises(ProviderError, match="has traffic"):
        gateway.delete_deployment(world.endpoint, "blue")
    create_green(world, gateway)
    world.advance(10)
    gateway.delete_deployment(world.endpoint, GREEN)
    assert gateway.read_endpoint(world.endpoint).deployments[GREEN].provisioning_state == "Deleting"
    world.advance(5)
    assert GREEN not in gateway.read_endpoint(world.endpoint).deployments
    gateway.delete_deployment(world.endpoint, GREEN)  # already gone: fine


def test_tags_are_merged_through_a_patch_of_tags_only():
    world = make_world()
    gateway = world.gateway()
    world.emu.deployments[("fraud-scorer", "blue")].body["tags"] = {"team": "risk"}
    gateway.tag_deployment(world.endpoint, "blue", {"rollout-role": "OLD_PROD"})
    (patch,) = [b for m, u, b in world.emu.requests if m == "PATCH"]
    assert patch == {"tags": {"team": "risk", "rollout-role": "OLD_PROD"}}
    assert gateway.read_endpoint(world.endpoint).deployments["blue"].tags["rollout-role"] == "OLD_PROD"
    assert world.emu.deployments[("fraud-scorer", "blue")].body["properties"]["provisioningState"] == "Succeeded"


def test_smoke_test_calls_the_deployment_directly_with_the_endpoint_key():
    world = make_world()
    gateway = world.gateway()
    create_green(world, gateway)
    world.advance(10)
    result = gateway.smoke_test(world.endpoint, GREEN, [{"data": [[1, 2]]}, {"data": [[3, 4]]}])
    assert (result.sent, result.failed) == (2, 0)
    world.emu.set_scenario("fraud-scorer", GREEN, Scenario(smoke_fails=True))
    result = gateway.smoke_test(world.endpoint, GREEN, [{"data": [[1, 2]]}])
    assert result.failed == 1
    assert "HTTP 424" in result.detail


def test_scoring_requests_never_carry_the_management_token(monkeypatch):
    seen: list[dict[str, str]] = []
    world = make_world()
    original = world.emu.handle

    def spy(method, url, headers, body):
        if ".inference.ml.azure.com" in url:
            seen.append(headers)
        return original(method, url, headers, body)

    monkeypatch.setattr(world.emu, "handle", spy)
    world.gateway().smoke_test(world.endpoint, "blue", [{"x": 1}])
    (headers,) = seen
    assert headers["Authorization"] == "Bearer emulator-key-1"
    assert headers["azureml-model-deployment"] == "blue"


def test_429_retry_after_is_honoured_on_the_simulated_clock():
    world = make_world()
    world.emu.faults.append(Fault("endpoint.put", status=429, times=1, retry_after=7))
    gateway = world.gateway()
    gateway.set_traffic(world.endpoint, TrafficSplit(live={"blue": 100}))
    assert 7.0 in world.transport.sleeps
    assert len(puts(world, "/onlineEndpoints/fraud-scorer")) == 2


def test_5xx_bursts_are_retried_within_bounds():
    world = make_world()
    world.emu.faults.append(Fault("endpoint.put", status=503, times=2))
    world.gateway().set_traffic(world.endpoint, TrafficSplit(live={"blue": 100}))
    assert len(puts(world, "/onlineEndpoints/fraud-scorer")) == 3
    world.emu.faults.append(Fault("endpoint.put", status=503, times=50))
    with pytest.raises(ProviderError, match="HTTP 503"):
        world.gateway().set_traffic(world.endpoint, TrafficSplit(live={"blue": 100}))
    assert world.emu.faults[-1].times > 40  # bounded: gave up after a few tries


def test_first_deployment_needs_a_template():
    world = make_world()
    action = CreateDeployment(name="first-v1", model=ModelRef(name="fraud-model", version="2"), copy_from=None)
    with pytest.raises(ProviderError, match="template"):
        world.gateway().create_deployment(world.endpoint, action)
    world.gateway(
        first_deployment_template={"instance_type": "Standard_DS2_v2", "instance_count": 1}
    ).create_deployment(world.endpoint, action)
    (body,) = puts(world, "/deployments/first-v1")
    assert body["properties"]["instanceType"] == "Standard_DS2_v2"


def test_traffic_set_through_the_sdk_reaches_the_traffic_simulator():
    world = make_world(rpm=1000)
    gateway = world.gateway()
    create_green(world, gateway)
    world.advance(10)
    gateway.set_traffic(world.endpoint, TrafficSplit(live={"blue": 50, GREEN: 50}))
    world.advance(5)
    world.emu.settle()
    assert world.emu.sim.user_answers[("fraud-scorer", GREEN)] > 1000
