"""Judge the model, not just the service: blue's and green's answers to the same inputs, compared.

The shell scores a batch of inputs on both deployments each tick (within the policy's budget) and
hands the answers over as ScoredPairs; `fold` adds them to the bounded tally kept in the Rollout and
`judge` turns the tally into CheckResults with the three outcomes of every other check (analysis.py):
Pass (proven within `max_increase`), Fail (proven beyond `leave_alone`), Inconclusive. Every bound is
one side of an anytime-valid confidence sequence, so every tick may look:

- disagreement: the share of inputs on which green's label differs from blue's, green's unreadable
  answers included (for a score, the share of green's unreadable answers); normal-mixture confidence
  sequence of a Bernoulli mean (Howard, Ramdas, McAuliffe, Sekhon 2021), the rollback side with the
  variance at the margin (a score test, as for error rates);
- class shift: for every class c the paired difference 1[green = c] - 1[blue = c]; its largest
  absolute mean over the classes, each class at alpha / (2 K) (Bonferroni over classes and sides);
- score shift: the mean of the paired difference green - blue, two-sided; a floor on its spread
  (a quarter of the margin) so that a few identical answers prove nothing;
- KS: the Kolmogorov-Smirnov distance between green's and blue's score distributions at the
  histogram's bin edges, bounded with the time-uniform DKW inequality of Howard & Ramdas (2022,
  "Sequential estimation of quantiles with applications to A/B-testing and best-arm
  identification", Bernoulli 28(3), Theorem 2): with probability 1 - a, for every n at once,
  sup_x |F_n(x) - F(x)| <= 0.85 sqrt((log log(e n) + 0.8 log(1612 / a)) / n); the two samples'
  bands (each at a / 2) bound the distance by the triangle inequality. A shift proven at the bin
  edges is a shift; a pass says the distributions agree at the resolution of the bins;
- accuracy (with expected labels): d = 1[green right] - 1[blue right] per input, a paired
  McNemar-style comparison (McNemar 1947) whose mean only the discordant pairs move; green's decrease
  against the margin.

Nothing passes unjudged: too few pairs, an empty or exhausted sample, or a sample without labels
when accuracy is required holds the stage with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import StringConstraints

from shared.rollout import sequential
from shared.rollout.analysis import Budget, CheckResult, EvidenceValue, Verdict, _round, _three_way
from shared.rollout.model import Frozen
from shared.rollout.prediction_policy import PredictionCheck
from shared.rollout.tally import (
    ERROR,
    MAX_CLASSES,
    MAX_KEY_CHARS,
    MAX_SAMPLE_CHARS,
    MAX_SAMPLES,
    MAX_SOURCE_CHARS,
    OTHER,
    PredictionTally,
    short_label,
)

# The information (pairs) at which the bounds are tightest; validity does not depend on it.
TARGET_PAIRS = 500
MAX_SAMPLES_KEPT = MAX_SAMPLES  # disagreeing pairs shown to people


class PointerError(ValueError):
    """The response has nothing (or nothing usable) at the policy's JSON pointer."""


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901: '' is the whole document; '/a/0' is member a, then element 0; ~1 is '/', ~0 is '~'."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise PointerError(f"a JSON pointer starts with '/', got {pointer!r}")
    current = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict):
            if token not in current:
                raise PointerError(f"no member {token!r} at {pointer!r}")
            current = current[token]
        elif isinstance(current, list):
            if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
                raise PointerError(f"{token!r} is not an array index at {pointer!r}")
            index = int(token)
            if index >= len(current):
                raise PointerError(f"index {index} is past the end of the array at {pointer!r}")
            current = current[index]
        else:
            raise PointerError(f"{pointer!r} goes into a {type(current).__name__}")
    return current


def read_label(document: Any, pointer: str) -> str:
    value = resolve_pointer(document, pointer)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise PointerError(f"expected a class label at {pointer!r}, got {type(value).__name__}")


def read_score(document: Any, pointer: str) -> float:
    value = resolve_pointer(document, pointer)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise PointerError(f"expected a finite number at {pointer!r}, got {value!r}"[:200])
    return float(value)


