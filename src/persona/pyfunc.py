"""The MLflow pyfunc form of `PersonaModel` (kept apart so `persona.model` never imports MLflow).

A registered version is a pyfunc model whose ``artifacts/persona_model.json`` holds
`model.model_to_dict`. `mlflow.pyfunc.load_model(uri).predict(frame)` validates ``x1..x10``
and returns ``persona_id, persona_name, distance, margin`` per row, the same values as
`PersonaModel.predict`. The API and the batch labeler read the JSON directly instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd

from persona.features import FEATURE_NAMES, validate_frame
from persona.model import MODEL_JSON, PersonaModel, model_from_dict, model_to_dict

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.models.model import ModelInfo

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


def log_pyfunc(model: PersonaModel, workdir: str | Path, name: str = "model") -> ModelInfo:
    """Log the model as a pyfunc in the active MLflow run.

    Args:
        model: The persona model.
        workdir: Scratch folder for the JSON artifact.
        name: Logged model name (the MLflow 3 `name=`).

    Returns:
        MLflow's `ModelInfo` (its `model_uri` is the source of a model version).
    """
    from mlflow.models import infer_signature

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
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__).with_name("pyfunc_model.py")),
        artifacts={ARTIFACT_KEY: str(path)},
        signature=infer_signature(example, output),
        input_example=example,
        pip_requirements=pip_requirements(),
        code_paths=[str(code)],
    )
