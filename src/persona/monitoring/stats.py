"""Two-sample tests used by the persona-fit check, vectorised over features (pure numpy/scipy).

Every function returns p-values of one-directional or two-sided tests; `holm` controls the
family-wise error rate over all of them, so adding personas or features does not raise the
false-alarm rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats


def welch_moments(
    na: int, mean_a: np.ndarray, va: np.ndarray, nb: int, mean_b: np.ndarray, vb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Welch's t-test per column of two samples, from each side's moments.

    Args:
        na: Rows of sample a (>= 2).
        mean_a: Its column means.
        va: Its column sample variances (ddof=1).
        nb: Rows of sample b (>= 2).
        mean_b: Its column means.
        vb: Its column sample variances (ddof=1).

    Returns:
        ``(effect, pvalue)`` per column: effect is the mean difference in pooled standard
        deviations (a minus b); p-values are two-sided.
    """
    diff = mean_a - mean_b
    se2 = np.maximum(va / na + vb / nb, 1e-300)
    t = diff / np.sqrt(se2)
    df = se2**2 / np.maximum((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1), 1e-300)
    pooled = np.sqrt(np.maximum(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2), 1e-300))
    return diff / pooled, 2.0 * stats.t.sf(np.abs(t), df)


def pooled_t_moments(
    na: int, mean_a: np.ndarray, va: np.ndarray, nb: int, mean_b: np.ndarray, vb: np.ndarray
) -> np.ndarray:
    """Two-sided p-values of Student's pooled-variance t-test per column, from moments.

    Args:
        na: Rows of sample a (>= 2).
        mean_a: Its column means.
        va: Its column sample variances (ddof=1).
        nb: Rows of sample b (>= 2).
        mean_b: Its column means.
        vb: Its column sample variances (ddof=1).

    Returns:
        The p-value per column (`pooled_t` on rows gives the same).
    """
    pooled = ((na - 1) * va + (nb - 1) * vb) / (na + nb - 2)
    se = np.sqrt(np.maximum(pooled * (1.0 / na + 1.0 / nb), 1e-300))
    t = (mean_a - mean_b) / se
    return 2.0 * stats.t.sf(np.abs(t), na + nb - 2)


def pooled_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two-sided p-values of Student's pooled-variance t-test per column.

    Used on deviations (Levene's test): under "same spread" the deviations of both sides
    share one variance, and a side whose deviations are all small must not shrink its own
    standard error (as Welch's test would let it). The formula is `pooled_t_moments`.
    """
    return pooled_t_moments(
        len(a), a.mean(axis=0), a.var(axis=0, ddof=1), len(b), b.mean(axis=0), b.var(axis=0, ddof=1)
    )


def combined_pvalue(pvalues: np.ndarray) -> float:
    """Omnibus p-value of independent two-sided tests (sum of squared normal scores).

    Each p-value is turned into the squared normal score of the same two-sided tail; the
    sum is chi-square with one degree of freedom per test when nothing changed.
    """
    z2 = stats.norm.isf(np.clip(pvalues, 1e-300, 1.0) / 2.0) ** 2
    return float(stats.chi2.sf(float(np.sum(z2)), df=len(pvalues)))


def spread_deviations(x: np.ndarray) -> np.ndarray:
    """Absolute deviations from the column mean, scaled by sqrt(n / (n - 1)) (Levene).

    The scale removes the small-sample shrinkage of deviations from a sample's own mean
    (their squares then estimate the variance without bias), so a 20-row month is not
    judged tighter than a 500-row reference.
    """
    return np.abs(x - x.mean(axis=0)) * np.sqrt(len(x) / (len(x) - 1.0))


def row_spread(x: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row to the mean row, scaled like `spread_deviations`."""
    return np.sqrt(np.sum((x - x.mean(axis=0)) ** 2, axis=1) * len(x) / (len(x) - 1.0))


@dataclass(frozen=True)
class TailExcess:
    """The ``far`` test: current values beyond the reference's extreme tail.

    Attributes:
        threshold: The m-th largest reference value.
        m: How many reference values reach the threshold.
        count: Current values beyond it.
        expected: How many were expected when nothing changed.
        rate: ``count`` / current values.
        excess: ``rate`` minus the expected rate.
        pvalue: The exact (beta-binomial) p-value.
    """

    threshold: float
    m: int
    count: int
    expected: float
    rate: float
    excess: float
    pvalue: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def tail_rows(tail: float, n_ref: int) -> int:
    """How many reference values define the ``far`` threshold: max(1, round(tail x n_ref)).

    Args:
        tail: Reference share beyond the threshold.
        n_ref: Reference values (>= 1).

    Returns:
        m, at most `n_ref`: the threshold is the m-th largest reference value.
    """
    return int(min(max(1, round(tail * n_ref)), n_ref))


def tail_excess_from_counts(
    threshold: float, m: int, count: int, n_cur: int, n_ref: int
) -> TailExcess:
    """The ``far`` test from its counts (what `tail_excess_pvalue` counts on rows).

    When both samples come from one distribution, the share of that distribution beyond
    the m-th largest of `n_ref` reference values is Beta(m, n_ref - m + 1), so the count of
    current values beyond it is beta-binomial: the p-value is exact for any continuous
    distribution.

    Args:
        threshold: The m-th largest reference value.
        m: Its rank from the top (`tail_rows`).
        count: Current values strictly greater than `threshold`.
        n_cur: Current values.
        n_ref: Reference values.

    Returns:
        The test's numbers.
    """
    expected_rate = m / (n_ref + 1.0)
    pvalue = float(stats.betabinom.sf(count - 1, n_cur, m, n_ref - m + 1)) if count else 1.0
    rate = count / n_cur if n_cur else 0.0
    return TailExcess(
        threshold, m, count, expected_rate * n_cur, rate, rate - expected_rate, pvalue
    )


def tail_excess_pvalue(current: np.ndarray, reference: np.ndarray, tail: float) -> TailExcess:
    """Exact test that more current values lie beyond the reference's extreme tail.

    The threshold is the m-th largest reference value, m = `tail_rows` (tail, n_ref); the
    count of current values beyond it goes to `tail_excess_from_counts`.

    Args:
        current: Current values (e.g. distances to the nearest persona).
        reference: Reference values.
        tail: Reference share that defines the threshold.

    Returns:
        The test's numbers.
    """
    n_ref = len(reference)
    m = tail_rows(tail, n_ref)
    threshold = float(np.sort(reference)[n_ref - m])
    count = int(np.sum(current > threshold))
    return tail_excess_from_counts(threshold, m, count, len(current), n_ref)


def binomial_greater(count: int, total: int, rate: float) -> float:
    """One-sided binomial p-value that `count` of `total` exceeds the null `rate`."""
    if total == 0 or count == 0:
        return 1.0
    return float(stats.binom.sf(count - 1, total, min(max(rate, 0.0), 1.0)))


def holm(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise `alpha`.

    Args:
        pvalues: 1-D array (NaN = not tested, never rejected).
        alpha: Family-wise error rate.

    Returns:
        Boolean array, True where rejected.
    """
    p = np.where(np.isnan(pvalues), 1.0, pvalues)
    order = np.argsort(p, kind="stable")
    m = int(np.sum(~np.isnan(pvalues)))
    rejected = np.zeros(len(p), dtype=bool)
    for rank, index in enumerate(order):
        if rank >= m or p[index] > alpha / (m - rank):
            break
        rejected[index] = True
    return rejected
