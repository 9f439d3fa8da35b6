"""The monthly cycle: label, monitor, decide, retrain, promote, alert — one call per month.

`run_month` composes the modules (labeling, monitoring, registry, alerts); the CLI
(`persona run-month`), the demo and the Mage pipelines use it or its steps.

Idempotence and recovery: every step is idempotent on its own (labels are unique per
response + model version, a monitoring run per month + reference + model + data hash, a
challenger per training months + data hash, a promotion of the current champion is a
no-op). Once a month's check is recorded, its run is marked with the action the cycle
takes (``action_taken``); a rerun of the month replays that same check — same model
version, same reference window — so it neither re-decides against a newer champion nor
writes anything new. A failure part-way (e.g. MLflow down during promotion) therefore
leaves only completed steps behind, and a rerun finishes the remaining ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from persona import alerts, labeling, monitoring, registry
from persona.errors import RegistryError
from persona.months import parse_month
from persona.settings import Settings
from persona.store import assignments
from persona.store import monitoring as runs_store
from persona.store.engine import open_store

log = logging.getLogger(__name__)

PENDING = "pending"


def _pinned_run(engine: Engine, month: str) -> dict[str, Any] | None:
    """The check an earlier cycle of `month` acted on (earliest marked run), if any."""
    runs = [r for r in runs_store.list_runs(engine, month=month) if r.get("action_taken")]
    return min(runs, key=lambda r: r["run_id"]) if runs else None


def _loaded(settings: Settings, version: str) -> registry.LoadedModel:
    return registry.load_model_for_serving(settings, f"models:/{settings.model_name}/{version}")


def _label(settings: Settings, engine: Engine, month: str, version: str) -> dict[str, Any]:
    result = labeling.label_month(settings, engine, month, loaded=_loaded(settings, version))
    return dict(result)


def _alert(settings: Settings, month: str, check: dict[str, Any]) -> list[dict[str, Any]]:
    return alerts.alert_for_check(settings, month, check)


def _retrain(
    settings: Settings, engine: Engine, month: str, actor: str, champion: str | None
) -> dict[str, Any]:
    """Train + register a challenger on the window, then promote it if allowed."""
    window = registry.window_months(engine, month, settings.training_window_months)
    reason = f"drift in {month}"
    trained = registry.train_challenger(settings, engine, window, reason, drift_demanded=True)
    version = str(trained["version"])
    gates = trained.get("gates") or {}
    out: dict[str, Any] = {
        "challenger_version": version,
        "training_months": window,
        "gates_passed": bool(gates.get("passed")),
    }
    # A champion at least as new as the challenger means this month's promotion decision
    # was already taken (replay): never move the alias back.
    superseded = champion is not None and int(champion) >= int(version)
    if not superseded and out["gates_passed"] and settings.auto_promote:
        registry.promote(settings, engine, version=version, reason=reason, actor=actor)
    return out


def run_month(
    settings: Settings,
    month: str,
    reference_months: Sequence[str] | None = None,
    actor: str = "flow",
) -> dict[str, Any]:
    """Run the monthly cycle for one ingested month.

    Steps: label the month with the champion; monitor it against the reference window;
    on ``retrain`` alert, train and register a challenger on the last
    ``TRAINING_WINDOW_MONTHS`` months, promote it when the gates pass and ``AUTO_PROMOTE``
    is on (set it false in production to leave promotion to a person), then label the
    month with the new champion; on ``watch`` alert only.

    Args:
        settings: The settings.
        month: Survey month ``YYYY-MM`` (must be ingested).
        reference_months: Override of the reference window (default: the champion's
            training months, or the window an earlier run of this month used).
        actor: Who runs the cycle (recorded on promotions).

    Returns:
        A JSON-ready summary: month, rows, verdict, reasons, model versions before and
        after, challenger version, promoted, persona mix, report path, labels written.

    Raises:
        PersonaError: Bad month, no champion (bootstrap first), no data, MLflow errors.
    """
    month = parse_month(month)
    engine = open_store(settings.database_url)
    try:
        return _run(settings, engine, month, reference_months, actor)
    finally:
        engine.dispose()


def _run(
    settings: Settings,
    engine: Engine,
    month: str,
    reference_months: Sequence[str] | None,
    actor: str,
) -> dict[str, Any]:
    champion = registry.alias_version(settings, registry.CHAMPION)
    if champion is None:
        raise RegistryError(
            f"model {settings.model_name!r} has no champion: run `persona model bootstrap`"
        )
    pinned = _pinned_run(engine, month)
    labelled_by = str(pinned["model_version"]) if pinned else champion
    refs = list(reference_months) if reference_months else None
    if refs is None and pinned is not None:
        refs = str(pinned["reference_months"]).split(",")
    written = int(_label(settings, engine, month, labelled_by).get("written", 0) or 0)
    check = monitoring.run_check(
        settings, engine, month, refs, loaded=_loaded(settings, labelled_by)
    )
    verdict = check["verdict"]
    if check.get("run_id") is not None and not (pinned and pinned["run_id"] == check["run_id"]):
        runs_store.set_action(engine, int(check["run_id"]), f"{PENDING}:{verdict}")
    # A completed earlier cycle of this month already alerted; a pending one may not have.
    fresh = pinned is None or str(pinned["action_taken"]).startswith(PENDING)
    sent: list[dict[str, Any]] = []
    retrain: dict[str, Any] = {}
    if verdict in ("retrain", "watch") and fresh:
        sent = _alert(settings, month, check)
    if verdict == "retrain":
        retrain = _retrain(settings, engine, month, actor, champion)
    after = registry.alias_version(settings, registry.CHAMPION) or champion
    # "Promoted" is a state: this month's challenger is the champion now.
    promoted = retrain.get("challenger_version") is not None and after == retrain.get(
        "challenger_version"
    )
    if promoted and after != labelled_by:
        written += int(_label(settings, engine, month, after).get("written", 0) or 0)
    action = _action(verdict, promoted)
    if check.get("run_id") is not None:
        runs_store.set_action(engine, int(check["run_id"]), action)
    final = after if promoted else labelled_by
    return {
        "month": month,
        "rows": int(check.get("n_current") or 0),
        "verdict": verdict,
        "reasons": list(check.get("reasons") or []),
        "reference_months": list(check.get("reference_months") or []),
        "model_version_before": labelled_by,
        "model_version_after": final,
        "labels_written": written,
        "challenger_version": retrain.get("challenger_version"),
        "training_months": retrain.get("training_months"),
        "gates_passed": retrain.get("gates_passed"),
        "promoted": promoted,
        "auto_promote": settings.auto_promote,
        "action": action,
        "alerts": sent,
        "persona_mix": assignments.persona_mix(engine, month, settings.model_name, final),
        "report_path": check.get("report_path"),
        "monitoring_run_id": check.get("run_id"),
        "replayed": pinned is not None,
    }


def _action(verdict: str, promoted: bool) -> str:
    if verdict == "retrain":
        return "retrained_promoted" if promoted else "retrained_challenger"
    return "alerted" if verdict == "watch" else "none"


def run_year(
    settings: Settings, months: Sequence[str], actor: str = "flow"
) -> list[dict[str, Any]]:
    """Run the monthly cycle for each month in order (the demo's year).

    Args:
        settings: The settings.
        months: Months in the order to process them.
        actor: Who runs the cycle.

    Returns:
        One `run_month` summary per month.
    """
    return [run_month(settings, m, actor=actor) for m in months]
