"""Every setting is documented: in .env.example (with a comment) and in the README."""

from __future__ import annotations

import re

from persona.settings import Settings
from tests.conftest import REPO


def _env_example_names() -> list[str]:
    text = (REPO / ".env.example").read_text()
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)


def test_every_setting_is_in_env_example() -> None:
    names = set(_env_example_names())
    missing = [f.upper() for f in Settings.model_fields if f.upper() not in names]
    assert missing == []


def test_env_example_has_no_duplicates() -> None:
    names = _env_example_names()
    assert len(names) == len(set(names))


def test_every_setting_is_in_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [f.upper() for f in Settings.model_fields if f"`{f.upper()}`" not in readme]
    assert missing == []


def test_every_make_target_is_in_readme() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = re.findall(r"^([a-zA-Z_-]+):.*?## ", makefile, flags=re.MULTILINE)
    readme = (REPO / "README.md").read_text()
    assert targets, "no documented make targets found"
    assert [t for t in targets if f"make {t}" not in readme] == []


def test_every_env_example_variable_is_in_readme() -> None:
    readme = (REPO / "README.md").read_text()
    assert [n for n in _env_example_names() if f"`{n}`" not in readme] == []
