"""Refuse to run the production stack with default passwords or without an API token.

    python scripts/stack/secrets_check.py     # exit 2 with the list of problems, else 0

The rules live in `persona.stack_secrets` (the compose ``secrets-check`` service runs the
same module); this file reads the values the way `make up` does: the environment >
`.env` > `.env.example`. `STACK_LOCAL_TRIAL=true` allows the defaults for a trial on one
machine (a warning is printed instead).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compose_env as ce

from persona.stack_secrets import DEFAULTS, PASSWORDS, TOKENS, TRIAL, is_trial, problems, verdict

__all__ = ["DEFAULTS", "PASSWORDS", "TOKENS", "TRIAL", "is_trial", "problems", "verdict"]


def main() -> int:
    """Command-line entry point."""
    repo = Path(__file__).resolve().parents[2]
    import os

    code, message = verdict(ce.variables(repo, dict(os.environ)))
    if message:
        print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
