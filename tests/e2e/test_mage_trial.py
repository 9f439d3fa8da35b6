"""`make mage` as a local trial: no `.env`, no MAGE_ADMIN_* set. Bound to 127.0.0.1, Mage
says it is a trial and takes the documented login (admin@admin.com / change-me); bound
anywhere else, an empty password is refused with one line and exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.mage_harness import START, MageApi, mage_server

pytestmark = [pytest.mark.mage, pytest.mark.slow]

TOKEN = "trialtoken"
BUDGET_S = 480.0  # Mage's first start and its migrations: ~60 s here on a busy machine
_OWNER = (
    "MAGE_ADMIN_EMAIL",
    "MAGE_ADMIN_PASSWORD",
    "DEFAULT_OWNER_EMAIL",
    "DEFAULT_OWNER_PASSWORD",
)


def _no_owner_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in _OWNER}, **extra}


def test_a_loopback_mage_without_a_password_is_a_stated_trial(tmp_path: Path) -> None:
    env = _no_owner_env(MAGE_HOST="127.0.0.1", MAGE_API_TOKEN=TOKEN, VAR_DIR=str(tmp_path / "var"))
    with mage_server(env, tmp_path, BUDGET_S) as mage:
        MageApi(mage.base, "admin@admin.com", "change-me", TOKEN)  # logs in, or fails
        log = mage.log.read_text()
    assert "Mage local trial on 127.0.0.1: log in as admin@admin.com / change-me" in log, log


def test_mage_bound_beyond_the_loopback_refuses_an_empty_password(tmp_path: Path) -> None:
    env = _no_owner_env(MAGE_HOST="0.0.0.0", MAGE_DATA_DIR=str(tmp_path / "mage"))
    done = subprocess.run(
        ["bash", str(START)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        "MAGE_ADMIN_PASSWORD is empty and Mage binds 0.0.0.0 (not a local trial): set it in .env"
    ]
    assert not (tmp_path / "mage").exists()  # refused before writing anything
