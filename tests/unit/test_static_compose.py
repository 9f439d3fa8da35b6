"""Static checks of docker-compose.yml and of the process stack derived from it."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from persona.settings import Settings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "stack"))

import compose_env as ce  # noqa: E402

COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
EXAMPLE = ce.read_env_file(REPO / ".env.example")
EXPECTED = {"postgres", "gcs", "mlflow", "mage", "api", "grafana", "cloudbeaver"}


def test_compose_has_every_service() -> None:
    assert set(SERVICES) >= EXPECTED
    assert SERVICES["gcs"]["profiles"] == ["local"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_image_pinned_or_built_from_existing_dockerfile(name: str) -> None:
    spec = SERVICES[name]
    if "build" in spec:
        build = spec["build"]
        context = REPO / build["context"]
        assert context.is_dir(), context
        assert (context / build["dockerfile"]).is_file(), build
        assert re.fullmatch(r"[\w./-]+:\$\{PERSONA_VERSION\}", spec["image"]), spec["image"]
    else:
        image = spec["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: untagged image {image}"
        assert tag != "latest" and re.match(r"v?\d+\.\d+", tag), f"{name}: unpinned tag {image}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_runs_as_non_root_with_healthcheck(name: str) -> None:
    spec = SERVICES[name]
    user = str(spec.get("user", ""))
    assert user and user.split(":")[0] not in ("root", "0"), f"{name}: user {user!r}"
    assert spec["healthcheck"]["test"], name


def test_every_variable_is_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_TEXT))
    missing = used - set(EXAMPLE)
    assert not missing, f"add to .env.example: {sorted(missing)}"
    assert ce.interpolate(COMPOSE_TEXT, EXAMPLE)  # nothing undefined


def test_every_bind_mount_source_exists() -> None:
    for name, spec in SERVICES.items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./") and "${" not in source:
                assert (REPO / source).exists(), f"{name}: {source} missing"


def test_ports_agree_with_settings_defaults() -> None:
    defaults = Settings.model_fields
    assert EXAMPLE["API_PORT"] == str(defaults["api_port"].default) == "8000"
    assert EXAMPLE["MAGE_PORT"] == str(defaults["mage_port"].default) == "6789"
    assert EXAMPLE["GCS_BUCKET"] == defaults["gcs_bucket"].default
    assert SERVICES["api"]["ports"] == ["127.0.0.1:${API_PORT}:${API_PORT}"]
    assert SERVICES["mage"]["ports"] == ["127.0.0.1:${MAGE_PORT}:${MAGE_PORT}"]
    assert SERVICES["mlflow"]["ports"] == ["127.0.0.1:${MLFLOW_PORT}:5000"]
    assert SERVICES["postgres"]["ports"] == ["127.0.0.1:${POSTGRES_PORT}:5432"]
    api_env = SERVICES["api"]["environment"]
    assert api_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "@postgres:5432/" in api_env["DATABASE_URL"]
    assert api_env["API_HOST"] == "0.0.0.0"


def test_mlflow_server_on_postgres_with_gcs_artifacts() -> None:
    command = SERVICES["mlflow"]["command"]
    assert command[:2] == ["mlflow", "server"]
    args = dict(a.split("=", 1) for a in command[2:] if "=" in a)
    assert args["--backend-store-uri"].startswith("postgresql+psycopg2://")
    assert args["--backend-store-uri"].endswith("@postgres:5432/${POSTGRES_MLFLOW_DB}")
    assert args["--artifacts-destination"] == "gs://${GCS_BUCKET}/mlflow"
    assert "--serve-artifacts" in command
    assert "mlflow" in args["--allowed-hosts"].split(",")
    assert SERVICES["mlflow"]["environment"]["STORAGE_EMULATOR_HOST"] == "${STORAGE_EMULATOR_HOST}"
    assert EXAMPLE["STORAGE_EMULATOR_HOST"] == "http://gcs:4443"


def test_api_healthcheck_uses_ready_and_mage_has_auth_and_both_envs() -> None:
    assert "/ready" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    mage_env = SERVICES["mage"]["environment"]
    assert mage_env["REQUIRE_USER_AUTHENTICATION"] == "1"
    assert mage_env["PERSONA_BIN"] == "/opt/app-venv/bin/persona"
    assert SERVICES["mage"]["build"]["dockerfile"] == "02_pipeline/mage.Dockerfile"


def test_postgres_init_creates_both_databases() -> None:
    env = SERVICES["postgres"]["environment"]
    assert {"POSTGRES_SURVEY_DB", "POSTGRES_MLFLOW_DB"} <= set(env)
    sql = (REPO / "docker" / "postgres" / "init.sql").read_text()
    assert ":'survey_db'" in sql and ":'mlflow_db'" in sql
    assert SERVICES["postgres"]["image"].startswith("postgres:15.")


def test_grafana_provisioning_is_mounted_and_its_variables_are_set() -> None:
    grafana = SERVICES["grafana"]
    mounts = dict(v.split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
    provisioning = REPO / "04_monitoring" / "grafana" / "provisioning"
    assert mounts["./04_monitoring/grafana/provisioning"] == "/etc/grafana/provisioning:ro"
    dashboards_target = mounts["./04_monitoring/grafana/dashboards"].removesuffix(":ro")
    for provider in provisioning.glob("dashboards/*.y*ml"):
        paths = [p["options"]["path"] for p in yaml.safe_load(provider.read_text())["providers"]]
        assert dashboards_target in paths, (provider, paths)
    for source in provisioning.rglob("*.y*ml"):
        text = "\n".join(
            ln for ln in source.read_text().splitlines() if not ln.lstrip().startswith("#")
        )
        used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
        assert used <= set(grafana["environment"]), (
            source.name,
            used - set(grafana["environment"]),
        )


def _local(tmp_path: Path) -> ce.Local:
    ports = {"postgres": 15432, "mlflow": 15000, "gcs": 19023, "api": 18000, "mage": 16789}
    return ce.Local(repo=REPO, var_dir=tmp_path / "var", ports=ports)


def test_process_stack_env_is_compose_env_localized(tmp_path: Path) -> None:
    values = dict(EXAMPLE, API_PORT="18000", POSTGRES_SURVEY_DB="survey_x")
    env = ce.service_environment(COMPOSE, "api", values, _local(tmp_path))
    assert env["DATABASE_URL"] == "postgresql+psycopg2://persona:change-me@127.0.0.1:15432/survey_x"
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:15000"
    assert env["API_HOST"] == "127.0.0.1" and env["API_PORT"] == "18000"
    assert env["VAR_DIR"] == str(tmp_path / "var")
    assert env["PERSONA_CATALOG"] == str(REPO / "01_model" / "personas.yaml")
    mage = ce.service_environment(COMPOSE, "mage", values, _local(tmp_path))
    assert mage["PERSONA_BIN"] == str(REPO / ".venv" / "bin" / "persona")
    assert mage["MAGE_DATA_DIR"] == str(tmp_path / "var" / "mage_data")
    assert set(env) - {"API_HOST", "API_PORT", "API_WORKERS", "API_TOKEN"} <= set(mage)


def test_process_stack_mlflow_command_is_compose_command_localized(tmp_path: Path) -> None:
    argv = ce.service_command(COMPOSE, "mlflow", EXAMPLE, _local(tmp_path))
    assert "--host=127.0.0.1" in argv and "--port=15000" in argv
    assert (
        "--backend-store-uri=postgresql+psycopg2://persona:change-me@127.0.0.1:15432/mlflow" in argv
    )
    assert "--artifacts-destination=gs://persona-mlflow-artifacts/mlflow" in argv


def test_interpolation_follows_compose_rules() -> None:
    values = {"A": "1", "EMPTY": ""}
    assert ce.interpolate("${A}-${B:-x}-${EMPTY:-y}-${EMPTY-z}-$$HOME", values) == "1-x-y--$HOME"
    with pytest.raises(ce.ComposeError, match="variable B is not set"):
        ce.interpolate("${B}", values)


def test_stack_waits_for_the_secrets_check() -> None:
    check = SERVICES["secrets-check"]
    assert check["command"] == ["python", "-m", "persona.stack_secrets"]
    assert check["restart"] == "no"
    assert {"POSTGRES_PASSWORD", "API_TOKEN", "STACK_LOCAL_TRIAL"} <= set(check["environment"])
    # Everything that holds a secret starts after postgres, which waits for the check.
    wait = SERVICES["postgres"]["depends_on"]["secrets-check"]
    assert wait["condition"] == "service_completed_successfully"
