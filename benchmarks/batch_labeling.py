"""Benchmark: batch labeling of a month in PostgreSQL vs the original per-row workflow.

Creates its own database and ingests N synthetic respondents for one month (not timed).
Platform: `persona.labeling.label_month` end to end, then the same call again (idempotent
no-op). On PostgreSQL the month is labelled as it is read (`assignments.label_month_copy`):
a reader connection streams ``response_id, x1..x10`` with one binary ``COPY ... TO
STDOUT``; the labelling thread cuts it into 65,536-row chunks, predicts, encodes the label
tuples with model name, version and time, and queues them for a background thread whose
binary ``COPY ... FROM STDIN`` writes them straight into persona_assignments in one
transaction. Reading, labelling and inserting overlap (two PostgreSQL backends and Python
on the 2 cores), so the stages are not a sum.

Then, with other model versions on the same month:
- the streamed design stage by stage (v2): the labelling thread's wall time per stage
  (``read``: waiting for rows from the reader; ``predict``; ``encode``; ``send``: waiting
  for the writer to take tuples; ``finish``: end of the COPY + commit after the last row
  was read) and CPU seconds of this process and of the PostgreSQL backends;
- a resume after a partial run (v3, 10 % pre-written: the ids already labelled are read
  first and the other 90 % COPYed straight in);
- the sequential path (load_month / predict / write_assignments one after the other, v4),
  which the REST-API and SQLite paths still take;
- `label_month` into a persona_assignments laid out as schema 4 created it (key (response,
  model, version) + a (month, model, version) index), i.e. an older, unmigrated database,
  with the same code (v5: empty table, like the first run; v6: second version on it).
Baseline, the original workflow: one HTTP call per respondent to the pandas+KMeans Flask
app (benchmarks/baseline_app.py under gunicorn) and one UPDATE + commit per row, on a slice
of --baseline-rows rows, its rate extrapolated to N (said so in the output). Writes
benchmarks/out/batch_labeling.json.

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
from _provenance import begin, finish

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


TICK = os.sysconf("SC_CLK_TCK")
_SCHEMA_4 = (  # persona_assignments as schema 4 created it
    "DROP TABLE persona_assignments; CREATE TABLE persona_assignments ("
    " response_id bigint NOT NULL, survey_month varchar(7) NOT NULL,"
    " model_name varchar(128) NOT NULL, model_version varchar(32) NOT NULL,"
    " persona_id varchar(64) NOT NULL, persona_name varchar(128) NOT NULL,"
    " nearest_persona_id varchar(64) NOT NULL, distance float8 NOT NULL,"
    " margin float8 NOT NULL, assigned_at timestamptz NOT NULL,"
    " CONSTRAINT pk_assignment_model PRIMARY KEY (response_id, model_name, model_version));"
    "CREATE INDEX ix_assignments_month_model"
    " ON persona_assignments (survey_month, model_name, model_version)"
)


class BackendCpu:
    """CPU seconds of every PostgreSQL backend an engine opened (the server must be local)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.pids: set[int] = set()
        self.last: dict[int, float] = {}
        event.listen(engine, "connect", self._record)

    def _record(self, dbapi: Any, _record: Any) -> None:
        with dbapi.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            self.pids.add(cur.fetchone()[0])

    def total(self) -> float:
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # closed: keep its last reading
                continue
            self.last[pid] = (int(fields[11]) + int(fields[12])) / TICK
        return sum(self.last.values())


class StageClock:
    """`assignments.label_month_copy`'s ``mark``: wall seconds per stage, from the COPY's start.

    Each mark adds the time since the previous one to its stage (``start`` only starts the
    clock), as the labelling thread sees it.
    """

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(("read", "predict", "encode", "send", "finish"), 0.0)
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        if stage != "start":
            self.seconds[stage] += now - self.last
        self.last = now