class ScoredPair(Frozen):
    """One input's answers. A side that failed or had no prediction at the pointer carries an error."""

    blue_label: str | None = None
    green_label: str | None = None
    blue_score: float | None = None
    green_score: float | None = None
    expected: str | None = None  # the input's expected label, if the sample has one
    blue_error: str = ""
    green_error: str = ""


class PredictionBatch(Frozen):
    """What the shell scored this tick."""

    at: datetime
    pairs: tuple[ScoredPair, ...] = ()
    next_cursor: int = 0
    last_key: Annotated[str, StringConstraints(max_length=MAX_KEY_CHARS)] = ""  # the last input scored
    exhausted: bool = False  # the sample had no more inputs after this batch
    source: str = ""


def pair_from_answers(
    check: PredictionCheck,
    blue: Any,
    green: Any,
    *,
    blue_error: str = "",
    green_error: str = "",
    expected: str | None = None,
) -> ScoredPair:
    """Read both answers at the policy's pointers; an answer that cannot be read is its side's error."""
    out: dict[str, Any] = {"expected": expected, "blue_error": blue_error, "green_error": green_error}
    for side, doc in (("blue", blue), ("green", green)):
        if out[f"{side}_error"]:
            continue
        try:
            if check.kind == "label":
                out[f"{side}_label"] = read_label(doc, check.prediction)
                if check.score is not None:
                    out[f"{side}_score"] = read_score(doc, check.score)
            else:
                out[f"{side}_score"] = read_score(doc, check.prediction)
        except PointerError as exc:
            out[f"{side}_error"] = f"unreadable answer: {exc}"
    return ScoredPair.model_validate(out)


# -- the budget ---------------------------------------------------------------------------------


MAX_CATCH_UP_MINUTES = 2.0  # a tick scores at most two minutes' budget, however long since the last


def inputs_due(check: PredictionCheck, tally: PredictionTally | None, now: datetime) -> int:
    """How many inputs to score now (each goes to both deployments): the per-minute budget for the
    minutes since the last batch, at most MAX_CATCH_UP_MINUTES' worth (a late tick does not burst),
    never past the per-stage budget."""
    tally = tally or PredictionTally()
    left = check.max_requests_per_stage - tally.scored
    if left <= 0:
        return 0
    since = 1.0 if tally.last_at is None else (now - tally.last_at).total_seconds() / 60
    minutes = min(MAX_CATCH_UP_MINUTES, since)
    return max(0, min(left, int(check.max_requests_per_minute * minutes)))


# -- folding ----------------------------------------------------------------------------------


def _bin(value: float, check: PredictionCheck) -> int:
    lo, hi = check.score_range
    if value < lo:
        return 0
    if value >= hi:
        return check.bins + 1
    return 1 + min(check.bins - 1, int((value - lo) / (hi - lo) * check.bins))


