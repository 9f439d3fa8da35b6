"""Thin entry point: same as `persona model promote [options]`."""

import sys

from persona.cli import app

if __name__ == "__main__":
    app(args=["model", "promote", *sys.argv[1:]], prog_name="persona")