def stages_run(url: str, loaded: Any) -> dict[str, Any]:
    """The streamed design stage by stage (v2), a resume (v3), the sequential path (v4),
    and label_month on a schema-4 table (v5, v6). Versions are written in ascending key
    order, so each one's labels append at the right edge of the primary key, as a new
    month's do (labels whose key sorts before existing ones, e.g. version "10" of a month
    that has version "9", go into the middle: ~1.7x the writer's CPU)."""
    from dataclasses import replace

    from persona.features import FEATURE_NAMES
    from persona.labeling import label_month
    from persona.settings import load_settings
    from persona.store import assignments, survey_queries
    from persona.store.assignment_copy import rows_of
    from persona.store.engine import make_engine

    engine = make_engine(url)
    cpu = BackendCpu(engine)
    out: dict[str, Any] = {}
    c0, p0, t0 = cpu.total(), time.process_time(), time.perf_counter()
    clock = StageClock()
    done = assignments.label_month_copy(engine, MONTH, loaded.name, "2", loaded.model.predict,
                                        clock)  # fmt: skip
    out["streamed_v2"] = {"rows": done.rows, "written": done.written,
                          "seconds": time.perf_counter() - t0, "stage_s": clock.seconds,
                          "python_cpu_s": time.process_time() - p0,
                          "postgres_cpu_s": cpu.total() - c0}  # fmt: skip

    frame = survey_queries.load_month(engine, MONTH)
    ids = frame["response_id"].to_numpy()
    features = np.ascontiguousarray(frame.loc[:, list(FEATURE_NAMES)].to_numpy())
    pred = loaded.model.predict(features)
    head = slice(0, len(ids) // 10)
    assignments.write_assignments(engine, ids[head], MONTH, loaded.name, "3", rows_of(pred, head))
    settings = load_settings(_env_file=None, database_url=url)
    v3 = replace(loaded, version="3")
    out["resume_v3"] = label_month(settings, engine, MONTH, loaded=v3).to_dict()

    t0 = time.perf_counter()
    frame = survey_queries.load_month(engine, MONTH)
    t1 = time.perf_counter()
    features = np.ascontiguousarray(frame.loc[:, list(FEATURE_NAMES)].to_numpy())
    pred = loaded.model.predict(features)
    t2 = time.perf_counter()
    written = assignments.write_assignments(engine, ids, MONTH, loaded.name, "4", pred)
    t3 = time.perf_counter()
    out["sequential_v4"] = {"rows": len(frame), "load_s": t1 - t0, "predict_s": t2 - t1,
                            "write_s": t3 - t2, "written": written}  # fmt: skip

    with engine.begin() as conn:
        conn.exec_driver_sql(_SCHEMA_4)
    for version in ("5", "6"):
        result = label_month(settings, engine, MONTH, loaded=replace(loaded, version=version))
        out[f"schema4_v{version}"] = result.to_dict()
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
    provenance = begin()
    from persona.catalog import load_catalog
    from persona.model import LoadedModel, from_catalog, model_to_dict
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
        f"{'platform label_month (streamed COPY, lineage)':<52} {first['rows']:>9} "
        f"{first['seconds']:>9.2f} {first['rows_per_s']:>10.0f}"
    )
    print(
        f"{'platform rerun, same model (no-op)':<52} {again['rows']:>9} "
        f"{again['seconds']:>9.2f} {'written 0' if again['written'] == 0 else 'WROTE':>10}"
    )
    streamed, seq, resume = stages["streamed_v2"], stages["sequential_v4"], stages["resume_v3"]
    n = streamed["rows"]
    print(f"{'label_month_copy alone (streamed) [v2]':<52} {n:>9} {streamed['seconds']:>9.2f} "
          f"{n / streamed['seconds']:>10.0f}")  # fmt: skip
    for stage, took in streamed["stage_s"].items():
        print(f"{'  labelling thread: ' + stage:<52} {n:>9} {took:>9.2f}")
    print(f"{'  CPU s: python / PostgreSQL backends':<52} {n:>9} "
          f"{streamed['python_cpu_s']:>9.2f} {streamed['postgres_cpu_s']:>10.2f}")  # fmt: skip
    for label, key in (("sequential path: load_month (binary COPY)", "load_s"),
                       ("sequential path: predict", "predict_s"),
                       ("sequential path: write_assignments", "write_s")):  # fmt: skip
        rate = seq["rows"] / seq[key]
        print(f"{label + ' [v4]':<52} {seq['rows']:>9} {seq[key]:>9.2f} {rate:>10.0f}")
    print(
        f"{'resume after a 10 % partial run [v3]':<52} {resume['rows']:>9} "
        f"{resume['seconds']:>9.2f} {resume['rows_per_s']:>10.0f}"
    )
    for version, what in (("5", "empty"), ("6", "2nd version")):
        old = stages[f"schema4_v{version}"]
        label = f"label_month, schema-4 table ({what}) [v{version}]"
        print(f"{label:<52} {old['rows']:>9} {old['seconds']:>9.2f} {old['rows_per_s']:>10.0f}")
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
    seconds_1m = first["seconds"] * 1_000_000 / first["rows"]
    target = "met" if seconds_1m <= 5.0 else "NOT met"
    print(f"target <= 5 s per 1M rows end to end (issue 13): {target} ({seconds_1m:.2f} s)")
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
    out["provenance"] = finish(provenance)
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())
