"""MLflow set-up and run logging: experiment, parent run per retraining, nested runs per k."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from persona.errors import RegistryError
from persona.model import PersonaModel
from persona.registry.plots import persona_map_png
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


def bound_requests(settings: Settings) -> None:
    """Bound every HTTP call of the MLflow client by our settings, and give it our identity.

    MLflow reads these variables at each request: the timeout of one try, the retries
    after it and their backoff. Its defaults (120 s, 7 retries, backoff 2) make a call to
    a server that does not answer take minutes; ours give up within about
    ``(MLFLOW_REQUEST_MAX_RETRIES + 1) x MLFLOW_REQUEST_TIMEOUT_S`` plus a second.

    Args:
        settings: `mlflow_request_timeout_s`, `mlflow_request_max_retries`.
    """
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.mlflow_request_timeout_s)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.mlflow_request_max_retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0.5"
    # MLflow's REST client reads its basic-auth identity from these two variables only;
    # a value from `.env` reaches it through the settings.
    if settings.mlflow_tracking_username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_tracking_username
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.mlflow_tracking_password


def client(settings: Settings) -> MlflowClient:
    """An `MlflowClient` on the settings' tracking and registry URI, requests bounded."""
    # Artifact transfers are tiny; tqdm bars would only clutter stderr of the CLI.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    bound_requests(settings)
    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def configure(settings: Settings) -> str:
    """Point MLflow at the settings and make sure the experiment exists.

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
    bound_requests(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
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
        mlflow.set_experiment(experiment_id=exp_id)
    except MlflowException as exc:
        raise RegistryError(f"cannot set up MLflow experiment {name!r} at {uri}: {exc}") from exc
    return str(exp_id)


@contextmanager
def parent_run(experiment_id: str, name: str, tags: dict[str, str]) -> Iterator[Any]:
    """Start the parent run of one training / bootstrap (ended as FAILED on an error)."""
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
        yield run


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
