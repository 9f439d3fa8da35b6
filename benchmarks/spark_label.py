"""Benchmark: labelling and monitoring N rows on Spark (local[2]) vs one machine, same run.

Setup (not timed): N synthetic respondents as Parquet files of 1M rows (``response_id,
survey_month, x1..x10``; even files are month 2025-03, odd files 2025-04), the catalog
model, and the same model logged as an MLflow pyfunc (for ``spark_udf``). Each path then
runs in its own process, so its peak memory is its own:

- ``single``: one machine, no Spark: `persona.file_labeling.label_file` (what
  ``persona label --input ... --output ...`` runs), streamed batch by batch.
- ``spark-native``: `persona.spark.label.label_dataset` with the model as column
  expressions (the default; no Python worker).
- ``spark-arrays``: the same job with the pandas UDF on the model's arrays.
- ``spark-udf``: the same job with `mlflow.pyfunc.spark_udf`.
- ``alternate``: one process runs ``single`` and ``spark-native`` alternately
  (``--rounds``), so both see the same machine load; its ratio is the median of the rounds.
- ``monitor-single`` / ``monitor-spark``: the monitoring check of 2025-04 against 2025-03
  (`monitoring.check` + `decide` on the arrays; `persona.spark.monitor.monitor_dataset`).

Timed: the job call (Spark: after the session is up; the session start is reported apart),
in wall seconds and CPU seconds (`cpu_s`: the Python process plus the JVM and its Python
workers, from /proc; the machine's load does not inflate it the way it does wall time).
Memory: the Python process's peak RSS (``ru_maxrss``) and the driver JVM's peak resident
size (``VmHWM``; in local mode the executors live in that JVM, its heap capped by
``SPARK_DRIVER_MEMORY``). Then a Spark job (not timed) joins every output on
``response_id`` and counts differing labels. Baseline: the single-machine path.
Writes benchmarks/out/spark_label.json (with its provenance).

Usage: python benchmarks/spark_label.py [--rows 10000000] [--driver-memory 1g]
       [--paths single,spark-native,spark-arrays,spark-udf,alternate,monitor] [--rounds 2]
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
from _provenance import begin, write_json

REPO = Path(__file__).resolve().parents[1]
MONTHS = ("2025-03", "2025-04")
CHUNK = 1_000_000
ROLES = ("single", "spark-native", "spark-arrays", "spark-udf")


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
        frame, _ = generate_month(catalog, MONTHS[i % 2], n, seed=100 + i)
        columns = {"response_id": np.arange(start + 1, start + n + 1, dtype=np.int64),
                   "survey_month": frame["survey_month"].to_numpy().astype(str)}  # fmt: skip
        columns |= {c: frame[c].to_numpy(dtype=np.float64) for c in FEATURE_NAMES}
        pq.write_table(pa.table(columns), root / f"part-{i:03d}.parquet")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _jvm_peak_mib(spark: Any) -> float:
    pid = _jvm_pid(spark)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants (reaped ones included), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    tree, total = {pid}, 0
    for _ in range(8):  # a few generations: the JVM, pyspark's daemon, its workers
        tree |= {p for p, (parent, _) in stats.items() if parent in tree}
    for p in tree:
        total += stats.get(p, (0, 0))[1]
    return total / tick


def _jvm_pid(spark: Any) -> int:
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())


def _cpu_now(spark: Any = None) -> float:
    """CPU seconds so far of this Python process and, with `spark`, its JVM's process tree."""
    own = sum(os.times()[:2])
    return own + (_cpu_s(_jvm_pid(spark)) if spark is not None else 0.0)


def _loaded(model_uri: str) -> Any:
    from persona.model import LoadedModel

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
    t1, cpu = time.perf_counter(), _cpu_now(spark)
    result = label_dataset(spark, settings, args.input, args.output, method=method,
                           loaded=_loaded(args.model_uri)).to_dict()  # fmt: skip
    seconds, cpu = time.perf_counter() - t1, _cpu_now(spark) - cpu
    out = {"path": f"spark-{method}", "method": result["method"], "rows": result["rows"],
           "seconds": seconds, "cpu_s": cpu,
           "rows_per_s": result["rows"] / seconds, "session_start_s": started,
           "persona_mix": result["persona_mix"], "python_driver_peak_mib": _peak_rss_mib(),
           "jvm_driver_peak_mib": _jvm_peak_mib(spark),
           "driver_memory": args.driver_memory}  # fmt: skip
    spark.stop()
    return out


def run_single(args: argparse.Namespace) -> dict[str, Any]:
    from persona.file_labeling import label_file

    t0, cpu = time.perf_counter(), _cpu_now()
    result = label_file(_loaded(args.model_uri), args.input, args.output)
    seconds, cpu = time.perf_counter() - t0, _cpu_now() - cpu
    return {"path": "single", "rows": result.rows, "seconds": seconds, "cpu_s": cpu,
            "rows_per_s": result.rows / seconds, "persona_mix": result.persona_mix,
            "python_driver_peak_mib": _peak_rss_mib()}  # fmt: skip


