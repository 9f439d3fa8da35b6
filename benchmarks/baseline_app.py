"""Baseline for benchmarks/serving.py: the original workflow's Flask app.

Per request it builds a pandas DataFrame from the JSON records and calls scikit-learn
`KMeans.predict` (and `transform` for the distance), like the notebook-era service did.
The centroids come from the same persona_model.json the platform serves
(BASELINE_MODEL_JSON). Run: gunicorn -w 2 -b 127.0.0.1:PORT --chdir benchmarks baseline_app:app
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
from flask import Flask, jsonify, request
from sklearn.cluster import KMeans

FEATURES = [f"x{i}" for i in range(1, 11)]
with open(os.environ["BASELINE_MODEL_JSON"], encoding="utf-8") as handle:
    DOC = json.load(handle)
CENTROIDS = np.asarray(DOC["centroids"], dtype=np.float64)
IDS = DOC["persona_ids"]
NAMES = DOC["persona_names"]
KM = KMeans(n_clusters=len(CENTROIDS), init=CENTROIDS, n_init=1, max_iter=1)
KM.fit(pd.DataFrame(CENTROIDS, columns=FEATURES))  # one point per cluster = the centroids
KM.cluster_centers_ = CENTROIDS

app = Flask(__name__)


@app.post("/predict")
def predict():  # type: ignore[no-untyped-def]
    payload = request.get_json()
    records = payload["instances"] if isinstance(payload, dict) else payload
    frame = pd.DataFrame(records)[FEATURES]
    labels = KM.predict(frame)
    distance = KM.transform(frame).min(axis=1)
    return jsonify(
        {
            "predictions": [
                {"persona_id": IDS[k], "persona_name": NAMES[k], "distance": float(d)}
                for k, d in zip(labels.tolist(), distance.tolist(), strict=True)
            ]
        }
    )


@app.get("/health")
def health():  # type: ignore[no-untyped-def]
    return {"status": "ok"}
