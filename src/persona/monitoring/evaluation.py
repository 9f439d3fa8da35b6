"""Evaluation of the monitoring decision on seeded synthetic months, with 95 % intervals.

Every seeded month is drawn with random (multinomial) persona membership and judged against
its own fresh 500-row stable reference month by the catalog model (radii calibrated on that
reference, as `persona model bootstrap` does), through the production `check` and `decide`
(the Evidently report is skipped: the verdict does not depend on it). Rates come with
Wilson 95 % intervals; a target counts as met only when the interval's bound meets it
(the upper bound for "at most", the lower for "at least"); one met by the observed share
alone is reported as "met by observation only".
`04_monitoring/evaluate_policy.py` prints the table; docs/monitoring.md holds the result.
"""

from __future__ import annotations

import functools
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from persona.catalog import Catalog, load_catalog
from persona.features import FEATURE_NAMES
from persona.model import PersonaModel, calibrate_radii, from_catalog
from persona.monitoring.check import check
from persona.monitoring.policy import VERDICTS, decide
from persona.months import Month
from persona.settings import Settings
from persona.synth import generate_month

SIZES = (50, 120, 500, 2000)
REFERENCE_ROWS = 500
PRODUCTION_REFERENCE_ROWS = 1500  # 3 training months (TRAINING_WINDOW_MONTHS) of 500 rows
Z95 = 1.959964


@dataclass(frozen=True)
class Case:
    """One evaluated scenario.

    Attributes:
        name: Row label.
        scenario: `synth` scenario.
        params: `generate_month` parameters.
        targets: ``(verdicts, op, bound)``: the share of months whose verdict is in
            `verdicts` must be ``<=`` or ``>=`` bound, judged on its 95 % Wilson bound
            (`judged_target`).
        sizes: Month sizes the target applies to.
        stable: Whether it is a stable case (more seeds).
        reference_rows: Rows of the fresh stable reference each month is judged against
            (`REFERENCE_ROWS`; production compares with the champion's training window,
            `TRAINING_WINDOW_MONTHS` months, so `PRODUCTION_REFERENCE_ROWS` for 500-row
            months).
    """

    name: str
    scenario: str
    params: dict[str, Any] = field(default_factory=dict)
    targets: tuple[tuple[tuple[str, ...], str, float], ...] = ()
    sizes: tuple[int, ...] = (500,)
    stable: bool = False
    reference_rows: int = 500


_RETRAIN = ((("retrain",), ">=", 0.99),)
CASES: tuple[Case, ...] = (
    Case(
        "stable",
        "stable",
        targets=((("retrain",), "<=", 0.01), (("retrain", "watch"), "<=", 0.05)),
        sizes=(120, 500, 2000),
        stable=True,
    ),
    Case("new segment 2%", "new_segment", {"new_share": 0.02}, ((("retrain",), ">=", 0.90),)),
    *(
        Case(f"new segment {s}%", "new_segment", {"new_share": s / 100}, _RETRAIN)
        for s in (3, 5, 10, 15)
    ),
    Case("mix 60/30/10", "mix", {"shares": [0.6, 0.3, 0.1]}, ((("watch",), ">=", 0.99),)),
    # Information only against one 500-row month: at the edge of what the chi-square test
    # can see (`power_ceilings`). The platform judges against the grown baseline: the
    # target is held there (`sequences.mix_in_fourth_month`).
    Case("mix 45/30/25", "mix", {"shares": [0.45, 0.30, 0.25]}),
    # Against the production reference (the champion's three training months).
    Case(
        "stable (1500-row reference)",
        "stable",
        targets=((("retrain",), "<=", 0.01), (("retrain", "watch"), "<=", 0.05)),
        sizes=(120, 500, 2000),
        stable=True,
        reference_rows=PRODUCTION_REFERENCE_ROWS,
    ),
    Case(
        "mix 45/30/25 (1500-row reference)",
        "mix",
        {"shares": [0.45, 0.30, 0.25]},
        ((("watch",), ">=", 0.95),),
        reference_rows=PRODUCTION_REFERENCE_ROWS,
    ),
    Case("shift 0.5 sd per answer", "shift", {"shift_sigma": 0.5}, _RETRAIN),
    Case("shift 1 sd per answer", "shift", {"shift_sigma": 1.0}, _RETRAIN),
    # Information only: below what any test can find at n = 500 (see `power_ceilings`).
    Case("shift 0.5 sd (distance 1.0)", "shift", {"shift_distance": 1.0}),
    Case("shift 1 sd (distance 2.0)", "shift", {"shift_distance": 2.0}, _RETRAIN),
    Case("spread 2→2.5", "spread", {"std": 2.5}, _RETRAIN),
    Case("spread 2→3.1", "spread", {"std": 3.1}, _RETRAIN),
    Case("persona disappears", "vanish", {}, _RETRAIN),
    Case("x3 rescaled x2", "rescale", {"feature": "x3", "factor": 2.0}, _RETRAIN),
    Case("x3 sign-flipped", "sign_flip", {"feature": "x3"}, _RETRAIN),
    Case("zero-filled x6-x10 (10%)", "zero_fill", {"zero_share": 0.1}, _RETRAIN),
)


