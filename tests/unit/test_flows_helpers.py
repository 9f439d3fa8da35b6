"""Fast checks of the cycle's presentation and of the Mage blocks' helper module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from persona.cli import flow as flow_cli
from persona.months import parse_window

HELPER = Path(__file__).resolve().parents[2] / "02_pipeline/persona_pipeline/utils/persona_cli.py"


def _helper() -> Any:
    spec = importlib.util.spec_from_file_location("persona_cli_helper", HELPER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blocks_only_follow_the_branch_the_package_chose() -> None:
    helper = _helper()
    assert helper.on_retrain_branch({"branch": "retrain", "month": "2025-03"}) is True
    assert helper.on_retrain_branch({"branch": "label", "month": "2025-02"}) is False
    assert helper.on_retrain_branch(None) is False
    assert helper.on_label_branch({"branch": "label", "month": "2025-02"}) is True
    stopped = {"step": "check", "stopped": "no survey rows ..."}
    assert not helper.on_retrain_branch(stopped) and not helper.on_label_branch(stopped)


def test_pipeline_holds_no_decision() -> None:
    """No setting parsed, no SQL, no month arithmetic in 02_pipeline: the package decides."""
    project = HELPER.parents[1]
    code = {p: p.read_text() for p in project.rglob("*.py")}
    banned = ("AUTO_PROMOTE", "SELECT ", 'os.environ.get("AUTO', "datetime", "- 1", "-1}")
    for path, text in code.items():
        hits = [b for b in banned if b in text]
        assert not hits, f"{path} decides on its own: {hits}"
    kinds = ("data_loaders", "transformers", "data_exporters")
    blocks = [p for p in code if p.parent.name in kinds and p.name != "__init__.py"]
    for path in blocks:
        assert code[path].count("run_step(") == 1, f"{path} must call exactly one step"


def test_step_runner_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blocks' runner: one start per process, answers, errors and a dead runner."""
    fake = tmp_path / "persona"
    fake.write_text(
        "#!" + sys.executable + "\n"
        "import json, sys\n"
        "print('starting', file=sys.stderr, flush=True)\n"
        "print(json.dumps({'ready': True, 'step_timeout_s': 30}), flush=True)\n"
        "for line in sys.stdin:\n"
        "    req = json.loads(line)\n"
        "    print('step ' + req['step'], file=sys.stderr, flush=True)\n"
        "    if req['step'] == 'die':\n"
        "        sys.exit(3)\n"
        "    ok = req['step'] not in ('bad', 'gone')\n"
        "    doc = {'ok': ok, 'result': req, 'error': 'bad step', 'stop': req['step'] == 'gone'}\n"
        "    print(json.dumps(doc), flush=True)\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PERSONA_BIN", str(fake))
    helper = _helper()
    assert helper.run_step("check", month="") == {"step": "check", "month": ""}
    first = helper._runner["proc"].pid
    assert helper.run_step("label", month="2025-03")["month"] == "2025-03"
    assert helper._runner["proc"].pid == first  # started once per process
    with pytest.raises(RuntimeError, match="bad step"):
        helper.run_step("bad")
    with pytest.raises(RuntimeError, match="gave no answer to die"):
        helper.run_step("die")
    assert helper.run_step("retrain", month="2025-03")["step"] == "retrain"  # restarted
    assert helper.run_step("promote", after={"month": "2025-04"})["month"] == "2025-04"
    stopped = helper.run_step("gone")  # the runner says stop: one line, no exception
    assert stopped == {"step": "gone", "stopped": "persona cycle gone: bad step; "
                       "nothing done, the run ends here"}  # fmt: skip
    assert helper.run_step("label", after=stopped) is stopped  # not sent to the runner
    helper._runner["proc"].stdin.close()
    helper._runner["proc"].wait(timeout=30)


def test_summary_rendering(capsys: pytest.CaptureFixture[str]) -> None:
    summary = {
        "month": "2025-03",
        "rows": 500,
        "verdict": "retrain",
        "reasons": ["unassigned rate 6.8% >= 5.0%"],
        "reference_months": ["2025-01"],
        "model_version_before": "1",
        "model_version_after": "1",
        "challenger_version": "2",
        "promoted": False,
        "labels_written": 500,
        "persona_mix": {"budget-bob": 300, "unassigned": 200},
        "report_path": None,
    }
    flow_cli.render(summary)
    err = capsys.readouterr().err
    assert "retrain" in err and "budget-bob 60%" in err
    assert "persona model promote --version 2" in err
    window = parse_window("2025-02, 2025-01")
    assert window is not None and window.to_list() == ["2025-01", "2025-02"]
    assert parse_window(" ") is None
