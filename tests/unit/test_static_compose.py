"""Static checks of docker-compose.yml, docker/compose.local.yml and nginx.conf."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from persona.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads compose's `!reset` tag (the value it resets to)."""


_Loader.add_constructor("!reset", lambda loader, node: None)
LOCAL: dict[str, Any] = yaml.load((REPO / "docker" / "compose.local.yml").read_text(), _Loader)
NGINX_CONF = (REPO / "03_deployment" / "nginx.conf").read_text()
EXPECTED = {
    "postgres", "gcs", "mlflow", "governance", "mage", "api", "nginx", "grafana", "cloudbeaver"
}  # fmt: skip
ONE_SHOT = {"secrets-check", "mlflow-setup", "bootstrap", "cli"}


def _env_example() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", (REPO / ".env.example").read_text(), re.M)
    return dict(pairs)


EXAMPLE = _env_example()


def test_compose_has_every_service() -> None:
    assert set(SERVICES) == EXPECTED | ONE_SHOT
    assert SERVICES["gcs"]["profiles"] == ["local"]
    assert SERVICES["cli"]["profiles"] == ["cli"]  # never started by `up`


@pytest.mark.parametrize("name", sorted(EXPECTED | ONE_SHOT))
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
def test_long_running_service_restarts_and_has_a_healthcheck(name: str) -> None:
    spec = SERVICES[name]
    assert spec["restart"] == "unless-stopped", name
    assert spec["healthcheck"]["test"], name
    user = str(spec.get("user", "front"))  # nginx: the image's unprivileged user
    assert user.split(":")[0] not in ("root", "0"), f"{name}: user {user!r}"


@pytest.mark.parametrize("name", ["gcs", "mlflow", "governance", "mage", "api", "nginx"])
def test_signals_reach_the_process(name: str) -> None:
    """`init: true`: the process is not PID 1, so SIGTERM stops it (no 10 s kill on down)."""
    assert SERVICES[name]["init"] is True


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_docker_gives_every_service_its_default_stop_grace(name: str) -> None:
    """Docker's 10 s: the container e2e test shows each service exits well within it."""
    assert "stop_grace_period" not in SERVICES[name]
    assert SERVICES[name].get("stop_signal", "SIGTERM") in ("SIGTERM", "SIGINT")


# One image per job: the smallest that holds what each service runs.
IMAGE_OF = {
    "api": "personaops-api", "secrets-check": "personaops-api",
    "mlflow": "personaops-mlflow",
    "governance": "personaops-app", "mlflow-setup": "personaops-app",
    "bootstrap": "personaops-app", "cli": "personaops-app",
    "mage": "personaops-mage", "nginx": "personaops-nginx",
}  # fmt: skip
DOCKERFILE_OF = {
    "personaops-api": "03_deployment/api.Dockerfile",
    "personaops-mlflow": "03_deployment/mlflow.Dockerfile",
    "personaops-app": "03_deployment/Dockerfile",
    "personaops-mage": "02_pipeline/mage.Dockerfile",
    "personaops-nginx": "nginx.Dockerfile",
}


@pytest.mark.parametrize("name", sorted(IMAGE_OF))
def test_each_service_runs_the_image_of_its_job(name: str) -> None:
    image = IMAGE_OF[name]
    assert SERVICES[name]["image"] == f"{image}:${{PERSONA_VERSION}}"
    assert SERVICES[name]["build"]["dockerfile"] == DOCKERFILE_OF[image]


def test_services_that_send_alerts_get_the_attempts() -> None:
    for name in ("governance", "mage", "cli", "bootstrap"):
        assert _env(name)["ALERT_ATTEMPTS"] == "${ALERT_ATTEMPTS:-3}", name
    assert "ALERT_ATTEMPTS" not in _env("api")


def test_one_shots_do_not_restart() -> None:
    for name in ("secrets-check", "mlflow-setup", "bootstrap"):
        assert SERVICES[name]["restart"] == "no"


def test_every_variable_is_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_TEXT))
    missing = used - set(EXAMPLE)
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_selects_files_that_exist() -> None:
    files = EXAMPLE["COMPOSE_FILE"].split(":")
    assert files == ["docker-compose.yml", "docker/compose.local.yml"]
    assert all((REPO / f).is_file() for f in files)
    assert EXAMPLE["COMPOSE_PROFILES"] == "local"


