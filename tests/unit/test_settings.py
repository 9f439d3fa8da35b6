"""settings: defaults are the embedded deployment; a bad value names its variable."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from persona.errors import SettingsError
from persona.settings import (
    Settings,
    get_settings,
    load_settings,
    missing_sqlite_folder,
    store_url,
)


def test_defaults_are_the_embedded_sqlite_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    cfg = load_settings(_env_file=None)
    assert cfg.database_url == "sqlite:///var/persona.db"
    assert cfg.mlflow_tracking_uri.startswith("sqlite:///")
    assert not cfg.is_postgres
    assert cfg.ingest_error_limit == 20


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1/x")
    monkeypatch.setenv("INGEST_ERROR_LIMIT", "7")
    cfg = load_settings(_env_file=None)
    assert cfg.is_postgres
    assert cfg.ingest_error_limit == 7


def test_dotenv_file_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("RANDOM_SEED=7\nK_MAX=6\n")
    monkeypatch.setenv("K_MAX", "8")
    cfg = load_settings(_env_file=env)
    assert cfg.random_seed == 7
    assert cfg.k_max == 8


def test_bad_database_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "foo")
    with pytest.raises(SettingsError, match="DATABASE_URL") as info:
        load_settings(_env_file=None)
    assert "'foo'" in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"k_min": 5, "k_max": 3}, "K_MAX"),
        ({"drift_feature_threshold": -0.1}, "DRIFT_FEATURE_THRESHOLD"),
        ({"psi_watch": -1.0}, "PSI_WATCH"),
        ({"gate_metric_tolerance": -0.5}, "GATE_METRIC_TOLERANCE"),
        ({"ingest_error_limit": 0}, "INGEST_ERROR_LIMIT"),
        ({"api_port": 70000}, "API_PORT"),
        ({"feature_min": 5.0, "feature_max": 1.0}, "FEATURE_MAX"),
        ({"mlflow_tracking_uri": "not a uri"}, "MLFLOW_TRACKING_URI"),
        ({"selection_metric": "accuracy"}, "SELECTION_METRIC"),
    ],
)
def test_invalid_values_fail_naming_the_variable(overrides: dict, variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(_env_file=None, **overrides)


def test_negative_threshold_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNASSIGNED_MIN_EFFECT", "-0.2")
    with pytest.raises(SettingsError, match="UNASSIGNED_MIN_EFFECT"):
        load_settings(_env_file=None)


def test_settings_are_frozen(make_settings: Callable[..., Settings]) -> None:
    cfg = make_settings()
    with pytest.raises(ValidationError):
        cfg.database_url = "sqlite:///other.db"  # type: ignore[misc]


def test_get_settings_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings()
    finally:
        get_settings.cache_clear()


def test_every_setting_is_documented_in_env_example() -> None:
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in example]
    assert missing == []


@pytest.mark.parametrize(
    ("typed", "used"),
    [
        ("postgresql://postgres@127.0.0.1:5432/survey", "postgresql+psycopg2://postgres@127.0.0.1:5432/survey"),
        ("postgres://u:pw@db/survey", "postgresql+psycopg2://u:pw@db/survey"),
        ("postgresql+psycopg2://u@db/survey", "postgresql+psycopg2://u@db/survey"),
        ("sqlite:///var/persona.db", "sqlite:///var/persona.db"),
    ],
)  # fmt: skip
def test_postgres_urls_mean_the_installed_driver(typed: str, used: str) -> None:
    cfg = load_settings(_env_file=None, database_url=typed, mlflow_tracking_uri=typed)
    assert cfg.database_url == used and store_url(typed) == used
    assert cfg.mlflow_tracking_uri == used  # MLflow's SQLAlchemy store gets the driver too


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u@h/db", "unknown scheme 'mysql://'"),
        ("postgresql+psycopg://u@h/db", "unknown scheme 'postgresql+psycopg://'"),
        ("postgresql://u:secret@h:port/db", "malformed postgresql:// URL"),
        ("postgres://u@h", "names no database"),
        ("postgresql://", "not a database URL"),
        ("sqlite:var/x.db", "not a database URL"),
    ],
)
def test_an_unusable_database_url_is_one_line_without_the_password(url: str, says: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None, database_url=url)
    message = str(info.value)
    assert message.startswith("invalid setting: DATABASE_URL: ") and says in message
    assert "\n" not in message and "secret" not in message


def test_a_missing_driver_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg2" else real(name, *a)
    )
    with pytest.raises(SettingsError, match="needs the Python package psycopg2"):
        load_settings(_env_file=None, database_url="postgresql://u@h/db")


def test_only_var_dir_may_be_missing_under_a_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    var = Path("var")
    assert missing_sqlite_folder("sqlite:///var/persona.db", var) is None  # a fresh clone
    assert missing_sqlite_folder("sqlite:///var/a/b.db", var) is None  # inside VAR_DIR
    assert missing_sqlite_folder(f"sqlite:///{tmp_path}/x.db", var) is None  # it exists
    assert missing_sqlite_folder("sqlite:///:memory:", var) is None
    assert missing_sqlite_folder("postgresql+psycopg2://u@h/db", var) is None
    assert missing_sqlite_folder("http://127.0.0.1:5000", var) is None
    said = missing_sqlite_folder("sqlite:///vra/persona.db", var)
    assert said is not None and said.startswith(f"the folder {tmp_path / 'vra'} of the SQLite")
    with pytest.raises(SettingsError, match=r"DATABASE_URL: the folder .*typo"):
        load_settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/typo/p.db")
    assert not (tmp_path / "typo").exists()
