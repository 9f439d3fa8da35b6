"""Static checks of the Python images' Dockerfiles, their requirement files and .dockerignore.

No Docker engine here (tests/e2e/test_containers.py runs the images).
"""

from __future__ import annotations

import glob
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "docker"))
import requirements as image_requirements  # noqa: E402  (docker/requirements.py)

DEPLOY = REPO / "03_deployment"
# Dockerfile -> (its venv, the requirement file it installs).
VENVS = {
    DEPLOY / "api.Dockerfile": ("/opt/app-venv", "api.txt"),
    DEPLOY / "Dockerfile": ("/opt/app-venv", "app.txt"),
    DEPLOY / "mlflow.Dockerfile": ("/opt/mlflow-venv", "mlflow.txt"),
    REPO / "02_pipeline" / "mage.Dockerfile": ("/opt/app-venv", "app.txt"),
}
DOCKERFILES = list(VENVS)
# What serving never needs: none of it in the API image, nor imported by the serving path.
NOT_SERVING = ("pandas", "scikit-learn", "scipy", "evidently", "matplotlib", "pyarrow",
               "psycopg2-binary", "google-cloud-storage", "mlflow")  # fmt: skip


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
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
        if image == "scratch":  # one layer copied from a stage (api.Dockerfile)
            assert any(op == "COPY" and rest.startswith("--from=") for op, rest in ins)
            continue
        assert re.search(r":\d+\.\d+\.\d+", image), f"base image not pinned: {image}"
    assert any(op == "COPY" and "--from=" in rest for op, rest in ins)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runtime_user_is_not_root_and_healthcheck_present(path: Path) -> None:
    ins = _instructions(path)
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    runtime = ins[last_from:]
    users = [rest for op, rest in runtime if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(op == "HEALTHCHECK" and "CMD" in rest for op, rest in runtime)
    assert any(op == "CMD" for op, _ in runtime)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_package_installed_from_repo_with_its_image_requirements(path: Path) -> None:
    venv, requirements = VENVS[path]
    ins = _instructions(path)
    runs = " ".join(rest for op, rest in ins if op == "RUN")
    # The image's own requirement file (the lock's pins, no resolver), then the package as a
    # wheel built beside the venv and installed without deps in the runtime stage, after the
    # venv copy (so a source change leaves the venv layer cached).
    assert re.search(rf"{venv}/bin/pip install --no-deps -r {re.escape(requirements)}", runs)
    assert any(op == "COPY" and f"requirements/{requirements}" in rest for op, rest in ins)
    assert re.search(rf"{venv}/bin/pip wheel --no-deps --wheel-dir /wheels \.", runs)
    assert re.search(rf"{venv}/bin/pip install --no-deps --no-index /tmp/wheels/\*\.whl", runs)
    order = [rest for op, rest in ins if op in ("COPY", "RUN")]
    venv_copy = next(i for i, r in enumerate(order) if r.startswith("--from=") and venv in r)
    wheel_copy = next(i for i, r in enumerate(order) if "/wheels/" in r and r.startswith("--from="))
    assert venv_copy < wheel_copy
    copies = [rest for op, rest in ins if op == "COPY" and "--from=" not in rest]
    assert any(c.startswith("src/") for c in copies)
    for copy in copies:
        parts = [p for p in copy.split() if not p.startswith("--")]
        for source in parts[:-1]:
            assert glob.glob(str(REPO / source)) or "[" in source, f"{path.name}: {source} missing"
        assert not any(p.endswith(".py") and p.startswith("src/") for p in parts), copy


def test_the_full_image_checks_its_set_is_complete() -> None:
    """app.txt is installed without a resolver: `pip check` fails the build if it lacks one."""
    for path in (DEPLOY / "Dockerfile", REPO / "02_pipeline" / "mage.Dockerfile"):
        assert "/opt/app-venv/bin/pip check" in path.read_text(), path.name


@pytest.mark.parametrize("name", sorted(image_requirements.IMAGES))
def test_image_requirements_are_the_lock_s_pins(name: str) -> None:
    lock = image_requirements.lock_lines()
    lines = [
        ln for ln in (REPO / "requirements" / name).read_text().splitlines()
        if ln and not ln.startswith("#")
    ]  # fmt: skip
    assert lines, name
    for line in lines:
        assert "==" in line, line
        key = image_requirements.canonicalize_name(line.split("==")[0])
        assert lock.get(key) == line, f"{name}: {line} is not the lock's {lock.get(key)}"


def test_image_requirements_are_up_to_date() -> None:
    """Each file is the closure of its roots over the installed lock (markers applied)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "docker" / "requirements.py"), "--check"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_api_image_is_one_layer_without_pip_or_translations() -> None:
    """Its runtime stage deletes what serving never uses; `FROM scratch` keeps it out."""
    ins = _instructions(DEPLOY / "api.Dockerfile")
    froms = [rest for op, rest in ins if op == "FROM"]
    assert froms[-1] == "scratch AS runtime"
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    assert [r for op, r in ins[last_from:] if op == "COPY"] == ["--from=runtime-fs / /"]
    runs = " ".join(rest for op, rest in ins if op == "RUN")
    assert "/opt/app-venv/bin/pip uninstall -q -y pip" in runs
    assert "rm -rf /usr/share/locale/*" in runs
    env = " ".join(rest for op, rest in ins[last_from:] if op == "ENV")
    assert "PATH=/opt/app-venv/bin:" in env and "LANG=C.UTF-8" in env


def test_api_image_holds_only_what_serving_needs() -> None:
    api = (REPO / "requirements" / "api.txt").read_text().lower()
    for name in NOT_SERVING:
        assert f"\n{name.lower()}==" not in api, name
    assert "\nmlflow-skinny==" in api and "\ngunicorn==" in api and "\norjson==" in api
    mlflow = (REPO / "requirements" / "mlflow.txt").read_text().lower()
    for name in ("scikit-learn", "evidently", "scipy", "matplotlib", "pyarrow"):
        assert f"\n{name}==" not in mlflow, name
    assert "\npsycopg2-binary==" in mlflow and "\ngoogle-cloud-storage==" in mlflow


# Importable names of NOT_SERVING (SQLAlchemy stays: Settings parses DATABASE_URL with it).
ABSENT = ("pandas", "sklearn", "scipy", "evidently", "matplotlib", "pyarrow", "psycopg2")
_WITHOUT = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
"""


def test_the_serving_path_imports_as_in_the_api_image() -> None:
    """What the API's workers import, in a process where the rest is absent as in its image.

    The app, its gunicorn config and the registry reads of its reload thread (MLflow's
    client, whose full package here imports pandas and scipy only when they are there).
    """
    modules = ("persona.serving.wsgi", "persona.serving.gunicorn_config", "persona.registry_read")
    code = (
        f"ABSENT = {ABSENT!r}\n{_WITHOUT}\n"
        f"for m in {modules!r}: __import__(m)\n"
        "import mlflow.artifacts\n"
        "from mlflow import MlflowClient\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        check=False, env={"PATH": "/usr/bin:/bin", "API_TOKEN": "t"}, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(done.stdout.split())
    assert {"persona", "flask", "gunicorn", "mlflow", "numpy"} <= loaded
    assert not loaded & set(ABSENT)


def test_mage_image_has_both_envs_and_persona_bin() -> None:
    text = (REPO / "02_pipeline" / "mage.Dockerfile").read_text()
    assert "/opt/app-venv" in text and "/opt/mage-venv" in text
    assert "pip install -r /tmp/requirements-mage.txt" in text
    assert "sh /tmp/slim-venv.sh /opt/mage-venv" in text  # no bundled test suites
    assert "PERSONA_BIN=/opt/app-venv/bin/persona" in text


def test_mage_image_stores_the_packages_both_envs_pin_alike_once() -> None:
    ins = _instructions(REPO / "02_pipeline" / "mage.Dockerfile")
    runs = " ".join(rest for op, rest in ins if op == "RUN")
    assert "sh /tmp/share-venv-packages.sh /opt/mage-venv /opt/app-venv" in runs
    # The runtime stage copies both venvs from the stage that linked them.
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    copies = [rest for op, rest in ins[last_from:] if op == "COPY" and "-venv" in rest]
    assert copies == ["--from=envs /opt/app-venv /opt/app-venv",
                      "--from=envs /opt/mage-venv /opt/mage-venv"]  # fmt: skip


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
