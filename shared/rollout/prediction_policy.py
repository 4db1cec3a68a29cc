"""The policy's `predictions:` section (judge the model, not just the service) and its `kpis:` list.

While green is mirrored (and, with `before_mirror`, at 0% before the mirror) the shell scores the
same inputs on blue and on green and the pure core compares the answers (predictions.py). KPI
checks compare per-deployment business figures returned by KQL queries (kpi.py). Both spend the
false-rollback budget like the other checks (RolloutPolicy.statistical_checks).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from shared.rollout.data_asset_uri import MAX_URI, parse_data_uri
from shared.rollout.model import Frozen

Fraction = Annotated[float, Field(strict=True, ge=0, le=1)]
Flag = Annotated[bool, Field(strict=True)]
Positive = Annotated[float, Field(strict=True, gt=0)]
# At most this many inline rows (a larger sample belongs in Blob storage as JSON Lines).
MAX_INLINE_ROWS = 200
_POINTER = re.compile(r"^(/([^~/]|~[01])*)*$")


def _pointer(value: str) -> str:
    if not _POINTER.fullmatch(value):
        raise ValueError(
            f"a JSON pointer (RFC 6901) is empty or starts with '/', and '~' is written ~0 or ~1, got {value!r}"
        )
    return value


Pointer = Annotated[str, Field(strict=True, max_length=500)]


class Margins(Frozen):
    """Catch `max_increase` (a stage passes only once the change is proven below it), leave
    `leave_alone` alone (a rollback needs the change proven above it; default half of max_increase)."""

    enabled: Flag = True
    max_increase: Fraction
    leave_alone: Fraction | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Margins:
        if self.leave_alone is not None and self.leave_alone >= self.max_increase:
            raise ValueError(
                f"leave_alone ({self.leave_alone:g}) must be smaller than max_increase ({self.max_increase:g})"
            )
        return self

    @property
    def leave_alone_margin(self) -> float:
        return self.max_increase / 2 if self.leave_alone is None else self.leave_alone


class AccuracyMargins(Frozen):
    """With expected labels: green's accuracy may fall below blue's by at most `max_decrease`
    (paired, McNemar-style); `required`: hold the stage when the sample has no labels."""

    enabled: Flag = True
    max_decrease: Fraction = 0.02
    leave_alone: Fraction | None = None
    required: Flag = False

    @model_validator(mode="after")
    def _ordered(self) -> AccuracyMargins:
        if self.leave_alone is not None and self.leave_alone >= self.max_decrease:
            raise ValueError(
                f"leave_alone ({self.leave_alone:g}) must be smaller than max_decrease ({self.max_decrease:g})"
            )
        return self

    @property
    def leave_alone_margin(self) -> float:
        return self.max_decrease / 2 if self.leave_alone is None else self.leave_alone


class DataCollectorSource(Frozen):
    """Blue's recent inputs as Azure ML data collection writes them: JSON Lines under
    `modelDataCollector/{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/{HH}/` in the
    workspace's blob store (docs/AZURE-FACTS-USED.md)."""

    account_url: Annotated[str, Field(strict=True, pattern=r"^https?://\S+$")]  # the workspaceblobstore's account
    container: Annotated[str, Field(strict=True, pattern=r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])?$")]
    collection: Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9_.-]{1,100}$")] = "model_inputs"
    hours: Annotated[int, Field(strict=True, ge=1, le=168)] = 24  # how far back to read
    max_rows: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 5000
    # model_inputs rows are sent as {wrap: [row]} (the scoring script's input shape); null: the row as it is
    wrap: Annotated[str, Field(strict=True, min_length=1, max_length=100)] | None = "data"


