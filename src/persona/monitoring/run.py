"""`run_check`: the stored, reported and logged monitoring check of one month."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from persona.errors import MonitoringError, NotIngestedError
from persona.features import FEATURE_NAMES
from persona.model import LoadedModel
from persona.monitoring.baseline import grown_reference
from persona.monitoring.check import CheckResult, check
from persona.monitoring.policy import VERDICTS, Decision, decide
from persona.monitoring.report import report_name, write_report
from persona.monitoring.results import CheckRun
from persona.months import Month, Window
from persona.settings import PolicySettings, Settings
from persona.store import monitoring as runs_store

log = logging.getLogger(__name__)


def verdict_key(policy: PolicySettings, seed: int) -> str:
    """Everything besides the data and the model that decides a verdict, as text to hash.

    Part of a stored check's idempotence key (`data_hash`): the whole policy section (a
    threshold added to `PolicySettings` joins the key by itself) and the sampling seed. The
    text is the one stored runs were keyed on, so they stay valid. The ``unassigned`` test's
    floor (``1 - RADIUS_QUANTILE``) is the model's calibration, keyed by its version.

    Args:
        policy: The verdict thresholds (`Settings.policy`).
        seed: The seed of the check's sampling (`RANDOM_SEED`).

    Returns:
        Sorted-key JSON of the policy, then the seed; equal inputs give equal text.
    """
    return json.dumps(policy.model_dump(), sort_keys=True, default=str) + str(seed)


def _training_months(settings: Settings, engine: Engine, loaded: LoadedModel) -> Window:
    """The model's training months (its tag), else the champion's, else the first month."""
    from persona import registry
    from persona.months import parse_window
    from persona.store import survey_queries

    own = parse_window(loaded.tags.get("training_months"))
    champion = own or registry.champion_reference_months(settings)  # a registry tag: an edge
    if champion:
        return Window.of(champion)
    months = survey_queries.list_months(engine)
    if not months:
        raise NotIngestedError((), "a reference window")
    return Window.of([months[0].month])


def _reference(
    settings: Settings, engine: Engine, given: Window | None, month: Month, loaded: LoadedModel
) -> Window:
    """The given window, else the model's grown baseline (`baseline.grown_reference`)."""
    if given:
        return given
    training = _training_months(settings, engine, loaded)
    from persona.store import survey_queries

    verdicts = runs_store.judged_months(engine, loaded.name, str(loaded.version), month)
    rows = {str(m.month): m.rows for m in survey_queries.list_months(engine)}
    return grown_reference(
        training, verdicts, month, settings.baseline_max_months, rows, settings.baseline_max_rows
    )


def _data_hash(engine: Engine, month: Month, refs: Window, key: str) -> str:
    from persona.store import survey_queries

    digest = hashlib.sha256()
    digest.update(survey_queries.month_fingerprint(engine, [month]).encode())
    digest.update(survey_queries.month_fingerprint(engine, refs.months).encode())
    digest.update(key.encode())
    return digest.hexdigest()


def _load(engine: Engine, months: Sequence[Month], columns: tuple[str, ...]) -> tuple[Any, Any]:
    """The months' feature rows and the month of each row."""
    from persona.store import survey_queries

    frame = survey_queries.load_months(engine, months)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        listed = [str(m) for m in months]
        raise MonitoringError(f"stored months {listed} lack model feature columns {missing}")
    return frame[list(columns)].to_numpy(dtype="float64"), frame["survey_month"].to_numpy()


def _metrics(result: CheckResult, decision: Decision) -> dict[str, float]:
    metrics: dict[str, float] = {
        "n_current": result.n_current,
        "n_reference": result.n_reference,
        "verdict_code": VERDICTS.index(decision.verdict),
    }
    if result.drift is not None:
        metrics["drift_share"] = result.drift.drift_share
        metrics["n_current_sampled"] = result.drift.n_current_used
        metrics["n_reference_sampled"] = result.drift.n_reference_used
        for f in result.drift.features:
            metrics[f"ks_pvalue_{f.feature}"] = f.score
    fit = result.fit
    if fit is not None:
        optional = {
            "unassigned_rate": fit.unassigned_rate,
            "mean_distance": fit.mean_distance,
            "distance_ratio": fit.distance_ratio,
            "p95_distance_ratio": fit.p95_distance_ratio,
            "max_centroid_shift": fit.max_centroid_shift,
        }
        metrics.update({k: v for k, v in optional.items() if v is not None})
        metrics["mix_psi"] = fit.mix.psi
        metrics["mix_chi2_pvalue"] = fit.mix.chi2_pvalue
    return {k: float(v) for k, v in metrics.items()}


def _log_mlflow(
    settings: Settings, row: dict[str, Any], metrics: dict[str, float], report: Path | None
) -> str | None:
    """Log the check to MLflow; a failure is logged and does not fail the check."""
    try:
        from mlflow.entities import Metric, Param

        from persona.registry.tracking import client, configure, parent_run

        exp_id = configure(settings)
        mlc = client(settings)
        name = f"monitor-{row['survey_month']}"
        tags = {"kind": "monitoring", "verdict": str(row["decision"])}
        with parent_run(mlc, exp_id, name, tags) as run:
            run_id = run.info.run_id
            now = int(time.time() * 1000)
            params = {
                "month": row["survey_month"],
                "reference_months": row["reference_months"],
                "model_name": row["model_name"],
                "model_version": row["model_version"],
                "data_hash": row["data_hash"],
            }
            mlc.log_batch(
                run_id,
                metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                params=[Param(k, str(v)) for k, v in params.items()],
            )
            with tempfile.TemporaryDirectory() as tmp:
                doc = Path(tmp) / "check.json"
                document = CheckRun.from_row(row).to_dict()
                doc.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
                mlc.log_artifact(run_id, str(doc), "monitoring")
            if report is not None:
                mlc.log_artifact(run_id, str(report), "monitoring")
            return str(run_id)
    except Exception as exc:  # MLflow trouble must not lose the stored check
        log.warning("could not log monitoring run to MLflow: %s", exc)
        return None


