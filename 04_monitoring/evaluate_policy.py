"""Evaluate the monitoring decision on seeded synthetic months (rates with 95 % intervals).

Every case (stable, new segments of 2-15 %, mix changes, shifts, spreads, a vanished
persona, a rescaled / sign-flipped feature, zero-filled answers) is run at n = 50, 120, 500
and 2000 rows, each month with random persona membership against its own fresh 500-row
stable reference, through the production `check` + `decide`. Prints a Markdown table of
the `retrain` and `watch` shares with Wilson 95 % intervals and whether each target is met.

Usage:
    .venv/bin/python 04_monitoring/evaluate_policy.py [--stable-runs 2000] [--drift-runs 100]
        [--sizes 50,120,500,2000] [--cases stable,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from persona.monitoring.evaluation import CASES, evaluate, render
from persona.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stable-runs", type=int, default=2000, help="seeds per size, stable")
    parser.add_argument("--drift-runs", type=int, default=100, help="seeds per size, drift")
    parser.add_argument("--sizes", default="50,120,500,2000", help="comma-separated sizes")
    parser.add_argument("--cases", default="", help="comma-separated case names (default all)")
    parser.add_argument("--json", help="also write the result as JSON to this file")
    args = parser.parse_args(argv)
    wanted = [c for c in args.cases.split(",") if c]
    cases = tuple(c for c in CASES if not wanted or c.name in wanted)
    if wanted and len(cases) != len(wanted):
        parser.error(f"unknown case in {wanted}: expected some of {[c.name for c in CASES]}")
    sizes = tuple(int(n) for n in args.sizes.split(","))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    result = evaluate(load_settings(), args.stable_runs, args.drift_runs, sizes, cases)
    command = " ".join(["python 04_monitoring/evaluate_policy.py", *(argv or sys.argv[1:])])
    print(f"Policy evaluation, {stamp}: {command}\n")
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"date": stamp, **result}, handle, indent=2)
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