def test_every_bind_mount_source_exists() -> None:
    for name, spec in SERVICES.items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./") and "${" not in source:
                assert (REPO / source).exists(), f"{name}: {source} missing"


def test_only_nginx_publishes_the_api_port() -> None:
    defaults = Settings.model_fields
    assert EXAMPLE["API_PORT"] == str(defaults["api_port"].default) == "8000"
    assert EXAMPLE["MAGE_PORT"] == str(defaults["mage_port"].default) == "6789"
    assert EXAMPLE["GCS_BUCKET"] == defaults["gcs_bucket"].default
    assert SERVICES["nginx"]["ports"] == ["127.0.0.1:${API_PORT}:8080"]
    assert "ports" not in SERVICES["api"]
    assert SERVICES["mage"]["ports"] == ["127.0.0.1:${MAGE_PORT}:${MAGE_PORT}"]
    assert SERVICES["mlflow"]["ports"] == ["127.0.0.1:${MLFLOW_PORT}:5000"]
    assert SERVICES["postgres"]["ports"] == ["127.0.0.1:${POSTGRES_PORT}:5432"]
    api_env = SERVICES["api"]["environment"]
    assert api_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert api_env["API_HOST"] == "0.0.0.0" and api_env["API_PORT"] == "8000"
    assert "API_FRONT" not in api_env  # gunicorn only: nginx is its own service
    assert "proxy_pass $api;" in NGINX_CONF and "set $api http://api:8000;" in NGINX_CONF


def test_api_model_cache_is_absolute_in_a_writable_volume() -> None:
    env = SERVICES["api"]["environment"]
    assert env["MODEL_CACHE_DIR"] == "/app/var/model-cache"
    assert "apivar:/app/var" in SERVICES["api"]["volumes"]
    dockerfile = (REPO / "03_deployment" / "api.Dockerfile").read_text()
    assert "chown -R persona:persona /app/var" in dockerfile


def test_artifacts_and_state_live_in_volumes() -> None:
    assert "gcsdata:/data" in SERVICES["gcs"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "appvar:/app/var" in SERVICES["mage"]["volumes"]
    assert {"pgdata", "gcsdata", "appvar", "apivar"} <= set(COMPOSE["volumes"])
    gcs = (REPO / "docker" / "local" / "gcs.Dockerfile").read_text()
    assert "--in-memory" not in gcs and "STORAGE_BASE=/data" in gcs


def test_bootstrap_runs_before_the_api() -> None:
    script = " ".join(SERVICES["bootstrap"]["command"])
    assert "persona model bootstrap" in script
    wait = SERVICES["api"]["depends_on"]["bootstrap"]
    assert wait["condition"] == "service_completed_successfully"


def test_mlflow_server_on_postgres_with_gcs_artifacts() -> None:
    command = SERVICES["mlflow"]["command"]
    # `mlflow server` run by a wrapper that exits with it (persona.mlflow_server).
    assert command[:3] == ["python", "-m", "persona.mlflow_server"]
    args = dict(a.split("=", 1) for a in command[3:] if "=" in a)
    assert "--backend-store-uri" not in args  # its DSN is in the environment, not on argv
    uri = SERVICES["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert uri == (
        "postgresql+psycopg2://persona_mlflow:${PG_MLFLOW_PASSWORD}@postgres:5432/"
        "${POSTGRES_MLFLOW_DB}"
    )
    assert args["--app-name"] == "basic-auth"
    assert args["--artifacts-destination"] == "gs://${GCS_BUCKET}/mlflow"
    assert "--serve-artifacts" in command
    assert "mlflow" in args["--allowed-hosts"].split(",")
    assert SERVICES["mlflow"]["environment"]["STORAGE_EMULATOR_HOST"] == "${STORAGE_EMULATOR_HOST}"
    assert EXAMPLE["STORAGE_EMULATOR_HOST"] == "http://gcs:4443"


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service]["environment"].items()}


def test_no_service_reads_the_whole_env_file() -> None:
    assert "env_file" not in COMPOSE_TEXT.replace("no `env_file`", "")
    assert "STACK_ENV_FILE" not in COMPOSE_TEXT
    assert "STACK_ENV_FILE" not in (REPO / "Makefile").read_text()


def test_no_password_on_a_command_line() -> None:
    for name, spec in SERVICES.items():
        command = spec.get("command") or []
        text = command if isinstance(command, str) else " ".join(command)
        assert "PASSWORD" not in text and "postgresql" not in text, name


