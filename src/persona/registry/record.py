"""A challenger's training record: the ``training_result.json`` artifact of its run.

The record holds everything a training result says (k, personas, gates, review reasons,
candidates...), whole: nothing is cut to fit an MLflow tag. The version's tags keep only
what a person filters on in the MLflow UI (`FILTER_TAGS`) and the mutable review state.

Versions registered by older code carry the details as tags (`gates` possibly cut at 4,900
characters) and an artifact without them: `read_details` falls back to those tags.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

ARTIFACT = "training_result.json"
# What the version's tags say (for the MLflow UI's filters and the idempotency look-up).
FILTER_TAGS = (
    "kind",
    "training_months",
    "data_hash",
    "reason",
    "trained_from_version",
    "k",
    "personas",
    "candidate_personas",
    "label_stability_vs_champion",
    "drift_demanded",
    "gates_passed",
    "needs_review",
)
# Record key -> the tag older code stored it in.
_DETAIL_TAGS = {
    "retired": "retired_candidates",
    "gates": "gates",
    "review_reasons": "review_reasons",
    "candidates_detail": "candidates_detail",
}
_CUT = "the gates tag was cut by older code: only the verdict is known"


def filter_tags(record: dict[str, Any]) -> dict[str, str]:
    """The version tags of a training record (`FILTER_TAGS`, as MLflow tag strings)."""
    flag = lambda value: str(bool(value)).lower()  # noqa: E731
    return {
        "kind": "kmeans",
        "training_months": ",".join(record["training_months"]),
        "data_hash": record["data_hash"],
        "reason": record["reason"],
        "trained_from_version": record["trained_from_version"],
        "k": str(record["k"]),
        "personas": ",".join(record["personas"]),
        "candidate_personas": ",".join(record["candidates"]),
        "label_stability_vs_champion": f"{_number(record['label_stability']):.6f}",
        "drift_demanded": flag(record["drift_demanded"]),
        "gates_passed": flag(record["gates"]["passed"]),
        "needs_review": flag(record["needs_review"]),
    }


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def read_record(mlc: MlflowClient, mv: ModelVersion) -> dict[str, Any]:
    """The ``training_result.json`` of a version's run ({} when it has none).

    Raises:
        MlflowException: The artifact store cannot be read (other than a missing file).
    """
    if not mv.run_id:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlc.download_artifacts(mv.run_id, ARTIFACT, tmp)
        except (MlflowException, OSError):
            return {}  # older versions, or a run without the artifact
        data = json.loads(Path(path).read_text())
    return data if isinstance(data, dict) else {}


def read_details(record: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    """A version's training details: the record's, else the tags older code stored.

    Args:
        record: The version's ``training_result.json`` (`read_record`; may lack keys).
        tags: The version's tags.

    Returns:
        training_months, data_hash, k, personas, candidates, retired, label_stability,
        gates, needs_review, review_reasons and candidates_detail.
    """
    split = lambda key: [s for s in tags.get(key, "").split(",") if s]  # noqa: E731
    k = tags.get("k")
    from_tags: dict[str, Any] = {
        "training_months": split("training_months"),
        "data_hash": tags.get("data_hash"),
        "k": int(k) if k else None,
        "personas": split("personas"),
        "candidates": split("candidate_personas"),
        "label_stability": float(tags.get("label_stability_vs_champion", "nan")),
        "needs_review": tags.get("needs_review") == "true",
        "retired": split(_DETAIL_TAGS["retired"]),
        "gates": _old_gates(tags),
        "review_reasons": _old_json(tags.get("review_reasons")),
        "candidates_detail": _old_json(tags.get("candidates_detail")),
    }
    out = {key: record.get(key, value) for key, value in from_tags.items()}
    if out["label_stability"] is None:
        out["label_stability"] = float("nan")
    return out


def _old_gates(tags: dict[str, str]) -> dict[str, Any] | None:
    raw = tags.get("gates")
    if not raw:
        return None
    try:
        return dict(json.loads(raw))
    except json.JSONDecodeError:
        return {"passed": tags.get("gates_passed") == "true", "note": _CUT}


def _old_json(raw: str | None) -> list[Any]:
    return list(json.loads(raw or "[]"))  # older code dropped items to fit: never cut