class PredictionInputs(Frozen):
    """Where the inputs come from: inline rows, a JSON Lines file in Blob storage or an Azure ML data
    asset (one `{"input": ..., "label": ...}` per line; `label` optional), and/or blue's data collector."""

    rows: tuple[dict[str, Any], ...] = Field(default=(), max_length=MAX_INLINE_ROWS)
    url: Annotated[str, Field(strict=True, pattern=r"^https?://\S+\.jsonl?(\?\S*)?$")] | None = None
    # An Azure ML data asset (azureml:<name>:<version>, azureml:<name>@latest) or datastore path
    # (azureml://datastores/<datastore>/paths/<path>): JSON Lines like `url` (shared/rollout/data_asset_uri.py)
    data_asset: Annotated[str, Field(strict=True, max_length=MAX_URI)] | None = None
    data_collector: DataCollectorSource | None = None

    @field_validator("rows")
    @classmethod
    def _rows(cls, rows: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        for i, row in enumerate(rows):
            if "input" not in row:
                raise ValueError(f"rows[{i}] needs an `input` (the request body), and may have a `label`")
            extra = set(row) - {"input", "label"}
            if extra:
                raise ValueError(f"rows[{i}] has unknown keys {sorted(extra)} (only input and label)")
        return rows

    @field_validator("data_asset")
    @classmethod
    def _data_asset(cls, value: str | None) -> str | None:
        if value is not None:
            parse_data_uri(value)  # ValueError saying what is wrong; pydantic names the field
        return value

    @model_validator(mode="after")
    def _some(self) -> PredictionInputs:
        if not self.rows and self.url is None and self.data_asset is None and self.data_collector is None:
            raise ValueError("give inputs: rows, a url to a JSON Lines file, a data_asset, or data_collector")
        return self


class PredictionCheck(Frozen):
    """Score the same inputs on blue and green and compare the answers."""

    inputs: PredictionInputs
    prediction: Pointer  # where the prediction sits in the response (RFC 6901), e.g. /label or /0
    kind: Literal["label", "score"] = "label"
    score: Pointer | None = None  # with kind label: where a score sits too (its distributions are compared)
    # label: the share of inputs on which green's label differs from blue's (green's unreadable answers count)
    disagreement: Margins = Margins(max_increase=0.05)
    # label: the largest change of any class's share of the predictions (points)
    class_shift: Margins = Margins(max_increase=0.05)
    # score: |mean(green - blue)| on the same inputs, in the score's own units
    score_shift: Margins | None = None
    # score: Kolmogorov-Smirnov distance between green's and blue's score distributions
    ks: Margins = Margins(max_increase=0.2)
    score_range: tuple[float, float] = (0.0, 1.0)  # histogram range (values outside go to the end bins)
    bins: Annotated[int, Field(strict=True, ge=2, le=100)] = 20
    accuracy: AccuracyMargins = AccuracyMargins()
    min_pairs: Annotated[int, Field(strict=True, ge=1)] = 100
    max_requests_per_minute: Annotated[int, Field(strict=True, ge=1, le=6000)] = 60  # to EACH deployment
    max_requests_per_stage: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] = 5000
    before_mirror: Flag = False  # compare at 0% before the mirror starts (the mirror then only follows a pass)

    @field_validator("prediction", "score")
    @classmethod
    def _pointers(cls, value: str | None) -> str | None:
        return None if value is None else _pointer(value)

    @model_validator(mode="after")
    def _consistent(self) -> PredictionCheck:
        lo, hi = self.score_range
        if not lo < hi:
            raise ValueError(f"score_range must be [low, high] with low < high, got {list(self.score_range)}")
        if self.max_requests_per_stage < self.min_pairs:
            raise ValueError(
                f"max_requests_per_stage ({self.max_requests_per_stage}) must be at least min_pairs ({self.min_pairs})"
            )
        return self

    @property
    def scores(self) -> bool:
        """Whether scores are compared (a score kind, or a label with a score pointer)."""
        return self.kind == "score" or self.score is not None

    def statistical_checks(self) -> int:
        n = int(self.disagreement.enabled)
        if self.kind == "label":
            n += int(self.class_shift.enabled)
        if self.scores:
            n += int(self.ks.enabled) + int(self.score_shift is not None and self.score_shift.enabled)
        return n + int(self.accuracy.enabled and self.kind == "label")


class KpiCheck(Frozen):
    """A business figure per deployment from a KQL query. The query gets `let` bindings it may use:
    blue_deployment, green_deployment, endpoint_name (strings), window_start, window_end (datetimes),
    and must return one row per deployment with columns Deployment, Count and, for a proportion,
    Successes; for a mean, Mean and Variance."""

    name: Annotated[str, Field(strict=True, pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")]
    source: Literal["log_analytics", "app_insights"] = "log_analytics"
    # log_analytics: the workspace id (GUID) to query, default the app's workspace; app_insights: the
    # Application Insights resource's ARM id
    resource: Annotated[str, Field(strict=True, max_length=500)] | None = None
    query: Annotated[str, Field(strict=True, min_length=1, max_length=10_000)]
    kind: Literal["proportion", "mean"] = "proportion"
    direction: Literal["higher_is_better", "lower_is_better"] = "higher_is_better"
    max_decrease: Positive  # the harm to catch, in the KPI's units (points for a proportion)
    leave_alone: Positive | None = None
    min_count: Annotated[int, Field(strict=True, ge=1)] = 100

    @model_validator(mode="after")
    def _ordered(self) -> KpiCheck:
        if self.leave_alone is not None and self.leave_alone >= self.max_decrease:
            raise ValueError(
                f"leave_alone ({self.leave_alone:g}) must be smaller than max_decrease ({self.max_decrease:g})"
            )
        if self.kind == "proportion" and self.max_decrease > 1:
            raise ValueError(f"a proportion's max_decrease is at most 1 (points), got {self.max_decrease:g}")
        if self.source == "app_insights" and not (self.resource or "").startswith("/subscriptions/"):
            raise ValueError("an app_insights KPI needs `resource`: the Application Insights resource's ARM id")
        return self

    @property
    def leave_alone_margin(self) -> float:
        return self.max_decrease / 2 if self.leave_alone is None else self.leave_alone