# Which secret variables each service's environment may use (docs/security.md).
SECRETS_OF = {
    "api": {"API_TOKEN", "MLFLOW_API_PASSWORD"},
    "mlflow": {"PG_MLFLOW_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
               "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"},
    "governance": {"PG_GOVERNANCE_PASSWORD", "MLFLOW_GOVERNANCE_PASSWORD",
                   "GOVERNANCE_WEBHOOK_SECRET", "ALERT_TELEGRAM_BOT_TOKEN",
                   "ALERT_SLACK_WEBHOOK_URL", "ALERT_WEBHOOK_URL"},
    "mage": {"PG_CYCLE_PASSWORD", "MLFLOW_PIPELINE_PASSWORD", "MAGE_ADMIN_PASSWORD",
             "MAGE_API_TOKEN", "ALERT_TELEGRAM_BOT_TOKEN", "ALERT_SLACK_WEBHOOK_URL",
             "ALERT_WEBHOOK_URL"},
    "bootstrap": {"PG_CYCLE_PASSWORD", "MLFLOW_PIPELINE_PASSWORD"},
    "mlflow-setup": {"MLFLOW_ADMIN_PASSWORD", "MLFLOW_API_PASSWORD", "MLFLOW_PIPELINE_PASSWORD",
                     "MLFLOW_GOVERNANCE_PASSWORD", "GOVERNANCE_WEBHOOK_SECRET"},
    "grafana": {"GRAFANA_ADMIN_PASSWORD", "PG_GRAFANA_PASSWORD"},
    "nginx": set(),
}  # fmt: skip
SECRET = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|WEBHOOK_URL")


@pytest.mark.parametrize("name", sorted(SECRETS_OF))
def test_each_service_gets_only_its_own_secrets(name: str) -> None:
    text = " ".join(_env(name).values()) if "environment" in SERVICES[name] else ""
    used = {v for v in re.findall(r"\$\{([A-Z0-9_]+)", text) if SECRET.search(v)}
    assert used <= SECRETS_OF[name], (name, used - SECRETS_OF[name])


def test_api_has_no_database_and_a_read_only_mlflow_identity() -> None:
    env = _env("api")
    assert "DATABASE_URL" not in env and not any("postgres" in v for v in env.values())
    assert env["MLFLOW_TRACKING_USERNAME"] == "persona-api"
    assert not any(k.startswith("ALERT_") for k in env)


def test_services_use_their_own_database_roles() -> None:
    assert "//persona_cycle:${PG_CYCLE_PASSWORD}@" in _env("mage")["DATABASE_URL"]
    assert "//persona_cycle:${PG_CYCLE_PASSWORD}@" in _env("bootstrap")["DATABASE_URL"]
    governance = _env("governance")["DATABASE_URL"]
    assert "//persona_governance:${PG_GOVERNANCE_PASSWORD}@" in governance
    assert _env("grafana")["POSTGRES_USER"] == "persona_grafana"
    assert "POSTGRES_USER" not in COMPOSE_TEXT.split("services:", 1)[1].split("  mlflow:")[1]


