"""Benchmark: batch labeling of a month in PostgreSQL vs the original per-row workflow.

Creates its own database and ingests N synthetic respondents for one month (not timed).
Platform: `persona.labeling.label_month` end to end (load the month with a binary COPY,
predict in-process, binary COPY of the labels with model name and version straight into
persona_assignments), then the same call again (idempotent no-op). Then, with other model
versions on the same month: the stages timed one by one (load / predict / write), and a
resume after a partial run (10 % pre-written: staging COPY + INSERT ... ON CONFLICT DO
NOTHING for the rest). Baseline, the original workflow:
one HTTP call per respondent to the pandas+KMeans Flask app (benchmarks/baseline_app.py
under gunicorn) and one UPDATE + commit per row, on a slice of --baseline-rows rows, its
rate extrapolated to N (said so in the output). Writes benchmarks/out/batch_labeling.json.

Usage: python benchmarks/batch_labeling.py [--rows 1000000] [--baseline-rows 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import requests
from _pg import scratch_database

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MONTH = "2025-04"


def ingest(engine: Any, rows: int) -> None:
    from persona.catalog import load_catalog
    from persona.store import survey_ingest
    from persona.synth import generate_month

    catalog = load_catalog(REPO / "01_model" / "personas.yaml")
    survey, _ = generate_month(catalog, MONTH, rows, seed=11)
    survey_ingest.ingest_frame(engine, survey, MONTH)


def platform_run(url: str, loaded: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from persona.labeling import label_month
    from persona.settings import load_settings
    from persona.store.engine import open_store

    settings = load_settings(_env_file=None, database_url=url)
    engine = open_store(url)
    first = label_month(settings, engine, MONTH, loaded=loaded).to_dict()
    again = label_month(settings, engine, MONTH, loaded=loaded).to_dict()
    engine.dispose()
    return first, again


def stages_run(url: str, loaded: Any) -> dict[str, Any]:
    """Load / predict / write timed apart (version 2), and a resume after 10 % (version 3)."""
    from dataclasses import fields, replace

    from persona.features import FEATURE_NAMES
    from persona.labeling import label_month
    from persona.settings import load_settings
    from persona.store import assignments, survey_queries
    from persona.store.engine import open_store

    engine = open_store(url)
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    frame = survey_queries.load_month(engine, MONTH)
    t1 = time.perf_counter()
    features = np.ascontiguousarray(frame.loc[:, list(FEATURE_NAMES)].to_numpy())
    pred = loaded.model.predict(features)
    t2 = time.perf_counter()
    ids = frame["response_id"].to_numpy()
    written = assignments.write_assignments(engine, ids, MONTH, loaded.name, "2", pred)
    t3 = time.perf_counter()
    out["stages_v2"] = {"rows": len(frame), "load_s": t1 - t0, "predict_s": t2 - t1,
                        "write_s": t3 - t2, "written": written}  # fmt: skip
    head = len(ids) // 10
    part = replace(pred, **{f.name: getattr(pred, f.name)[:head] for f in fields(pred)})
    assignments.write_assignments(engine, ids[:head], MONTH, loaded.name, "3", part)
    settings = load_settings(_env_file=None, database_url=url)
    v3 = replace(loaded, version="3")
    out["resume_v3"] = label_month(settings, engine, MONTH, loaded=v3).to_dict()
    engine.dispose()
    return out


def baseline_run(db: str, model_json: Path, rows: int) -> dict[str, Any]:
    """HTTP call + one UPDATE (autocommit) per row, like the original notebook loop."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "BASELINE_MODEL_JSON": str(model_json)}
    command = [str(BIN / "gunicorn"), "--no-control-socket", "-w", "2", "-b", f"127.0.0.1:{port}",
               "--chdir", str(REPO / "benchmarks"), "--log-level", "warning",
               "baseline_app:app"]  # fmt: skip
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    conn = psycopg2.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE baseline_labels AS SELECT response_id, "
                        + ", ".join(f"x{i}" for i in range(1, 11))
                        + ", NULL::text AS persona_id, NULL::float8 AS distance "
                        "FROM survey_responses ORDER BY response_id LIMIT %s", (rows,))  # fmt: skip
            cur.execute("ALTER TABLE baseline_labels ADD PRIMARY KEY (response_id)")
            cur.execute("SELECT * FROM baseline_labels ORDER BY response_id")
            data = cur.fetchall()
        url = f"http://127.0.0.1:{port}/predict"
        _wait(url)
        session = requests.Session()
        started = time.perf_counter()
        with conn.cursor() as cur:
            for row in data:
                record = {f"x{i}": row[i] for i in range(1, 11)}
                answer = session.post(url, json=[record], timeout=30).json()["predictions"][0]
                cur.execute(
                    "UPDATE baseline_labels SET persona_id = %s, distance = %s "
                    "WHERE response_id = %s",
                    (answer["persona_id"], answer["distance"], row[0]),
                )
        seconds = time.perf_counter() - started
    finally:
        conn.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def _wait(url: str) -> None:
    body = [{f"x{i}": 0.0 for i in range(1, 11)}]
    for _ in range(120):
        try:
            if requests.post(url, json=body, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit("baseline app did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000)
    args = parser.parse_args()
    from persona.catalog import load_catalog
    from persona.model import from_catalog, model_to_dict
    from persona.registry.versions import LoadedModel
    from persona.store.engine import open_store

    model = from_catalog(load_catalog(REPO / "01_model" / "personas.yaml"), np.full(3, 12.0))
    loaded = LoadedModel(model, "persona-classifier", "1", "champion", "benchmark", {})
    tmp = Path(tempfile.mkdtemp(prefix="persona-bench-label-"))
    model_json = tmp / "persona_model.json"
    model_json.write_text(json.dumps(model_to_dict(model)))
    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    with scratch_database("persona_bench_label") as (db, url):
        engine = open_store(url)
        t0 = time.perf_counter()
        ingest(engine, args.rows)
        engine.dispose()
        print(f"setup: ingested {args.rows} rows in {time.perf_counter() - t0:.1f} s (not timed)")
        first, again = platform_run(url, loaded)
        load_platform = os.getloadavg()
        stages = stages_run(url, loaded)
        base = baseline_run(db, model_json, args.baseline_rows)
    extrapolated = args.rows / base["rows_per_s"]
    ratio = first["rows_per_s"] / base["rows_per_s"]
    print(f"\n{'path':<52} {'rows':>9} {'seconds':>9} {'rows/s':>10}")
    print(
        f"{'platform label_month (load+predict+COPY, lineage)':<52} {first['rows']:>9} "
        f"{first['seconds']:>9.2f} {first['rows_per_s']:>10.0f}"
    )
    print(
        f"{'platform rerun, same model (no-op)':<52} {again['rows']:>9} "
        f"{again['seconds']:>9.2f} {'written 0' if again['written'] == 0 else 'WROTE':>10}"
    )
    st, resume = stages["stages_v2"], stages["resume_v3"]
    for label, key in (("  stage: load_month (binary COPY -> numpy)", "load_s"),
                       ("  stage: predict", "predict_s"),
                       ("  stage: write_assignments (binary COPY)", "write_s")):  # fmt: skip
        print(
            f"{label + ' [v2]':<52} {st['rows']:>9} {st[key]:>9.2f} {st['rows'] / st[key]:>10.0f}"
        )
    print(
        f"{'resume after a 10 % partial run (ON CONFLICT) [v3]':<52} {resume['rows']:>9} "
        f"{resume['seconds']:>9.2f} {resume['rows_per_s']:>10.0f}"
    )
    print(
        f"{'baseline HTTP + UPDATE per row (measured slice)':<52} {base['rows']:>9} "
        f"{base['seconds']:>9.2f} {base['rows_per_s']:>10.0f}"
    )
    print(
        f"{'baseline extrapolated to ' + str(args.rows) + ' rows':<52} {args.rows:>9} "
        f"{extrapolated:>9.0f} {base['rows_per_s']:>10.0f}"
    )
    target = "met" if first["rows_per_s"] >= 100_000 else "NOT met"
    print(f"\ntarget >= 100,000 rows/s end to end: {target}")
    print(f"platform / baseline: {ratio:.0f}x  (baseline measured on {base['rows']} rows, "
          f"extrapolated linearly to {args.rows})")  # fmt: skip
    out = {
        "benchmark": "batch_labeling",
        "rows": args.rows,
        "platform": first,
        "platform_rerun": again,
        **stages,
        "baseline": {**base, "extrapolated_seconds": extrapolated, "extrapolated_to": args.rows},
        "ratio": ratio,
        "cpu_count": os.cpu_count(),
        "load_avg_at_start": load_start,
        "load_avg_after_platform": load_platform,
        "load_avg_at_end": os.getloadavg(),
    }
    path = REPO / "benchmarks" / "out" / "batch_labeling.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())
