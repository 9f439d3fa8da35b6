"""Generate the synthetic survey months (entry point; the logic is in `persona.synth`).

Usage: python 00_create_data/create_data.py [--out var/data] [--year 2025] [--months 1-5]
       [--n 500] [--seed 42] [--scenario-for 2025-03=spread] [--format both] [--json]
Same as `persona data generate ...`.
"""

from __future__ import annotations

import sys

from persona.cli import app

if __name__ == "__main__":
    app(["data", "generate", *sys.argv[1:]], prog_name="create_data.py")
