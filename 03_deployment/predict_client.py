"""Send sample respondents to the persona API and print the answer.

    python 03_deployment/predict_client.py [--n 5] [--url http://127.0.0.1:8000]

The URL defaults to API_HOST/API_PORT; API_TOKEN is sent as a bearer token when set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import requests

from persona.features import FEATURE_NAMES


def main() -> int:
    host = os.environ.get("API_HOST", "127.0.0.1")
    port = os.environ.get("API_PORT", "8000")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=f"http://{host}:{port}")
    parser.add_argument("--n", type=int, default=5, help="respondents to send")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    headers = {}
    if os.environ.get("API_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['API_TOKEN']}"
    try:
        model = requests.get(f"{args.url}/model", timeout=10).json()
    except requests.RequestException as exc:
        print(f"cannot reach the API at {args.url}: {exc} (start it with `make serve`)")
        return 1
    # Respondents around the served personas' centroids, plus one far-away respondent.
    rng = np.random.default_rng(args.seed)
    centroids = np.array([p["centroid"] for p in model["personas"]])
    picks = centroids[rng.integers(0, len(centroids), args.n)] + rng.normal(0, 2, (args.n, 10))
    rows = [dict(zip(FEATURE_NAMES, map(float, row), strict=True)) for row in picks]
    rows.append(dict.fromkeys(FEATURE_NAMES, 60.0))
    response = requests.post(f"{args.url}/predict", json=rows, headers=headers, timeout=30)
    print(f"POST {args.url}/predict -> {response.status_code}")
    print(json.dumps(response.json(), indent=2))
    return 0 if response.ok else 1


if __name__ == "__main__":
    sys.exit(main())
