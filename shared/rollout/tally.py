"""The prediction comparison's sufficient statistics, kept in the Rollout between ticks.

Bounded whatever the traffic: counts, a confusion matrix of at most MAX_CLASSES classes (the rest
pooled as `(other)`, green's unreadable answers as `(error)`), sums for the paired score
difference and fixed-bin histograms. Every label kept is at most MAX_LABEL_CHARS characters (a
longer one is cut and ends with a short hash of the whole label, so distinct labels stay distinct),
and every collection has a bound enforced by the model itself. The whole Rollout is stored as one
string of at most 30,000 characters (shared/store.py MAX_STRING_CHARS); in the worst case (12
maximal labels, the full confusion matrix, 100-bin histograms, every sample) this tally serializes
to about 14,400 characters (tests/predictions/test_tally_size.py keeps the Rollout well under the
limit). No imports from the rest of the core, so model.py can hold it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_CLASSES = 12
OTHER = "(other)"
ERROR = "(error)"
MAX_LABEL_CHARS = 32  # a class label kept in the tally (longer ones: cut, with a hash suffix)
MAX_BINS = 100  # prediction_policy.PredictionCheck.bins allows at most this many
MAX_SAMPLES = 5  # disagreeing pairs kept for people
MAX_SAMPLE_CHARS = 120
MAX_SOURCE_CHARS = 200
MAX_KEY_CHARS = 160  # a sample key (model_checks._key, blob_inputs.collected_key: at most ~150)
# blue's label: a class or OTHER; green's: a class, OTHER or ERROR
MAX_CELLS = (MAX_CLASSES + 1) * (MAX_CLASSES + 2)

Label = Annotated[str, StringConstraints(max_length=MAX_LABEL_CHARS)]
Histogram = Annotated[tuple[int, ...], Field(max_length=MAX_BINS + 2)]


def short_label(label: str) -> str:
    """The label as the tally keeps it: itself if short enough, else its start, '~' and the first
    8 hex digits of its SHA-256 (so two long labels with the same start stay two classes)."""
    if len(label) <= MAX_LABEL_CHARS:
        return label
    digest = hashlib.sha256(label.encode("utf-8")).hexdigest()[:8]
    return f"{label[: MAX_LABEL_CHARS - 9]}~{digest}"


class PredictionTally(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    scored: int = 0  # inputs sent to both deployments in this comparison (each costs two requests)
    pairs: int = 0  # pairs judged: blue answered (green's failures included, as its errors)
    blue_errors: int = 0  # blue failed or its answer had no prediction: the pair is left out
    green_errors: int = 0  # green failed or its answer had no prediction at the pointer
    disagree: int = 0  # pairs whose labels differ, green's errors included
    # labels seen (short_label), first come first kept, at most MAX_CLASSES
    classes: Annotated[tuple[Label, ...], Field(max_length=MAX_CLASSES)] = ()
    # (blue label, green label, count); labels outside `classes` are OTHER, green's errors ERROR
    confusion: Annotated[tuple[tuple[Label, Label, int], ...], Field(max_length=MAX_CELLS)] = ()
    labeled: int = 0  # pairs whose input carried an expected label
    blue_correct: int = 0
    green_correct: int = 0
    only_green_right: int = 0  # discordant pairs (McNemar)
    only_blue_right: int = 0
    score_pairs: int = 0  # pairs with a score from both
    diff_sum: float = 0.0  # sum of green score - blue score
    diff_sq_sum: float = 0.0
    blue_hist: Histogram = ()  # bins + 2 (below the range, ..., above the range)
    green_hist: Histogram = ()
    cursor: int = 0  # the next input of the sample to score (by position: a tally kept before last_key)
    # the key of the last input scored (model_checks.next_input goes on just after it)
    last_key: Annotated[str, StringConstraints(max_length=MAX_KEY_CHARS)] = ""
    exhausted: bool = False  # the last batch reached the end of the sample
    source: Annotated[str, StringConstraints(max_length=MAX_SOURCE_CHARS)] = (
        ""  # where the inputs came from (for people)
    )
    last_at: datetime | None = None  # when the last batch was scored (the per-minute budget)
    started_at: datetime | None = None  # when the comparison began (the pre-mirror time limit)
    # a few disagreeing pairs, for people
    samples: Annotated[
        tuple[Annotated[str, StringConstraints(max_length=MAX_SAMPLE_CHARS)], ...], Field(max_length=MAX_SAMPLES)
    ] = ()
