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
from shared.adapters.paired_scoring import PairedScorer, Sample
from shared.adapters.scoring_reach import ScoringTarget, never_sent, refused_for_network, unreachable
from shared.model_checks import ModelChecks
from shared.ports import ProviderError
from shared.rollout.actions import CreateDeployment
from shared.rollout.model import ModelRef, RolloutPhase
from shared.rollout.prediction_policy import PredictionCheck
from tests.emulated import checked_service, make_world

P = RolloutPhase
GREEN = "fraud-model-v2"
ROWS = [{"input": body} for body in sample_inputs(200, seed=3)]


def private_world(
    *, app_in_vnet: bool, smoke: bool = True, predictions: bool = False, refusal: int = 403, dns: bool = True
):
    world = make_world(rpm=300, blue=Scenario(predictor=Predictor()))
    world.emu.endpoints["fraud-scorer"].body["properties"]["publicNetworkAccess"] = "Disabled"
    world.emu.app_in_private_network = app_in_vnet
    world.emu.public_refusal_status = refusal  # what Azure answers from outside is undocumented
    world.emu.private_dns_works = dns
    world.emu.set_scenario("fraud-scorer", GREEN, Scenario(predictor=Predictor()))
    policy: dict = {"mirror": {"min_duration": "5m", "max_duration": "60m"}, "provisioning_timeout": "30m"}
    if smoke:
        policy["smoke_test"] = {"requests": [{"data": [[1, 2, 3]]}]}
    if predictions:
        policy["predictions"] = {"inputs": {"rows": ROWS}, "prediction": "/label", "max_requests_per_minute": 20}
    scorer = PairedScorer(world.gateway(), clock=world.clock)
    return world, checked_service(world, policy, ModelChecks(scorer=scorer, clock=world.clock)), scorer


def run(world, service, minutes: int):
    seen = []
    for _ in range(minutes):
        world.advance(1)
        service.reconcile_all()
        (stored,) = service.store.find()
        seen.append(stored.rollout)
    return seen


@pytest.mark.parametrize(
    ("where", "cause"),
    [
        ({"app_in_vnet": False}, "HTTP 403"),  # from the public network, refused with a 403
        ({"app_in_vnet": False, "refusal": 404}, "green and blue both answered HTTP 404"),  # another status
        ({"app_in_vnet": True, "dns": False}, "Failed to resolve 'fraud-scorer."),  # DNS not forwarding the zone
    ],
)
def test_a_smoke_test_that_cannot_reach_green_holds_with_the_reason_then_fails_before_traffic(where, cause):
    world, service, _ = private_world(**where)
    seen = run(world, service, 20)
    last = seen[-1]
    assert last.phase == P.PENDING  # green is ready, but the test never reached it: no verdict on green
    assert "cannot reach the scoring URI https://" in last.last_reason
    assert "public network access is Disabled" in last.last_reason
    assert cause in last.last_reason
    assert all(r.smoke_passed is None for r in seen)
    assert [s.describe() for s in world.emu.splits("fraud-scorer")] == ["live: blue 100%"]  # no mirror either
    seen = run(world, service, 25)  # past the policy's 30 minutes since the smoke test was first due
    assert seen[-1].phase in (P.FAILED, P.ROLLING_BACK)
    assert "the smoke test of green fraud-model-v2 could not run for 30m" in seen[-1].last_reason
    assert [s.describe() for s in world.emu.splits("fraud-scorer")] == ["live: blue 100%"]


def test_a_green_that_fails_its_smoke_test_behind_a_private_endpoint_is_still_failed():
    world, service, _ = private_world(app_in_vnet=True)
    world.emu.set_scenario("fraud-scorer", GREEN, Scenario(smoke_fails=True))
    seen = run(world, service, 15)
    assert seen[-1].phase in (P.FAILED, P.ROLLING_BACK)
    assert "smoke test failed" in seen[-1].last_reason


def test_inside_the_vnet_the_same_rollout_is_smoke_tested_and_mirrored():
    world, service, _ = private_world(app_in_vnet=True)
    seen = run(world, service, 15)
    assert any(r.smoke_passed for r in seen)
    assert seen[-1].phase == P.MIRRORING
    scoring = [u for m, u, _ in world.emu.requests if m == "POST" and ".inference.ml.azure.com/score" in u]
    # to the scoring URI exactly as Azure returned it (the private DNS zone resolves that name)
    assert scoring == ["https://fraud-scorer.eastus.inference.ml.azure.com/score"]


@pytest.mark.parametrize("refusal", [403, 401])
def test_outside_the_vnet_the_prediction_comparison_holds_and_spends_no_budget(refusal):
    world, service, scorer = private_world(app_in_vnet=False, smoke=False, predictions=True, refusal=refusal)
    seen = run(world, service, 15)
    last = seen[-1]
    assert last.phase == P.MIRRORING  # the mirror cannot pass without the comparison
    assert last.predictions is None or last.predictions.scored == 0
    reasons = " ".join(c[2] for c in last.checks)
    assert "cannot score inputs this tick" in reasons
    assert "the prediction comparison cannot reach the scoring URI" in reasons
    assert scorer.requests_sent >= 3  # it kept trying (one input a tick once mirrored), counting nothing
    # the network is fixed: the comparison runs on the next ticks and is counted
    world.emu.app_in_private_network = True
    seen = run(world, service, 5)
    assert seen[-1].predictions is not None
    assert seen[-1].predictions.scored > 0


class _DropsAfter:
    """The network: the connection fails (nothing sent) after `n` requests."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.left = inner, n

    def send_request(self, request, **kwargs):
        if self.left <= 0:
            raise ServiceRequestError("connection refused")
        self.left -= 1
        return self.inner.send_request(request, **kwargs)


def test_a_connection_lost_mid_batch_keeps_the_pairs_already_scored():
    world, _, _ = private_world(app_in_vnet=True, smoke=False)
    world.emu.add_deployment("fraud-scorer", GREEN, ("fraud-model", "2"), scenario=Scenario(predictor=Predictor()))
    check = PredictionCheck.model_validate({"inputs": {"rows": ROWS[:1]}, "prediction": "/label"})
    gateway = world.gateway()

    class Flaky:
        def __init__(self, n: int) -> None:
            self.n = n

        def scoring_target(self, endpoint):
            target = gateway.scoring_target(endpoint)
            return target._replace(pipeline=_DropsAfter(target.pipeline, self.n))

    scorer = PairedScorer(Flaky(6), clock=world.clock)
    samples = [Sample(r["input"]) for r in ROWS[:10]]
    pairs = scorer.score(world.endpoint, "blue", GREEN, check, samples)
    assert len(pairs) == 3  # six requests made three pairs; the seventh could not be sent
    with pytest.raises(ProviderError, match="cannot reach the scoring URI"):
        PairedScorer(Flaky(0), clock=world.clock).score(world.endpoint, "blue", GREEN, check, samples)  # none


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
