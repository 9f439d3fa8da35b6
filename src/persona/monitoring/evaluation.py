"""Evaluation of the monitoring decision policy on seeded synthetic months.

For every scenario (stable, spread, shift, new_segment, mix) `evaluate` generates seeded
months, checks each against one stable reference month with the catalog model (radii
calibrated on the reference, as `persona model bootstrap` does) and returns the rate of each
verdict. Targets: `retrain` on stable <= 5 %; `retrain` on every other scenario >= 95 %.
`04_monitoring/evaluate_policy.py` prints the table; docs/monitoring.md holds the result.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from persona.catalog import load_catalog
from persona.features import FEATURE_NAMES
from persona.model import calibrate_radii, from_catalog
from persona.monitoring.check import check
from persona.monitoring.policy import VERDICTS, decide
from persona.settings import Settings
from persona.synth import SCENARIOS, generate_month

RULES = {
    "drift share": "features drifted",
    "unassigned": "unassigned rate",
    "distance": "mean distance",
    "centroid shift": "reference std",
    "mix PSI": "persona mix shifted",
}
TARGETS = {"stable": ("retrain", "<=", 0.05)} | {
    s: ("retrain", ">=", 0.95) for s in SCENARIOS if s != "stable"
}


def evaluate(
    settings: Settings, runs: int, rows: int, scenarios: tuple[str, ...] = SCENARIOS
) -> dict[str, Any]:
    """Run the evaluation and return verdict rates per scenario.

    Args:
        settings: Thresholds (and the catalog path).
        runs: Seeded months per scenario.
        rows: Respondents per month.
        scenarios: Scenarios to evaluate.

    Returns:
        ``{"runs", "rows", "seconds", "scenarios": {name: {"rates", "target", "met"}}}``.
    """
    catalog = load_catalog(settings.persona_catalog)
    reference, _ = generate_month(catalog, "2025-01", rows, "stable", seed=10_000)
    ref_x = reference[list(FEATURE_NAMES)].to_numpy()
    base = from_catalog(catalog)
    model = from_catalog(
        catalog, calibrate_radii(base, ref_x, settings.radius_quantile, settings.radius_scale)
    )
    started = time.perf_counter()
    out: dict[str, Any] = {}
    for scenario in scenarios:
        counts: Counter[str] = Counter()
        fired: Counter[str] = Counter()
        for run in range(runs):
            current, _ = generate_month(catalog, "2025-02", rows, scenario, seed=run)
            result = check(
                current[list(FEATURE_NAMES)].to_numpy(), ref_x, model, settings, seed=run
            )
            decision = decide(result, settings)
            counts[decision.verdict] += 1
            for rule, marker in RULES.items():
                fired[rule] += any(marker in reason for reason in decision.reasons)
        rates = {v: counts[v] / runs for v in VERDICTS}
        verdict, op, bound = TARGETS[scenario]
        met = rates[verdict] <= bound if op == "<=" else rates[verdict] >= bound
        out[scenario] = {
            "rates": rates,
            "rules": {rule: fired[rule] / runs for rule in RULES},
            "target": f"{verdict} {op} {bound:.0%}",
            "met": met,
        }
    seconds = time.perf_counter() - started
    return {"runs": runs, "rows": rows, "seconds": seconds, "scenarios": out}


def render(result: dict[str, Any]) -> str:
    """Format the evaluation as a Markdown table."""
    lines = [
        "| scenario | no_drift | watch | retrain | insufficient_data | target | met "
        "| retrain rules fired |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["scenarios"].items():
        rates = row["rates"]
        cells = " | ".join(f"{100 * rates[v]:.0f}%" for v in VERDICTS)
        rules = ", ".join(f"{r} {100 * v:.0f}%" for r, v in row["rules"].items() if v) or "-"
        met = "yes" if row["met"] else "NO"
        lines.append(f"| {name} | {cells} | {row['target']} | {met} | {rules} |")
    lines.append(
        f"\n{result['runs']} seeded months of {result['rows']} respondents per scenario, "
        f"{result['seconds']:.0f} s in all."
    )
    return "\n".join(lines)
