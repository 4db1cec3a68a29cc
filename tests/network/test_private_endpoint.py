"""A private online endpoint (publicNetworkAccess Disabled): the app reaches its scoring URI only
from inside the VNet, where the workspace's private DNS zone resolves it (issue 18).

From outside, the smoke test and the prediction comparison cannot reach green; that is never
green's failure and never a pass: the stage holds with the reason, spends none of the scoring
budget, and the smoke test fails before traffic once green's time to get ready has run out. From
inside, the same rollout runs as on a public endpoint. Real SDKs against the emulator throughout.
"""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest

from emulator.predictor import Predictor, sample_inputs
from emulator.traffic import Scenario
from shared.adapters.paired_scoring import PairedScorer
from shared.adapters.scoring_reach import ScoringTarget, never_sent, refused_for_network, unreachable
from shared.model_checks import ModelChecks
from shared.ports import ProviderError
from shared.rollout.actions import CreateDeployment
from shared.rollout.model import ModelRef, RolloutPhase
from shared.service import RolloutService
from shared.store import memory_store
from shared.targets import PolicyFile
from tests.emulated import make_world
from tests.functions.harness import RecordingPublisher
from tests.service.test_service import register

P = RolloutPhase
GREEN = "fraud-model-v2"
ROWS = [{"input": body} for body in sample_inputs(200, seed=3)]


def private_world(*, app_in_vnet: bool, smoke: bool = True, predictions: bool = False):
    world = make_world(rpm=300, blue=Scenario(predictor=Predictor()))
    world.emu.endpoints["fraud-scorer"].body["properties"]["publicNetworkAccess"] = "Disabled"
    world.emu.app_in_private_network = app_in_vnet
    world.emu.set_scenario("fraud-scorer", GREEN, Scenario(predictor=Predictor()))
    policy: dict = {"mirror": {"min_duration": "5m", "max_duration": "60m"}, "provisioning_timeout": "30m"}
    if smoke:
        policy["smoke_test"] = {"requests": [{"data": [[1, 2, 3]]}]}
    if predictions:
        policy["predictions"] = {"inputs": {"rows": ROWS}, "prediction": "/label", "max_requests_per_minute": 20}
    scorer = PairedScorer(world.gateway(), clock=world.clock)
    service = RolloutService(
        store=memory_store(),
        gateway=world.gateway(),
        metrics=world.metrics(),
        events=RecordingPublisher(),
        clock=world.clock,
        policies=PolicyFile.model_validate({"targets": [{"model": "*", "endpoint": "fraud-scorer", "policy": policy}]}),
        model_checks=ModelChecks(scorer=scorer, clock=world.clock),
    )
    register(world, service)
    return world, service, scorer


def run(world, service, minutes: int):
    seen = []
    for _ in range(minutes):
        world.advance(1)
        service.reconcile_all()
        (stored,) = service.store.find()
        seen.append(stored.rollout)
    return seen


def test_outside_the_vnet_the_smoke_test_holds_with_the_reason_then_fails_before_traffic():
    world, service, _ = private_world(app_in_vnet=False)
    seen = run(world, service, 20)
    last = seen[-1]
    assert last.phase == P.PENDING  # green is ready, but the test never reached it: no verdict on green
    assert "cannot reach the scoring URI https://" in last.last_reason
    assert "public network access is Disabled" in last.last_reason
    assert "Failed to resolve 'fraud-scorer." in last.last_reason
    assert all(r.smoke_passed is None for r in seen)
    assert [s.describe() for s in world.emu.splits("fraud-scorer")] == ["live: blue 100%"]  # no mirror either
    seen = run(world, service, 15)  # past the policy's 30 minutes to become ready
    assert seen[-1].phase in (P.FAILED, P.ROLLING_BACK)
    assert "the smoke test of green fraud-model-v2 could not run within 30m" in seen[-1].last_reason
    assert [s.describe() for s in world.emu.splits("fraud-scorer")] == ["live: blue 100%"]


def test_inside_the_vnet_the_same_rollout_is_smoke_tested_and_mirrored():
    world, service, _ = private_world(app_in_vnet=True)
    seen = run(world, service, 15)
    assert any(r.smoke_passed for r in seen)
    assert seen[-1].phase == P.MIRRORING
    scoring = [u for m, u, _ in world.emu.requests if m == "POST" and ".inference.ml.azure.com/score" in u]
    # to the scoring URI exactly as Azure returned it (the private DNS zone resolves that name)
    assert scoring == ["https://fraud-scorer.eastus.inference.ml.azure.com/score"]


def test_outside_the_vnet_the_prediction_comparison_holds_and_spends_no_budget():
    world, service, scorer = private_world(app_in_vnet=False, smoke=False, predictions=True)
    seen = run(world, service, 15)
    last = seen[-1]
    assert last.phase == P.MIRRORING  # the mirror cannot pass without the comparison
    assert last.predictions is None or last.predictions.scored == 0
    reasons = " ".join(c[2] for c in last.checks)
    assert "cannot score inputs this tick" in reasons
    assert "the prediction comparison cannot reach the scoring URI" in reasons
    assert scorer.requests_sent >= 3  # it kept trying (one request a tick once mirrored), counting nothing
    # the network is fixed: the comparison runs on the next ticks and is counted
    world.emu.app_in_private_network = True
    seen = run(world, service, 5)
    assert seen[-1].predictions is not None
    assert seen[-1].predictions.scored > 0


def test_a_name_that_does_not_resolve_is_never_sent_and_says_so():
    # A real azure-core transport against a port nothing listens on: nothing was sent.
    pipeline = RequestsTransport(connection_timeout=2)
    with pytest.raises(ServiceRequestError) as raised:
        pipeline.send(HttpRequest("POST", "https://127.0.0.1:9/score", json={}))
    assert never_sent(raised.value)
    target = ScoringTarget("https://ep.eastus.inference.ml.azure.com/score", "k", None, "Enabled")
    error = unreachable(target, "the smoke test of green", "ServiceRequestError: refused")
    assert isinstance(error, ProviderError)
    assert "check that ep.eastus.inference.ml.azure.com resolves" in str(error)


def test_a_403_is_a_network_refusal_only_from_an_endpoint_closed_to_the_public():
    private = ScoringTarget("https://ep.eastus.inference.ml.azure.com/score", "k", None, "Disabled")
    public = private._replace(public_access="Enabled")
    assert refused_for_network(403, private)
    assert not refused_for_network(403, public)  # a rotated key: the caller reads the key again
    assert not refused_for_network(424, private)  # the deployment answered: its own error


def test_green_keeps_blues_egress_setting_and_azure_refuses_to_change_it():
    world = make_world()
    world.emu.deployments[("fraud-scorer", "blue")].body["properties"]["egressPublicNetworkAccess"] = "Disabled"
    gateway = world.gateway()
    action = CreateDeployment(name=GREEN, model=ModelRef(name="fraud-model", version="2"), copy_from="blue")
    gateway.create_deployment(world.endpoint, action)
    green = world.emu.deployments[("fraud-scorer", GREEN)].body["properties"]
    assert green["egressPublicNetworkAccess"] == "Disabled"  # copied from blue, as Azure returned it
    world.advance(30)
    world.emu.settle()
    body = {"properties": {**green, "egressPublicNetworkAccess": "Enabled"}}
    url = f"https://management.azure.com{world.emu.deployment_id('fraud-scorer', GREEN)}?api-version=2024-04-01"
    status, _, payload = world.emu.handle("PUT", url, {}, json.dumps(body).encode())
    assert status == 400
    assert b"cannot be changed after it is created" in payload
