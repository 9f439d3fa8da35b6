"""Bootstrap (v1 = the catalog) and challenger training, each logged and registered.

The survey rows come from the store (`store.survey_queries`); this module logs, registers
and tags in MLflow.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from mlflow.entities.model_registry import ModelVersion
from sqlalchemy import Engine

from persona.catalog import load_catalog
from persona.errors import ModelError, NotIngestedError
from persona.model import LoadedModel, PersonaModel, calibrate_radii, from_catalog
from persona.months import Month, Window
from persona.pyfunc import log_pyfunc
from persona.registry.gates import GateInputs, GateResult, evaluate_gates, review_reasons
from persona.registry.naming import given_names
from persona.registry.record import ARTIFACT, filter_tags, read_details, read_record
from persona.registry.results import TrainedVersion, VersionSummary
from persona.registry.reviews import (
    REVIEW_TAG,
    encode,
    log_profile,
    matching_review,
    new_review,
    note_seen,
    read_review,
    seen_again,
    seen_key,
    supersede,
)
from persona.registry.tracking import client, configure, log_model_run, log_sweep, parent_run
from persona.registry.versions import (
    CHALLENGER,
    CHAMPION,
    find_version,
    load_model_for_serving,
    register,
    version_by_alias,
)
from persona.settings import Settings, TrainingSettings
from persona.store import events
from persona.store.survey_queries import earliest_month, feature_rows, month_fingerprint
from persona.training import TrainingResult, check_training_data, train
from persona.training.profile import candidate_facts


def load_features(engine: Engine, months: Iterable[Month], purpose: str = "training") -> np.ndarray:
    """The months' feature rows from the store, checked for training (shape, NaN/inf).

    Raises:
        NotIngestedError: The months hold no rows.
        ModelError: NaN/inf values.
    """
    return check_training_data(feature_rows(engine, list(months), purpose))


def _version_summary(mv: ModelVersion, created: bool) -> VersionSummary:
    return VersionSummary(str(mv.version), created, tuple(sorted(mv.aliases or [])), dict(mv.tags))


def _log_and_register(
    settings: Settings,
    exp_id: str,
    model: PersonaModel,
    features: np.ndarray,
    run: Any,
    tags: dict[str, str],
    alias: str,
    after: Callable[[ModelVersion], object] | None = None,
) -> ModelVersion:
    mlc = client(settings)
    log_model_run(mlc, run.info.run_id, features, model, settings.random_seed)
    with tempfile.TemporaryDirectory() as tmp:
        info = log_pyfunc(mlc, run, model, tmp)

    def finish(mv: ModelVersion) -> None:
        mlc.set_registered_model_alias(settings.model_name, alias, mv.version)
        if after is not None:  # e.g. the audit event: if it fails, the version is deleted
            after(mv)

    return register(mlc, settings.model_name, info, run.info.run_id, tags, finish)


def bootstrap(
    settings: Settings, engine: Engine, calibrate_month: Month | None = None
) -> VersionSummary:
    """Register v1 = the catalog centroids (radii calibrated on a month) as champion.

    Idempotent: when a champion exists it is returned unchanged.

    Args:
        settings: The settings.
        engine: The survey store.
        calibrate_month: Month to calibrate radii on (default: the earliest ingested).

    Returns:
        The version (``created`` false when a champion existed).

    Raises:
        NotIngestedError: No month to calibrate on. RegistryError: MLflow unreachable.
    """
    exp_id = configure(settings)
    mlc = client(settings)
    existing = version_by_alias(mlc, settings.model_name, CHAMPION)
    if existing is not None:
        return _version_summary(existing, created=False)
    month = calibrate_month or earliest_month(engine, "bootstrapping")
    features = load_features(engine, [month], "bootstrapping")
    catalog = load_catalog(settings.persona_catalog)
    draft = from_catalog(catalog)
    radii = calibrate_radii(draft, features, settings.radius_quantile, settings.radius_scale)
    data_hash = month_fingerprint(engine, [month])
    model = from_catalog(catalog, radii)
    model.training.update({"months": [month], "rows": len(features), "data_hash": data_hash})
    tags = {
        "kind": "catalog",
        "training_months": month,
        "data_hash": data_hash,
        "reason": "bootstrap from the vendor catalog",
        "candidate_personas": "",
        "personas": ",".join(model.persona_ids),
    }
    with parent_run(mlc, exp_id, "bootstrap", {"kind": "catalog"}) as run:
        mv = _log_and_register(
            settings,
            exp_id,
            model,
            features,
            run,
            tags,
            CHAMPION,
            after=lambda mv: events.record_event(
                engine,
                events.ModelEvent(
                    settings.model_name,
                    "bootstrap",
                    None,
                    str(mv.version),
                    tags["reason"],
                    "system",
                ),
            ),
        )
    return _version_summary(mlc.get_model_version(settings.model_name, mv.version), True)


def train_challenger(
    settings: Settings,
    engine: Engine,
    months: Window,
    reason: str = "",
    drift_demanded: bool = False,
) -> TrainedVersion:
    """Retrain on some months, evaluate the gates, register the version as `challenger`.

    Idempotent: a version trained on the same months and data hash is returned instead.

    Args:
        settings: The settings (training parameters, gates, MLflow).
        engine: The survey store.
        months: The training window.
        reason: Why (stored as a tag).
        drift_demanded: Monitoring demanded a change (waives the stability gate).

    Returns:
        The version and what its tags say (k, personas, candidates, gates, review...).

    Raises:
        RegistryError: No champion; MLflow errors. NotIngestedError: a month has no rows.
        ModelError: no months, bad data.
    """
    if not months:
        raise ModelError("no training months given")
    exp_id = configure(settings)
    mlc = client(settings)
    key = _challenger_key(engine, months)
    found = _find(mlc, settings.model_name, key)
    if found is not None:
        return _stored_result(mlc, found, created=False)
    data = _read_training_data(settings, engine, months)
    fit = _fit(settings, data, months, key["data_hash"], reason or "retrain", drift_demanded)
    if fit.review:  # one pending review per segment: the same fit updates it, no new version
        model_ids = fit.result.model.persona_ids
        same = matching_review(
            mlc, settings.model_name, data.champion.version, model_ids, fit.facts
        )
        if same is not None:
            return _seen_again(settings, mlc, same, (months, key["data_hash"]), fit.facts)
    return _record_challenger(settings, mlc, exp_id, months, data.features, fit)


@dataclass(frozen=True)
class _TrainingData:
    """What a retrain reads: the champion, the rows and the names people gave."""

    champion: LoadedModel
    features: np.ndarray  # the training window
    champion_data: np.ndarray  # the champion's own months (else the window)
    month: np.ndarray  # the window's last month
    names: dict[str, str]


@dataclass(frozen=True)
class _Fit:
    """A retrain's outcome before anything is logged: the model, gates and record."""

    result: TrainingResult
    gates: GateResult
    review: list[str]
    facts: list[dict[str, Any]]
    record: dict[str, Any]  # training_result.json


