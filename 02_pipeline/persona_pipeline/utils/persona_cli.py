"""How a block calls the platform: one cycle step through the app env's `persona` CLI.

Mage runs in its own env (.venv-mage); the platform lives in the app env (.venv) and its
pins conflict with Mage's, so blocks never import `persona`. They hold no decision either:
no setting is read, no SQL, no month arithmetic here. Each block sends ONE step to
`persona cycle serve` and returns the step's JSON result; the package decides everything
(`persona.flows`).

`persona cycle serve` is the CLI's step runner for one pipeline run: started by the first
block of the run (`$PERSONA_BIN`, default <repo>/.venv/bin/persona, in PERSONA_WORKDIR,
default the repo root), it reads one JSON request per line on stdin and answers one JSON
line on stdout, so the app env is imported once per run instead of once per block. It
exits when the pipeline's process ends (end of its stdin). Its log goes to the block's
output after each step.

A step the runner answers with ``stop`` (the month is not ingested) is said in ONE line of
the block's log, not raised (Mage would log a traceback): the step's result is
``{"step": ..., "stopped": "<why>"}``, no branch follows it and later steps pass it on.
"""

import contextlib
import json
import os
import subprocess
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

_lock = threading.Lock()
_runner = {}


def persona_bin():
    """Path of the app env's `persona` command (PERSONA_BIN, default <repo>/.venv/bin/persona)."""
    return os.environ.get("PERSONA_BIN") or str(REPO / ".venv" / "bin" / "persona")


def _start():
    log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - lives as long as the runner
    proc = subprocess.Popen(
        [persona_bin(), "cycle", "serve"],
        cwd=os.environ.get("PERSONA_WORKDIR") or REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        bufsize=1,
    )
    _runner.update(proc=proc, log=log, seen=0, pid=os.getpid(), timeout=None)
    return proc


def _stop(proc):
    proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    _runner.pop("proc", None)


def _readline(proc, timeout):
    """The runner's next line ('' when it ended, or after `timeout` seconds: then killed)."""
    box = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        proc.kill()
        reader.join(10)
        return ""
    return box[0] if box else ""


def _new_log():
    log = _runner["log"]
    log.seek(_runner["seen"])
    data = log.read()
    _runner["seen"] += len(data)
    return data.decode("utf-8", "replace")


def _ready_runner():
    proc = _runner.get("proc")
    if proc is not None and proc.poll() is None and _runner.get("pid") == os.getpid():
        return proc
    proc = _start()
    # The runner says how long a step may take (CYCLE_STEP_TIMEOUT_S) once it is ready;
    # waiting for that first line is bounded by the same default the setting has.
    hello = _readline(proc, 1800)
    if not hello:
        raise RuntimeError(f"`persona cycle serve` did not start: {_new_log()[-3000:]}")
    _runner["timeout"] = float(json.loads(hello)["step_timeout_s"])
    return proc


def run_step(step, after=None, **options):
    """Run one cycle step (`persona cycle <step>`) and return its JSON result.

    Args:
        step: ``check``, ``retrain``, ``promote``, ``label`` or ``batch_label``.
        after: The upstream step's result: the step runs on its month, and a stopped
            upstream is returned as it is (the step does not run).
        **options: The step's options as given to the pipeline (passed on unparsed).

    Returns:
        The step's result, or ``{"step": step, "stopped": why}`` when the runner said the
        run has nothing to work on (the one line ``why`` is printed to the block's log).

    Raises:
        RuntimeError: The step failed (its error message), or the step runner died or
            took longer than CYCLE_STEP_TIMEOUT_S.
    """
    if after is not None:
        if after.get("stopped"):
            return after
        options["month"] = after["month"]
    request = json.dumps({"step": step, **options}, default=str)
    with _lock:
        proc = _ready_runner()
        try:
            proc.stdin.write(request + "\n")
            proc.stdin.flush()
            line = _readline(proc, _runner["timeout"])
        except (BrokenPipeError, OSError):
            line = ""
        log = _new_log()
    if log:
        print(log[-6000:])
    if not line:
        _stop(proc)
        raise RuntimeError(f"`persona cycle serve` gave no answer to {step}: {log[-2000:]}")
    answer = json.loads(line)
    if answer.get("stop"):
        why = f"persona cycle {step}: {answer.get('error')}; nothing done, the run ends here"
        print(why)
        return {"step": step, "stopped": why}
    if not answer.get("ok"):
        raise RuntimeError(f"persona cycle {step} failed: {answer.get('error')}")
    return answer["result"]


def on_retrain_branch(check):
    """Whether the check step sent the month down the retrain branch."""
    return isinstance(check, dict) and check.get("branch") == "retrain"


def on_label_branch(check):
    """Whether the check step sent the month down the label branch."""
    return isinstance(check, dict) and check.get("branch") == "label"