def run_alternate(args: argparse.Namespace) -> dict[str, Any]:
    """Single and Spark-native in one process, alternately: the same load for both."""
    from persona.file_labeling import label_file
    from persona.settings import load_settings
    from persona.spark.label import label_dataset
    from persona.spark.session import start_session

    settings = load_settings(_env_file=None, spark_driver_memory=args.driver_memory)
    spark = start_session(settings, "bench-alternate")
    loaded = _loaded(args.model_uri)
    rounds = []
    for i in range(args.rounds):
        row: dict[str, Any] = {"load_before": [round(v, 2) for v in os.getloadavg()]}
        t0, cpu = time.perf_counter(), _cpu_now(spark)
        label_file(loaded, args.input, f"{args.output}/single-{i}")
        row["single_s"], row["single_cpu_s"] = time.perf_counter() - t0, _cpu_now(spark) - cpu
        t0, cpu = time.perf_counter(), _cpu_now(spark)
        label_dataset(spark, settings, args.input, f"{args.output}/native-{i}", method="native",
                      loaded=loaded)  # fmt: skip
        row["spark_native_s"] = time.perf_counter() - t0
        row["spark_native_cpu_s"] = _cpu_now(spark) - cpu
        row["load_after"] = [round(v, 2) for v in os.getloadavg()]
        row["spark_vs_single"] = row["single_s"] / row["spark_native_s"]
        row["spark_vs_single_cpu"] = row["single_cpu_s"] / row["spark_native_cpu_s"]
        rounds.append(row)
        shutil.rmtree(args.output, ignore_errors=True)
    spark.stop()
    ratios = sorted(r["spark_vs_single"] for r in rounds)
    cpu_ratios = sorted(r["spark_vs_single_cpu"] for r in rounds)
    return {
        "path": "alternate",
        "rounds": rounds,
        "spark_vs_single_median": ratios[len(ratios) // 2],
        "spark_vs_single_cpu_median": cpu_ratios[len(cpu_ratios) // 2],
    }


def run_monitor(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    """The monitoring verdict of 2025-04 against 2025-03, on Spark or on one machine."""
    from persona.months import Month, Window
    from persona.settings import load_settings

    settings = load_settings(_env_file=None, spark_driver_memory=args.driver_memory)
    loaded = _loaded(args.model_uri)
    if engine == "spark":
        from persona.spark.monitor import monitor_dataset
        from persona.spark.session import start_session

        spark = start_session(settings, "bench-monitor")
        t0 = time.perf_counter()
        result = monitor_dataset(spark, settings, str(args.input), Month(MONTHS[1]),
                                 Window.of([MONTHS[0]]), loaded=loaded)  # fmt: skip
        seconds = time.perf_counter() - t0
        jvm = _jvm_peak_mib(spark)
        spark.stop()
        return {"path": "monitor-spark", "seconds": seconds, "verdict": result["verdict"],
                "reasons": result["reasons"], "python_driver_peak_mib": _peak_rss_mib(),
                "jvm_driver_peak_mib": jvm}  # fmt: skip
    import pyarrow.dataset as ds

    from persona.features import FEATURE_NAMES
    from persona.monitoring import check, decide

    t0 = time.perf_counter()
    dataset = ds.dataset(str(args.input), format="parquet")
    x = {}
    for month in MONTHS:
        table = dataset.to_table(columns=list(FEATURE_NAMES),
                                 filter=ds.field("survey_month") == month)  # fmt: skip
        x[month] = np.column_stack([table[c].to_numpy() for c in FEATURE_NAMES])
    single = check(
        x[MONTHS[1]],
        x[MONTHS[0]],
        loaded.model,
        settings.policy,
        seed=settings.random_seed,
        unassigned_floor=1.0 - settings.radius_quantile,
    )
    decision = decide(single, settings.policy)  # fmt: skip
    seconds = time.perf_counter() - t0
    return {"path": "monitor-single", "seconds": seconds, "verdict": decision.verdict,
            "reasons": decision.reasons, "python_driver_peak_mib": _peak_rss_mib()}  # fmt: skip


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
        if name in ("spark-native", "spark-arrays"):
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
    from mlflow import MlflowClient

    from persona.pyfunc import log_pyfunc

    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("bench-spark"))
    logged = log_pyfunc(client, run, _model(), tmp)
    client.set_terminated(run.info.run_id)
    return logged.model_uri, uri


NAMES = {"single": "single machine (streamed pyarrow + numpy predict)",
         "spark-native": "Spark local[2], column expressions (default)",
         "spark-arrays": "Spark local[2], pandas UDF on arrays",
         "spark-udf": "Spark local[2], mlflow spark_udf"}  # fmt: skip


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--paths", default=",".join((*ROLES, "alternate", "monitor")))
    parser.add_argument("--rounds", type=int, default=2, help="alternate rounds")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per child process, s")
    for hidden in ("--role", "--input", "--output", "--model-uri", "--tracking-uri", "--others"):
        parser.add_argument(hidden, default="main" if hidden == "--role" else "",
                            help=argparse.SUPPRESS)  # fmt: skip
    return parser.parse_args()


def _run_child_role(args: argparse.Namespace) -> int:
    sys.stdout, real = sys.stderr, sys.stdout
    runs = {"spark-native": lambda: run_spark(args, "native"),
            "spark-arrays": lambda: run_spark(args, "arrays"),
            "spark-udf": lambda: run_spark(args, "spark_udf"),
            "single": lambda: run_single(args), "alternate": lambda: run_alternate(args),
            "monitor-spark": lambda: run_monitor(args, "spark"),
            "monitor-single": lambda: run_monitor(args, "single"),
            "compare": lambda: run_compare(args)}  # fmt: skip
    real.write(json.dumps(runs[args.role](), default=str) + "\n")
    return 0


def _print_table(results: dict[str, Any]) -> None:
    single = results["single"]
    print(f"\n{'path':<50} {'rows':>10} {'seconds':>8} {'rows/s':>11} {'vs single':>9} "
          f"{'py MiB':>7} {'JVM MiB':>8}")  # fmt: skip
    for role, r in results.items():
        jvm = f"{r['jvm_driver_peak_mib']:.0f}" if "jvm_driver_peak_mib" in r else "-"
        print(f"{NAMES[role]:<50} {r['rows']:>10} {r['seconds']:>8.1f} {r['rows_per_s']:>11,.0f} "
              f"{r['rows_per_s'] / single['rows_per_s']:>8.2f}x "
              f"{r['python_driver_peak_mib']:>7.0f} {jvm:>8}")  # fmt: skip


def main() -> int:
    args = _parse()
    if args.role != "main":
        return _run_child_role(args)
    provenance = begin()
    paths = args.paths.split(",")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    print(f"load average at start: {provenance['load_avg_before']}")
    tmp = Path(tempfile.mkdtemp(prefix="persona-bench-spark-"))
    out: dict[str, Any] = {"benchmark": "spark_label", "rows": args.rows,
                           "driver_memory": args.driver_memory}  # fmt: skip
    try:
        args.input = tmp / "respondents"
        t0 = time.perf_counter()
        generate(args.input, args.rows)
        args.model_uri, args.tracking_uri = _log_model(tmp)
        print(f"setup: {args.rows} rows as Parquet in {time.perf_counter() - t0:.1f} s "
              "(not timed)")  # fmt: skip
        results = {}
        for role in (r for r in ROLES if r in paths or r == "single"):
            results[role] = _child(args, role, tmp / role)
            r = results[role]
            r["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
            print(
                f"  {role:<13} {r['rows']} rows in {r['seconds']:.1f} s "
                f"({r['rows_per_s']:,.0f} rows/s, {r['cpu_s']:.1f} CPU-s) "
                f"load {r['load_avg_after']}",
                flush=True,
            )
        out["results"] = results
        others = ",".join(r for r in results if r != "single")
        out["compare_with_single"] = (
            _child(args, "compare", tmp / "single", others=others) if others else {}
        )
        if "alternate" in paths:
            out["alternate"] = _child(args, "alternate", tmp / "alternate")
            print(f"  alternate: {json.dumps(out['alternate'])}", flush=True)
        if "monitor" in paths:
            out["monitoring"] = {e: _child(args, f"monitor-{e}", tmp / "m") for e in
                                 ("single", "spark")}  # fmt: skip
            out["monitoring"]["same_verdict"] = (
                out["monitoring"]["single"]["verdict"] == out["monitoring"]["spark"]["verdict"]
                and out["monitoring"]["single"]["reasons"] == out["monitoring"]["spark"]["reasons"]
            )
            print(f"  monitoring: {json.dumps(out['monitoring'])}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _print_table(results)
    compare = out["compare_with_single"]
    identical = all(c["label_differs"] == 0 and c["rows"] == args.rows for c in compare.values())
    out["labels_identical"] = identical
    single = results["single"]["rows_per_s"]
    out["spark_vs_single"] = {r: v["rows_per_s"] / single for r, v in results.items()}
    print(f"\nlabels identical to the single-machine path: {'yes' if identical else 'NO'} "
          f"{json.dumps(compare)}")  # fmt: skip
    path = write_json("spark_label", out, provenance)
    print(f"wrote {path}")
    return 0 if identical and out.get("monitoring", {}).get("same_verdict", True) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())