def fold(tally: PredictionTally | None, check: PredictionCheck, batch: PredictionBatch) -> PredictionTally:
    t = tally or PredictionTally()
    classes = list(t.classes)
    confusion: dict[tuple[str, str], int] = {(b, g): n for b, g, n in t.confusion}
    blue_hist = list(t.blue_hist) or [0] * (check.bins + 2)
    green_hist = list(t.green_hist) or [0] * (check.bins + 2)
    counts = t.model_dump(
        include={
            "pairs",
            "blue_errors",
            "green_errors",
            "disagree",
            "labeled",
            "blue_correct",
            "green_correct",
            "only_green_right",
            "only_blue_right",
            "score_pairs",
            "diff_sum",
            "diff_sq_sum",
        }
    )
    samples = list(t.samples)

    def cls(raw: str) -> str:
        label = short_label(raw)
        if label in classes:
            return label
        if len(classes) < MAX_CLASSES:
            classes.append(label)
            return label
        return OTHER

    for p in batch.pairs:
        blue_known = not p.blue_error and (p.blue_label is not None or p.blue_score is not None)
        if not blue_known:
            counts["blue_errors"] += 1
            continue  # nothing to compare green with: not green's fault
        counts["pairs"] += 1
        green_bad = bool(p.green_error) or (p.green_label is None and p.green_score is None)
        if green_bad:
            counts["green_errors"] += 1
        if check.kind == "label":
            b = cls(p.blue_label or "")
            g = ERROR if green_bad else cls(p.green_label or "")
            confusion[(b, g)] = confusion.get((b, g), 0) + 1
            differs = green_bad or p.green_label != p.blue_label
            if p.expected is not None:
                counts["labeled"] += 1
                blue_right = p.blue_label == p.expected
                green_right = not green_bad and p.green_label == p.expected
                counts["blue_correct"] += int(blue_right)
                counts["green_correct"] += int(green_right)
                counts["only_green_right"] += int(green_right and not blue_right)
                counts["only_blue_right"] += int(blue_right and not green_right)
        else:
            differs = green_bad
        if differs:
            counts["disagree"] += 1
            if len(samples) < MAX_SAMPLES_KEPT:
                got = p.green_error[:60] if green_bad else (short_label(p.green_label or "") or f"{p.green_score:g}")
                shown = short_label(p.blue_label or "") or p.blue_score
                samples.append(f"blue {shown} / green {got}"[:MAX_SAMPLE_CHARS])
        if p.blue_score is not None and p.green_score is not None and not green_bad:
            counts["score_pairs"] += 1
            diff = p.green_score - p.blue_score
            counts["diff_sum"] += diff
            counts["diff_sq_sum"] += diff * diff
            blue_hist[_bin(p.blue_score, check)] += 1
            green_hist[_bin(p.green_score, check)] += 1
    return PredictionTally(
        **counts,
        scored=t.scored + len(batch.pairs),
        classes=tuple(classes),
        confusion=tuple((b, g, n) for (b, g), n in sorted(confusion.items())),
        blue_hist=tuple(blue_hist) if check.scores else (),
        green_hist=tuple(green_hist) if check.scores else (),
        cursor=batch.next_cursor,
        last_key=batch.last_key or t.last_key,
        exhausted=batch.exhausted,
        source=(batch.source or t.source)[:MAX_SOURCE_CHARS],
        last_at=batch.at,
        started_at=t.started_at or batch.at,
        samples=tuple(samples),
    )


# -- judging ----------------------------------------------------------------------------------


def dkw_radius(n: int, alpha: float) -> float:
    """Howard & Ramdas (2022), Theorem 2: the time-uniform DKW band's half-width after n samples."""
    if n <= 0:
        return math.inf
    return 0.85 * math.sqrt((math.log(math.log(math.e * n)) + 0.8 * math.log(1612 / alpha)) / n)


def _proportion_bounds(successes: int, n: int, null_rate: float, budget: Budget) -> tuple[float, float]:
    """One-sided bounds on a Bernoulli mean: the rollback side with the variance at `null_rate` (a
    score test of 'at most null_rate'), the pass side with the (smoothed) rate seen."""
    rate = successes / n
    p0 = min(max(null_rate, 1 / (n + 2)), 0.5)
    var_lower = p0 * (1 - p0) / n
    smoothed = (successes + 1) / (n + 2)
    var_upper = smoothed * (1 - smoothed) / n
    lower = rate - sequential.radius(var_lower, budget.alpha, TARGET_PAIRS / n / var_lower)
    upper = rate + sequential.radius(var_upper, budget.beta, TARGET_PAIRS / n / var_upper)
    return lower, upper


def _absolute_bounds(mean: float, var: float, n: int, budget: Budget, split: int = 1) -> tuple[float, float]:
    """Bounds on |true mean| of a two-sided question (each side at half the level, and `split`
    questions asked at once): the lower one for a rollback, the upper one for a pass."""
    v_opt = TARGET_PAIRS / n / var
    r_low = sequential.radius(var, budget.alpha / (2 * split), v_opt)
    r_up = sequential.radius(var, budget.beta / (2 * split), v_opt)
    return abs(mean) - r_low, abs(mean) + r_up


def confusion_text(tally: PredictionTally) -> str:
    """'blue→green n' for every cell, largest first (the report draws the matrix from it)."""
    cells = sorted(tally.confusion, key=lambda c: (-c[2], c[0], c[1]))
    return "; ".join(f"{b}→{g} {n}" for b, g, n in cells)


