"""Static checks of the two Dockerfiles and .dockerignore (no Docker engine here)."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "03_deployment" / "Dockerfile", REPO / "02_pipeline" / "mage.Dockerfile"]


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_multi_stage_with_pinned_base(path: Path) -> None:
    ins = _instructions(path)
    froms = [rest for op, rest in ins if op == "FROM"]
    assert len(froms) >= 2, "expected a build stage and a runtime stage"
    args = dict(rest.split("=", 1) for op, rest in ins if op == "ARG" and "=" in rest)
    for line in froms:
        image = line.split()[0]
        image = args.get(image.strip("${}"), image)
        if " AS " in line.upper() and image in {f.split()[-1] for f in froms}:
            continue
        assert re.search(r":\d+\.\d+\.\d+", image), f"base image not pinned: {image}"
    assert any(op == "COPY" and "--from=" in rest for op, rest in ins)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_runtime_user_is_not_root_and_healthcheck_present(path: Path) -> None:
    ins = _instructions(path)
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    runtime = ins[last_from:]
    users = [rest for op, rest in runtime if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(op == "HEALTHCHECK" and "CMD" in rest for op, rest in runtime)
    assert any(op == "CMD" for op, _ in runtime)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_package_installed_from_repo_with_lock_constraints(path: Path) -> None:
    ins = _instructions(path)
    runs = " ".join(rest for op, rest in ins if op == "RUN")
    # Dependencies from pyproject's list pinned by the lock, then the package as a wheel
    # built beside the venv and installed without deps in the runtime stage, after the venv
    # copy (so a source change leaves the venv layer cached).
    assert re.search(r"/opt/app-venv/bin/pip install -c app\.lock -r /tmp/deps\.txt", runs)
    assert re.search(r"/opt/app-venv/bin/pip wheel --no-deps --wheel-dir /wheels \.", runs)
    assert re.search(
        r"/opt/app-venv/bin/pip install --no-deps --no-index /tmp/wheels/\*\.whl", runs
    )
    order = [rest for op, rest in ins if op in ("COPY", "RUN")]
    venv_copy = next(
        i for i, r in enumerate(order) if r.startswith("--from=") and "/opt/app-venv" in r
    )
    wheel_copy = next(i for i, r in enumerate(order) if "/wheels/" in r and r.startswith("--from="))
    assert venv_copy < wheel_copy
    copies = [rest for op, rest in ins if op == "COPY" and "--from=" not in rest]
    assert any(c.startswith("src/") for c in copies)
    for copy in copies:
        parts = [p for p in copy.split() if not p.startswith("--")]
        for source in parts[:-1]:
            assert glob.glob(str(REPO / source)) or "[" in source, f"{path.name}: {source} missing"
        assert not any(p.endswith(".py") and p.startswith("src/") for p in parts), copy


def test_mage_image_has_both_envs_and_persona_bin() -> None:
    text = (REPO / "02_pipeline" / "mage.Dockerfile").read_text()
    assert "/opt/app-venv" in text and "/opt/mage-venv" in text
    assert "pip install -r /tmp/requirements-mage.txt" in text
    assert "PERSONA_BIN=/opt/app-venv/bin/persona" in text


def test_mage_start_script_finds_the_image_mage_env() -> None:
    """start_mage.sh (the image's CMD) runs Mage from $MAGE_VENV: the image must set it."""
    text = (REPO / "02_pipeline" / "mage.Dockerfile").read_text()
    script = (REPO / "02_pipeline" / "start_mage.sh").read_text()
    assert 'CMD ["bash", "02_pipeline/start_mage.sh"]' in text
    assert "${MAGE_VENV:-" in script
    assert "MAGE_VENV=/opt/mage-venv" in text and "python -m venv /opt/mage-venv" in text


def test_dockerignore_keeps_envs_state_and_secrets_out() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".venv-mage", "var", ".env", "secrets"} <= ignored
