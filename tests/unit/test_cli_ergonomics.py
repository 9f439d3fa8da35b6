"""CLI and make ergonomics: --json VALUE, JSON for every error, --version, help, progress."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import pytest

from persona.cli._entry import normalize_json_flag
from persona.synth import SCENARIOS
from tests.conftest import CATALOG, REPO

PERSONA = REPO / ".venv" / "bin" / "persona"


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    values = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/persona.db",
        "PERSONA_CATALOG": str(CATALOG),
        **env,
    }
    return subprocess.run(
        [str(PERSONA), *args],
        cwd=tmp_path,
        env=values,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["data", "months", "--json"], ["data", "months", "--json"]),
        (["data", "months", "--json", "true"], ["data", "months", "--json"]),
        (["data", "months", "--json", "TRUE"], ["data", "months", "--json"]),
        (["data", "months", "--json=1"], ["data", "months", "--json"]),
        (["data", "months", "--json", "false"], ["data", "months"]),
        (["data", "months", "--json=no"], ["data", "months"]),
        (["data", "ingest", "--json", "f.csv"], ["data", "ingest", "f.csv", "--json"]),
        (["data", "ingest", "--", "--json"], ["data", "ingest", "--", "--json"]),
    ],
)
def test_normalize_json_flag(given: list[str], expected: list[str]) -> None:
    assert sorted(normalize_json_flag(given)) == sorted(expected)
    assert normalize_json_flag(given)[-1] == expected[-1] or "--" in given


def test_json_true_and_false_are_accepted(tmp_path: Path) -> None:
    on = run(["data", "months", "--json", "true"], tmp_path)
    assert on.returncode == 0, on.stderr
    assert json.loads(on.stdout) == {"months": [], "total_rows": 0}
    off = run(["data", "months", "--json", "false"], tmp_path)
    assert off.returncode == 0 and off.stdout == "" and "0 month(s)" in off.stderr
    shown = run(["data", "months", "--help"], tmp_path, COLUMNS="200")
    assert "--json true" in shown.stdout + shown.stderr


@pytest.mark.parametrize(
    ("args", "env", "kind", "fragment"),
    [
        (["data", "months", "--json"], {"API_PORT": "abc"}, "SettingsError", "API_PORT"),
        (["data", "months", "--json", "--bogus"], {}, "NoSuchOption", "--bogus"),
        (["data", "months", "--json=maybe"], {}, "UsageError", "maybe"),
        (["monitor", "--json"], {}, "MissingParameter", "--month"),
        (["data", "generate", "--json", "--n", "0"], {}, "BadParameter", "--n"),
    ],
)
def test_every_error_in_json_mode_is_one_json_document(
    tmp_path: Path, args: list[str], env: dict[str, str], kind: str, fragment: str
) -> None:
    proc = run(args, tmp_path, **env)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stdout.splitlines()
    document = json.loads(line)
    assert document["type"] == kind and fragment in document["error"]


def test_unexpected_exception_in_json_mode_is_json_and_exit_1(tmp_path: Path) -> None:
    # A folder where the SQLite file should be: not a PersonaError, an unexpected failure.
    (tmp_path / "persona.db").mkdir()
    proc = run(["data", "months", "--json"], tmp_path)
    assert proc.returncode in (1, 2)
    [line] = proc.stdout.splitlines()
    assert "error" in json.loads(line)


def test_version(tmp_path: Path) -> None:
    plain = run(["--version"], tmp_path)
    assert plain.returncode == 0 and plain.stdout.strip() == "persona 0.1.0"
    as_json = run(["--version", "--json"], tmp_path)
    assert json.loads(as_json.stdout) == {"name": "persona", "version": "0.1.0"}


def test_generate_help_lists_every_scenario(tmp_path: Path) -> None:
    shown = run(["data", "generate", "--help"], tmp_path, COLUMNS="300")
    text = shown.stdout + shown.stderr
    for scenario in SCENARIOS:
        assert scenario in text


def run_on_terminal(args: list[str], tmp_path: Path) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal; return (exit code, stdout, terminal output)."""
    main, child = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "PERSONA_CATALOG": str(CATALOG), "COLUMNS": "120"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/persona.db"
    proc = subprocess.Popen(
        [str(PERSONA), *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=child
    )
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    out = proc.communicate(timeout=120)[0]
    return proc.returncode, out.decode(), seen.decode(errors="replace")


def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    args = ["data", "generate", "--out", "d", "--months", "1", "--n", "2000", "--format", "csv"]
    code, out, terminal = run_on_terminal([*args, "--json"], tmp_path)
    assert code == 0 and json.loads(out)["months"][0]["rows"] == 2000
    assert "generate 2025-01 (2,000 rows, stable)" in terminal and "1/1" in terminal
    code, _, terminal = run_on_terminal(["data", "ingest", "d", "--json"], tmp_path)
    assert code == 0 and "ingest survey_2025-01.csv (" in terminal and "kB)" in terminal
    piped = run([*args, "--json"], tmp_path)
    assert "generate 2025-01 (" not in piped.stderr and "\x1b" not in piped.stderr


def test_make_help_has_colours_only_on_a_terminal() -> None:
    piped = subprocess.run(
        ["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert "\x1b" not in piped.stdout and "evidently-ui" in piped.stdout
    main, child = pty.openpty()
    proc = subprocess.Popen(["make", "-s", "help"], cwd=REPO, stdout=child, stderr=child)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0
    assert b"\x1b[36m" in seen
    no_color = subprocess.run(
        ["make", "-s", "help"],
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "\x1b" not in no_color.stdout


def test_help_names_no_bool_type() -> None:
    """On/off options read as flags in every command's help (no ``<bool>`` column)."""
    import typer
    from typer.testing import CliRunner

    from persona.cli import app

    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    runner = CliRunner()
    for path in paths:
        shown = runner.invoke(app, [*path, "--help"], terminal_width=100)
        assert shown.exit_code == 0, (path, shown.output)
        assert "--help" in shown.output and "<bool>" not in shown.output, (path, shown.output)
    assert len(paths) > 20