def mix_power(
    reference: tuple[float, ...], current: tuple[float, ...], n: int, ref_rows: int, alpha: float
) -> float:
    """Power of the chi-square test of the persona mix (noncentral chi-square).

    The best a test of the shares can do: with `n` current and `ref_rows` reference rows,
    the probability that a month drawn with shares `current` is told apart from one with
    shares `reference` at level `alpha`.
    """
    p0, p1 = np.asarray(reference), np.asarray(current)
    pooled = (p1 * n + p0 * ref_rows) / (n + ref_rows)
    noncentrality = n * ref_rows / (n + ref_rows) * float(np.sum((p1 - p0) ** 2 / pooled))
    df = len(p0) - 1
    return float(stats.ncx2.sf(stats.chi2.isf(alpha, df), df, noncentrality))


def shift_power(
    distance: float, std: float, n: int, ref_rows: int, personas: int, alpha: float
) -> float:
    """Power of the best direction-free test that one persona's centroid moved.

    Hotelling-style chi-square on the persona's mean vector (10 degrees of freedom: the
    direction is unknown) with the persona's share of both samples, at level `alpha`.
    """
    per_cur, per_ref = n / personas, ref_rows / personas
    noncentrality = distance**2 / (std**2 * (1.0 / per_cur + 1.0 / per_ref))
    df = len(FEATURE_NAMES)
    return float(stats.ncx2.sf(stats.chi2.isf(alpha, df), df, noncentrality))


def power_ceilings(settings: Settings) -> list[str]:
    """Upper bounds for the two cases that sit at the edge of what 500 rows can show."""
    thirds = (1 / 3, 1 / 3, 1 / 3)
    mix = (0.45, 0.30, 0.25)
    per_test = settings.persona_fit_alpha / 11  # Holm's first step over the persona-level tests
    lines = []
    for ref_rows in (REFERENCE_ROWS, PRODUCTION_REFERENCE_ROWS):
        lines.append(
            f"mix 45/30/25 at n=500 vs a {ref_rows}-row reference: chi-square power "
            f"{mix_power(thirds, mix, 500, ref_rows, settings.mix_alpha):.1%} at "
            f"MIX_ALPHA={settings.mix_alpha:g}"
        )
    for ref_rows in (REFERENCE_ROWS, PRODUCTION_REFERENCE_ROWS):
        at_holm = shift_power(1.0, 2.0, 500, ref_rows, 3, per_test)
        at_one_percent = shift_power(1.0, 2.0, 500, ref_rows, 3, 0.01)
        lines.append(
            f"one centroid moved 1.0 (0.5 std) at n=500 vs a {ref_rows}-row reference: "
            f"power of the best direction-free test {at_holm:.1%} at the Holm level "
            f"{per_test:.1g}, {at_one_percent:.1%} even at 0.01"
        )
    return lines


def wilson(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default)."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@functools.cache
def _catalog(path: str) -> Catalog:
    return load_catalog(path)


def catalog_of(settings: Settings) -> Catalog:
    """The persona catalog of `PERSONA_CATALOG`, read once per path."""
    return _catalog(str(settings.persona_catalog))


def calibrated_model(settings: Settings, x: np.ndarray) -> PersonaModel:
    """The catalog model with radii calibrated on `x` (what `persona model bootstrap` does)."""
    catalog = catalog_of(settings)
    radii = calibrate_radii(
        from_catalog(catalog), x, settings.radius_quantile, settings.radius_scale
    )
    return from_catalog(catalog, radii)


def judge_month(settings: Settings, case: Case, n: int, seed: int) -> str:
    """Verdict of one seeded month against its own fresh stable reference."""
    catalog = catalog_of(settings)
    reference, _ = generate_month(
        catalog, Month("2025-01"), case.reference_rows, "stable", seed=seed
    )
    ref_x = reference[list(FEATURE_NAMES)].to_numpy()
    # A reference of more than one month (the 1500-row production window: three training
    # months) is labelled by month, as `run_check` labels its window.
    months = np.arange(len(ref_x)) // REFERENCE_ROWS
    model = calibrated_model(settings, ref_x)
    month = Month("2025-02")
    current, _ = generate_month(catalog, month, n, case.scenario, seed=seed, **case.params)
    cur_x = current[list(FEATURE_NAMES)].to_numpy()
    floor = 1.0 - settings.radius_quantile
    policy = settings.policy
    result = check(
        cur_x, ref_x, model, policy, seed=seed, unassigned_floor=floor, evidently=False,
        reference_months=months,
    )  # fmt: skip
    return decide(result, policy).verdict


