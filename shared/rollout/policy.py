"""The rollout policy: stages, checks, limits and gates (the spec).

A snapshot of the policy is stored with each rollout when it starts, so editing the policy file
never changes a rollout in flight. Durations accept ISO 8601 ("PT10M"), seconds, or "90s", "10m",
"2h", "1d" so a policy file reads naturally.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, field_validator, model_validator

from shared.rollout.capacity_policy import CapacityPolicy, CostPolicy
from shared.rollout.model import Frozen
from shared.rollout.prediction_policy import KpiCheck, PredictionCheck

_SHORT_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Every duration in a policy is a positive span of at most a year: a zero or negative one has no
# meaning (an interval of 0s divides by zero; a negative retention deletes at once), and a huge one
# overflows date arithmetic at run time. Refused where the policy is parsed, naming the field.
MAX_DURATION = timedelta(days=365)


def _parse_duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"a duration must be like 90s, 10m, 2h, 1d or PT10M, got {value!r}")
    try:
        if isinstance(value, str):
            match = _SHORT_DURATION.match(value)
            if match:
                return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2].lower()])
        elif isinstance(value, int | float):
            return timedelta(seconds=value)
    except (OverflowError, ValueError):
        raise ValueError(f"duration {value!r} is out of range (at most {MAX_DURATION.days}d)") from None
    return value


def _check_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"a duration must be positive, got {format_duration(value)}")
    if value > MAX_DURATION:
        raise ValueError(f"a duration must be at most {MAX_DURATION.days}d, got {format_duration(value)}")
    return value


def format_duration(value: timedelta) -> str:
    """The short form people write in a policy file: 90s, 10m, 2h, 1d (parses back exactly)."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:.6f}".rstrip("0") + "s"


Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    AfterValidator(_check_duration),
    PlainSerializer(format_duration, return_type=str),
]
# Strict numbers: YAML's `true` is not 1, and 2.5 requests is not a count.
Count = Annotated[int, Field(strict=True, ge=1)]
Percent = Annotated[float, Field(strict=True, ge=0, le=100)]
Fraction = Annotated[float, Field(strict=True, ge=0, le=1)]
Flag = Annotated[bool, Field(strict=True)]
# The latency percentiles Azure Monitor has for online endpoints (RequestLatency_P50/P90/P95/P99,
# docs/AZURE-FACTS-USED.md); any other would fail the shared metrics query for every rollout.
METRIC_PERCENTILES = (50, 90, 95, 99)
_STATUS_CODE = re.compile(r"^(?:[1-5]xx|[1-5][0-9][0-9])$")


def _status_codes(codes: tuple[str, ...]) -> tuple[str, ...]:
    bad = [c for c in codes if not _STATUS_CODE.match(c)]
    if bad:
        raise ValueError(f"status codes are like 5xx, 408 or 424 (100-599), got {bad}")
    if not codes:
        raise ValueError("give at least one status code that counts as an error (e.g. 5xx)")
    return codes


class MirrorStage(Frozen):
    """Green gets `percent` mirrored copies of live requests; its answers are discarded."""

    percent: Annotated[int, Field(strict=True, ge=1, le=50)] = 20
    min_duration: Duration = timedelta(minutes=5)  # soak time: the least a stage lasts, however clear the proof
    min_requests: Count = 200
    max_duration: Duration = timedelta(minutes=60)
    approval: Flag = False  # wait for a person before mirroring starts


class CanaryStep(Frozen):
    """Green serves `percent` of users; blue the rest."""

    percent: Annotated[int, Field(strict=True, ge=1, le=99)]
    min_duration: Duration = timedelta(minutes=5)
    min_requests: Count = 200
    max_duration: Duration = timedelta(minutes=60)
    approval: Flag = False  # wait for a person before entering this step


class BakeStage(Frozen):
    """Green at 100%; blue kept at 0 so a rollback is one traffic change away."""

    duration: Duration = timedelta(minutes=5)
    min_requests: Count = 100
    max_duration: Duration = timedelta(minutes=60)
    approval: Flag = False


def _margins(check: str, max_increase: float, leave_alone: float | None) -> None:
    if leave_alone is not None and leave_alone >= max_increase:
        raise ValueError(
            f"{check}.leave_alone ({leave_alone:g}) must be smaller than {check}.max_increase ({max_increase:g}): "
            "the change to leave alone is smaller than the harm to catch"
        )


