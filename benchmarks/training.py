"""Benchmark: the platform's k sweep vs the naive sweep (full silhouette, n_init=10, no warm start).

    python benchmarks/training.py [--rows 100000] [--naive-rows 20000] [--k-max 10]

The platform sweep runs on --rows. The naive sweep's full silhouette is O(n^2) in time, so
it runs on --naive-rows and its time is extrapolated to --rows (K-Means part linearly,
silhouette part quadratically); both paths are also timed on --naive-rows for a
same-size comparison. Peak memory is measured with tracemalloc (numpy buffers included).
JSON goes to benchmarks/out/training.json.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from _provenance import begin, finish
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from persona.catalog import load_catalog
from persona.features import FEATURE_NAMES
from persona.model import from_catalog
from persona.settings import TrainingSettings
from persona.synth import generate_month
from persona.training import train

ROOT = Path(__file__).resolve().parents[1]


def measure(fn: Any) -> tuple[Any, float, float]:
    tracemalloc.start()
    started = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, seconds, peak


def naive_sweep(x: np.ndarray, k_max: int, seed: int) -> dict[str, float]:
    kmeans_s = sil_s = 0.0
    best = (-1.0, 0)
    for k in range(2, k_max + 1):
        t0 = time.perf_counter()
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
        t1 = time.perf_counter()
        score = float(silhouette_score(x, labels))
        sil_s += time.perf_counter() - t1
        kmeans_s += t1 - t0
        best = max(best, (score, -k))
    return {"kmeans_s": kmeans_s, "silhouette_s": sil_s, "k": -best[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--naive-rows", type=int, default=20_000)
    parser.add_argument("--k-max", type=int, default=10)
    args = parser.parse_args()
    provenance = begin()
    catalog = load_catalog(ROOT / "01_model" / "personas.yaml")
    frame, _ = generate_month(catalog, "2025-01", args.rows, "stable", seed=1)
    x = frame.loc[:, list(FEATURE_NAMES)].to_numpy(np.float64)
    small = x[: args.naive_rows]
    model = from_catalog(catalog)
    params = TrainingSettings(k_max=args.k_max)

    platform, platform_s, platform_mb = measure(lambda: train(x, model, params))
    _, platform_small_s, platform_small_mb = measure(lambda: train(small, model, params))
    naive, naive_small_s, naive_small_mb = measure(lambda: naive_sweep(small, args.k_max, 42))
    scale = args.rows / args.naive_rows
    naive_est_s = naive["kmeans_s"] * scale + naive["silhouette_s"] * scale**2
    rows = [
        ("platform sweep", args.rows, platform_s, platform_mb, "measured"),
        ("platform sweep", args.naive_rows, platform_small_s, platform_small_mb, "measured"),
        ("naive sweep", args.naive_rows, naive_small_s, naive_small_mb, "measured"),
        ("naive sweep", args.rows, naive_est_s, float("nan"), "extrapolated"),
    ]
    print(f"{'path':<16}{'rows':>9}{'seconds':>10}{'peak MiB':>10}  note")
    for name, n, s, mb, note in rows:
        print(f"{name:<16}{n:>9}{s:>10.2f}{mb:>10.1f}  {note}")
    print(
        f"speed-up at {args.naive_rows} rows: {naive_small_s / platform_small_s:.1f}x; "
        f"at {args.rows} rows (naive extrapolated): {naive_est_s / platform_s:.1f}x"
    )
    result = {
        "rows": args.rows,
        "naive_rows": args.naive_rows,
        "k_range": [2, args.k_max],
        "platform": {"seconds": platform_s, "peak_mib": platform_mb, "k": platform.k},
        "platform_small": {"seconds": platform_small_s, "peak_mib": platform_small_mb},
        "naive_small": {"seconds": naive_small_s, "peak_mib": naive_small_mb, **naive},
        "naive_extrapolated_seconds": naive_est_s,
        "speedup_same_rows": naive_small_s / platform_small_s,
        "speedup_full_rows_extrapolated": naive_est_s / platform_s,
    }
    out = ROOT / "benchmarks" / "out" / "training.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result["provenance"] = finish(provenance)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
