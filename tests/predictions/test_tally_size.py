"""The tally lives in the Rollout, which is stored as one string of at most 30,000 characters
(shared/store.py): whatever the labels and the traffic, saving it never fails."""

from __future__ import annotations

from datetime import timedelta

from shared.rollout.policy import RolloutPolicy
from shared.rollout.predictions import PredictionBatch, ScoredPair, fold, judge
from shared.rollout.tally import MAX_CLASSES, MAX_LABEL_CHARS, PredictionTally, short_label
from shared.store import MAX_STRING_CHARS, _rollout_entity
from tests.builders import started
from tests.predictions.helpers import BUDGET, T0, check


def _label(i: int) -> str:  # 80 characters, all sharing their first 70
    return f"{'a-very-long-class-name-' * 4}"[:70] + f"{i:010d}"


def _worst_tally() -> tuple[PredictionTally, object]:
    c = check(score="/score", bins=100, score_shift={"max_increase": 0.05}, ks={"max_increase": 0.1})
    labels = [_label(i) for i in range(MAX_CLASSES + 3)]  # more than kept: the rest pooled as (other)
    pairs: list[ScoredPair] = []
    for b in labels:  # every cell of the confusion matrix, green's errors included
        for g in labels:
            for k in range(3):
                pairs.append(
                    ScoredPair(
                        blue_label=b,
                        green_label=g,
                        blue_score=k / 3 - 0.5,
                        green_score=k / 2 + 0.001,
                        expected=b,
                    )
                )
        pairs.append(ScoredPair(blue_label=b, green_error="HTTP 500 " + "x" * 300, expected=b))
    for i in range(102):  # every histogram bin, both ends included
        s = -0.005 + i / 100
        pairs.append(ScoredPair(blue_label=labels[0], green_label=labels[0], blue_score=s, green_score=s))
    tally = None
    for minute in range(3):
        batch = PredictionBatch(
            at=T0 + timedelta(minutes=minute),
            pairs=tuple(pairs),
            next_cursor=10**12,
            source="https://account.blob.core.windows.net/" + "c" * 400,
        )
        tally = fold(tally, c, batch)
    assert tally is not None
    return tally, c


def test_labels_are_cut_short_and_distinct_long_labels_stay_distinct():
    a, b = short_label(_label(1)), short_label(_label(2))
    assert len(a) <= MAX_LABEL_CHARS
    assert len(b) <= MAX_LABEL_CHARS
    assert a != b
    assert short_label("fraud") == "fraud"


def test_the_worst_case_tally_keeps_the_stored_rollout_well_under_the_limit():
    tally, c = _worst_tally()
    assert len(tally.classes) == MAX_CLASSES
    assert len(tally.confusion) == (MAX_CLASSES + 1) * (MAX_CLASSES + 2)  # the full matrix
    assert all(len(label) <= MAX_LABEL_CHARS for cell in tally.confusion for label in cell[:2])
    assert all(x > 0 for x in tally.blue_hist)
    assert all(x > 0 for x in tally.green_hist)
    assert len(tally.samples) == 5
    assert judge(c, tally, BUDGET)  # still judged
    rollout = started(RolloutPolicy()).model_copy(update={"predictions": tally, "last_reason": "r" * 500})
    doc = _rollout_entity(rollout, None)["Doc"]  # raises past MAX_STRING_CHARS
    assert len(doc) < 0.75 * MAX_STRING_CHARS, len(doc)
    assert PredictionTally.model_validate_json(tally.model_dump_json()) == tally
