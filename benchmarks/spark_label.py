"""Benchmark: labelling N rows on Spark (local[2]) vs the single-machine path, same run.

Setup (not timed): N synthetic respondents of one month written as Parquet files of 1M rows
(``response_id, survey_month, x1..x10``), the catalog model, and the same model logged as
an MLflow pyfunc (for ``spark_udf``). Each path then runs in its own process, so its peak
memory is its own:

- ``spark-arrays``: `persona.spark.label.label_dataset` with the pandas UDF on the model's
  arrays (read Parquet, label, write partitioned Parquet with lineage, read back the mix).
- ``spark-udf``: the same job with `mlflow.pyfunc.spark_udf`.
- ``single``: one machine, no Spark: pyarrow reads the files, `PersonaModel.predict` on the
  float64 array, pyarrow writes the same partitioned Parquet with lineage.

Timed: the job call (Spark: after the session is up; the session start is reported apart).
Memory: the Python driver's peak RSS (``ru_maxrss``) and the driver JVM's peak resident
size (``VmHWM``; in local mode the executors live in that JVM, its heap capped by
``SPARK_DRIVER_MEMORY``). Then a Spark job (not timed) joins every output on
``response_id`` and counts differing labels. Baseline: the single-machine path.
Writes benchmarks/out/spark_label.json.

Usage: python benchmarks/spark_label.py [--rows 10000000] [--driver-memory 1g]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MONTH = "2025-04"
CHUNK = 1_000_000


def _model() -> Any:
    from persona.catalog import load_catalog
    from persona.model import from_catalog

    return from_catalog(load_catalog(REPO / "01_model" / "personas.yaml"), np.full(3, 12.0))


def generate(root: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from persona.catalog import load_catalog
    from persona.features import FEATURE_NAMES
    from persona.synth import generate_month

    catalog = load_catalog(REPO / "01_model" / "personas.yaml")
    root.mkdir(parents=True)
    for i, start in enumerate(range(0, rows, CHUNK)):
        n = min(CHUNK, rows - start)
        frame, _ = generate_month(catalog, MONTH, n, seed=100 + i)
        columns = {"response_id": np.arange(start + 1, start + n + 1, dtype=np.int64),
                   "survey_month": frame["survey_month"].to_numpy().astype(str)}  # fmt: skip
        columns |= {c: frame[c].to_numpy(dtype=np.float64) for c in FEATURE_NAMES}
        pq.write_table(pa.table(columns), root / f"part-{i:03d}.parquet")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _jvm_peak_mib(spark: Any) -> float:
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _loaded(model_uri: str) -> Any:
    from persona.registry.versions import LoadedModel

    return LoadedModel(_model(), "persona-classifier", "1", "champion", model_uri, {})


def run_spark(args: argparse.Namespace, method: str) -> dict[str, Any]:
    from persona.settings import load_settings
    from persona.spark.label import label_dataset
    from persona.spark.session import start_session

    settings = load_settings(_env_file=None, spark_driver_memory=args.driver_memory,
                             mlflow_tracking_uri=args.tracking_uri)  # fmt: skip
    t0 = time.perf_counter()
    spark = start_session(settings, f"bench-{method}")
    started = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = label_dataset(spark, settings, args.input, args.output, method=method,
                           loaded=_loaded(args.model_uri)).to_dict()  # fmt: skip
    seconds = time.perf_counter() - t1
    out = {"path": f"spark-{method}", "rows": result["rows"], "seconds": seconds,
           "rows_per_s": result["rows"] / seconds, "session_start_s": started,
           "persona_mix": result["persona_mix"], "python_driver_peak_mib": _peak_rss_mib(),
           "jvm_driver_peak_mib": _jvm_peak_mib(spark),
           "driver_memory": args.driver_memory}  # fmt: skip
    spark.stop()
    return out


def run_single(args: argparse.Namespace) -> dict[str, Any]:
    import datetime as dt

    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from persona.features import FEATURE_NAMES

    model = _model()
    t0 = time.perf_counter()
    table = ds.dataset(args.input, format="parquet").to_table()
    x = np.column_stack([table[c].to_numpy() for c in FEATURE_NAMES])
    pred = model.predict(x)
    n = len(x)
    labels = pa.table({
        "response_id": table["response_id"],
        "survey_month": table["survey_month"],
        "persona_id": pa.array(pred.persona_id.astype(str)).dictionary_encode(),
        "persona_name": pa.array(pred.persona_name.astype(str)).dictionary_encode(),
        "nearest_persona_id": pa.array(pred.nearest_id.astype(str)).dictionary_encode(),
        "distance": pred.distance,
        "margin": pred.margin,
        "unassigned": ~pred.assigned,
        "model_name": pa.array(np.full(n, "persona-classifier")).dictionary_encode(),
        "model_version": pa.array(np.full(n, "1")).dictionary_encode(),
        "assigned_at": pa.array(np.full(n, np.datetime64(dt.datetime.now(dt.UTC).replace(
            tzinfo=None), "us"))),
    })  # fmt: skip
    pq.write_to_dataset(labels, args.output,
                        partition_cols=["model_name", "model_version", "survey_month"],
                        existing_data_behavior="delete_matching")  # fmt: skip
    seconds = time.perf_counter() - t0
    ids, counts = np.unique(pred.persona_id, return_counts=True)
    return {"path": "single", "rows": n, "seconds": seconds, "rows_per_s": n / seconds,
            "persona_mix": dict(zip(ids.tolist(), counts.tolist(), strict=True)),
            "python_driver_peak_mib": _peak_rss_mib()}  # fmt: skip


def run_compare(args: argparse.Namespace) -> dict[str, Any]:
    """Join every output on response_id and count differing labels (not timed)."""
    from pyspark.sql import functions as F  # noqa: N812

    from persona.settings import load_settings
    from persona.spark.session import start_session

    spark = start_session(load_settings(_env_file=None, spark_driver_memory=args.driver_memory),
                          "bench-compare")  # fmt: skip
    base = spark.read.parquet(args.output).select(
        "response_id", *[F.col(c).alias(f"s_{c}") for c in
                         ("persona_id", "persona_name", "nearest_persona_id", "distance",
                          "margin", "unassigned")])  # fmt: skip
    out: dict[str, Any] = {}
    for name in args.others.split(","):
        other = spark.read.parquet(str(Path(args.output).parent / name))
        joined = base.join(other, "response_id", "full_outer")
        differs = (
            ~F.col("s_persona_id").eqNullSafe(F.col("persona_id"))
            | ~F.col("s_persona_name").eqNullSafe(F.col("persona_name"))
            | ~F.col("s_unassigned").eqNullSafe(F.col("unassigned"))
        )
        if name == "spark-arrays":
            differs |= ~F.col("s_nearest_persona_id").eqNullSafe(F.col("nearest_persona_id"))
        row = joined.agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(differs.cast("long")).alias("label_differs"),
            F.max(F.abs(F.col("s_distance") - F.col("distance"))).alias("max_distance_diff"),
            F.max(F.abs(F.col("s_margin") - F.col("margin"))).alias("max_margin_diff"),
        ).collect()[0]
        out[name] = row.asDict()
    spark.stop()
    return out


def _child(args: argparse.Namespace, role: str, output: Path, **extra: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--role", role, "--input", str(args.input),
               "--output", str(output), "--driver-memory", args.driver_memory,
               "--model-uri", args.model_uri, "--tracking-uri", args.tracking_uri]  # fmt: skip
    for key, value in extra.items():
        command += [f"--{key}", value]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        raise SystemExit(f"{role} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _log_model(tmp: Path) -> tuple[str, str]:
    import mlflow

    from persona.pyfunc import log_pyfunc

    uri = f"sqlite:///{tmp}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-spark")
    with mlflow.start_run():
        info = log_pyfunc(_model(), tmp)
    return info.model_uri, uri


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per child process, s")
    parser.add_argument("--role", default="main", help=argparse.SUPPRESS)
    parser.add_argument("--input", default="", help=argparse.SUPPRESS)
    parser.add_argument("--output", default="", help=argparse.SUPPRESS)
    parser.add_argument("--model-uri", default="", help=argparse.SUPPRESS)
    parser.add_argument("--tracking-uri", default="", help=argparse.SUPPRESS)
    parser.add_argument("--others", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role != "main":
        sys.stdout, real = sys.stderr, sys.stdout
        runs = {"spark-arrays": lambda: run_spark(args, "arrays"),
                "spark-udf": lambda: run_spark(args, "spark_udf"),
                "single": lambda: run_single(args),
                "compare": lambda: run_compare(args)}  # fmt: skip
        real.write(json.dumps(runs[args.role](), default=str) + "\n")
        return 0
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="persona-bench-spark-"))
    try:
        args.input = tmp / "respondents"
        t0 = time.perf_counter()
        generate(args.input, args.rows)
        args.model_uri, args.tracking_uri = _log_model(tmp)
        print(f"setup: {args.rows} rows as Parquet in {time.perf_counter() - t0:.1f} s "
              "(not timed)")  # fmt: skip
        results = {}
        for role in ("single", "spark-arrays", "spark-udf"):
            results[role] = _child(args, role, tmp / role)
            r = results[role]
            print(f"  {role:<13} {r['rows']} rows in {r['seconds']:.1f} s "
                  f"({r['rows_per_s']:,.0f} rows/s)")  # fmt: skip
        load_end_timed = os.getloadavg()
        compare = _child(args, "compare", tmp / "single", others="spark-arrays,spark-udf")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    single = results["single"]
    print(f"\n{'path':<44} {'rows':>10} {'seconds':>8} {'rows/s':>11} {'vs single':>9} "
          f"{'py MiB':>7} {'JVM MiB':>8}")  # fmt: skip
    names = {"single": "single machine (pyarrow + numpy predict)",
             "spark-arrays": "Spark local[2], pandas UDF on arrays",
             "spark-udf": "Spark local[2], mlflow spark_udf"}  # fmt: skip
    for role, r in results.items():
        jvm = f"{r['jvm_driver_peak_mib']:.0f}" if "jvm_driver_peak_mib" in r else "-"
        print(f"{names[role]:<44} {r['rows']:>10} {r['seconds']:>8.1f} {r['rows_per_s']:>11,.0f} "
              f"{r['rows_per_s'] / single['rows_per_s']:>8.2f}x "
              f"{r['python_driver_peak_mib']:>7.0f} {jvm:>8}")  # fmt: skip
    identical = all(c["label_differs"] == 0 and c["rows"] == args.rows for c in compare.values())
    print(f"\nlabels identical to the single-machine path: {'yes' if identical else 'NO'} "
          f"{json.dumps(compare)}")  # fmt: skip
    out = {
        "benchmark": "spark_label",
        "rows": args.rows,
        "driver_memory": args.driver_memory,
        "results": results,
        "compare_with_single": compare,
        "labels_identical": identical,
        "cpu_count": os.cpu_count(),
        "load_avg_at_start": load_start,
        "load_avg_after_timed": load_end_timed,
        "load_avg_at_end": os.getloadavg(),
    }
    path = REPO / "benchmarks" / "out" / "spark_label.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {path}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())
