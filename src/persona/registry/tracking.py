"""MLflow set-up and run logging: experiment, parent run per retraining, nested runs per k."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run
from mlflow.exceptions import MlflowException

from persona.errors import RegistryError
from persona.model import PersonaModel
from persona.registry.plots import persona_map_png
from persona.registry_read import client as client
from persona.settings import Settings
from persona.training import TrainingResult

PARAM_KEYS = ("k", "warm_start", "n_iter")
METRIC_KEYS = (
    "inertia",
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "silhouette_inertia_ratio",
)


def is_server(uri: str) -> bool:
    """Whether the tracking URI is an MLflow server (which decides the artifact store)."""
    return uri.startswith(("http://", "https://", "databricks"))


def artifact_location(root: str) -> str:
    """Turn `MLFLOW_ARTIFACT_ROOT` into an experiment artifact location.

    A local path becomes an absolute ``file:`` URI; URIs (``gs://``, ``file:``...) pass.
    """
    if "://" in root or root.startswith("file:"):
        return root
    path = Path(root).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def configure(settings: Settings) -> str:
    """Make sure the experiment exists (MLflow's global URIs are left alone).

    The experiment is created with ``artifact_location`` = `MLFLOW_ARTIFACT_ROOT` unless the
    tracking URI is a server (then the server's ``--artifacts-destination`` decides).

    Args:
        settings: The settings.

    Returns:
        The experiment id.

    Raises:
        RegistryError: The tracking store cannot be reached or set up.
    """
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    mlc = client(settings)
    name = settings.mlflow_experiment
    try:
        exp = mlc.get_experiment_by_name(name)
        if exp is None:
            location = None if is_server(uri) else artifact_location(settings.mlflow_artifact_root)
            try:
                exp_id = mlc.create_experiment(name, artifact_location=location)
            except MlflowException:  # created concurrently
                exp = mlc.get_experiment_by_name(name)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
            if exp.lifecycle_stage == "deleted":
                mlc.restore_experiment(exp_id)
    except MlflowException as exc:
        raise RegistryError(f"cannot set up MLflow experiment {name!r} at {uri}: {exc}") from exc
    return str(exp_id)


@contextmanager
def parent_run(
    mlc: MlflowClient, experiment_id: str, name: str, tags: dict[str, str]
) -> Iterator[Run]:
    """A run made through the client: FINISHED at the end, FAILED on an error."""
    run = mlc.create_run(experiment_id, run_name=name, tags=tags)
    try:
        yield run
    except BaseException:
        mlc.set_terminated(run.info.run_id, "FAILED")
        raise
    mlc.set_terminated(run.info.run_id, "FINISHED")


def log_sweep(
    mlc: MlflowClient,
    experiment_id: str,
    parent_id: str,
    features: np.ndarray,
    result: TrainingResult,
    seed: int,
) -> list[str]:
    """Log one nested run per k: params, metrics and the persona map plot.

    Returns:
        The nested run ids, in sweep order.
    """
    ids = []
    with tempfile.TemporaryDirectory() as tmp:
        for fit in result.sweep:
            run = mlc.create_run(
                experiment_id,
                run_name=f"k={fit.k}",
                tags={"mlflow.parentRunId": parent_id, "selected": str(fit.selected).lower()},
            )
            run_id = run.info.run_id
            row = fit.to_dict()
            params = [Param(key, str(row[key])) for key in PARAM_KEYS]
            metrics = [
                Metric(key, float(row[key]), 0, 0) for key in METRIC_KEYS if np.isfinite(row[key])
            ]
            mlc.log_batch(run_id, metrics=metrics, params=params)
            png = Path(tmp) / f"persona_map_k{fit.k}.png"
            names = [f"cluster {i}" for i in range(fit.k)]
            if fit.selected:
                names = list(result.model.persona_names)
                centroids = result.model.centroids
            else:
                centroids = fit.centroids
            persona_map_png(features, centroids, names, png, f"k={fit.k}", seed)
            mlc.log_artifact(run_id, str(png), "plots")
            mlc.set_terminated(run_id)
            ids.append(run_id)
    return ids


def log_model_run(
    mlc: MlflowClient, run_id: str, features: np.ndarray, model: PersonaModel, seed: int
) -> None:
    """Log the persona map of the final model on the parent run."""
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "persona_map.png"
        persona_map_png(features, model.centroids, list(model.persona_names), png, "personas", seed)
        mlc.log_artifact(run_id, str(png), "plots")