def _read_training_data(settings: Settings, engine: Engine, months: Window) -> _TrainingData:
    champion = load_model_for_serving(settings, f"models:/{settings.model_name}@{CHAMPION}")
    features = load_features(engine, months, "training")
    ref_months = [Month(m) for m in champion.tags.get("training_months", "").split(",") if m]
    try:
        champion_data = load_features(engine, ref_months, "the champion's data")
    except (NotIngestedError, ModelError):
        champion_data = features  # the champion's months are not in this store
    month = load_features(engine, [months.last], "training")
    return _TrainingData(champion, features, champion_data, month, given_names(settings))


def _fit(
    settings: Settings,
    data: _TrainingData,
    months: Window,
    data_hash: str,
    reason: str,
    drift_demanded: bool,
) -> _Fit:
    """Train, judge and describe a challenger (no I/O)."""
    champion = data.champion
    info = {"months": months.to_list(), "data_hash": data_hash, "trained_from": champion.version}
    result = train(
        data.features,
        champion.model,
        settings.training,
        info,
        data.names,
        data.champion_data,
        data.month,
    )
    inputs = GateInputs(
        champion.model, result.model, data.features, data.champion_data, drift_demanded, data.month
    )
    gates = evaluate_gates(inputs, settings.gates, settings.training)
    candidates = [c.persona_id for c in result.alignment.candidates]
    review = review_reasons(result.alignment)
    facts = candidate_facts(result.model, data.month, candidates) if candidates else []
    gate_dict = gates.to_dict()
    record = {
        **result.summary(),
        "training_months": months.to_list(),
        "data_hash": data_hash,
        "reason": reason,
        "trained_from_version": champion.version,
        "drift_demanded": drift_demanded,
        "label_stability": gate_dict["label_stability"],
        "candidates": candidates,
        "retired": [r.persona_id for r in result.alignment.retired],
        "gates": gate_dict,
        "needs_review": bool(review),
        "review_reasons": review,
        "candidates_detail": [c.to_dict() for c in result.alignment.candidates],
    }
    return _Fit(result, gates, review, facts, record)