class ErrorCheck(Frozen):
    """Server-side failures: by default 5xx, 408 (model timeout), 424 (model returned 5xx) and 429
    (throttled: at green's share of traffic, throttling is a regression users feel).

    Two margins: `max_increase` is the harm the check promises to catch (a stage advances only once
    green is proven below it) and `leave_alone` the smaller change it promises not to roll back for
    (a rollback needs green proven above it). Between the two the stage keeps collecting."""

    enabled: Flag = True
    max_increase: Fraction = 0.005  # green may exceed blue's error rate by this many points (0.005 = half a point)
    leave_alone: Fraction | None = None  # default: half of max_increase
    ceiling: Fraction | None = 0.05  # veto: green's error rate proven above this
    status_codes: Annotated[tuple[str, ...], AfterValidator(_status_codes)] = ("5xx", "408", "424", "429")

    @model_validator(mode="after")
    def _ordered(self) -> ErrorCheck:
        _margins("errors", self.max_increase, self.leave_alone)
        return self

    @property
    def leave_alone_margin(self) -> float:
        return self.max_increase / 2 if self.leave_alone is None else self.leave_alone


Relative = Annotated[float, Field(strict=True, ge=0, le=100)]


class LatencyCheck(Frozen):
    """Green's latency percentile against blue's: catch `max_increase` (relative: 0.2 = 20% slower),
    leave `leave_alone` alone (default half of it)."""

    enabled: Flag = True
    percentile: Annotated[float, Field(strict=True)] = 90
    max_increase: Relative = 0.2
    leave_alone: Relative | None = None
    ceiling_ms: Annotated[float, Field(strict=True, gt=0)] | None = None  # veto: green's percentile proven above this

    @model_validator(mode="after")
    def _ordered(self) -> LatencyCheck:
        _margins("latency", self.max_increase, self.leave_alone)
        return self

    @property
    def leave_alone_margin(self) -> float:
        return self.max_increase / 2 if self.leave_alone is None else self.leave_alone

    @field_validator("percentile")
    @classmethod
    def _metric_percentile(cls, value: float) -> float:
        if value not in METRIC_PERCENTILES:
            known = ", ".join(f"P{p}" for p in METRIC_PERCENTILES)
            raise ValueError(f"Azure Monitor has latency percentiles {known}, got P{value:g}")
        return value


