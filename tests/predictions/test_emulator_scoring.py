"""The emulator's model versions answer through the real scoring path, and the paired scorer reads
them: requests addressed by name reach that deployment, count in its traffic, never reach users."""

from __future__ import annotations

from emulator.predictor import Predictor, sample_inputs
from emulator.traffic import Scenario
from shared.adapters.paired_scoring import PairedScorer, Sample
from shared.rollout.prediction_policy import PredictionCheck
from tests.emulated import make_world

CHECK = PredictionCheck.model_validate({"inputs": {"rows": [{"input": 1}]}, "prediction": "/label", "score": "/score"})


def world_with(green: Predictor):
    world = make_world(blue=Scenario(predictor=Predictor()))
    world.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"), scenario=Scenario(predictor=green))
    return world


def test_green_at_zero_percent_answers_requests_addressed_to_it_and_they_count_as_its_traffic():
    world = world_with(Predictor(swap=("review", "fraud")))
    samples = [Sample(b) for b in sample_inputs(40, seed=3)]
    pairs = PairedScorer(world.gateway()).score(world.endpoint, "blue", "green", CHECK, samples)
    assert len(pairs) == 40
    assert all(not p.blue_error and not p.green_error for p in pairs)
    swapped = [p for p in pairs if p.blue_label in ("review", "fraud")]
    assert swapped
    assert all(p.green_label != p.blue_label for p in swapped)
    assert all(p.green_label == p.blue_label for p in pairs if p.blue_label == "legit")
    served = sum(m.requests for m in world.emu.sim.stats[("fraud-scorer", "green")].values())
    assert served == 40  # counted like any request green serves
    assert world.emu.sim.user_answers[("fraud-scorer", "green")] == 0  # no user got one


def test_an_answer_without_the_prediction_is_greens_error_not_a_crash():
    world = world_with(Predictor(unreadable=1.0))
    pairs = PairedScorer(world.gateway()).score(
        world.endpoint, "blue", "green", CHECK, [Sample(b) for b in sample_inputs(5)]
    )
    assert all(p.green_error.startswith("unreadable answer") for p in pairs)
    assert all(p.blue_label for p in pairs)


def test_a_deployment_that_fails_gives_an_error_per_pair():
    world = world_with(Predictor())
    pairs = PairedScorer(world.gateway()).score(
        world.endpoint, "blue", "no-such-green", CHECK, [Sample(b) for b in sample_inputs(3)]
    )
    assert all(p.green_error == "HTTP 404" for p in pairs)
