"""persona.api_client without a server: predictions from API records, chunks, model swaps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from persona.api_client import ApiLabeler, LabelingError, prediction_from_records
from persona.features import FEATURE_NAMES


def test_prediction_from_records_rebuilds_the_arrays() -> None:
    records = [
        {"persona_id": "p1", "persona_name": "One", "distance": 1.5, "margin": 0.5,
         "nearest_persona_id": "p1"},
        {"persona_id": "unassigned", "persona_name": "Unassigned", "distance": 9.0,
         "margin": None, "nearest_persona_id": "p2"},
    ]  # fmt: skip
    pred = prediction_from_records(records)
    assert pred.persona_id.tolist() == ["p1", "unassigned"]
    assert pred.nearest_id.tolist() == ["p1", "p2"]
    assert pred.assigned.tolist() == [True, False]
    assert pred.margin[1] == np.inf and pred.nearest_index.tolist() == [-1, -1]


class _Answer:
    def __init__(self, body: Any, status: int = 200) -> None:
        self.body, self.status_code, self.text = body, status, str(body)

    def json(self) -> Any:
        return self.body


class _Session:
    """Answers like the API: `/model` then `/predict` per chunk (version from `versions`)."""

    def __init__(self, versions: list[str]) -> None:
        self.versions, self.headers, self.bodies = versions, {}, []  # type: ignore[var-annotated]

    def request(self, method: str, url: str, timeout: int, **kwargs: Any) -> _Answer:
        if url.endswith("/model"):
            return _Answer({"name": "persona-classifier", "version": "3"})
        body = kwargs["json"]
        self.bodies.append(body)
        record = {"persona_id": "p1", "persona_name": "One", "distance": 1.0, "margin": 1.0}
        version = self.versions[min(len(self.bodies), len(self.versions)) - 1]
        return _Answer({"model_version": version, "predictions": [record] * len(body)})


def test_labels_go_in_chunks_and_a_model_swap_is_refused() -> None:
    labeler = ApiLabeler("http://api/", token="t", chunk=2)
    assert labeler.url == "http://api" and labeler.session.headers["Authorization"] == "Bearer t"
    labeler.session = _Session(["3"])  # type: ignore[assignment]
    assert labeler.model_identity() == ("persona-classifier", "3")
    features = np.zeros((5, len(FEATURE_NAMES)))
    pred = labeler.predict(features, "3")
    assert len(pred) == 5 and [len(b) for b in labeler.session.bodies] == [2, 2, 1]
    assert set(labeler.session.bodies[0][0]) == set(FEATURE_NAMES)
    labeler.session = _Session(["3", "4"])  # type: ignore[assignment]
    with pytest.raises(LabelingError, match="switched from version 3 to 4"):
        labeler.predict(features, "3")


def test_an_error_answer_is_a_labeling_error() -> None:
    labeler = ApiLabeler("http://api")

    class Refusing:
        def request(self, *args: Any, **kwargs: Any) -> _Answer:
            return _Answer("no", status=401)

    labeler.session = Refusing()  # type: ignore[assignment]
    with pytest.raises(LabelingError, match="answered 401"):
        labeler.model_identity()
