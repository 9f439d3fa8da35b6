"""The MLflow pyfunc form of `PersonaModel` (kept apart so `persona.model` never imports MLflow).

A registered version is a pyfunc model whose ``artifacts/persona_model.json`` holds
`model.model_to_dict`. `mlflow.pyfunc.load_model(uri).predict(frame)` validates ``x1..x10``
and returns ``persona_id, persona_name, distance, margin`` per row, the same values as
`PersonaModel.predict`. The API and the batch labeler read the JSON directly instead.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd

from persona.features import FEATURE_NAMES, validate_frame
from persona.model import MODEL_JSON, PersonaModel, model_from_dict, model_to_dict

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities import Run

ARTIFACT_KEY = "persona_model"
OUTPUT_COLUMNS = ("persona_id", "persona_name", "distance", "margin")


def predict_frame(model: PersonaModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Validate a frame of ``x1..x10`` and label it (the pyfunc output form).

    Args:
        model: The persona model.
        frame: One row per respondent; extra columns are refused.

    Returns:
        A frame with ``persona_id, persona_name, distance, margin``.

    Raises:
        DataValidationError: Missing/extra columns or bad values.
    """
    features = validate_frame(frame, what="model input")
    pred = model.predict(features)
    return pd.DataFrame(
        {
            "persona_id": pred.persona_id.astype(object),
            "persona_name": pred.persona_name.astype(object),
            "distance": pred.distance,
            "margin": pred.margin,
        }
    )


class PersonaPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """`mlflow.pyfunc.PythonModel` that reads ``persona_model.json`` in `load_context`."""

    model: PersonaModel | None = None

    def load_context(self, context: Any) -> None:
        """Read the model JSON from the logged artifacts."""
        path = Path(context.artifacts[ARTIFACT_KEY])
        self.model = model_from_dict(json.loads(path.read_text(encoding="utf-8")))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Label a DataFrame of ``x1..x10``; returns persona id, name, distance, margin."""
        if self.model is None:  # pragma: no cover - MLflow always calls load_context
            self.load_context(context)
        assert self.model is not None
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return predict_frame(self.model, frame)


def pip_requirements() -> list[str]:
    """Exact requirements of the pyfunc; the `persona` code itself travels in `code/`."""
    import yaml

    return [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"pyyaml=={yaml.__version__}",
    ]


@dataclass(frozen=True)
class LoggedPyfunc:
    """A logged pyfunc model: the source of a model version.

    `model_uri` is ``models:/<id>``, as `mlflow.register_model` gives, when the store is a
    server (the server resolves it in its own process). A local (SQLite) store would
    resolve that URI with MLflow's global tracking URI, which the package never sets: there
    it is the logged model's artifact location (the version then loads the same; only the
    local UI does not link it to the logged model).
    """

    model_id: str
    model_uri: str


def log_pyfunc(
    mlc: MlflowClient,
    run: Run,
    model: PersonaModel,
    workdir: str | Path,
    name: str = "model",
) -> LoggedPyfunc:
    """Log the model as a pyfunc on a run, through the client (no active run, no global URI).

    What `mlflow.pyfunc.log_model` does, done by the given client: create the logged model,
    save the pyfunc locally, upload it, link it to the run as an output and finalize it.

    Args:
        mlc: The client of the tracking store.
        run: The run that produced the model.
        model: The persona model.
        workdir: Scratch folder for the JSON artifact and the saved pyfunc.
        name: Logged model name (the MLflow 3 `name=`).

    Returns:
        The logged model's id and the source of a version registered from it.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model, infer_signature

    path = Path(workdir) / MODEL_JSON
    path.write_text(json.dumps(model_to_dict(model), indent=1), encoding="utf-8")
    # Ship the package's code with the model so it loads where `persona` is not installed
    # (e.g. `mlflow models serve` with its own env manager).
    code = Path(workdir) / "persona"
    shutil.copytree(
        Path(__file__).resolve().parent, code, ignore=shutil.ignore_patterns("__pycache__")
    )
    example = pd.DataFrame(model.centroids[:2], columns=list(FEATURE_NAMES))
    output = predict_frame(model, example)
    run_id = run.info.run_id
    logged = mlc.create_logged_model(run.info.experiment_id, name=name, source_run_id=run_id)
    try:
        local = Path(workdir) / "pyfunc"
        mlflow.pyfunc.save_model(
            path=str(local),
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={ARTIFACT_KEY: str(path)},
            signature=infer_signature(example, output),
            input_example=example,
            pip_requirements=pip_requirements(),
            code_paths=[str(code)],
            mlflow_model=Model(
                artifact_path=logged.artifact_location,
                model_uuid=logged.model_id,
                run_id=run_id,
                model_id=logged.model_id,
            ),
        )
        mlc.log_model_artifacts(logged.model_id, str(local))
        mlc.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    except BaseException:
        mlc.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    mlc.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    server = mlc.tracking_uri.startswith(("http://", "https://", "databricks"))
    source = f"models:/{logged.model_id}" if server else logged.artifact_location
    return LoggedPyfunc(logged.model_id, source)
