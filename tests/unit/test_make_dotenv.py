"""The Makefile reads `.env` when there is one (scripts/dotenv_make.py); the environment and
the command line still win, and no `.env` is fine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from dotenv_make import make_statements, values  # noqa: E402

SHOW = 'show: ; @printf "%s|%s|%s\\n" "$$API_PORT" "$$MAGE_ADMIN_PASSWORD" "$$FOO"'


def test_values_follow_the_dotenv_format() -> None:
    text = "# a comment\n\nexport FOO=bar # note\nQ='a b'\nD=\"x#y\"\nnot a line\nE=\n"
    assert list(values(text)) == [("FOO", "bar"), ("Q", "a b"), ("D", "x#y"), ("E", "")]


def test_make_statements_keep_dollar_and_hash_literal_and_skip_make_variables() -> None:
    assert make_statements("P=a$b#c\nSHELL=/bin/sh\n") == ["P ?= a$$b\\#c", "export P"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with the repository's Makefile and scripts, and no `.env` yet."""
    (tmp_path / "Makefile").symlink_to(REPO / "Makefile")
    (tmp_path / "scripts").symlink_to(REPO / "scripts")
    return tmp_path


def _make(project: Path, *args: str, **env: str) -> str:
    """`make show` in `project`: API_PORT|MAGE_ADMIN_PASSWORD|FOO as its commands see them."""
    names = ("API_PORT", "MAGE_ADMIN_PASSWORD", "FOO")
    environ = {k: v for k, v in os.environ.items() if k not in names}
    done = subprocess.run(
        [shutil.which("make") or "make", "-s", "--eval", SHOW, *args, "show"],
        cwd=project,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_every_target_sees_dotenv_and_the_environment_wins(project: Path) -> None:
    assert _make(project) == "||"  # no .env: nothing set, no error
    (project / ".env").write_text('API_PORT=9001\nMAGE_ADMIN_PASSWORD="p a$s#x"\nFOO=bar\n')
    assert _make(project) == "9001|p a$s#x|bar"
    assert _make(project, API_PORT="7", FOO="") == "7|p a$s#x|"  # the environment wins
    assert _make(project, "API_PORT=8").startswith("8|")  # and the command line


def test_env_file_replaces_dotenv(project: Path) -> None:
    (project / ".env").write_text("API_PORT=9001\nFOO=dot\n")
    (project / "other.env").write_text("API_PORT=9002\n")
    assert _make(project, "ENV_FILE=other.env") == "9002||"  # only other.env is read
    assert _make(project, ENV_FILE="other.env") == "9002||"  # from the environment too
    assert _make(project, "ENV_FILE=missing.env") == "||"  # a missing file sets nothing
