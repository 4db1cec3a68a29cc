"""The confidence sequences the judge rests on: the published boundary, and bounds that hold at every
look (the property that lets the judge look every minute, pause and resume without spending more)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from shared.rollout import sequential


def test_the_boundary_matches_the_reference_implementation():
    """Values from the unit tests of confseq, the first author's implementation of Howard et al. (2021)
    (gostevehoward/confseq, test/uniform_boundaries_unittest.cpp: TwoSidedNormalMixture, v_opt=100,
    alpha=0.05)."""
    rho = sequential.best_rho(100, 0.05)
    assert rho == pytest.approx(12.60056, abs=1e-5)
    assert sequential.log_mixture_martingale(10, 100, rho) == pytest.approx(-0.6510052, abs=1e-5)
    assert sequential.mixture_bound(100, 0.05, rho) == pytest.approx(30.35209, abs=1e-5)
    # OneSidedNormalMixture(100, 0.05) in the same file.
    one = sequential.best_rho_one_sided(100, 0.05)
    assert sequential.log_one_sided_mixture_martingale(10, 100, one) == pytest.approx(-0.06502391, abs=1e-5)
    assert sequential.one_sided_mixture_bound(100, 0.05, one) == pytest.approx(27.66071, abs=1e-5)


def test_the_boundary_is_where_the_mixture_martingale_reaches_one_over_alpha():
    """The closed form is the level set of the normal mixture (Howard et al. 2021, eq. (14)): the
    martingale integrated numerically over the N(0, 1/rho) mixing distribution equals 1/alpha there."""
    v, alpha, rho = 400.0, 0.01, 37.0
    s = sequential.mixture_bound(v, alpha, rho)

    def integrand(lam: float) -> float:
        return math.exp(lam * s - lam * lam * v / 2) * stats.norm.pdf(lam, scale=1 / math.sqrt(rho))

    value, _ = integrate.quad(integrand, -5, 5, limit=200)
    assert value == pytest.approx(1 / alpha, rel=1e-6)
    assert math.exp(sequential.log_mixture_martingale(s, v, rho)) == pytest.approx(1 / alpha, rel=1e-9)


def test_best_rho_makes_the_bound_tightest_where_asked():
    v_opt, alpha = 250.0, 0.01
    best = sequential.mixture_bound(v_opt, alpha, sequential.best_rho(v_opt, alpha))
    for factor in (0.5, 0.8, 1.25, 2.0):
        assert best <= sequential.mixture_bound(v_opt, alpha, factor * sequential.best_rho(v_opt, alpha)) * 1.001


def test_bounds_hold_at_every_look_not_just_one():
    """Time-uniform coverage: 2,000 streams of 2,000 Bernoulli(0.1) observations each, the bound
    checked after every observation. A fixed-sample 95% bound looked at this often is broken in
    a large share of streams; the confidence sequence in at most alpha of them."""
    rng = np.random.default_rng(7)
    alpha, p, n, streams = 0.05, 0.1, 2000, 2000
    x = rng.random((streams, n)) < p
    t = np.arange(1, n + 1)
    means = np.cumsum(x, axis=1) / t
    variance = p * (1 - p) / t
    radii = np.array([sequential.radius(v, alpha, v_opt=200 / (p * (1 - p))) for v in variance])
    # One side each (a rollback needs the lower bound, a pass the upper one), from the 50th
    # observation: the bounds are asymptotic, and no stage is judged on fewer requests than its
    # min_requests (100 or more by default). From the first observation the skewed upper side of
    # a Bernoulli(0.1) is broken in 5.3% of streams at alpha 5%.
    above = (means - p > radii)[:, 49:].any(axis=1).mean()
    below = (p - means > radii)[:, 49:].any(axis=1).mean()
    naive = (means - p > 1.645 * np.sqrt(variance)).any(axis=1).mean()
    assert above <= alpha
    assert below <= alpha
    assert naive > 0.3  # what looking every minute at a fixed-sample one-sided 95% test does


def test_quantile_bounds_cover_the_true_quantile_at_every_look():
    rng = np.random.default_rng(11)
    alpha, q, looks = 0.05, 0.9, range(100, 3001, 100)
    true_q = math.exp(stats.norm.ppf(q) * 0.35) * 80
    broken = 0
    for _ in range(150):
        values = rng.lognormal(math.log(80), 0.35, 3000)
        for n in looks:
            b = sequential.quantile_bounds(sorted(values[:n]), q, alpha_lower=alpha / 2, alpha_upper=alpha / 2)
            if not b.lower <= true_q <= b.upper:
                broken += 1
                break
    assert broken / 150 <= alpha


def test_quantile_bounds_with_too_few_samples_are_open_not_made_up():
    b = sequential.quantile_bounds([1.0, 2.0, 3.0], 0.99, alpha_lower=0.01, alpha_upper=0.01)
    assert b.upper == math.inf
    assert sequential.quantile_bounds([], 0.9, alpha_lower=0.01, alpha_upper=0.01).lower == -math.inf


def test_a_degenerate_variance_gives_no_bound_at_all():
    assert sequential.radius(0.0, 0.01, 100) == math.inf
    assert sequential.radius(float("nan"), 0.01, 100) == math.inf