def _base_evidence(check: PredictionCheck, tally: PredictionTally, budget: Budget) -> dict[str, EvidenceValue]:
    return {
        "pairs": tally.pairs,
        "scored_inputs": tally.scored,
        "requests_sent": 2 * tally.scored,
        "green_errors": tally.green_errors,
        "blue_errors": tally.blue_errors,
        "min_pairs": check.min_pairs,
        "source": tally.source,
        "alpha": _round(budget.alpha),
        "beta": _round(budget.beta),
    }


def _waiting(
    name: str, check: PredictionCheck, tally: PredictionTally, have: int, evidence: dict[str, EvidenceValue]
) -> CheckResult:
    if tally.exhausted and tally.scored >= check.max_requests_per_stage:
        why = f"the stage's budget of {check.max_requests_per_stage} inputs is spent with {have} pairs"
    elif tally.exhausted and tally.scored == 0:
        why = "the sample is empty: no input to score"
    elif tally.exhausted:
        why = f"the sample is exhausted after {tally.scored} inputs ({have} pairs)"
    elif tally.scored >= check.max_requests_per_stage:
        why = f"the stage's budget of {check.max_requests_per_stage} inputs is spent with {have} pairs"
    else:
        why = f"{have} pairs scored so far"
    return CheckResult(
        check=name, verdict=Verdict.NO_DATA, summary=f"{why}; {check.min_pairs} needed", evidence=evidence
    )


def _gate(
    result: CheckResult, check: PredictionCheck, t: PredictionTally, have: int, evidence: dict[str, EvidenceValue]
) -> CheckResult:
    """Below min_pairs only a rollback is decided (it needs no minimum); a comparison still open when
    no more inputs will come says so."""
    if result.verdict == Verdict.FAIL:
        return result
    if have < check.min_pairs:
        return _waiting(result.check, check, t, have, evidence)
    if result.verdict == Verdict.INCONCLUSIVE and (t.exhausted or t.scored >= check.max_requests_per_stage):
        spent = "the sample is exhausted" if t.exhausted else "the stage's input budget is spent"
        return result.model_copy(update={"summary": f"{result.summary}; {spent}"})
    return result


def _disagreement(check: PredictionCheck, t: PredictionTally, budget: Budget) -> CheckResult:
    name = "predictions" if check.kind == "label" else "unreadable_scores"
    margins = check.disagreement
    evidence = _base_evidence(check, t, budget) | {"disagreeing": t.disagree}
    if t.pairs == 0:
        return _waiting(name, check, t, 0, evidence)
    lower, upper = _proportion_bounds(t.disagree, t.pairs, margins.leave_alone_margin, budget)
    rate = t.disagree / t.pairs
    evidence |= {
        "rate": _round(rate),
        "lower": _round(lower),
        "upper": _round(upper),
        "leave_alone": margins.leave_alone_margin,
        "max_increase": margins.max_increase,
        "method": "confidence sequence (normal mixture), paired inputs",
    }
    if check.kind == "label":
        evidence["confusion"] = confusion_text(t)
    if t.samples:
        evidence["examples"] = " | ".join(t.samples)
    what = (
        f"green disagrees with blue on {rate:.2%} of {t.pairs} inputs"
        if check.kind == "label"
        else f"green's answer unreadable for {rate:.2%} of {t.pairs} inputs"
    )
    result = _three_way(name, lower, upper, margins.leave_alone_margin, margins.max_increase, "points", what, evidence)
    return _gate(result, check, t, t.pairs, evidence)


