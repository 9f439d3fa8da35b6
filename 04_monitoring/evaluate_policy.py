"""Evaluate the monitoring decision on seeded synthetic months (rates with 95 % intervals).

1. Fresh references: every case (stable, new segments, mix changes, shifts, spreads, a
   vanished persona, a rescaled / sign-flipped feature, zero-filled answers) at each size,
   each month against its own fresh 500-row stable reference (`monitoring.evaluation`).
2. Sequences (`monitoring.sequences`, direct path): 40 stable months after one 500-row
   calibration month, for many calibrations (the alarms per sequence); mix 45/30/25 in
   the 4th month; a 15 % new segment that appears and stays (how the alert reads);
   `--jittered-sequences N`: stable sequences whose true shares wander (`--jitter`);
   `--close-segment-sequences N`: a 15 % segment 10, 8 and 6 from its nearest persona.
3. `--default-path N`: N stable sequences through `persona run-month` with default
   settings (`monitoring.default_path`), compared verdict by verdict with the direct path.

Usage:
    .venv/bin/python 04_monitoring/evaluate_policy.py [--stable-runs 2000] [--drift-runs 100]
        [--sizes 50,120,500,2000] [--cases stable,...] [--sequences 60] [--months 40]
        [--mix-sequences 200] [--segment-sequences 50] [--jittered-sequences 0]
        [--jitter 0.03] [--close-segment-sequences 0] [--default-path 0]
        [--default-months 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import NoReturn

from persona.monitoring.evaluation import CASES, evaluate, render
from persona.monitoring.sequences import evaluate_sequences, render_sequences
from persona.settings import load_settings


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad input: one line on stderr, exit 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _count(text: str) -> int:
    """An argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--stable-runs", type=_count, default=2000, help="seeds per size, stable")
    parser.add_argument("--drift-runs", type=_count, default=100, help="seeds per size, drift")
    parser.add_argument("--sizes", default="50,120,500,2000", help="comma-separated sizes")
    parser.add_argument("--cases", default="", help="comma-separated case names (default all)")
    parser.add_argument("--sequences", type=_count, default=60, help="stable calibrations")
    parser.add_argument("--months", type=_count, default=40, help="months per stable sequence")
    parser.add_argument("--mix-sequences", type=_count, default=200, help="mix calibrations")
    parser.add_argument("--segment-sequences", type=_count, default=50, help="segment calibrations")
    parser.add_argument(
        "--jittered-sequences", type=_count, default=0, help="stable calibrations, shares jittered"
    )
    parser.add_argument("--jitter", type=float, default=0.03, help="sd of each share per month")
    parser.add_argument(
        "--close-segment-sequences", type=_count, default=0, help="segments at 10, 8, 6"
    )
    parser.add_argument("--default-path", type=_count, default=0, help="run-month sequences")
    parser.add_argument("--default-months", type=_count, default=40, help="their stable months")
    parser.add_argument("--json", help="also write the result as JSON to this file")
    args = parser.parse_args(argv)
    wanted = [c for c in args.cases.split(",") if c]
    args.selected = tuple(c for c in CASES if not wanted or c.name in wanted)
    if wanted and len(args.selected) != len(wanted):
        parser.error(f"unknown case in {wanted}: expected some of {[c.name for c in CASES]}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit 1 when a target is missed."""
    args = _args(argv)
    settings, sizes = load_settings(), tuple(int(n) for n in args.sizes.split(","))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    result = evaluate(settings, args.stable_runs, args.drift_runs, sizes, args.selected)
    counts = (args.sequences, args.months, args.mix_sequences, args.segment_sequences)
    result["sequences"] = evaluate_sequences(
        settings,
        *counts,
        jittered=args.jittered_sequences,
        jitter=args.jitter,
        close=args.close_segment_sequences,
    )
    if args.default_path:
        from persona.monitoring.default_path import compare_with_direct

        result["default_path"] = compare_with_direct(
            settings, args.default_path, args.default_months
        )
    command = " ".join(["python 04_monitoring/evaluate_policy.py", *(argv or sys.argv[1:])])
    print(f"Policy evaluation, {stamp}: {command}\n")
    print(render(result) + "\n\n" + render_sequences(result["sequences"]))
    if "default_path" in result:
        print(f"\nDefault path (persona run-month): {json.dumps(result['default_path'])}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"date": stamp, **result}, handle, indent=2)
    met = result["met"] and result["sequences"]["met"]
    return 0 if met and result.get("default_path", {}).get("met", True) else 1


if __name__ == "__main__":
    sys.exit(main())
