"""The mix test's between-month overdispersion: jitter is not a change, a real change is.

Months drawn with the same shares (multinomial) leave the chi-square test near its
multinomial form; months whose true shares wander (jitter) inflate it by the factor the
reference's months show, so a month that wanders as much is no alarm, while mix 45/30/25
against twelve such months mostly still is.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from persona.monitoring.fit import (
    DISPERSION_PRIOR_DF,
    PRIOR_RHO,
    mix_dispersion,
    mix_from_count_arrays,
    month_overdispersion,
)

BINS = ("a", "b", "c")


def _months(k: int, n: int, jitter: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        shares = np.maximum(1 / 3 + rng.normal(0.0, jitter, 3), 0.01)
        out.append(rng.multinomial(n, shares / shares.sum()))
    return np.array(out, dtype=np.float64)


def _assigned(c: np.ndarray) -> np.ndarray:
    return np.append(c, 0.0)


def test_one_month_gives_the_prior_identical_months_the_multinomial_test() -> None:
    """One month says nothing of the wander: the prior. Months that agree exactly: floor 1."""
    assert month_overdispersion(None) == PRIOR_RHO
    assert month_overdispersion(np.array([[170.0, 160.0, 170.0]])) == PRIOR_RHO
    same = np.array([[167.0, 166.0, 167.0]] * 40)
    assert month_overdispersion(same) == 0.0  # floored at 1: never below multinomial
    assert mix_dispersion(0.0, 500, np.array([500.0] * 6)) == 1.0
    c, r = np.array([200.0, 160.0, 140.0]), np.array([170.0, 165.0, 165.0])
    one = mix_from_count_arrays(c, r, BINS, _assigned(c))
    expected = stats.chi2_contingency(np.vstack([c, r]), correction=False)
    assert one.chi2 == pytest.approx(expected.statistic)
    assert one.dispersion == pytest.approx(1 + 499 * PRIOR_RHO)  # equal sizes: 1 + (n-1) rho
    assert one.chi2_pvalue == pytest.approx(
        stats.chi2.sf(expected.statistic / one.dispersion, 2), rel=1e-12
    )
    assert one.chi2_pvalue > expected.pvalue


def test_the_factor_is_the_variance_ratio_and_equals_one_plus_n_rho_for_equal_months() -> None:
    rho = 0.003
    assert mix_dispersion(rho, 500, np.array([500.0] * 4)) == pytest.approx(1 + 499 * rho)
    # A bigger current month wanders by the same share: its factor is larger.
    assert mix_dispersion(rho, 2000, np.array([500.0] * 4)) > mix_dispersion(
        rho, 500, np.array([500.0] * 4)
    )


def test_multinomial_months_give_little_overdispersion_jittered_months_much() -> None:
    tidy = [month_overdispersion(_months(12, 500, 0.0, s)) for s in range(40)]
    wander = [month_overdispersion(_months(12, 500, 0.03, s)) for s in range(40)]
    tidy_factor = np.median([mix_dispersion(r, 500, np.array([500.0] * 12)) for r in tidy])
    wander_factor = np.median([mix_dispersion(r, 500, np.array([500.0] * 12)) for r in wander])
    assert tidy_factor < 1.35 and wander_factor > 1.8, (tidy_factor, wander_factor)
    # Two months: the prior (PRIOR_RHO, DISPERSION_PRIOR_DF degrees of freedom) weighs in.
    two = _months(2, 500, 0.03, 1)
    x2 = stats.chi2_contingency(two, correction=False).statistic
    effective = 499 * 0.5 * 2 / 1  # sum (n_k - 1)(1 - n_k / N) / (K - 1)
    prior = 1 + effective * PRIOR_RHO
    pooled = max(1.0, (DISPERSION_PRIOR_DF * prior + x2) / (DISPERSION_PRIOR_DF + 2))
    assert month_overdispersion(two) == pytest.approx((pooled - 1) / effective)


def test_ordinary_wander_is_no_change_a_real_mix_change_still_is() -> None:
    alarms_flat, alarms_inflated, caught = 0, 0, 0
    runs = 200
    for s in range(runs):
        months = _months(12, 500, 0.03, s)
        r = months.sum(axis=0)
        c = _months(1, 500, 0.03, 10_000 + s)[0]
        flat = stats.chi2_contingency(np.vstack([c, r]), correction=False)  # multinomial
        inflated = mix_from_count_arrays(c, r, BINS, _assigned(c), months)
        assert inflated.chi2 == pytest.approx(flat.statistic) and inflated.dispersion >= 1.0
        alarms_flat += flat.pvalue < 0.02
        alarms_inflated += inflated.chi2_pvalue < 0.02
        changed = np.random.default_rng(s).multinomial(500, [0.45, 0.30, 0.25]).astype(float)
        caught += (
            mix_from_count_arrays(changed, r, BINS, _assigned(changed), months).chi2_pvalue < 0.02
        )
    assert alarms_flat / runs > 0.10  # the multinomial test calls ordinary wander a change
    assert alarms_inflated / runs < 0.05
    assert caught / runs >= 0.8  # wander of this size costs power: measured 88 %