def test_mlflow_setup_runs_first_and_points_the_webhook_at_governance() -> None:
    setup = SERVICES["mlflow-setup"]
    assert setup["command"] == ["persona", "governance", "setup-mlflow"]
    assert _env("mlflow-setup")["GOVERNANCE_WEBHOOK_URL"] == "http://governance:8010/webhook"
    for name in ("governance", "mage", "bootstrap"):
        wait = SERVICES[name]["depends_on"]["mlflow-setup"]
        assert wait["condition"] == "service_completed_successfully", name
    governance = SERVICES["governance"]
    assert governance["command"] == ["persona", "governance", "serve"]
    assert "ports" not in governance  # the stack's network only
    mlflow = _env("mlflow")
    assert mlflow["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/basic_auth.ini"
    assert mlflow["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] == "http"
    ini = (REPO / "docker" / "mlflow" / "basic_auth.ini").read_text()
    auth_db = re.search(r"database_uri = sqlite:///(/\S+)/", ini)
    assert auth_db and f"mlflowauth:{auth_db.group(1)}" in SERVICES["mlflow"]["volumes"]


def test_mage_has_auth_both_envs_and_the_stall_watchdog() -> None:
    mage_env = SERVICES["mage"]["environment"]
    assert mage_env["REQUIRE_USER_AUTHENTICATION"] == "1"
    assert mage_env["PERSONA_BIN"] == "/opt/app-venv/bin/persona"
    assert mage_env["MAGE_STALL_REFIRE_S"] == "${MAGE_STALL_REFIRE_S}"
    assert float(EXAMPLE["MAGE_STALL_REFIRE_S"]) > 0
    assert SERVICES["mage"]["build"]["dockerfile"] == "02_pipeline/mage.Dockerfile"


def test_postgres_init_creates_both_databases_and_stops_fast() -> None:
    env = SERVICES["postgres"]["environment"]
    assert {"POSTGRES_SURVEY_DB", "POSTGRES_MLFLOW_DB"} <= set(env)
    init = (REPO / "docker" / "postgres" / "init.sh").read_text()
    names = re.search(r'names="([^"]+)"', init)
    assert names and set(names.group(1).split()) <= set(env)
    assert env["PERSONA_SQL_DIR"] == "/persona-sql"
    assert "./docker/postgres:/persona-sql:ro" in SERVICES["postgres"]["volumes"]
    sql = (REPO / "docker" / "postgres" / "init.sql").read_text()
    assert ":'survey_db'" in sql and ":'mlflow_db'" in sql
    assert SERVICES["postgres"]["image"].startswith("postgres:15.")
    assert SERVICES["postgres"]["stop_signal"] == "SIGINT"  # fast shutdown


def test_local_override_builds_every_image_on_the_local_base() -> None:
    built = {name for name, spec in SERVICES.items() if "build" in spec}
    local = LOCAL["services"]
    assert built <= set(local), built - set(local)
    for name in ("postgres", "gcs"):
        assert local[name]["image"].startswith("personaops-local-")
    assert local["nginx"]["build"]["args"]["BASE_IMAGE"].startswith("${LOCAL_BASE_IMAGE")


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


def test_stack_waits_for_the_secrets_check() -> None:
    check = SERVICES["secrets-check"]
    assert check["command"] == ["python", "-m", "persona.stack_secrets"]
    assert {"POSTGRES_PASSWORD", "API_TOKEN", "STACK_LOCAL_TRIAL"} <= set(check["environment"])
    wait = SERVICES["postgres"]["depends_on"]["secrets-check"]
    assert wait["condition"] == "service_completed_successfully"


def _nginx_error_pages() -> dict[int, str]:
    pages: dict[int, str] = {}
    for codes, target in re.findall(r"error_page ([\d ]+?) = (\S+);", NGINX_CONF):
        for code in codes.split():
            pages[int(code)] = target
    return pages


def test_nginx_answers_every_own_error_as_json_through_a_uri() -> None:
    """No named location (`@x`): it breaks on an unparsed URI ("empty URI in redirect")."""
    pages = _nginx_error_pages()
    assert {400, 405, 413, 414, 431, 494, 500, 501, 502, 503, 504, 505} <= set(pages)
    # nginx never sends a 408 (a stalled client is closed without an answer): no page for it.
    assert 408 not in pages
    assert "@" not in "".join(re.findall(r"^\s*error_page[^;]*;", NGINX_CONF, re.M))
    returns = dict(re.findall(r"location = (/_nginx/\d+) \{ return \d+ '([^']*)'; \}", NGINX_CONF))
    for code, target in pages.items():
        body = json.loads(returns[target])
        assert set(body) == {"error", "issues"}, (code, body)
    statuses = re.findall(r"location = /_nginx/(\d+) \{ return (\d+) ", NGINX_CONF)
    assert all(int(status) < 500 for page, status in statuses if page in {"501", "505"})
    assert "default_type application/json;" in NGINX_CONF


def test_nginx_runs_unprivileged() -> None:
    assert not re.search(r"^\s*user\s", NGINX_CONF, re.M)  # no root master switching users
    dockerfile = (REPO / "03_deployment" / "nginx.Dockerfile").read_text()
    assert re.search(r"^USER front$", dockerfile, re.M)
    assert "listen 8080" in NGINX_CONF and "nginx-light" in dockerfile


# `${NAME:-default}` of docker-compose.yml whose NAME is a setting (others: not the app's).
COMPOSE_DEFAULTS = sorted(
    (name, default)
    for name, default in set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}", COMPOSE_TEXT))
    if name.lower() in Settings.model_fields
)


def test_compose_defaults_are_found() -> None:
    assert len(COMPOSE_DEFAULTS) >= 40, COMPOSE_DEFAULTS


@pytest.mark.parametrize(
    ("name", "default"), COMPOSE_DEFAULTS, ids=[n for n, _ in COMPOSE_DEFAULTS]
)
def test_compose_default_equals_the_setting_default(name: str, default: str) -> None:
    field = Settings.model_fields[name.lower()]
    # The string as pydantic reads it from the environment ("5" and 5.0 are equal).
    assert TypeAdapter(field.annotation).validate_python(default) == field.default, (
        f"docker-compose.yml ${{{name}:-{default}}} but Settings.{name.lower()} = {field.default!r}"
    )
