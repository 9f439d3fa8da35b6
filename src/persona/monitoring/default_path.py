"""Sequences through the default path: `persona run-month` with default settings.

Each sequence has its own stores in a folder (SQLite survey store, SQLite MLflow, reports):
the calibration month and the months after it are ingested, v1 is bootstrapped on the
calibration month (`persona model bootstrap`), then `flows.run_month` (the function the
command calls) runs every month in order: label, check against the grown baseline,
alert, retrain / promote when it decides so. Slower than `sequences` (MLflow, Evidently
reports), so the evaluation runs fewer of them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from persona import flows, registry
from persona.monitoring import sequences as sq
from persona.monitoring.evaluation import catalog_of
from persona.monitoring.sequences import CALIBRATION, ROWS, STABLE, Step
from persona.months import Month
from persona.settings import Settings, load_settings
from persona.store import survey_ingest
from persona.store.engine import open_store
from persona.synth import generate_month


def folder_settings(folder: Path, catalog: Path) -> Settings:
    """Default settings with every store inside `folder` (nothing else overridden)."""
    return load_settings(
        _env_file=None,
        var_dir=folder,
        database_url=f"sqlite:///{folder}/persona.db",
        mlflow_tracking_uri=f"sqlite:///{folder}/mlflow.db",
        mlflow_artifact_root=str(folder / "mlartifacts"),
        reports_dir=folder / "reports",
        persona_catalog=catalog,
    )


def run_default_sequence(
    folder: Path, catalog: Path, seed: int, steps: Sequence[Step], rows: int = ROWS
) -> list[dict[str, Any]]:
    """Ingest, bootstrap on the calibration month, then `run_month` every month in order.

    Args:
        folder: An empty folder for this sequence's stores.
        catalog: The persona catalog (`PERSONA_CATALOG`).
        seed: Seed of every month (the same data as `sequences.run_sequence`).
        steps: What each month after the calibration month is drawn from.
        rows: Rows per month.

    Returns:
        Per month: ``month``, ``verdict``, ``reasons``, ``reference_months``,
        ``model_version_before`` and ``model_version_after``.
    """
    settings = folder_settings(folder, catalog)
    engine = open_store(settings.database_url)
    try:
        for i, step in enumerate([STABLE, *steps]):
            month = CALIBRATION.add(i)
            frame, _ = generate_month(
                catalog_of(settings), month, rows, step.scenario, seed=seed, **dict(step.params)
            )
            survey_ingest.ingest_frame(engine, frame, month, f"synth-{month}")
        registry.bootstrap(settings, engine, Month(CALIBRATION))
    finally:
        engine.dispose()
    keys = ("month", "verdict", "reasons", "reference_months", "model_version_before",
            "model_version_after")  # fmt: skip
    out = []
    for i in range(1, len(steps) + 1):
        summary = flows.run_month(settings, CALIBRATION.add(i)).to_dict()
        out.append({k: summary[k] for k in keys})
    return out


def compare_with_direct(settings: Settings, sequences: int, months: int) -> dict[str, Any]:
    """Stable, mix and segment sequences through `run_month`, beside the direct path.

    Per seed (0..`sequences` - 1): `months` stable months; three stable months then mix
    45/30/25; two stable months then a 15 % new segment for four months. The verdicts of
    every kind are compared month by month with `sequences.run_sequence` on the same data.

    Returns:
        Per kind the verdicts, reference sizes, first reasons and model versions before and
        after each month, the agreement with the direct path, and ``met`` (every sequence
        agrees with the direct path and the stable ones meet their targets).
    """
    catalog = Path(settings.persona_catalog).resolve()
    kinds = {
        "stable": [STABLE] * months,
        "mix_45_30_25_fourth_month": [STABLE] * 3 + [sq.MIX_45],
        "new_segment_15": [STABLE] * 2 + [Step("new_segment", (("new_share", 0.15),))] * 4,
    }
    out: dict[str, Any] = {kind: [] for kind in kinds}
    agree = True
    for seed in range(sequences):
        for kind, steps in kinds.items():
            with tempfile.TemporaryDirectory() as tmp:
                run = run_default_sequence(Path(tmp), catalog, seed, steps)
            entry: dict[str, Any] = {
                "seed": seed,
                "verdicts": [m["verdict"] for m in run],
                "reference_months": [len(m["reference_months"]) for m in run],
                "first_reasons": [m["reasons"][0] if m["reasons"] else "" for m in run],
                "model_version_before": [m["model_version_before"] for m in run],
                "model_version_after": [m["model_version_after"] for m in run],
            }
            direct = [d.verdict for d in sq.run_sequence(settings, seed, steps)]
            entry["direct_path_agrees"] = same = direct == entry["verdicts"]
            agree = agree and same
            out[kind].append(entry)
    stable = [sq.alarm_counts_of(e["verdicts"]) for e in out["stable"]]
    out["met"] = agree and all(t["met"] for t in sq.stable_summary(stable)["targets"])
    return out
