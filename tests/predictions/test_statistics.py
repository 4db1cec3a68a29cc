"""The prediction comparison's statistics: what each kind of prediction bug does to the verdict."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from emulator.predictor import Predictor
from shared.rollout.analysis import Verdict, overall
from shared.rollout.predictions import (
    PointerError,
    PredictionBatch,
    ScoredPair,
    dkw_radius,
    fold,
    inputs_due,
    judge,
    pair_from_answers,
    resolve_pointer,
)
from shared.rollout.tally import PredictionTally
from tests.predictions.helpers import BUDGET, T0, check, pairs, run


def by_check(results):
    return {r.check: r for r in results}


# -- reading the prediction ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [  # RFC 6901, section 5's examples
        ("", {"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8}),
        ("/foo/0", "bar"),
        ("/", 0),
        ("/a~1b", 1),
        ("/m~0n", 8),
    ],
)
def test_json_pointers_follow_rfc_6901(pointer, expected):
    doc = {"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8}
    assert resolve_pointer(doc, pointer) == expected


@pytest.mark.parametrize("pointer", ["/foo/2", "/foo/01", "/foo/-", "/nope", "/foo/0/x"])
def test_a_pointer_that_finds_nothing_is_a_pointer_error(pointer):
    with pytest.raises(PointerError):
        resolve_pointer({"foo": ["bar", "baz"]}, pointer)


@pytest.mark.parametrize(
    "green_answer",
    [{"result": "ok"}, {"label": {"nested": 1}}, {"label": None}, [0.5], "not json at all", None],
)
def test_an_answer_unreadable_at_the_pointer_is_greens_error_and_counts_as_disagreement(green_answer):
    c = check()
    pair = pair_from_answers(c, {"label": "fraud"}, green_answer)
    assert pair.green_error.startswith("unreadable answer")
    tally = fold(None, c, PredictionBatch(at=T0, pairs=(pair,)))
    assert (tally.pairs, tally.green_errors, tally.disagree) == (1, 1, 1)
    assert ("fraud", "(error)", 1) in tally.confusion


def test_an_answer_blue_cannot_give_leaves_the_pair_out_without_blaming_green():
    c = check()
    pair = pair_from_answers(c, None, {"label": "fraud"}, blue_error="HTTP 503")
    tally = fold(None, c, PredictionBatch(at=T0, pairs=(pair,)))
    assert (tally.pairs, tally.blue_errors, tally.disagree) == (0, 1, 0)


def test_a_score_must_be_a_finite_number():
    c = check(kind="score", prediction="/score")
    for bad in ({"score": "0.5"}, {"score": True}, {"score": float("nan")}):
        assert pair_from_answers(c, {"score": 0.5}, bad).green_error


# -- verdicts -----------------------------------------------------------------------------------


def test_fifteen_percent_disagreement_is_rolled_back_and_an_identical_model_passes():
    c = check()
    tick, results, _tally = run(c, pairs(Predictor(disagree=0.15, salt="v5"), 3000))
    assert tick is not None
    assert tick <= 5
    assert by_check(results)["predictions"].verdict == Verdict.FAIL
    assert "disagrees with blue" in by_check(results)["predictions"].summary
    tick, results, _ = run(c, pairs(Predictor(), 3000))
    assert overall(results) == Verdict.PASS


def test_a_harmless_retrain_changing_one_percent_of_labels_passes():
    _tick, results, tally = run(check(), pairs(Predictor(disagree=0.01, salt="retrain"), 5000))
    assert overall(results) == Verdict.PASS, [r.summary for r in results]
    assert tally.disagree > 0


def test_two_swapped_labels_are_caught_as_disagreement_and_a_class_shift():
    _tick, results, _tally = run(check(), pairs(Predictor(swap=("review", "fraud")), 2000))
    assert by_check(results)["predictions"].verdict == Verdict.FAIL
    ev = by_check(results)["predictions"].evidence
    assert "review→fraud" in str(ev["confusion"])
    assert "fraud→review" in str(ev["confusion"])


def test_a_class_shift_alone_is_judged_with_its_own_margin():
    # Everything moves one class up on 30% of inputs: shares change, not just individual answers.
    c = check(disagreement={"enabled": False, "max_increase": 0.05})
    _, results, _ = run(c, pairs(Predictor(disagree=0.3), 2000))
    assert by_check(results)["class_shift"].verdict == Verdict.FAIL
    assert "predictions" not in by_check(results)


def test_a_score_shift_is_caught_by_the_paired_difference_and_the_distribution():
    c = check(kind="score", prediction="/score", score_shift={"max_increase": 0.05}, ks={"max_increase": 0.25})
    _, results, _ = run(c, pairs(Predictor(score_shift=0.1), 3000, kind_check=c))
    assert by_check(results)["score_shift"].verdict == Verdict.FAIL
    # The distribution alone (no paired difference): a large shift is proven with the DKW bands.
    ks_only = check(kind="score", prediction="/score", ks={"max_increase": 0.2})
    _, results, _ = run(ks_only, pairs(Predictor(score_shift=0.3), 3000, kind_check=ks_only))
    found = by_check(results)
    assert found["score_distribution"].verdict == Verdict.FAIL
    assert found["score_distribution"].evidence["ks"] > 0.25
    _, results, _ = run(c, pairs(Predictor(), 3000, kind_check=c))
    assert overall(results) == Verdict.PASS, [r.summary for r in results]


def test_accuracy_with_labels_is_a_paired_comparison():
    c = check(
        disagreement={"enabled": False, "max_increase": 0.05}, class_shift={"enabled": False, "max_increase": 0.05}
    )
    _, results, _tally = run(c, pairs(Predictor(disagree=0.2), 3000, labels=True))
    acc = by_check(results)["accuracy"]
    assert acc.verdict == Verdict.FAIL
    assert acc.evidence["only_blue_right"] > acc.evidence["only_green_right"]


# -- holding, never passing unjudged ------------------------------------------------------------


def test_an_empty_sample_holds_with_the_reason():
    c = check()
    tally = fold(None, c, PredictionBatch(at=T0, pairs=(), exhausted=True))
    results = judge(c, tally, BUDGET)
    assert overall(results) == Verdict.NO_DATA
    assert "the sample is empty" in by_check(results)["predictions"].summary


def test_an_exhausted_sample_below_min_pairs_holds_and_says_so():
    c = check(min_pairs=200)
    batch = PredictionBatch(at=T0, pairs=tuple(pairs(Predictor(), 50)), next_cursor=50, exhausted=True)
    results = judge(c, fold(None, c, batch), BUDGET)
    assert overall(results) == Verdict.NO_DATA
    assert "exhausted after 50 inputs" in by_check(results)["predictions"].summary


def test_missing_labels_say_so_and_hold_only_when_accuracy_is_required():
    c = check()
    _, results, _ = run(c, pairs(Predictor(), 1000))
    acc = by_check(results)["accuracy"]
    assert acc.verdict == Verdict.PASS
    assert not acc.required
    assert "no expected labels" in acc.summary
    c = check(accuracy={"required": True})
    _, results, _ = run(c, pairs(Predictor(), 1000))
    assert by_check(results)["accuracy"].verdict == Verdict.NO_DATA
    assert overall(results) == Verdict.NO_DATA


def test_the_budget_limits_inputs_per_minute_and_per_stage():
    c = check(max_requests_per_minute=30, max_requests_per_stage=100)
    assert inputs_due(c, None, T0) == 30
    t = PredictionTally(scored=90, last_at=T0)
    assert inputs_due(c, t, T0) == 0  # the same minute: nothing more
    from datetime import timedelta

    assert inputs_due(c, t, T0 + timedelta(minutes=2)) == 10  # 60 due, 10 left in the stage
    assert inputs_due(c, t.model_copy(update={"scored": 100}), T0 + timedelta(hours=1)) == 0


def test_the_tally_stays_small_whatever_the_labels():
    c = check()
    many = [ScoredPair(blue_label=f"b{i}", green_label=f"g{i % 500}") for i in range(5000)]
    tally = fold(None, c, PredictionBatch(at=T0, pairs=tuple(many)))
    assert len(tally.classes) <= 12
    assert len(tally.model_dump_json()) < 4096  # a Table property holds 64 KiB


# -- the bounds themselves ------------------------------------------------------------------------


def test_the_dkw_band_is_the_published_formula_and_shrinks():
    # Howard & Ramdas (2022), Theorem 2, at n = 1000 and alpha = 0.05.
    expected = 0.85 * math.sqrt((math.log(math.log(math.e * 1000)) + 0.8 * math.log(1612 / 0.05)) / 1000)
    assert dkw_radius(1000, 0.05) == pytest.approx(expected)
    assert dkw_radius(4000, 0.05) < dkw_radius(1000, 0.05) / 1.8
    assert dkw_radius(0, 0.05) == math.inf


def test_the_dkw_band_covers_the_true_cdf_at_every_look():
    rng = np.random.default_rng(3)
    misses = 0
    grid = np.linspace(0, 1, 101)
    for _ in range(200):
        x = rng.random(2000)
        for n in (50, 200, 800, 2000):
            ecdf = np.searchsorted(np.sort(x[:n]), grid, side="right") / n
            if np.max(np.abs(ecdf - grid)) > dkw_radius(n, 0.05):
                misses += 1
                break
    assert misses / 200 <= 0.05


def test_no_false_rollbacks_of_identical_models_over_many_samples():
    c = check(kind="label", score="/score", score_shift={"max_increase": 0.05})
    fails = 0
    for seed in range(40):
        _, results, _ = run(c, pairs(Predictor(disagree=0.01, salt=f"s{seed}"), 1500, seed=seed, kind_check=c))
        fails += overall(results) == Verdict.FAIL
    assert fails == 0


def test_evidence_is_json_safe():
    _, results, _ = run(check(score="/score"), pairs(Predictor(disagree=0.15), 600, kind_check=check(score="/score")))
    for r in results:
        json.dumps(r.evidence)
