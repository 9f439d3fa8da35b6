"""Persona-fit measurements: what a marginal drift test on the mixture cannot see.

Every row of both sides goes to its nearest persona of the champion model; it fits that
persona when it lies within the reference's extreme distance (`core_threshold`, the
``far`` threshold), else it fits none. The current month is then compared with the
reference window persona by persona on the rows that fit each persona, so a change in the
persona mix is never mistaken for a persona that moved, and rows of a new segment never
make their nearest persona look moved or spread: they go to ``far`` / ``unassigned`` and
to the segment description (`describe_segment`). Each comparison is a test with a
p-value and an effect size, collected in ``tests`` for the policy (which controls the
family-wise error rate over all of them with Holm):

- ``shift`` (per persona) and ``feature_shift`` (per persona x feature): Welch t-tests of
  the means; effect = mean difference in pooled std; the persona-level p-value combines
  the features (sum of squared normal scores, chi-square with 10 df).
- ``spread`` (per persona, on each row's distance to the persona's mean row) and
  ``feature_spread`` (per feature, on absolute deviations from the mean): pooled t-tests
  (Levene); effect = ratio of mean deviations, current / reference.
- ``far``: rows beyond the reference's extreme distance to the nearest persona, an exact
  beta-binomial test (a new segment shows here first); effect = excess rate.
- ``near`` (only when the far rows gather beside one persona, `segment_centre`): rows
  within the threshold that lie nearer the far rows' centre than to their persona, a
  one-sided Fisher exact test against the reference's share of such rows; effect = excess
  share. Those rows fit no persona on either side, so a segment that reaches inside a
  persona's radius does not make that persona look moved or spread.
- ``unassigned``: rows beyond the model's radii, a one-sided binomial test against the
  larger of the reference's rate and the share the radii leave out by construction
  (``1 - RADIUS_QUANTILE``); effect = excess rate over the reference's rate.
- ``gone`` (per persona): one-sided Fisher exact test that its share fell; effect = current
  share / reference share.

The persona mix (shares, PSI with a pseudo-count of 0.5 per bin, chi-square test of
homogeneity divided by the between-month overdispersion the reference's months show,
`mix_from_count_arrays`) is reported separately: a pure mix change is a ``watch``, not a
retrain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from persona.model import UNASSIGNED_ID, PersonaModel, Prediction
from persona.monitoring import stats as st
from persona.monitoring.results import FitTest, PersonaFit, PersonaMix, PersonaShift, Segment
from persona.monitoring.stats import TailExcess

PSEUDO_COUNT = 0.5
MIN_PERSONA_ROWS = 20
MIN_SEGMENT_ROWS = 5
# The prior of the between-month overdispersion of the persona shares
# (`month_overdispersion`): Dirichlet-multinomial intra-class correlation PRIOR_RHO (a
# share standard deviation of about 2 points around a third: months are not identically
# distributed), worth DISPERSION_PRIOR_DF degrees of freedom against the reference's months.
PRIOR_RHO = 0.002
DISPERSION_PRIOR_DF = 8.0


def _distance_stats(pred: Prediction) -> tuple[float | None, float | None]:
    dist = pred.distance[pred.assigned]
    if len(dist) == 0:
        return None, None
    return float(dist.mean()), float(np.quantile(dist, 0.95))


def _ratio(cur: float | None, ref: float | None) -> float | None:
    """``cur / ref``, None when either is missing or ``ref`` is not positive."""
    if cur is None or ref is None or ref <= 0:
        return None
    return cur / ref


def _counts(labels: np.ndarray, bins: list[str]) -> np.ndarray:
    ids, counts = np.unique(labels, return_counts=True)
    lookup = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    return np.array([lookup.get(b, 0) for b in bins], dtype=np.float64)


def month_overdispersion(months: np.ndarray | None) -> float:
    """Between-month overdispersion of the persona shares, from the reference's months.

    The Pearson chi-square of homogeneity across the reference's months (rows: months,
    columns: personas) has mean ``df (1 + n~ rho)`` when each month's shares vary around
    the common ones with Dirichlet-multinomial intra-class correlation ``rho`` (``df =
    (K - 1)(P - 1)``; ``n~`` is the months' effective size, the month size less one when
    all are equal). Its dispersion ``X2 / df`` is pooled with the prior's (``1 + n~
    PRIOR_RHO``, worth `DISPERSION_PRIOR_DF` degrees of freedom), floored at 1 (never
    tighter than multinomial months) and turned back into ``rho``. One month gives no
    evidence: the prior.

    Args:
        months: Rows per reference month (rows) and persona (columns); None: one month.

    Returns:
        ``rho`` >= 0.
    """
    if months is None:
        return PRIOR_RHO
    table = np.asarray(months, dtype=np.float64)
    table = table[table.sum(axis=1) > 0]
    table = table[:, table.sum(axis=0) > 0]
    k, p = table.shape
    if k < 2 or p < 2:
        return PRIOR_RHO
    sizes, total = table.sum(axis=1), float(table.sum())
    df = (k - 1) * (p - 1)
    effective = float(np.sum((sizes - 1.0) * (1.0 - sizes / total))) / (k - 1)
    if effective <= 0:
        return PRIOR_RHO
    statistic = float(stats.chi2_contingency(table, correction=False).statistic)
    prior = 1.0 + effective * PRIOR_RHO
    pooled = max(1.0, (DISPERSION_PRIOR_DF * prior + statistic) / (DISPERSION_PRIOR_DF + df))
    return (pooled - 1.0) / effective


def mix_dispersion(rho: float, n_cur: float, month_sizes: np.ndarray) -> float:
    """The factor (>= 1) by which overdispersion ``rho`` inflates the mix statistic.

    A share's difference between the current month (`n_cur` rows) and the reference (its
    months of `month_sizes` rows, N in all) has variance ``p (1 - p)`` times
    ``(1 + (n_cur - 1) rho) / n_cur + sum(n_k (1 + (n_k - 1) rho)) / N^2``; without
    overdispersion that is ``1 / n_cur + 1 / N``. The ratio is the factor.
    """
    sizes = np.asarray(month_sizes, dtype=np.float64)
    total = float(sizes.sum())
    if rho <= 0 or n_cur <= 0 or total <= 0:
        return 1.0
    inflated = (1.0 + (n_cur - 1.0) * rho) / n_cur + float(
        np.sum(sizes * (1.0 + (sizes - 1.0) * rho))
    ) / total**2
    return max(1.0, inflated / (1.0 / n_cur + 1.0 / total))


def mix_from_count_arrays(
    c: np.ndarray,
    r: np.ndarray,
    bins: tuple[str, ...],
    assigned: np.ndarray,
    months: np.ndarray | None = None,
) -> PersonaMix:
    """Persona shares, PSI and the chi-square test of homogeneity from per-persona counts.

    The chi-square statistic is divided by `mix_dispersion` of the overdispersion that
    the reference's months show (`month_overdispersion`) before its p-value is read, so
    the ordinary month-to-month wander of the shares is not a change of the mix.

    Args:
        c: Current rows per persona, float64 in `bins` order.
        r: Reference rows per persona, likewise.
        bins: The persona ids.
        assigned: Current rows per persona then unassigned (``len(bins) + 1`` counts).
        months: The reference's rows per month (rows) and persona (columns, `bins`
            order); their column sums are `r`. None: the reference is one month.

    Returns:
        The mix; PSI uses a pseudo-count of `PSEUDO_COUNT` per bin, so an empty bin is finite.
    """
    cs = (c + PSEUDO_COUNT) / (c.sum() + PSEUDO_COUNT * len(bins))
    rs = (r + PSEUDO_COUNT) / (r.sum() + PSEUDO_COUNT * len(bins))
    psi = float(np.sum((cs - rs) * np.log(cs / rs)))
    rho = month_overdispersion(months)
    sizes = (r if months is None else np.asarray(months, dtype=np.float64)).reshape(-1, len(r))
    sizes = sizes.sum(axis=1)
    dispersion = mix_dispersion(rho, float(c.sum()), sizes)
    used = (c + r) > 0
    chi2, pvalue = 0.0, 1.0
    if used.sum() >= 2 and c.sum() > 0 and r.sum() > 0:
        res = stats.chi2_contingency(np.vstack([c[used], r[used]]), correction=False)
        chi2 = float(res.statistic)
        pvalue = float(stats.chi2.sf(chi2 / dispersion, int(used.sum()) - 1))
    labelled = [*bins, UNASSIGNED_ID]
    return PersonaMix(
        bins=tuple(bins),
        current_shares=dict(zip(bins, (c / max(c.sum(), 1)).tolist(), strict=True)),
        reference_shares=dict(zip(bins, (r / max(r.sum(), 1)).tolist(), strict=True)),
        assigned_shares=dict(
            zip(labelled, (assigned / max(assigned.sum(), 1)).tolist(), strict=True)
        ),
        psi=psi,
        chi2=chi2,
        chi2_pvalue=pvalue,
        overdispersion=rho,
        dispersion=dispersion,
    )


def location_tests(
    pid: str,
    features: tuple[str, ...],
    current: tuple[int, np.ndarray, np.ndarray],
    reference: tuple[int, np.ndarray, np.ndarray],
) -> tuple[float, float, list[FitTest]]:
    """The persona-level ``shift`` and per-feature ``feature_shift`` tests of one persona.

    From moments alone, so rows (`persona_tests`) and Spark aggregates (`spark.stats`)
    give the same tests: Welch per feature, combined over the features.

    Args:
        pid: Persona id.
        features: Feature names.
        current: ``(rows, feature means, feature sample variances)`` of the current side.
        reference: The same of the reference side.

    Returns:
        ``(shift, combined p-value, tests)``.
    """
    effect, pvalues = st.welch_moments(*current, *reference)
    shift, combined = float(np.sqrt(np.sum(effect**2))), st.combined_pvalue(pvalues)
    tests = [FitTest("shift", pid, None, shift, combined)]
    tests += [
        FitTest("feature_shift", pid, name, float(e), float(p))
        for name, e, p in zip(features, effect, pvalues, strict=True)
    ]
    return shift, combined, tests


def _moments(rows: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    return len(rows), rows.mean(axis=0), rows.var(axis=0, ddof=1)


@dataclass(frozen=True)
class SpreadMoments:
    """One side's moments of one persona's deviations (what the spread tests need).

    Attributes:
        rows: Rows of the persona on this side.
        deviation_mean: Per feature, the mean of `stats.spread_deviations`.
        deviation_var: Per feature, their sample variance (ddof=1).
        row_mean: Mean of `stats.row_spread` (each row's scaled distance to the mean row).
        row_var: Its sample variance (ddof=1).
    """

    rows: int
    deviation_mean: np.ndarray
    deviation_var: np.ndarray
    row_mean: float
    row_var: float


def spread_moments(rows: np.ndarray) -> SpreadMoments:
    """The `SpreadMoments` of a persona's rows (>= 2 rows)."""
    dev, row = st.spread_deviations(rows), st.row_spread(rows)[:, None]
    return SpreadMoments(
        len(rows),
        dev.mean(axis=0),
        dev.var(axis=0, ddof=1),
        float(row.mean(axis=0)[0]),
        float(row.var(axis=0, ddof=1)[0]),
    )


def spread_tests(
    pid: str, features: tuple[str, ...], current: SpreadMoments, reference: SpreadMoments
) -> tuple[float, float, list[FitTest]]:
    """The persona-level ``spread`` and per-feature ``feature_spread`` tests of one persona.

    From moments alone, so rows (`persona_tests`) and Spark aggregates (`spark.stats`)
    give the same tests: the pooled t-test on deviations (Levene).

    Args:
        pid: Persona id.
        features: Feature names.
        current: The current side's deviation moments.
        reference: The reference side's.

    Returns:
        ``(spread ratio, its p-value, tests)``.
    """
    c, r = current, reference
    spread_p = st.pooled_t_moments(
        c.rows, c.deviation_mean, c.deviation_var, r.rows, r.deviation_mean, r.deviation_var
    )
    spread_ratio = c.deviation_mean / np.maximum(r.deviation_mean, 1e-12)
    (row_p,) = st.pooled_t_moments(
        c.rows, np.array([c.row_mean]), np.array([c.row_var]),
        r.rows, np.array([r.row_mean]), np.array([r.row_var]),
    )  # fmt: skip
    row_ratio, row_pvalue = float(c.row_mean / max(r.row_mean, 1e-12)), float(row_p)
    tests = [FitTest("spread", pid, None, row_ratio, row_pvalue)]
    for j, name in enumerate(features):
        tests.append(
            FitTest("feature_spread", pid, name, float(spread_ratio[j]), float(spread_p[j]))
        )
    return row_ratio, row_pvalue, tests


def persona_tests(
    pid: str, c_rows: np.ndarray, r_rows: np.ndarray, features: tuple[str, ...]
) -> tuple[PersonaShift, list[FitTest]]:
    """Location and spread tests of one persona's current rows against its reference rows.

    Args:
        pid: Persona id.
        c_rows: Current rows nearest to the persona.
        r_rows: Reference rows nearest to it.
        features: Feature names.

    Returns:
        ``(summary, tests)``; no tests when either side has fewer than `MIN_PERSONA_ROWS`.
    """
    if len(c_rows) < MIN_PERSONA_ROWS or len(r_rows) < MIN_PERSONA_ROWS:
        return PersonaShift(len(c_rows), len(r_rows)), []
    size, size_p, tests = location_tests(pid, features, _moments(c_rows), _moments(r_rows))
    ratio, ratio_p, found = spread_tests(
        pid, features, spread_moments(c_rows), spread_moments(r_rows)
    )
    summary = PersonaShift(len(c_rows), len(r_rows), size, size_p, ratio, ratio_p)
    return summary, tests + found


def gone_tests(mix: PersonaMix, n_cur: int, n_ref: int) -> list[FitTest]:
    """One-sided Fisher exact test per persona that its share fell (from the mix shares)."""
    out = []
    for pid in mix.bins:
        if pid == UNASSIGNED_ID:
            continue
        c = round(mix.current_shares[pid] * n_cur)
        r = round(mix.reference_shares[pid] * n_ref)
        if r < MIN_PERSONA_ROWS or n_cur == 0:
            continue
        table = [[c, n_cur - c], [r, n_ref - r]]
        p = float(stats.fisher_exact(table, alternative="less").pvalue)
        ratio_ = (c / n_cur) / (r / n_ref)
        out.append(FitTest("gone", pid, None, ratio_, p))
    return out


def assemble_fit(
    rates: tuple[float | None, float | None],
    distances: tuple[float | None, float | None, float | None, float | None],
    mix: PersonaMix,
    shifts: dict[str, PersonaShift],
    tests: list[FitTest],
    far: TailExcess | None = None,
    segment: Segment | None = None,
) -> PersonaFit:
    """The `PersonaFit` of measured pieces; the ratios and the largest shift are derived here.

    Args:
        rates: Unassigned rate of the current and the reference side.
        distances: Mean distance current, reference; p95 distance current, reference.
        mix: The persona mix.
        shifts: Per persona, its location (and spread) summary.
        tests: Every test.
        far: The ``far`` test's numbers, when computed.
        segment: The rows beyond the ``far`` threshold, described.

    Returns:
        The persona fit.
    """
    cur_mean, ref_mean, cur_p95, ref_p95 = distances
    measured = {pid: s for pid, s in shifts.items() if s.shift is not None}
    worst = max(measured, key=lambda pid: measured[pid].shift or 0.0) if measured else None
    return PersonaFit(
        unassigned_rate=rates[0],
        reference_unassigned_rate=rates[1],
        far=far,
        mean_distance=cur_mean,
        reference_mean_distance=ref_mean,
        distance_ratio=_ratio(cur_mean, ref_mean),
        p95_distance=cur_p95,
        reference_p95_distance=ref_p95,
        p95_distance_ratio=_ratio(cur_p95, ref_p95),
        mix=mix,
        centroid_shift=shifts,
        max_centroid_shift=measured[worst].shift if worst else None,
        max_centroid_shift_persona=worst,
        max_centroid_shift_pvalue=measured[worst].pvalue if worst else None,
        tests=tuple(tests),
        segment=segment,
    )


def describe_segment(
    beyond: dict[str, tuple[int, np.ndarray]],
    reference: dict[str, tuple[np.ndarray, np.ndarray]],
    features: tuple[str, ...],
    n_cur: int,
) -> Segment:
    """The rows beyond the ``far`` threshold: how many, near which persona, how they differ.

    From counts and sums alone, so rows (`persona_fit`) and Spark aggregates
    (`spark.stats`) give the same description.

    Args:
        beyond: Per nearest persona id, ``(rows beyond the threshold, their feature sums)``.
        reference: Per persona id, the ``(feature means, feature sample stds)`` of its
            reference rows within the threshold.
        features: Feature names.
        n_cur: Current rows.

    Returns:
        The segment; `Segment.differences` are empty when the persona has no reference std.
    """
    rows = sum(count for count, _ in beyond.values())
    rate = rows / n_cur if n_cur else 0.0
    found = {pid: v for pid, v in beyond.items() if v[0] > 0}
    if not found:
        return Segment(rows, rate)
    pid = max(found, key=lambda p: found[p][0])  # ties: the first in `beyond`'s order
    count, sums = found[pid]
    differences: tuple[tuple[str, float], ...] = ()
    if pid in reference:
        mean, std = reference[pid]
        effect = (sums / count - mean) / np.maximum(std, 1e-12)
        if np.isfinite(effect).all():
            order = np.argsort(-np.abs(effect), kind="stable")
            differences = tuple((features[j], float(effect[j])) for j in order)
    return Segment(rows, rate, pid, count, differences)


def segment_centre(
    beyond: dict[str, tuple[int, np.ndarray]],
    squares: dict[str, float],
    centroids: dict[str, np.ndarray],
) -> tuple[str, np.ndarray] | None:
    """Where the rows beyond the ``far`` threshold gather, when they gather off one persona.

    The persona most of those rows are nearest to (`describe_segment`'s) and their mean,
    when at least `MIN_SEGMENT_ROWS` of them lie nearer their own mean than that mean
    lies to the persona (mean squared distance to the mean below the squared gap): a
    cluster beside the persona, not a halo around it (a wider persona's far rows surround
    it, so their mean falls back near its centroid).

    Args:
        beyond: Per nearest persona id, the current rows beyond the threshold and their
            feature sums.
        squares: Per persona id, the sum of those rows' squared feature values.
        centroids: Per persona id, its centroid.

    Returns:
        ``(persona id, centre)`` or None.
    """
    found = {pid: v for pid, v in beyond.items() if v[0] >= MIN_SEGMENT_ROWS}
    if not found:
        return None
    pid = max(found, key=lambda p: found[p][0])
    count, sums = found[pid]
    centre = sums / count
    scatter = squares[pid] / count - float(centre @ centre)
    gap = float(np.sum((centre - centroids[pid]) ** 2))
    return (pid, centre) if gap > scatter else None


def nearer_to(x: np.ndarray, centre: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Rows nearer `centre` than their nearest persona (`distance`: to that persona)."""
    return np.sum((x - centre) ** 2, axis=1) < distance**2


def near_test(pid: str, c_near: int, n_cur: int, r_near: int, n_ref: int) -> FitTest:
    """The ``near`` test: more rows within the threshold lie nearer the segment's centre.

    One-sided Fisher exact test that the current share of such rows exceeds the
    reference's; effect = the excess share. The persona is the one the segment sits
    beside (`segment_centre`).
    """
    table = [[c_near, n_cur - c_near], [r_near, n_ref - r_near]]
    p = float(stats.fisher_exact(table, alternative="greater").pvalue) if c_near else 1.0
    excess = (c_near / n_cur if n_cur else 0.0) - (r_near / n_ref if n_ref else 0.0)
    return FitTest("near", pid, None, excess, p)


def core_threshold(ref_distance: np.ndarray, far_tail: float) -> tuple[float, int]:
    """The ``far`` threshold: the m-th largest reference distance, and m (`stats.tail_rows`).

    A row within it (on either side) fits a persona and goes to that persona's tests; a
    row beyond it fits none and goes to the ``far`` test and the segment description.
    """
    m = st.tail_rows(far_tail, len(ref_distance))
    return float(np.sort(ref_distance)[len(ref_distance) - m]), m


def persona_fit(
    current_x: np.ndarray,
    reference_x: np.ndarray,
    cur: Prediction,
    ref: Prediction,
    model: PersonaModel,
    far_tail: float = 0.002,
    unassigned_floor: float = 0.001,
    reference_months: np.ndarray | None = None,
) -> PersonaFit:
    """Compute every persona-fit measurement of the current month against the reference.

    A persona's tests (shift, spread, share) use the rows that fit it: nearest to it and
    within the reference's extreme distance (`core_threshold`), on both sides. Rows
    beyond that fit no persona: they go to the ``far`` and ``unassigned`` tests and are
    described as a possible new segment, never counted as a persona that moved. When
    those rows gather beside one persona (`segment_centre`), the rows within the
    threshold that lie nearer their centre than to their persona fit none either (on
    both sides) and go to the ``near`` test.

    Args:
        current_x: Current rows, shape (rows, features).
        reference_x: Reference rows (at least one).
        cur: The model's labels of the current rows.
        ref: The model's labels of the reference rows.
        model: The model that labelled both.
        far_tail: Reference share beyond the threshold of the ``far`` test.
        unassigned_floor: Smallest null rate of the ``unassigned`` test.
        reference_months: The month (any label) of each reference row; the mix test
            estimates the between-month overdispersion from them (None: one month).

    Returns:
        The measurements (see the module docstring); ``tests`` lists every test.
    """
    n_cur, n_ref = len(cur), len(ref)
    cur_mean, cur_p95 = _distance_stats(cur)
    ref_mean, ref_p95 = _distance_stats(ref)
    threshold, m = core_threshold(ref.distance, far_tail)
    c_core, r_core = cur.distance <= threshold, ref.distance <= threshold
    beyond: dict[str, tuple[int, np.ndarray]] = {}
    squares: dict[str, float] = {}
    for index, pid in enumerate(model.persona_ids):
        far_rows = current_x[(cur.nearest_index == index) & ~c_core]
        beyond[pid] = (len(far_rows), far_rows.sum(axis=0))
        squares[pid] = float(np.sum(far_rows**2))
    centres = dict(zip(model.persona_ids, np.asarray(model.centroids), strict=True))
    centre = segment_centre(beyond, squares, centres)
    near = None
    if centre is not None:
        c_near = c_core & nearer_to(current_x, centre[1], cur.distance)
        r_near = r_core & nearer_to(reference_x, centre[1], ref.distance)
        c_core, r_core = c_core & ~c_near, r_core & ~r_near
        near = near_test(centre[0], int(c_near.sum()), n_cur, int(r_near.sum()), n_ref)
    personas: dict[str, PersonaShift] = {}
    tests: list[FitTest] = []
    features = tuple(model.feature_names)
    reference: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for index, pid in enumerate(model.persona_ids):
        c_rows = current_x[(cur.nearest_index == index) & c_core]
        r_rows = reference_x[(ref.nearest_index == index) & r_core]
        personas[pid], found = persona_tests(pid, c_rows, r_rows, features)
        tests += found
        if len(r_rows) >= 2:
            reference[pid] = (r_rows.mean(axis=0), r_rows.std(axis=0, ddof=1))
    far = None
    if n_cur:
        count = int(np.sum(cur.distance > threshold))
        far = st.tail_excess_from_counts(threshold, m, count, n_cur, n_ref)
        tests.append(FitTest("far", None, None, far.excess, far.pvalue))
    if near is not None:
        tests.append(near)
    un_c, un_r = int(np.sum(~cur.assigned)), int(np.sum(~ref.assigned))
    rate = un_c / n_cur if n_cur else None
    ref_rate = un_r / n_ref if n_ref else None
    if rate is not None and ref_rate is not None:
        p = st.binomial_greater(un_c, n_cur, max(ref_rate, unassigned_floor))
        tests.append(FitTest("unassigned", None, None, rate - ref_rate, p))
    bins = list(model.persona_ids)
    c, r = _counts(cur.nearest_id[c_core], bins), _counts(ref.nearest_id[r_core], bins)
    assigned = _counts(cur.persona_id, [*bins, UNASSIGNED_ID])
    months = None
    if reference_months is not None:
        labels = np.asarray(reference_months)[r_core]
        months = np.array([_counts(ref.nearest_id[r_core][labels == g], bins)
                           for g in np.unique(labels)])  # fmt: skip
    mix = mix_from_count_arrays(c, r, tuple(bins), assigned, months)
    tests += gone_tests(mix, int(c.sum()), int(r.sum()))
    distances = (cur_mean, ref_mean, cur_p95, ref_p95)
    segment = describe_segment(beyond, reference, features, n_cur) if n_cur else None
    return assemble_fit((rate, ref_rate), distances, mix, personas, tests, far, segment)