def _class_shift(check: PredictionCheck, t: PredictionTally, budget: Budget) -> CheckResult:
    margins = check.class_shift
    evidence = _base_evidence(check, t, budget)
    n = t.pairs
    if n == 0:
        return _waiting("class_shift", check, t, 0, evidence)
    labels = sorted({c[0] for c in t.confusion} | {c[1] for c in t.confusion})
    worst_low, worst_up, worst, worst_mean = -math.inf, -math.inf, "", 0.0
    shares: list[str] = []
    for c in labels:
        as_blue = sum(k for b, _, k in t.confusion if b == c)
        as_green = sum(k for _, g, k in t.confusion if g == c)
        both = sum(k for b, g, k in t.confusion if b == c and g == c)
        mean = (as_green - as_blue) / n
        second = (as_green + as_blue - 2 * both + 1) / (n + 2)  # smoothed: no change in 100 is not proof of none
        var = max(second - mean * mean, 1 / (n + 2)) / n
        low, up = _absolute_bounds(mean, var, n, budget, split=len(labels))
        shares.append(f"{c} {as_blue / n:.1%}→{as_green / n:.1%}")
        worst_up = max(worst_up, up)
        if low > worst_low:
            worst_low, worst, worst_mean = low, c, mean
    evidence |= {
        "class_shares": "; ".join(shares),
        "largest_shift_class": worst,
        "shift": _round(worst_mean),
        "lower": _round(worst_low),
        "upper": _round(worst_up),
        "leave_alone": margins.leave_alone_margin,
        "max_increase": margins.max_increase,
        "method": "paired class indicators, confidence sequences (normal mixture), Bonferroni over classes",
    }
    what = f"largest change of a class's share: {worst} {worst_mean:+.2%}"
    result = _three_way(
        "class_shift", worst_low, worst_up, margins.leave_alone_margin, margins.max_increase, "points", what, evidence
    )
    return _gate(result, check, t, n, evidence)


def _score_shift(check: PredictionCheck, t: PredictionTally, budget: Budget) -> CheckResult | None:
    margins = check.score_shift
    if margins is None or not margins.enabled:
        return None
    evidence = _base_evidence(check, t, budget) | {"score_pairs": t.score_pairs}
    n = t.score_pairs
    if n == 0:
        return _waiting("score_shift", check, t, 0, evidence)
    mean = t.diff_sum / n
    sample_var = max(0.0, (t.diff_sq_sum - n * mean * mean) / max(1, n - 1))
    floor = (margins.max_increase / 4) ** 2
    var = max(sample_var, floor) / n
    low, up = _absolute_bounds(mean, var, n, budget)
    lo_edge, hi_edge = check.score_range
    evidence |= {
        "mean_difference": _round(mean),
        "blue_histogram": ",".join(str(x) for x in t.blue_hist),
        "green_histogram": ",".join(str(x) for x in t.green_hist),
        "bins": f"{check.bins} bins over [{lo_edge:g}, {hi_edge:g}] plus one below and one above",
        "lower": _round(low),
        "upper": _round(up),
        "leave_alone": margins.leave_alone_margin,
        "max_increase": margins.max_increase,
        "method": "paired differences, confidence sequence (normal mixture)",
    }
    what = f"green's score minus blue's on the same inputs: {mean:+.4g} on average"
    result = _three_way(
        "score_shift", low, up, margins.leave_alone_margin, margins.max_increase, "points", what, evidence
    )
    return _gate(result, check, t, n, evidence)


def ks_distance(blue_hist: Sequence[int], green_hist: Sequence[int]) -> float:
    nb, ng = sum(blue_hist), sum(green_hist)
    if not nb or not ng:
        return math.nan
    cb = cg = 0
    worst = 0.0
    for b, g in zip(blue_hist, green_hist, strict=True):
        cb += b
        cg += g
        worst = max(worst, abs(cb / nb - cg / ng))
    return worst


def psi(blue_hist: Sequence[int], green_hist: Sequence[int]) -> float:
    """Population stability index over the bins (each share floored at 0.5 / n), for people only:
    it has no anytime-valid bound here, so it never decides."""
    nb, ng = sum(blue_hist), sum(green_hist)
    if not nb or not ng:
        return math.nan
    total = 0.0
    for b, g in zip(blue_hist, green_hist, strict=True):
        pb, pg = max(b, 0.5) / nb, max(g, 0.5) / ng
        total += (pg - pb) * math.log(pg / pb)
    return total


