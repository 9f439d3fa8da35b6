"""`python -m persona.mlflow_server ARGS`: `mlflow server ARGS` that ends with its server.

`mlflow server` runs uvicorn as its child, forwards SIGTERM to it and waits. uvicorn stops
in under half a second; the CLI's own interpreter then spent 1.5-3 s of CPU tearing down
the ~2,700 modules it had imported, so the stack's `mlflow` container outlived its server
(docs/deployment.md). This runs the same click command in-process and ends with
`os._exit` and the command's exit code as soon as it returns: the CLI holds nothing to
flush (the server's state is in PostgreSQL and the artifact store).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Run `mlflow server` with `argv` and return its exit code.

    Args:
        argv: The options of `mlflow server` (default: this process's arguments).

    Returns:
        The command's exit code (0 after a clean stop).
    """
    from mlflow.cli import cli

    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=["server", *args], prog_name="mlflow")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
