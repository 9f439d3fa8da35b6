"""Refuse to run the production stack with default passwords or without an API token.

`make up` / `docker compose up` run it first: the one-shot ``secrets-check`` service runs
``python -m persona.stack_secrets`` with the stack's values in its environment, and every
service that holds a secret waits for it to succeed. `STACK_LOCAL_TRIAL=true` allows the
defaults for a trial on one machine: a warning is printed instead. Values are never
printed, only their names.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

PASSWORDS = (
    "POSTGRES_PASSWORD",
    "PG_MLFLOW_PASSWORD",
    "PG_CYCLE_PASSWORD",
    "PG_GOVERNANCE_PASSWORD",
    "PG_GRAFANA_PASSWORD",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_API_PASSWORD",
    "MLFLOW_PIPELINE_PASSWORD",
    "MLFLOW_GOVERNANCE_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY",
    "GOVERNANCE_WEBHOOK_SECRET",
    "MAGE_ADMIN_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
)
TOKENS = ("API_TOKEN",)
DEFAULTS = frozenset({"", "change-me", "changeme", "password", "postgres", "admin"})
DEFAULT_PREFIX = "change-me"  # .env.example's values (change-me-please, a sample Fernet key)
TRIAL = "STACK_LOCAL_TRIAL"


def is_trial(values: Mapping[str, str]) -> bool:
    """Whether `STACK_LOCAL_TRIAL` says this is a local trial."""
    return values.get(TRIAL, "").strip().lower() in ("1", "true", "yes", "on")


def problems(values: Mapping[str, str]) -> list[str]:
    """What is unsafe in the stack's secrets (names only; values are never printed).

    Args:
        values: The stack variables.

    Returns:
        One line per problem; empty when every password is set to a non-default value and
        the API has a token.
    """
    found = [
        f"{name} is {'empty' if not values.get(name, '').strip() else 'a default value'}"
        for name in PASSWORDS
        if _is_default(values.get(name, ""))
    ]
    found += [f"{name} is empty" for name in TOKENS if not values.get(name, "").strip()]
    return found


def _is_default(value: str) -> bool:
    value = value.strip().lower()
    return value in DEFAULTS or value.startswith(DEFAULT_PREFIX)


def verdict(values: Mapping[str, str]) -> tuple[int, str]:
    """Exit code and message for the stack's secrets (0 and a warning in a trial).

    Args:
        values: The stack variables.

    Returns:
        ``(0, "")`` when safe; ``(0, warning)`` in a local trial; ``(2, refusal)`` otherwise.
    """
    found = problems(values)
    if not found:
        return 0, ""
    listed = "; ".join(found)
    if is_trial(values):
        return 0, f"stack: WARNING local trial ({TRIAL}=true) with unsafe secrets: {listed}"
    return 2, (
        f"stack: refusing to start with unsafe secrets: {listed}. Set them in .env "
        f"(see .env.example), or set {TRIAL}=true for a local trial on this machine only."
    )


def main() -> int:
    """Check the secrets in this process's environment (the compose ``secrets-check``)."""
    code, message = verdict(dict(os.environ))
    if message:
        print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