def _ks(check: PredictionCheck, t: PredictionTally, budget: Budget) -> CheckResult | None:
    margins = check.ks
    if not margins.enabled:
        return None
    evidence = _base_evidence(check, t, budget) | {"score_pairs": t.score_pairs}
    n = t.score_pairs
    if n == 0:
        return _waiting("score_distribution", check, t, 0, evidence)
    d = ks_distance(t.blue_hist, t.green_hist)
    low = d - 2 * dkw_radius(n, budget.alpha / 2)
    up = d + 2 * dkw_radius(n, budget.beta / 2)
    lo_edge, hi_edge = check.score_range
    stability = psi(t.blue_hist, t.green_hist)
    evidence |= {
        "ks": _round(d),
        "lower": _round(low),
        "upper": _round(up),
        "psi": _round(stability),
        "blue_histogram": ",".join(str(x) for x in t.blue_hist),
        "green_histogram": ",".join(str(x) for x in t.green_hist),
        "bins": f"{check.bins} bins over [{lo_edge:g}, {hi_edge:g}] plus one below and one above",
        "leave_alone": margins.leave_alone_margin,
        "max_increase": margins.max_increase,
        "method": "Kolmogorov-Smirnov at the bin edges, time-uniform DKW bands (Howard & Ramdas 2022)",
    }
    what = f"score distributions: KS distance {d:.3f} (PSI {stability:.3f})"
    result = _three_way(
        "score_distribution", low, up, margins.leave_alone_margin, margins.max_increase, "points", what, evidence
    )
    return _gate(result, check, t, n, evidence)


def _accuracy(check: PredictionCheck, t: PredictionTally, budget: Budget) -> CheckResult | None:
    cfg = check.accuracy
    if not cfg.enabled or check.kind != "label":
        return None
    n = t.labeled
    evidence = _base_evidence(check, t, budget) | {"labeled": n}
    if n == 0:
        if cfg.required:
            return CheckResult(
                check="accuracy",
                verdict=Verdict.NO_DATA,
                summary="no expected labels in the inputs; accuracy is required (accuracy.required)",
                evidence=evidence,
            )
        return CheckResult(
            check="accuracy",
            verdict=Verdict.PASS,
            summary="no expected labels in the inputs: accuracy not compared",
            evidence=evidence,
            required=False,
        )
    mean = (t.only_green_right - t.only_blue_right) / n
    discordant = (t.only_green_right + t.only_blue_right + 1) / (n + 2)
    var = max(discordant - mean * mean, 1 / (n + 2)) / n
    decrease = -mean
    lower = decrease - sequential.radius(var, budget.alpha, TARGET_PAIRS / n / var)
    upper = decrease + sequential.radius(var, budget.beta, TARGET_PAIRS / n / var)
    evidence |= {
        "blue_accuracy": _round(t.blue_correct / n),
        "green_accuracy": _round(t.green_correct / n),
        "only_green_right": t.only_green_right,
        "only_blue_right": t.only_blue_right,
        "decrease": _round(decrease),
        "lower": _round(lower),
        "upper": _round(upper),
        "leave_alone": cfg.leave_alone_margin,
        "max_decrease": cfg.max_decrease,
        "method": "paired (McNemar-style) accuracy difference, confidence sequence (normal mixture)",
    }
    what = f"accuracy green {t.green_correct / n:.2%} vs blue {t.blue_correct / n:.2%} on {n} labeled inputs"
    result = _three_way("accuracy", lower, upper, cfg.leave_alone_margin, cfg.max_decrease, "points", what, evidence)
    return _gate(result, check, t, n, evidence)


def judge(check: PredictionCheck, tally: PredictionTally | None, budget: Budget) -> tuple[CheckResult, ...]:
    """Every enabled comparison on the tally so far."""
    t = tally or PredictionTally()
    results: list[CheckResult | None] = []
    if check.disagreement.enabled:
        results.append(_disagreement(check, t, budget))
    if check.kind == "label" and check.class_shift.enabled:
        results.append(_class_shift(check, t, budget))
    if check.scores:
        results.append(_score_shift(check, t, budget))
        results.append(_ks(check, t, budget))
    results.append(_accuracy(check, t, budget))
    found = tuple(r for r in results if r is not None)
    if not any(r.required for r in found):  # every comparison disabled: pairs still gate
        found += (
            CheckResult(
                check="predictions",
                verdict=Verdict.PASS if t.pairs >= check.min_pairs else Verdict.NO_DATA,
                summary=f"{t.pairs} pairs scored; {check.min_pairs} needed",
                evidence=_base_evidence(check, t, budget),
            ),
        )
    return found
