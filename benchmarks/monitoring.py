"""Benchmark: the platform's monitoring check vs Evidently's default drift preset, 1M vs 1M.

For each scenario (``stable`` and the drifted ``spread``, the original study's March) it
generates a reference and a current month of N respondents each (default 1,000,000), then
times in the same process:

- platform: `persona.monitoring.check` + `decide` - Evidently `DataDriftPreset` with K-S on
  seeded samples of `DRIFT_SAMPLE_ROWS` rows per side, plus the persona-fit metrics on
  every row (the champion labels 2N rows);
- baseline: Evidently `Report([DataDriftPreset()])` with its defaults on the full data
  (normed Wasserstein above 1000 rows, dataset drift at a drifted share >= 0.5).

"Same verdict": the platform's dataset-level drift (its verdict is ``retrain``) equals
Evidently's dataset drift. Prints a table, writes benchmarks/out/monitoring.json.

Usage: .venv/bin/python benchmarks/monitoring.py [--rows 1000000] [--scenarios stable,spread]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _provenance import begin, finish

from persona.catalog import load_catalog
from persona.features import FEATURE_NAMES
from persona.model import calibrate_radii, from_catalog
from persona.monitoring import check, decide
from persona.settings import load_settings
from persona.synth import generate_month

OUT = Path(__file__).resolve().parent / "out" / "monitoring.json"
REPO = Path(__file__).resolve().parents[1]


def evidently_default(cur: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """Evidently's default DataDriftPreset on the full frames (current first)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = list(FEATURE_NAMES)
    definition = DataDefinition(numerical_columns=cols)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(pd.DataFrame(cur, columns=cols), data_definition=definition),
        Dataset.from_pandas(pd.DataFrame(ref, columns=cols), data_definition=definition),
    )
    metrics = snapshot.dict()["metrics"]
    count = next(m for m in metrics if "DriftedColumnsCount" in m["metric_name"])
    methods = sorted(
        {m["config"].get("method") or "" for m in metrics if "ValueDrift" in m["metric_name"]}
    )
    share = float(count["value"]["share"])
    return {"drift_share": share, "dataset_drift": share >= 0.5, "methods": methods}


def run(rows: int, scenarios: list[str]) -> dict[str, Any]:
    """Time both paths on every scenario and compare their verdicts."""
    settings = load_settings(_env_file=None, persona_catalog=REPO / "01_model" / "personas.yaml")
    catalog = load_catalog(settings.persona_catalog)
    reference, _ = generate_month(catalog, "2025-01", rows, "stable", seed=101)
    ref = reference[list(FEATURE_NAMES)].to_numpy()
    del reference
    base = from_catalog(catalog)
    model = from_catalog(
        catalog, calibrate_radii(base, ref, settings.radius_quantile, settings.radius_scale)
    )
    floor = 1.0 - settings.radius_quantile
    # warm-up: Evidently imports
    check(ref[:1000], ref[:1000], model, settings.policy, seed=0, unassigned_floor=floor)
    results = []
    for scenario in scenarios:
        current, _ = generate_month(catalog, "2025-02", rows, scenario, seed=202)
        cur = current[list(FEATURE_NAMES)].to_numpy()
        del current
        started = time.perf_counter()
        result = check(
            cur, ref, model, settings.policy, seed=settings.random_seed, unassigned_floor=floor
        )
        decision = decide(result, settings.policy)
        platform_s = time.perf_counter() - started
        started = time.perf_counter()
        baseline = evidently_default(cur, ref)
        baseline_s = time.perf_counter() - started
        assert result.drift is not None
        platform_drift = decision.verdict == "retrain"
        results.append(
            {
                "scenario": scenario,
                "platform_s": round(platform_s, 3),
                "evidently_default_s": round(baseline_s, 3),
                "speedup": round(baseline_s / platform_s, 1),
                "platform_verdict": decision.verdict,
                "platform_reasons": decision.reasons,
                "platform_drift_share": result.drift.drift_share,
                "platform_rows_tested": [
                    result.drift.n_current_used,
                    result.drift.n_reference_used,
                ],
                "evidently_drift_share": baseline["drift_share"],
                "evidently_dataset_drift": baseline["dataset_drift"],
                "evidently_methods": baseline["methods"],
                "same_verdict": platform_drift == baseline["dataset_drift"],
            }
        )
    return {
        "benchmark": "monitoring",
        "rows_per_side": rows,
        "sample_rows": settings.drift_sample_rows,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or "?"},
        "results": results,
        "target": "speedup >= 4 with the same verdict on every scenario",
        "met": all(r["speedup"] >= 4 and r["same_verdict"] for r in results),
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="respondents per side")
    parser.add_argument("--scenarios", default="stable,spread", help="comma-separated")
    args = parser.parse_args()
    provenance = begin()
    out = run(args.rows, args.scenarios.split(","))
    print(f"monitoring check, {out['rows_per_side']:,} vs {out['rows_per_side']:,} rows")
    print(f"{'scenario':<10} {'platform s':>10} {'evidently s':>12} {'ratio':>6}  verdicts")
    for r in out["results"]:
        print(
            f"{r['scenario']:<10} {r['platform_s']:>10.2f} {r['evidently_default_s']:>12.2f} "
            f"{r['speedup']:>5.1f}x  platform {r['platform_verdict']} "
            f"(share {r['platform_drift_share']:.2f}) / evidently dataset_drift="
            f"{r['evidently_dataset_drift']} (share {r['evidently_drift_share']:.2f}, "
            f"{'+'.join(r['evidently_methods'])}) same={r['same_verdict']}"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    out["provenance"] = finish(provenance)
    OUT.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"target met: {out['met']}; wrote {OUT}")


if __name__ == "__main__":
    main()
