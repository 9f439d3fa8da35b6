"""Evaluate the monitoring decision policy on seeded synthetic months.

For every scenario (stable, spread, shift, new_segment, mix) it generates `--runs` seeded
months of `--rows` respondents, checks each against one stable reference month with the
catalog model (radii calibrated on the reference, as `persona model bootstrap` does) and
prints the rate of each verdict. Targets: `retrain` on stable <= 5 %; `retrain` on every
other scenario >= 95 %.

Usage:
    .venv/bin/python 04_monitoring/evaluate_policy.py [--runs 50] [--rows 500] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys

from persona.monitoring.evaluation import evaluate, render
from persona.settings import load_settings
from persona.synth import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="seeded months per scenario")
    parser.add_argument("--rows", type=int, default=500, help="respondents per month")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument("--json", help="also write the result as JSON to this file")
    args = parser.parse_args(argv)
    settings = load_settings()
    result = evaluate(settings, args.runs, args.rows, tuple(args.scenarios.split(",")))
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    return 0 if all(r["met"] for r in result["scenarios"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