def _to_workspace(settings: Settings, month: Month, refs: Window) -> Callable[[Any], object] | None:
    """What adds the month's snapshot to the Evidently workspace (`add_check_safely`).

    None when the reference window holds the month itself (the first month, the model's
    training month): the dashboard would compare the month with itself. Imported here,
    not at the top: `python -m persona.monitoring.workspace` (`make evidently-ui`) must
    not find its module already imported by the package (runpy's RuntimeWarning).
    """
    if month in refs:
        log.info("%s is in its own reference window %s: not plotted in Evidently", month, refs)
        return None
    from persona.monitoring.workspace import add_check_safely

    return lambda snapshot: add_check_safely(settings, snapshot, month)


def run_check(
    settings: Settings,
    engine: Engine,
    month: Month,
    reference_months: Window | None = None,
    loaded: LoadedModel | None = None,
) -> CheckRun:
    """Check one stored month against a reference window, then report, log and record it.

    Idempotent: the same month, reference window, model version and data hash (stored
    data fingerprints + `verdict_key`) returns the stored run (``existing: true``).

    Args:
        settings: Thresholds, report folder, MLflow settings.
        engine: The survey store.
        month: Current month.
        reference_months: Reference window; default the model's grown baseline: its
            training months (else the champion's, else the earliest ingested month) plus
            the later months it judged ``no_drift`` before `month`, newest first, at most
            `BASELINE_MAX_MONTHS` months and `BASELINE_MAX_ROWS` rows
            (`monitoring.baseline`).
        loaded: A `registry.LoadedModel`; default `registry.load_model_for_serving`.

    Returns:
        The recorded check (`to_dict` for JSON): verdict, reasons, per-feature results,
        persona fit, report path, MLflow run id, run id.

    Raises:
        NotIngestedError: No month is ingested, or the reference window has no rows.
        MonitoringError: Mismatched feature columns.
    """
    if loaded is None:
        from persona import registry

        loaded = registry.load_model_for_serving(settings)
    refs = _reference(settings, engine, reference_months, month, loaded)
    model = loaded.model
    if tuple(model.feature_names) != FEATURE_NAMES:
        raise MonitoringError(
            f"model {loaded.name} v{loaded.version} uses features {list(model.feature_names)}; "
            f"the store holds {list(FEATURE_NAMES)}"
        )
    policy, seed = settings.policy, settings.random_seed
    floor = 1.0 - settings.radius_quantile
    data_hash = _data_hash(engine, month, refs, verdict_key(policy, seed))
    found = runs_store.find_run(
        engine, month, refs.months, loaded.name, str(loaded.version), data_hash
    )
    if found is not None:
        log.info("monitoring %s vs %s: identical run %s exists", month, refs, found.run_id)
        return CheckRun.from_row(found.to_dict(), existing=True)
    ref_x, ref_months = _load(engine, refs.months, model.feature_names)
    if len(ref_x) == 0:
        raise NotIngestedError(refs.months, "the reference window")
    cur_x, _ = _load(engine, [month], model.feature_names)
    result = check(
        cur_x, ref_x, model, policy, seed=seed, unassigned_floor=floor, reference_months=ref_months
    )
    decision = decide(result, policy)
    path = Path(settings.reports_dir) / report_name(month, refs, str(loaded.version), data_hash)
    report = write_report(
        result,
        decision,
        month,
        refs,
        path,
        rules=policy,
        metadata={"model_version": str(loaded.version), "data_hash": data_hash[:12]},
        on_snapshot=_to_workspace(settings, month, refs),
    )
    drift = result.drift
    stored = runs_store.MonitoringCheck(
        survey_month=month,
        reference_months=refs,
        model_name=loaded.name,
        model_version=str(loaded.version),
        data_hash=data_hash,
        n_current=result.n_current,
        n_reference=result.n_reference,
        n_current_sampled=drift.n_current_used if drift else None,
        n_reference_sampled=drift.n_reference_used if drift else None,
        drift_share=drift.drift_share if drift else None,
        dataset_drift=drift.dataset_drift if drift else None,
        decision=decision.verdict,
        reasons=decision.reasons,
        feature_results=[f.to_dict() for f in drift.features] if drift else [],
        persona_fit=result.fit.to_dict() if result.fit is not None else {},
        report_path=str(report) if report else None,
        mlflow_run_id=None,
    )
    mlflow_run_id = _log_mlflow(settings, stored.to_dict(), _metrics(result, decision), report)
    stored = replace(stored, mlflow_run_id=mlflow_run_id)
    run_id = runs_store.record_run(engine, stored)
    log.info("monitoring %s vs %s: %s", month, refs, decision.verdict)
    return CheckRun.from_row({**stored.to_dict(), "run_id": run_id})
