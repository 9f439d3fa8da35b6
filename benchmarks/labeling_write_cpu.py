"""Benchmark: CPU seconds of writing 1M labels, schema 4 (no foreign key) vs schema 3 (FK).

Wall time on a shared 2-core machine moves with the load of everything else; CPU time of
the processes doing the work moves much less. This script ingests N respondents of one
month into a scratch database (not timed), then measures, per stage, wall seconds, the
PostgreSQL backend's CPU seconds (``/proc/<pid>/stat`` of the one pooled connection; the
server must be local) and this process's CPU seconds:

- `load_month`, `predict`;
- `write_assignments` twice (two model versions) on the current schema: binary COPY, no
  foreign key, ids proven by one primary-key range count;
- the baseline in the same run: the same writes after adding back schema 3's
  ``FOREIGN KEY (response_id) REFERENCES survey_responses`` (two more versions).

Writes benchmarks/out/labeling_write_cpu.json.

Usage: python benchmarks/labeling_write_cpu.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _pg import scratch_database
from _provenance import begin, finish

REPO = Path(__file__).resolve().parents[1]
MONTH = "2025-04"
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    provenance = begin()
    from sqlalchemy import create_engine, text

    from persona.catalog import load_catalog
    from persona.features import FEATURE_NAMES
    from persona.model import from_catalog
    from persona.store import assignments, survey_ingest, survey_queries
    from persona.store.engine import init_db
    from persona.synth import generate_month

    catalog = load_catalog(REPO / "01_model" / "personas.yaml")
    model = from_catalog(catalog, np.full(3, 12.0))
    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    stages: dict[str, dict[str, float]] = {}
    with scratch_database("persona_bench_write_cpu") as (_db, url):
        engine = create_engine(url, pool_size=1, max_overflow=0)
        init_db(engine)
        survey, _ = generate_month(catalog, MONTH, args.rows, seed=11)
        survey_ingest.ingest_frame(engine, survey, MONTH)
        with engine.connect() as conn:
            pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

        def measure(name: str, fn: Any) -> Any:
            b0, p0, w0 = _cpu(pid), time.process_time(), time.perf_counter()
            out = fn()
            stages[name] = {"wall_s": time.perf_counter() - w0, "backend_cpu_s": _cpu(pid) - b0,
                            "python_cpu_s": time.process_time() - p0}  # fmt: skip
            s = stages[name]
            print(f"{name:<34} wall {s['wall_s']:7.2f}  backend CPU {s['backend_cpu_s']:6.2f}"
                  f"  python CPU {s['python_cpu_s']:6.2f}")  # fmt: skip
            return out

        frame = measure("load_month", lambda: survey_queries.load_month(engine, MONTH))
        x = np.ascontiguousarray(frame[list(FEATURE_NAMES)].to_numpy())
        pred = measure("predict", lambda: model.predict(x))
        ids = frame["response_id"].to_numpy()

        def write(version: str) -> Any:
            return lambda: assignments.write_assignments(engine, ids, MONTH, "m", version, pred)

        for version in ("1", "2"):
            measure(f"write v{version} (schema 4, no FK)", write(version))
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE persona_assignments ADD FOREIGN KEY (response_id) "
                              "REFERENCES survey_responses (response_id)"))  # fmt: skip
        for version in ("3", "4"):
            measure(f"write v{version} (baseline: schema 3 FK)", write(version))
        engine.dispose()
    new = [s for k, s in stages.items() if "no FK" in k]
    old = [s for k, s in stages.items() if "baseline" in k]
    cpu_new = float(np.mean([s["backend_cpu_s"] + s["python_cpu_s"] for s in new]))
    cpu_old = float(np.mean([s["backend_cpu_s"] + s["python_cpu_s"] for s in old]))
    ratio = cpu_old / cpu_new
    print(f"\nwrite CPU seconds (backend + python): {cpu_new:.2f} vs baseline {cpu_old:.2f}: "
          f"{ratio:.1f}x less")  # fmt: skip
    out = {"benchmark": "labeling_write_cpu", "rows": args.rows, "stages": stages,
           "write_cpu_s": cpu_new, "baseline_write_cpu_s": cpu_old, "ratio": ratio,
           "cpu_count": os.cpu_count(), "load_avg_at_start": load_start,
           "load_avg_at_end": os.getloadavg()}  # fmt: skip
    path = REPO / "benchmarks" / "out" / "labeling_write_cpu.json"
    out["provenance"] = finish(provenance)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())
