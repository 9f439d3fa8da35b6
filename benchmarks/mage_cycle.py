"""Benchmark: a month through Mage (API trigger) vs the same month through `persona run-month`.

Two scratch PostgreSQL databases with their own MLflow sqlite stores get the same Jan-May
2025 (March drifted; not timed) and v1 bootstrapped. One Mage server (`start_mage.sh`, its
start not timed) runs on the first; then for each month, interleaved so both doors see the
same machine load: `persona run-month --month M --json` as a person types it on the second
store (wall time of the command), and the monthly pipeline's API trigger on the first (from
the POST to the run's `completed` in Mage's database, polled every 0.25 s). The ratio
Mage / CLI per month and in total is the figure; the target is <= 2x. The states of the two
stores are compared at the end (they must be equal, the actor of the audit rows aside:
`persona run-month` records "cli", the Mage steps "flow"). Writes benchmarks/out/mage_cycle.json.

Usage: python benchmarks/mage_cycle.py [--rows 500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _pg import scratch_database
from _provenance import begin, finish

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import test_mage as e2e  # noqa: E402 - the repo root is put on the path first
from tests.e2e.mage_harness import mage_server  # noqa: E402

MONTHS = e2e.MONTHS


def cli_month(env: dict[str, str], month: str) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [str(e2e.PERSONA), "run-month", "--month", month, "--json"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"run-month {month} failed: {proc.stderr[-2000:]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500, help="respondents a month")
    args = parser.parse_args()
    provenance = begin()
    e2e.N = args.rows
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database("bench_mage") as (_, mage_url),
        scratch_database("bench_cli") as (_, cli_url),
    ):
        mage_store = e2e._settings(Path(tmp) / "mage", mage_url)
        cli_store = e2e._settings(Path(tmp) / "cli", cli_url)
        for settings in (mage_store, cli_store):
            e2e._setup(settings)
        cli_env = e2e._env(cli_store)
        with mage_server(e2e._env(mage_store), Path(tmp) / "mage", 900.0) as mage:
            for month in MONTHS:
                load = os.getloadavg()[0]
                cli_s = cli_month(cli_env, month)
                status, blocks, mage_s = mage.fire(month)
                if status != "completed":
                    raise SystemExit(f"Mage run of {month} ended {status}: {blocks}")
                row = {"month": month, "cli_s": cli_s, "mage_s": mage_s, "ratio": mage_s / cli_s}
                rows.append({**row, "load_1min": load})
                print(json.dumps(rows[-1]))
        mage_state, cli_state = e2e.state(mage_store), e2e.state(cli_store)
        # `persona run-month` records its promotions with actor "cli", Mage's steps "flow".
        for got in (mage_state, cli_state):
            got["events"] = [e[:4] for e in got["events"]]
        differences = e2e._diff(mage_state, cli_state)
        same = differences == []
    cli_total = sum(r["cli_s"] for r in rows)
    mage_total = sum(r["mage_s"] for r in rows)
    out = {
        "benchmark": "mage_cycle",
        "rows_per_month": args.rows,
        "months": rows,
        "cli_total_s": cli_total,
        "mage_total_s": mage_total,
        "ratio_total": mage_total / cli_total,
        "ratio_max": max(r["ratio"] for r in rows),
        "same_state": same,
        "differences": {k: [mage_state[k], cli_state[k]] for k in differences},
        "load_1min_end": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    target = REPO / "benchmarks" / "out" / "mage_cycle.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    out["provenance"] = finish(provenance)
    target.write_text(json.dumps(out, indent=2))
    print(
        f"Mage {mage_total:.1f}s vs run-month {cli_total:.1f}s over {len(rows)} months: "
        f"{out['ratio_total']:.2f}x (worst month {out['ratio_max']:.2f}x); same state: {same}"
    )


if __name__ == "__main__":
    main()
