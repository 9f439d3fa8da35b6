"""Ingest survey files into DATABASE_URL (entry point; the logic is in `persona.store`).

Usage: python 00_create_data/ingest.py [PATH ...] [--month YYYY-MM] [--replace]
    [--max-bad-rows N|P%] [--json]
With no PATH, ingests every survey_*.csv in var/data. Same as `persona data ingest ...`.
"""

from __future__ import annotations

import sys

from persona.cli import app

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(not a.startswith("-") for a in args):
        args = ["var/data", *args]
    app(["data", "ingest", *args], prog_name="ingest.py")
