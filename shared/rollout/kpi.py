"""Business KPI checks: per-deployment figures from KQL queries, judged like any other check.

The shell runs each `kpis:` query (Log Analytics or Application Insights) with `let` bindings for
the deployments and the window prepended (`bindings`): user strings reach the query only as KQL
string literals built by `kql_string`, never pasted. The query returns one row per deployment
(Deployment, Count, and Successes for a proportion or Mean and Variance for a mean); `judge`
compares green with blue with the same confidence sequences as the other checks (a difference of
two means, each with its own variance: Howard et al. 2021; Waudby-Smith et al. 2024), in the
direction the policy names. A query that fails is a provider error (held, with the reason).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from shared.rollout import sequential
from shared.rollout.analysis import Budget, CheckResult, EvidenceValue, Verdict, _round, verdict_of
from shared.rollout.model import Frozen
from shared.rollout.prediction_policy import KpiCheck

TARGET_COUNT = 2000  # where the bounds are tightest (validity does not depend on it)


def kql_string(value: str) -> str:
    """A KQL string literal: single quotes, with the backslash, the quote, newline and tab escaped
    (the escapes learn.microsoft.com/kusto/query/scalar-data-types/string documents: the enclosing
    quote, \\t, \\n and \\\\). Other control characters (a carriage return included) have no
    documented escape and are refused."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ch == "\x7f":
            raise ValueError(f"a control character (U+{ord(ch):04X}) cannot be put in a KQL string")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def kql_datetime(t: datetime) -> str:
    """An ISO 8601 datetime literal, in UTC (the form the KQL reference recommends)."""
    return f"datetime({t.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')})"


def bindings(*, endpoint: str, blue: str, green: str, start: datetime, end: datetime) -> str:
    """The `let` statements prepended to every KPI query."""
    return (
        f"let endpoint_name = {kql_string(endpoint)};\n"
        f"let blue_deployment = {kql_string(blue)};\n"
        f"let green_deployment = {kql_string(green)};\n"
        f"let window_start = {kql_datetime(start)};\n"
        f"let window_end = {kql_datetime(end)};\n"
    )


class KpiRow(Frozen):
    deployment: str
    count: int
    successes: int | None = None
    mean: float | None = None
    variance: float | None = None


class KpiReading(Frozen):
    """One KPI query's answer this tick: its rows, or why it could not be read."""

    name: str
    rows: tuple[KpiRow, ...] = ()
    error: str | None = None


def row_problem(kpi_name: str, row: KpiRow) -> str | None:
    """Why a row cannot be judged (naming the KPI, the deployment and the column), or None: every
    figure finite, Count and Variance not negative, Successes within [0, Count]."""
    where = f"KPI {kpi_name!r}, deployment {row.deployment!r}"
    if row.count < 0:
        return f"{where}: Count is {row.count}, below 0"
    for column, value in (("Mean", row.mean), ("Variance", row.variance)):
        if value is not None and not math.isfinite(value):
            return f"{where}: {column} is {value}, not a finite number"
    if row.variance is not None and row.variance < 0:
        return f"{where}: Variance is {row.variance:g}, below 0"
    if row.successes is not None and not 0 <= row.successes <= row.count:
        return f"{where}: Successes is {row.successes}, outside [0, Count = {row.count}]"
    return None


def _row(reading: KpiReading, deployment: str) -> KpiRow | None:
    return next((r for r in reading.rows if r.deployment.lower() == deployment.lower()), None)


def _decide(
    name: str,
    lower: float,
    upper: float,
    kpi: KpiCheck,
    show: str,
    what: str,
    evidence: dict[str, EvidenceValue],
) -> CheckResult:
    check = f"kpi:{name}"
    leave, catch = kpi.leave_alone_margin, kpi.max_decrease

    def fmt(x: float) -> str:
        if math.isinf(x):
            return "∞" if x > 0 else "-∞"
        return f"{x:+.2%}" if show == "points" else f"{x:+.4g}"

    return verdict_of(check, lower, upper, leave, catch, fmt, f"bounds {fmt(lower)} .. {fmt(upper)}", what, evidence)


