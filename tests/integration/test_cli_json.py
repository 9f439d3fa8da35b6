"""`--json` output is exactly one JSON document on stdout, whatever libraries print."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import CATALOG, REPO

PERSONA = REPO / ".venv" / "bin" / "persona"


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/persona.db",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "MLFLOW_ARTIFACT_ROOT": str(tmp_path / "mlartifacts"),
        "REPORTS_DIR": str(tmp_path / "reports"),
        "PERSONA_CATALOG": str(CATALOG),
    }
    return subprocess.run(
        [str(PERSONA), *args, "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_mlflow_logging_commands_print_one_json_document(tmp_path: Path) -> None:
    assert _run(["data", "generate", "--out", "data", "--months", "1-2"], tmp_path).returncode == 0
    assert _run(["data", "ingest", "data"], tmp_path).returncode == 0
    for args in (["model", "bootstrap"], ["monitor", "--month", "2025-02"]):
        proc = _run(args, tmp_path)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 1, (args, proc.stdout)
        assert isinstance(json.loads(lines[0]), dict)


def test_json_error_is_one_document_and_exit_2(tmp_path: Path) -> None:
    proc = _run(["monitor", "--month", "2025-13"], tmp_path)
    assert proc.returncode == 2
    [line] = proc.stdout.splitlines()
    assert "2025-13" in json.loads(line)["error"]


def test_monitor_alert_flag_posts_the_verdict_to_the_webhook(tmp_path: Path) -> None:
    """`persona monitor --alert` sends the alert of its verdict."""
    from tests.webhook import Webhook

    with Webhook() as server:
        _run(["data", "generate", "--out", "data", "--months", "1-3"], tmp_path)
        _run(["data", "ingest", "data"], tmp_path)
        _run(["model", "bootstrap"], tmp_path)
        env_hook = {"ALERT_WEBHOOK_URL": server.url}
        os.environ.update(env_hook)
        try:
            quiet = _run(["monitor", "--month", "2025-02", "--alert"], tmp_path)
            drifted = _run(["monitor", "--month", "2025-03", "--alert"], tmp_path)
            again = _run(["monitor", "--month", "2025-03", "--alert"], tmp_path)
        finally:
            os.environ.pop("ALERT_WEBHOOK_URL")
    assert json.loads(quiet.stdout)["verdict"] == "no_drift"
    result = json.loads(drifted.stdout)
    assert result["verdict"] == "retrain"
    assert [a["ok"] for a in result["alerts"]] == [True]
    assert json.loads(again.stdout)["existing"] is True  # the same check, reused ...
    [posted] = server.posts  # ... does not alert twice
    assert posted.path == "/hook" and "2025-03" in json.dumps(posted.json)