class TailLatencyCheck(Frozen):
    """The slow tail: green's `percentile` (P99) against blue's, so a regression of a few percent of
    requests is caught even when the median and P90 do not move. Margins as for latency."""

    enabled: Flag = True
    percentile: Annotated[float, Field(strict=True)] = 99
    max_increase: Relative = 0.5  # green's P99 may be 50% above blue's
    leave_alone: Relative | None = None

    @field_validator("percentile")
    @classmethod
    def _tail_percentile(cls, value: float) -> float:
        tails = [p for p in METRIC_PERCENTILES if p > 50]
        if value not in tails:
            known = ", ".join(f"P{p}" for p in tails)
            raise ValueError(f"the tail is one of Azure Monitor's latency percentiles {known}, got P{value:g}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> TailLatencyCheck:
        _margins("tail_latency", self.max_increase, self.leave_alone)
        return self

    @property
    def leave_alone_margin(self) -> float:
        return self.max_increase / 2 if self.leave_alone is None else self.leave_alone


class ResourceCheck(Frozen):
    """Absolute ceilings on green's per-minute utilisation, sustained for `sustained_minutes`."""

    cpu_ceiling: Percent | None = 90
    memory_ceiling: Percent | None = 90
    sustained_minutes: Annotated[int, Field(strict=True, ge=1, le=60)] = 3


class AnalysisSettings(Frozen):
    # Accepted for policy files written for earlier versions; it changes nothing: the judge's bounds
    # hold at every look, so every timer tick judges.
    interval: Duration = timedelta(minutes=1)
    ingestion_lag: Duration = timedelta(minutes=2)  # metrics settle late; never judge the newest minutes
    # Probability that a green within every leave-alone margin is rolled back anywhere in the rollout.
    # Split over the checks (and, within a check, over the stages it judges); never over looks.
    false_rollback_rate: Annotated[float, Field(strict=True, gt=0, lt=0.5)] = 0.01
    # Probability that one stage's proof passes a green exactly at a check's max_increase (larger
    # regressions far less often; to be promoted a regression must pass every stage).
    missed_regression_rate: Annotated[float, Field(strict=True, gt=0, lt=0.5)] = 0.05


class SmokeTest(Frozen):
    """Requests sent straight to green at 0% traffic before any mirroring."""

    requests: tuple[dict[str, Any], ...] = Field(min_length=1, max_length=20)
    max_failures: Annotated[int, Field(strict=True, ge=0)] = 0


NoDataAction = Literal["pause", "rollback"]


class RolloutPolicy(Frozen):
    mirror: MirrorStage | None = MirrorStage()
    steps: tuple[CanaryStep, ...] = (CanaryStep(percent=10), CanaryStep(percent=50))
    bake: BakeStage = BakeStage()
    errors: ErrorCheck = ErrorCheck()
    latency: LatencyCheck = LatencyCheck()
    tail_latency: TailLatencyCheck = TailLatencyCheck()
    resources: ResourceCheck = ResourceCheck()
    analysis: AnalysisSettings = AnalysisSettings()
    smoke_test: SmokeTest | None = None
    # Blue's and green's answers to the same inputs, compared while green is mirrored (prediction_policy.py).
    predictions: PredictionCheck | None = None
    # Business KPIs per deployment from KQL queries, judged while green serves users beside blue.
    kpis: tuple[KpiCheck, ...] = Field(default=(), max_length=10)
    # A stage that cannot reach a verdict by its max_duration (too little data, inconclusive).
    on_stage_timeout: NoDataAction = "pause"
    # A rollout paused by a person (or waiting for approval) while green holds traffic is still judged:
    # a proven regression rolls it back, unless this says hold (then it is only reported).
    while_paused: Literal["rollback", "hold"] = "rollback"
    # Provider failures in a row (metrics, logs, reads, orders Azure did not apply).
    consecutive_error_limit: Annotated[int, Field(strict=True, ge=1, le=100)] = 5
    on_provider_errors: NoDataAction = "pause"
    provisioning_timeout: Duration = timedelta(minutes=60)
    approval_timeout: Duration | None = timedelta(hours=24)
    on_approval_timeout: NoDataAction = "rollback"
    deadline: Duration = timedelta(hours=24)  # the whole rollout; then it is rolled back
    on_newer_version: Literal["supersede", "ignore"] = "supersede"
    # An alert about the whole endpoint (no `deployment` dimension) rolls back the rollout on it.
    endpoint_alerts_roll_back: Flag = True
    keep_old_blue_for: Duration = timedelta(hours=1)  # after success, as OLD_PROD
    keep_failed_green_for: Duration = timedelta(hours=2)  # after a rollback, so people can read logs
    capacity: CapacityPolicy | None = None  # green sized to its share (off: green copies blue's size)
    cost: CostPolicy | None = None  # prices and the cost gate before green gets all users

    @model_validator(mode="after")
    def _kpi_names(self) -> RolloutPolicy:
        names = [k.name for k in self.kpis]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"kpis: each name once, got {twice} more than once")
        return self

    @model_validator(mode="after")
    def _steps_increase(self) -> RolloutPolicy:
        percents = [s.percent for s in self.steps]
        if percents != sorted(set(percents)):
            raise ValueError(f"canary steps must strictly increase, got {percents}")
        stages = [("mirror", self.mirror), *((f"steps[{i}]", s) for i, s in enumerate(self.steps))]
        for name, stage in stages:
            if stage is not None and stage.max_duration < stage.min_duration:
                raise ValueError(
                    f"{name}.max_duration ({format_duration(stage.max_duration)}) must be at least "
                    f"its min_duration ({format_duration(stage.min_duration)})"
                )
        sizes = self.capacity.sizes if self.capacity is not None else None
        if sizes is not None and len(sizes.steps) != len(self.steps):
            raise ValueError(
                f"capacity.sizes.steps gives {len(sizes.steps)} instance counts for {len(self.steps)} canary steps"
            )
        if self.bake.max_duration < self.bake.duration:
            raise ValueError(
                f"bake.max_duration ({format_duration(self.bake.max_duration)}) must be at least "
                f"bake.duration ({format_duration(self.bake.duration)})"
            )
        return self

    def statistical_checks(self) -> int:
        """Checks that spend the false-rollback budget: comparisons with blue and proven ceilings."""
        return (
            int(self.errors.enabled)
            + int(self.errors.enabled and self.errors.ceiling is not None)
            + int(self.latency.enabled)
            + int(self.latency.enabled and self.latency.ceiling_ms is not None)
            + int(self.tail_latency.enabled)
            + int(self.capacity is not None and self.capacity.check.enabled)
            + (self.predictions.statistical_checks() if self.predictions is not None else 0)
            + len(self.kpis)
        )

    def judged_stages(self) -> int:
        return (1 if self.mirror else 0) + len(self.steps) + 1

    def check_alpha(self) -> float:
        """The rollback budget of one check in one stage: the rollout's false-rollback rate split
        over the checks and the stages, never over looks (the bounds hold at every look)."""
        return self.analysis.false_rollback_rate / (max(1, self.statistical_checks()) * self.judged_stages())