def judge_one(kpi: KpiCheck, reading: KpiReading | None, blue: str, green: str, budget: Budget) -> CheckResult:
    check = f"kpi:{kpi.name}"
    evidence: dict[str, EvidenceValue] = {
        "source": kpi.source,
        "kind": kpi.kind,
        "direction": kpi.direction,
        "alpha": _round(budget.alpha),
        "beta": _round(budget.beta),
    }
    if reading is None:
        return CheckResult(check=check, verdict=Verdict.NO_DATA, summary="the query was not run", evidence=evidence)
    if reading.error is not None:
        return CheckResult(
            check=check, verdict=Verdict.NO_DATA, summary=f"cannot read the KPI: {reading.error}", evidence=evidence
        )
    g, b = _row(reading, green), _row(reading, blue)
    for row in (g, b):
        if row is not None and (problem := row_problem(kpi.name, row)) is not None:
            return CheckResult(
                check=check,
                verdict=Verdict.NO_DATA,
                summary=f"the query's answer is invalid: {problem}",
                evidence=evidence,
            )
    evidence |= {"green_count": g.count if g else 0, "blue_count": b.count if b else 0, "min_count": kpi.min_count}
    if g is None or b is None or g.count < kpi.min_count or b.count < kpi.min_count:
        return CheckResult(
            check=check,
            verdict=Verdict.NO_DATA,
            summary=f"{g.count if g else 0} rows for green and {b.count if b else 0} for blue; "
            f"{kpi.min_count} each needed",
            evidence=evidence,
        )
    sign = 1.0 if kpi.direction == "higher_is_better" else -1.0
    if kpi.kind == "proportion":
        if g.successes is None or b.successes is None:
            return CheckResult(
                check=check,
                verdict=Verdict.NO_DATA,
                summary="the query returned no Successes column (a proportion needs Deployment, Count, Successes)",
                evidence=evidence,
            )
        pg, pb = g.successes / g.count, b.successes / b.count
        sg, sb = (g.successes + 1) / (g.count + 2), (b.successes + 1) / (b.count + 2)
        var = sg * (1 - sg) / g.count + sb * (1 - sb) / b.count
        green_value, blue_value, show = pg, pb, "points"
    else:
        if g.mean is None or b.mean is None or g.variance is None or b.variance is None:
            return CheckResult(
                check=check,
                verdict=Verdict.NO_DATA,
                summary="the query returned no Mean or Variance column "
                "(a mean needs Deployment, Count, Mean, Variance)",
                evidence=evidence,
            )
        green_value, blue_value, show = g.mean, b.mean, "units"
        var = max(g.variance, 0.0) / g.count + max(b.variance, 0.0) / b.count
        if var <= 0:
            var = (kpi.max_decrease / 4) ** 2 / min(g.count, b.count)
    decrease = sign * (blue_value - green_value)
    v_opt = TARGET_COUNT / min(g.count, b.count) / var
    lower = decrease - sequential.radius(var, budget.alpha, v_opt)
    upper = decrease + sequential.radius(var, budget.beta, v_opt)
    evidence |= {
        "green": _round(green_value),
        "blue": _round(blue_value),
        "decrease": _round(decrease),
        "lower": _round(lower),
        "upper": _round(upper),
        "leave_alone": kpi.leave_alone_margin,
        "max_decrease": kpi.max_decrease,
        "method": "difference of two means, confidence sequence (normal mixture)",
    }
    spec = ".2%" if show == "points" else ".4g"
    what = f"{kpi.name}: green {green_value:{spec}} vs blue {blue_value:{spec}}"
    return _decide(kpi.name, lower, upper, kpi, show, what, evidence)


def judge(
    kpis: tuple[KpiCheck, ...], readings: tuple[KpiReading, ...], blue: str, green: str, budget: Budget
) -> tuple[CheckResult, ...]:
    by_name = {r.name: r for r in readings}
    return tuple(judge_one(k, by_name.get(k.name), blue, green, budget) for k in kpis)
