"""A finished gunicorn worker and the `mlflow server` wrapper end at once, keeping their code.

The stop times themselves are measured on the running stack (tests/e2e/test_containers.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from persona.mlflow_server import main as mlflow_server
from persona.serving.gunicorn_conf import worker_exit


def _exit_code(body: str) -> int:
    """Run `body` in a fresh interpreter: gunicorn's worker exit path calls the hook."""
    script = textwrap.dedent(
        f"""
        import sys
        from persona.serving.gunicorn_conf import worker_exit
        import atexit
        atexit.register(print, "interpreter teardown ran")
        try:
            {body}
        finally:
            worker_exit(None, None)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "interpreter teardown ran" not in done.stdout
    return done.returncode


def test_a_worker_that_exits_keeps_its_code_and_skips_the_teardown() -> None:
    assert _exit_code("sys.exit(0)") == 0
    assert _exit_code("sys.exit(4)") == 4  # gunicorn's APP_LOAD_ERROR still halts the master


def test_outside_an_exit_the_hook_does_nothing() -> None:
    assert worker_exit(None, None) is None


def test_mlflow_server_wrapper_returns_the_commands_code() -> None:
    assert mlflow_server(["--no-such-option"]) == 2
