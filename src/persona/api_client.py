"""The persona API's HTTP client, for labeling through a running API (`persona label --via-api`).

`ApiLabeler` asks the API which model it serves (`GET /model`) and labels feature rows in
chunks (`POST /predict`), refusing answers from another model version;
`prediction_from_records` turns the API's answers back into a `Prediction`. `requests` is
imported only when a client is made.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from persona.errors import PersonaError
from persona.features import FEATURE_NAMES
from persona.model import UNASSIGNED_ID, UNASSIGNED_NAME, Prediction

API_CHUNK = 1_000  # records per request


class LabelingError(PersonaError):
    """Labeling through the API failed (unreachable, refused, model changed mid-run)."""


def prediction_from_records(records: list[dict[str, Any]]) -> Prediction:
    """Rebuild a `Prediction` from API response records (persona, distance, margin).

    Args:
        records: The ``predictions`` list of `/predict` responses, in request order.

    Returns:
        A prediction; `nearest_index` is -1 (the API does not expose model indices).
    """
    pid = np.array([r["persona_id"] for r in records], dtype=object)
    names = np.array([r["persona_name"] for r in records], dtype=object)
    nearest = np.array(
        [r.get("nearest_persona_id", r["persona_id"]) for r in records], dtype=object
    )
    margin = np.array(
        [np.inf if r["margin"] is None else r["margin"] for r in records], dtype=float
    )
    return Prediction(
        persona_id=pid,
        persona_name=names,
        nearest_id=nearest,
        distance=np.array([r["distance"] for r in records], dtype=np.float64),
        margin=margin,
        assigned=(pid != UNASSIGNED_ID) & (names != UNASSIGNED_NAME),
        nearest_index=np.full(len(records), -1, dtype=np.int64),
    )


class ApiLabeler:
    """Labels feature rows through a running persona API (`POST /predict` in chunks).

    Args:
        url: Base URL of the API.
        token: Bearer token ('' when the API has none).
        chunk: Records per request.
    """

    def __init__(self, url: str, token: str = "", chunk: int = API_CHUNK) -> None:
        import requests

        self.url = url.rstrip("/")
        self.chunk = max(1, chunk)
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        import requests

        try:
            response = self.session.request(method, self.url + path, timeout=60, **kwargs)
        except requests.RequestException as exc:
            raise LabelingError(f"cannot reach the persona API at {self.url}: {exc}") from None
        if response.status_code != 200:
            raise LabelingError(
                f"{method} {self.url}{path} answered {response.status_code}: {response.text[:300]}"
            )
        data: dict[str, Any] = response.json()
        return data

    def model_identity(self) -> tuple[str, str]:
        """Return the (name, version) the API serves now (`GET /model`)."""
        info = self._call("GET", "/model")
        return str(info["name"]), str(info["version"])

    def predict(self, features: np.ndarray, version: str) -> Prediction:
        """Label rows through the API; every answer must come from `version`.

        Raises:
            LabelingError: A request failed or the API swapped models during the run.
        """
        records: list[dict[str, Any]] = []
        for start in range(0, len(features), self.chunk):
            rows = features[start : start + self.chunk].tolist()
            body = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in rows]
            answer = self._call("POST", "/predict", json=body)
            if str(answer["model_version"]) != version:
                raise LabelingError(
                    f"the API switched from version {version} to {answer['model_version']} "
                    "during the run; label again"
                )
            records += answer["predictions"]
        return prediction_from_records(records)