def judged_target(target: str, op: str, bound: float, hits: int, total: int) -> dict[str, Any]:
    """A share target judged on its 95 % Wilson bound, with the observed share beside it.

    Args:
        target: The target as text (e.g. ``"retrain >= 99%"``).
        op: ``"<="`` (judged on the upper bound) or ``">="`` (on the lower bound).
        bound: The target share.
        hits: Months (or sequences) that count towards the share.
        total: Months (or sequences) in all.

    Returns:
        ``target``, ``observed`` share, ``bound_95`` (the side of the interval judged),
        ``met`` (the bound meets the target) and ``met_by_observation`` (the observed
        share does; true with ``met`` false means: met by observation only).
    """
    low, high = wilson(hits, total)
    observed = hits / total if total else 0.0
    edge = high if op == "<=" else low
    meets = (lambda v: v <= bound) if op == "<=" else (lambda v: v >= bound)
    return {
        "target": target,
        "observed": observed,
        "bound_95": edge,
        "met": bool(total) and meets(edge),
        "met_by_observation": bool(total) and meets(observed),
    }


def target_text(t: dict[str, Any]) -> str:
    """``met``, ``met by observation only (95 % bound x)`` or ``NOT MET``."""
    if "bound_95" not in t:
        return f"{t['target']}: {'met' if t['met'] else 'NOT MET'}"
    shown = f"observed {100 * t['observed']:.1f}%, 95% bound {100 * t['bound_95']:.1f}%"
    if t["met"]:
        return f"{t['target']}: met ({shown})"
    if t["met_by_observation"]:
        return f"{t['target']}: met by observation only ({shown})"
    return f"{t['target']}: NOT MET ({shown})"


def _row(case: Case, n: int, counts: Counter[str], runs: int) -> dict[str, Any]:
    rates = {v: counts[v] / runs for v in VERDICTS}
    both = counts["retrain"] + counts["watch"]
    row: dict[str, Any] = {
        "case": case.name,
        "n": n,
        "runs": runs,
        "counts": {v: counts[v] for v in VERDICTS},
        "rates": rates,
        "retrain_ci": wilson(counts["retrain"], runs),
        "watch_ci": wilson(counts["watch"], runs),
        "alarm_ci": wilson(both, runs),
        "targets": [],
    }
    if n in case.sizes:
        for verdicts, op, bound in case.targets:
            hits = sum(counts[v] for v in verdicts)
            label = f"{'+'.join(verdicts)} {op} {bound:.0%}"
            row["targets"].append(judged_target(label, op, bound, hits, runs))
    return row


def evaluate(
    settings: Settings,
    stable_runs: int = 2000,
    drift_runs: int = 100,
    sizes: tuple[int, ...] = SIZES,
    cases: tuple[Case, ...] = CASES,
) -> dict[str, Any]:
    """Run every case at every size and return verdict rates with 95 % intervals.

    Args:
        settings: Thresholds (and the catalog path).
        stable_runs: Seeded months per size for stable cases.
        drift_runs: Seeded months per size for drift cases.
        sizes: Month sizes.
        cases: The cases.

    Returns:
        ``{"stable_runs", "drift_runs", "seconds", "rows": [...], "met",
        "met_by_observation"}``: ``met`` when every target's 95 % bound meets it.
    """
    started = time.perf_counter()
    rows = []
    for case in cases:
        runs = stable_runs if case.stable else drift_runs
        for n in sizes:
            counts: Counter[str] = Counter(judge_month(settings, case, n, s) for s in range(runs))
            rows.append(_row(case, n, counts, runs))
    met = all(t["met"] for row in rows for t in row["targets"])
    observed = all(t["met_by_observation"] for row in rows for t in row["targets"])
    seconds = time.perf_counter() - started
    return {
        "stable_runs": stable_runs,
        "drift_runs": drift_runs,
        "reference_rows": REFERENCE_ROWS,
        "seconds": seconds,
        "ceilings": power_ceilings(settings),
        "rows": rows,
        "met": met,
        "met_by_observation": observed,
    }


def _cell(rate: float, ci: tuple[float, float]) -> str:
    return f"{100 * rate:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def render(result: dict[str, Any]) -> str:
    """Format the evaluation as a Markdown table."""
    lines = [
        "| case | n | months | retrain [95% CI] | watch [95% CI] | retrain+watch [95% CI] "
        "| target (met: its 95 % Wilson bound meets it) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        rates = row["rates"]
        alarm = rates["retrain"] + rates["watch"]
        targets = "; ".join(target_text(t) for t in row["targets"])
        lines.append(
            f"| {row['case']} | {row['n']} | {row['runs']} | "
            f"{_cell(rates['retrain'], row['retrain_ci'])} | "
            f"{_cell(rates['watch'], row['watch_ci'])} | {_cell(alarm, row['alarm_ci'])} | "
            f"{targets or '-'} |"
        )
    lines.append(
        f"\n{result['stable_runs']} seeded months per size for stable, {result['drift_runs']} "
        f"per size for each drift case, each against its own fresh {result['reference_rows']}"
        f"-row stable reference (unless the case names another size); "
        f"{result['seconds']:.0f} s in all."
    )
    if result.get("ceilings"):
        lines.append("\nPower ceilings (any test, same false-alarm level):")
        lines += [f"- {line}" for line in result["ceilings"]]
    return "\n".join(lines)