def _record_challenger(
    settings: Settings,
    mlc: Any,
    exp_id: str,
    months: Window,
    features: np.ndarray,
    fit: _Fit,
) -> TrainedVersion:
    """Log the run (params, metrics, record, sweep, profile) and register the challenger."""
    result, tags = fit.result, filter_tags(fit.record)
    with parent_run(mlc, exp_id, f"train {months}", {"kind": "kmeans"}) as run:
        run_id = run.info.run_id
        mlc.log_batch(run_id, params=_params(result.k, settings.training, months))
        for name, value in (("selection_score", result.score), *_gate_metrics(fit.gates)):
            if np.isfinite(value):
                mlc.log_metric(run_id, name, float(value))
        mlc.log_dict(run_id, fit.record, ARTIFACT)
        log_sweep(mlc, exp_id, run_id, features, result, settings.random_seed)
        if fit.review:
            candidates = fit.record["candidates"]
            picture = log_profile(mlc, run_id, result.model, candidates, str(months))
            tags[REVIEW_TAG] = encode(new_review(months.last, fit.facts, picture))
        mv = _log_and_register(settings, exp_id, result.model, features, run, tags, CHALLENGER)
    if fit.review:
        supersede(mlc, settings.model_name, str(mv.version))
    fetched = mlc.get_model_version(settings.model_name, mv.version)
    alert = "new" if fit.review else None
    stored = _stored_result(mlc, fetched, created=True, record=fit.record)
    return replace(stored, run_id=run_id, sweep=result.sweep, alert=alert)


def _seen_again(
    settings: Settings,
    mlc: Any,
    mv: ModelVersion,
    seen: tuple[Window, str],
    facts: list[dict[str, Any]],
) -> TrainedVersion:
    """Record a month that found the fit of a pending (or rejected) review again."""
    state = read_review(dict(mv.tags)) or {}
    state, remind = seen_again(state, seen[0].last, facts, settings.review_reminder_months)
    note_seen(mlc, settings.model_name, mv, state, seen)
    fetched = mlc.get_model_version(settings.model_name, mv.version)
    stored = _stored_result(mlc, fetched, created=False)
    return replace(stored, alert="reminder" if remind else None)


def _find(mlc: Any, name: str, key: dict[str, str]) -> ModelVersion | None:
    """The version trained on these months and data, or the review that saw them."""
    found = find_version(mlc, name, key)
    if found is None:
        window = Window.of(key["training_months"].split(","))
        found = find_version(mlc, name, {seen_key(window): key["data_hash"]})
    return found


def _challenger_key(engine: Engine, months: Window) -> dict[str, str]:
    data_hash = month_fingerprint(engine, list(months))
    return {"training_months": str(months), "data_hash": data_hash, "kind": "kmeans"}


def find_challenger(settings: Settings, engine: Engine, months: Window) -> TrainedVersion | None:
    """The version trained on exactly these months and data, if one is registered.

    The look-up `train_challenger` does before training, without training.

    Returns:
        The same fields as `train_challenger` (``created`` false), or None.
    """
    mlc = client(settings)
    found = _find(mlc, settings.model_name, _challenger_key(engine, months))
    if found is None:
        return None
    return _stored_result(mlc, found, created=False)


def _params(k: int, params: TrainingSettings, months: Window) -> list[Any]:
    from mlflow.entities import Param

    values = {"chosen_k": k, "months": str(months), **params.model_dump()}
    return [Param(key, str(value)) for key, value in values.items()]


def _gate_metrics(gates: GateResult) -> list[tuple[str, float]]:
    return [
        ("champion_score", gates.champion_score),
        ("challenger_score", gates.challenger_score),
        ("label_stability_vs_champion", gates.label_stability),
    ]


def _stored_result(
    mlc: Any, mv: ModelVersion, created: bool, record: dict[str, Any] | None = None
) -> TrainedVersion:
    """What a version's training record says (read from its run unless given)."""
    tags = dict(mv.tags)
    details = read_details(read_record(mlc, mv) if record is None else record, tags)
    return TrainedVersion(
        summary=_version_summary(mv, created),
        training_months=Window.of(details["training_months"]),
        data_hash=details["data_hash"],
        k=details["k"],
        personas=tuple(details["personas"]),
        candidates=tuple(details["candidates"]),
        retired=tuple(details["retired"]),
        label_stability=details["label_stability"],
        gates=details["gates"],
        needs_review=details["needs_review"],
        review_reasons=tuple(details["review_reasons"]),
        candidates_detail=tuple(details["candidates_detail"]),
        review=read_review(tags),
    )
