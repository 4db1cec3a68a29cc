"""Anytime-valid confidence sequences: bounds that hold at every look at once.

A fixed-sample test looked at every minute finds a difference sooner or later even when there is
none; a confidence sequence does not: with probability at least 1 - alpha its bounds contain the
true value at *every* time, so the judge may look every minute, pause, resume and look again
without spending anything (Howard, Ramdas, McAuliffe, Sekhon 2021, "Time-uniform, nonparametric,
nonasymptotic confidence sequences", Annals of Statistics 49(2); Johari, Koomen, Pekelis, Walsh
2022, "Always valid inference: continuous monitoring of A/B tests", Operations Research 70(3)).

One boundary serves every check. An estimate with (estimated) variance V is put on the information
scale I = 1/V: the score I * (estimate - truth) behaves as a Brownian motion in I (the canonical
joint distribution of sequentially computed estimates; Jennison & Turnbull 2000, ch. 11), and the
two-sided normal mixture boundary of Howard et al. (2021, eq. (14) and Proposition 5)

    |I * (estimate - truth)| <= u(I) = sqrt((I + rho) * log((I + rho) / (rho * alpha^2)))

holds for all I with probability >= 1 - alpha. With a variance estimated from the data this is the
asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Wang, Ramdas (2024, "Time-uniform
central limit theory and asymptotic confidence sequences", Annals of Statistics 52(6)). `rho` only
moves where the bound is tightest (`best_rho`, Howard et al. 2021, section 3.5); any fixed value is
valid. Each decision needs one side only (a rollback the lower bound, a pass the upper bound), so
`radius` uses the one-sided normal mixture (the mixture over lambda >= 0, Howard et al. 2021,
Proposition 6), tighter than the two-sided bound at the same level. The reference values in the
tests come from the first author's implementation (confseq).

Quantiles use the same boundary on the proportion of samples below the quantile (Howard & Ramdas
2022, "Sequential estimation of quantiles with applications to A/B-testing and best-arm
identification", Bernoulli 28(3)): whatever the latency distribution, the count of requests faster
than the true P90 is a sum of Bernoulli(0.9) indicators, so order statistics bound the quantile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import optimize, stats


def best_rho(v_opt: float, alpha: float) -> float:
    """The mixture parameter that makes the two-sided boundary tightest at intrinsic time `v_opt`."""
    log_term = 2 * math.log(1 / alpha)
    return v_opt / (log_term + math.log(1 + log_term))


def mixture_bound(v: float, alpha: float, rho: float) -> float:
    """u(v): the two-sided normal mixture boundary on the sum scale (Howard et al. 2021, eq. (14))."""
    return math.sqrt((v + rho) * math.log((v + rho) / (rho * alpha * alpha)))


def log_mixture_martingale(s: float, v: float, rho: float) -> float:
    """log of the two-sided normal mixture supermartingale at sum `s` and intrinsic time `v`;
    the boundary is where it reaches log(1/alpha) (Ville's inequality)."""
    return 0.5 * math.log(rho / (v + rho)) + s * s / (2 * (v + rho))


def best_rho_one_sided(v_opt: float, alpha: float) -> float:
    """The one-sided mixture's parameter tightest at `v_opt` (confseq's choice: the two-sided one at 2 alpha)."""
    return best_rho(v_opt, 2 * alpha)


def log_one_sided_mixture_martingale(s: float, v: float, rho: float) -> float:
    """log of the one-sided normal mixture supermartingale (Howard et al. 2021, Proposition 6: the
    normal mixture over lambda >= 0 only), which bounds the sum on one side only."""
    return (
        0.5 * math.log(4 * rho / (v + rho)) + s * s / (2 * (v + rho)) + float(stats.norm.logcdf(s / math.sqrt(v + rho)))
    )


def one_sided_mixture_bound(v: float, alpha: float, rho: float) -> float:
    """The sum at which the one-sided mixture reaches 1/alpha: with probability 1 - alpha the sum
    never exceeds it, at any time. Tighter than the two-sided bound at the same alpha."""
    target = math.log(1 / alpha)
    high = mixture_bound(v, alpha, rho)  # the two-sided boundary already reaches 1/alpha one-sidedly
    return float(optimize.brentq(lambda s: log_one_sided_mixture_martingale(s, v, rho) - target, 0.0, high))


def radius(variance: float, alpha: float, v_opt: float) -> float:
    """How far, on the estimate's own scale, the truth can lie on ONE side of an estimate whose
    variance is `variance`, at every look, with probability 1 - alpha (each decision needs one side:
    a rollback the lower bound, a pass the upper bound); `v_opt` is the information (1 / variance)
    where it is tightest."""
    if variance <= 0 or not math.isfinite(variance):
        return math.inf
    information = 1 / variance
    return one_sided_mixture_bound(information, alpha, best_rho_one_sided(v_opt, alpha)) / information


@dataclass(frozen=True)
class Interval:
    """Bounds on one quantity. `lower` holds with the rollback budget (a proven regression needs
    it), `upper` with the promotion budget (a proven pass needs it)."""

    estimate: float
    lower: float
    upper: float


def mean_bounds(estimate: float, variance: float, *, alpha_lower: float, alpha_upper: float, v_opt: float) -> Interval:
    return Interval(
        estimate=estimate,
        lower=estimate - radius(variance, alpha_lower, v_opt),
        upper=estimate + radius(variance, alpha_upper, v_opt),
    )


def _order_statistic(values: Sequence[float], rank: float) -> float:
    """The value at 1-based `rank` in sorted `values`, or -inf / +inf beyond the sample."""
    if rank < 1:
        return -math.inf
    if rank > len(values):
        return math.inf
    return float(values[int(rank) - 1])


# The information (samples) at which a quantile's bound is tightest: about an hour of a canary's
# requests on a modest endpoint. Validity does not depend on it.
QUANTILE_V_OPT_SAMPLES = 1000


def quantile_bounds(sorted_values: Sequence[float], p: float, *, alpha_lower: float, alpha_upper: float) -> Interval:
    """Bounds on the p-quantile of the distribution the (sorted) samples come from."""
    n = len(sorted_values)
    if n == 0:
        return Interval(estimate=math.nan, lower=-math.inf, upper=math.inf)
    variance = p * (1 - p) / n
    v_opt = QUANTILE_V_OPT_SAMPLES / (p * (1 - p))
    low_p = p - radius(variance, alpha_lower, v_opt)
    high_p = p + radius(variance, alpha_upper, v_opt)
    estimate = _order_statistic(sorted_values, max(1, math.ceil(n * p)))
    return Interval(
        estimate=estimate,
        # At least n * low_p samples lie at or below the true quantile, so the ceil(n * low_p)-th
        # smallest does; at most n * high_p do, so the (floor(n * high_p) + 1)-th lies above it.
        lower=_order_statistic(sorted_values, math.ceil(n * low_p - 1e-9)),
        upper=_order_statistic(sorted_values, math.floor(n * high_p + 1e-9) + 1),
    )
