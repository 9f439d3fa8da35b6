"""Settings: one frozen object read from the environment and `.env`.

Nothing here touches the disk or the network on import. `get_settings()` builds the object
once per process; a bad value raises `SettingsError` naming the variable, so a run fails at
start instead of half-way through.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from persona.errors import SettingsError

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]

# The store's drivers, by URL scheme. PostgreSQL goes through psycopg2 (the binary COPY
# paths use it), so `postgresql://` and `postgres://` mean `postgresql+psycopg2://`.
_URL_DRIVERS = {"sqlite": "sqlite3", "postgresql+psycopg2": "psycopg2"}
_POSTGRES_ALIASES = ("postgresql", "postgres")
_URL_FORMS = "sqlite:///path or postgresql://user:password@host:port/db"
# The password of a URL, never echoed in an error.
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def _postgres_driver(url: str) -> str:
    """`url` with a bare `postgresql://` or `postgres://` scheme spelled `postgresql+psycopg2://`."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if sep and scheme in _POSTGRES_ALIASES else url


def store_url(url: str) -> str:
    """The `DATABASE_URL` with its driver spelled out, checked before anything connects.

    Args:
        url: ``sqlite:///path``, ``postgresql://...``, ``postgres://...`` or
            ``postgresql+psycopg2://...``.

    Returns:
        The URL SQLAlchemy is given (``postgresql+psycopg2://`` for PostgreSQL).

    Raises:
        ValueError: An unknown scheme, a driver that is not installed, or a malformed URL;
            one line that never repeats the password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    typed = url.strip().partition("://")[0] + "://"
    normalized = _postgres_driver(url.strip())
    scheme, sep, rest = normalized.partition("://")
    if not sep or not rest:
        raise ValueError(f"not a database URL: expected {_URL_FORMS}")
    if scheme not in _URL_DRIVERS:
        raise ValueError(f"unknown scheme {typed!r}: expected {_URL_FORMS}")
    driver = _URL_DRIVERS[scheme]
    if importlib.util.find_spec(driver) is None:
        raise ValueError(f"{typed} needs the Python package {driver}, which is not installed")
    try:
        parsed = make_url(normalized)
        _ = parsed.port  # a port that is not a number fails here
    except (ArgumentError, ValueError):
        raise ValueError(f"malformed {typed} URL: expected {_URL_FORMS}") from None
    if scheme != "sqlite" and not parsed.database:
        raise ValueError(f"the {typed} URL names no database: expected {_URL_FORMS}")
    return normalized


def missing_sqlite_folder(url: str, var_dir: Path) -> str | None:
    """Why a ``sqlite:///`` URL cannot be used: its folder does not exist (else None).

    The platform creates only its own folders, where the embedded defaults live: `VAR_DIR`
    and ``var/`` (the default URLs' folder), and folders inside them. Any other folder must
    exist, so a mistyped path is an error instead of a new, empty store. Paths are compared
    as written (made absolute, no file system access); only a SQLite folder outside the
    platform's own is looked up.

    Args:
        url: A ``DATABASE_URL`` or ``MLFLOW_TRACKING_URI`` (other schemes give None).
        var_dir: The `VAR_DIR` setting (relative paths are taken from the working directory).

    Returns:
        The one-line reason, or None when the URL is fine.
    """
    scheme, _, path = url.partition(":///")
    if scheme != "sqlite" or not path or path.startswith(":memory:"):
        return None
    folder = Path(os.path.abspath(Path(path.split("?", 1)[0]).expanduser().parent))
    var, default = Path(os.path.abspath(var_dir.expanduser())), Path(os.path.abspath("var"))
    if any(folder == own or own in folder.parents for own in (var, default)):
        return None
    if folder.is_dir():
        return None
    where = f"VAR_DIR ({var_dir}) or var/, the only folders"
    if var == default:
        where = f"VAR_DIR ({var_dir}), the only folder"
    return (
        f"the folder {folder} of the SQLite file does not exist: create it, or put the file"
        f" under {where} the platform creates"
    )


class _Section(BaseModel):
    """A group of settings: declared once here, read from the environment by `Settings`.

    `Settings` inherits every section's fields (one environment variable per field, named
    after it); ``settings.training`` etc. return the section alone, frozen. A section is what
    a pure function takes as its parameters, and its `model_dump` is the idempotence key of
    what those parameters decide.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def of(cls, settings: BaseModel) -> Self:
        """The section's fields, taken from a full `Settings`."""
        return cls.model_validate({name: getattr(settings, name) for name in cls.model_fields})


class TrainingSettings(_Section):
    """Retraining: the k sweep, its selection rule, alignment, discovery and radii."""

    radius_quantile: Probability = 0.999
    radius_scale: Annotated[float, Field(ge=1.0)] = 1.25
    k_min: Annotated[int, Field(ge=2)] = 2
    k_max: Annotated[int, Field(ge=2)] = 10
    selection_metric: Literal[
        "silhouette", "calinski_harabasz", "davies_bouldin", "silhouette_inertia_ratio"
    ] = "silhouette"
    silhouette_sample_rows: PositiveInt = 10_000
    kmeans_n_init: PositiveInt = 3
    k_selection_tolerance: NonNegativeFloat = 0.10
    align_max_distance: Annotated[float, Field(gt=0)] = 8.0
    split_min_separation: Annotated[float, Field(gt=0)] = 4.0
    candidate_min_rows: PositiveInt = 20
    radius_max_growth: Annotated[float, Field(ge=1.0)] = 1.3
    random_seed: int = 42
    training_window_months: PositiveInt = 3

    @field_validator("k_max")
    @classmethod
    def _check_k_max(cls, value: int, info: Any) -> int:
        k_min = info.data.get("k_min", 2)
        if value < k_min:
            raise ValueError(f"must be >= K_MIN ({k_min}), got {value}")
        return value


class GateSettings(_Section):
    """Promotion gates, and whether a challenger that passes them is promoted by itself."""

    gate_min_label_stability: Probability = 0.95
    gate_metric_tolerance: NonNegativeFloat = 0.02
    gate_max_absorbed_share: Probability = 0.05
    auto_promote: bool = True


class PolicySettings(_Section):
    """The monitoring decision (`monitoring.policy.decide`): every threshold of a verdict."""

    drift_sample_rows: PositiveInt = 5_000
    drift_feature_threshold: Probability = 0.05
    drift_share_retrain: Probability = 0.5
    min_month_rows: PositiveInt = 50
    persona_fit_alpha: Probability = 0.001
    centroid_shift_retrain: NonNegativeFloat = 0.3
    distance_ratio_retrain: Annotated[float, Field(gt=1.0)] = 1.1
    unassigned_min_effect: Probability = 0.01
    far_tail_share: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.002
    persona_gone_ratio: Probability = 0.2
    mix_alpha: Probability = 0.02
    psi_watch: NonNegativeFloat = 0.02


class ServingSettings(_Section):
    """The REST API: address, workers, limits, model source and reload, gunicorn."""

    api_host: str = "127.0.0.1"
    api_port: Annotated[int, Field(gt=0, lt=65536)] = 8000
    api_workers: PositiveInt = 2
    api_token: str = ""
    api_max_records: PositiveInt = 10_000
    api_max_body_bytes: PositiveInt = 8 * 1024 * 1024
    model_uri: str = ""
    model_alias: str = "champion"
    model_reload_interval_s: Annotated[float, Field(gt=0)] = 30.0
    # Last model each API worker loaded, served at start while the registry cannot be
    # reached (`/ready` says so); empty = no cache.
    model_cache_dir: str = "var/model-cache"
    # Seconds a starting API worker waits for its first model before taking requests; the
    # load goes on in the background after that (`/ready` answers 503 until it is done).
    model_startup_wait_s: Annotated[float, Field(ge=0, le=25)] = 1.0
    # Seconds a client may take to send its request headers, and its body (slower: 408).
    api_client_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    # Most bytes of an over-limit body read and dropped before the 413, so a client that
    # sends its whole body first still reads the answer (beyond: the connection closes).
    api_drain_max_bytes: Annotated[int, Field(ge=0)] = 64 * 1024 * 1024
    # Gunicorn worker model (sync: lowest p99; gthread: more throughput, see
    # docs/performance.md), threads per gthread worker, access log path ("-" = stderr,
    # empty = none) and log level.
    gunicorn_worker_class: Literal["sync", "gthread"] = "sync"
    gunicorn_threads: PositiveInt = 4
    gunicorn_access_log: str = ""
    gunicorn_log_level: str = "warning"


class Settings(BaseSettings, TrainingSettings, GateSettings, PolicySettings, ServingSettings):
    """Every setting of the platform; the defaults are the embedded (no-server) deployment.

    Each field is read from the environment variable of the same name in upper case
    (``database_url`` from ``DATABASE_URL``) or from `.env` in the working directory.
    `.env.example` documents every one of them.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        frozen=True,
        extra="ignore",
        case_sensitive=False,
    )

    # --- storage -----------------------------------------------------------------------
    var_dir: Path = Path("var")
    database_url: str = "sqlite:///var/persona.db"
    persona_catalog: Path = Path("01_model/personas.yaml")
    feature_min: float = -100.0
    feature_max: float = 100.0
    ingest_error_limit: PositiveInt = 20
    # Who `persona data ingest --replace` records on its audit row; empty = the OS user.
    ingest_actor: str = ""
    # A survey file of more rows is read, validated and written this many rows at a time
    # (memory follows the chunk, not the file); smaller files are read whole.
    ingest_chunk_rows: PositiveInt = 1_000_000
    # PostgreSQL: seconds to open a connection, and the longest one statement may run
    # (0 = no statement limit). Neither applies to SQLite.
    pg_connect_timeout_s: PositiveInt = 10
    pg_statement_timeout_s: NonNegativeFloat = 600.0
    # PostgreSQL only: while a connection is in use longer than this, probe the server
    # every interval; no answer within PG_CONNECT_TIMEOUT_S ends the connection with a
    # clear error (a frozen server cannot enforce its statement timeout). 0 = off.
    pg_liveness_interval_s: NonNegativeFloat = 10.0

    # --- MLflow ------------------------------------------------------------------------
    mlflow_tracking_uri: str = "sqlite:///var/mlflow.db"
    mlflow_artifact_root: str = "var/mlartifacts"
    mlflow_experiment: str = "persona"
    model_name: str = "persona-classifier"
    # Every HTTP call to an MLflow server: seconds per try and retries after the first
    # try, so a CLI command or a reload gives up within about
    # (retries + 1) x timeout + backoff (the default: about 17 s).
    mlflow_request_timeout_s: PositiveInt = 8
    mlflow_request_max_retries: Annotated[int, Field(ge=0, le=10)] = 1
    # The identity this process uses with an MLflow server run with basic-auth (MLflow's
    # own client reads the same two variables); empty = anonymous.
    mlflow_tracking_username: str = ""
    mlflow_tracking_password: str = ""

    # --- governance (persona.governance: the receiver of MLflow's webhooks) --------------
    governance_host: str = "127.0.0.1"
    governance_port: Annotated[int, Field(gt=0, lt=65536)] = 8010
    # The HMAC secret MLflow signs webhooks with; empty: the receiver refuses every one.
    governance_webhook_secret: str = ""
    # A webhook whose timestamp is further than this from now is refused (replays).
    governance_webhook_max_age_s: Annotated[float, Field(gt=0)] = 300.0
    # The URL MLflow calls (`persona governance setup-mlflow` registers it).
    governance_webhook_url: str = "http://127.0.0.1:8010/webhook"
    # The receiver reconciles this often even without a webhook; 0 = only on webhooks.
    governance_reconcile_interval_s: NonNegativeFloat = 300.0
    # Passwords `persona governance setup-mlflow` gives the platform's MLflow identities
    # (persona-api: READ, persona-pipeline: EDIT, persona-governance: MANAGE on the model).
    mlflow_api_password: str = ""
    mlflow_pipeline_password: str = ""
    mlflow_governance_password: str = ""

    # --- the monthly cycle --------------------------------------------------------------
    cycle_step_timeout_s: Annotated[float, Field(gt=0)] = 1800.0
    # A pending review (a challenger with a candidate persona) is reminded every N months
    # it is seen again; 0 = never remind (the first alert only).
    review_reminder_months: Annotated[int, Field(ge=0)] = 3

    # --- monitoring (PolicySettings holds the verdict thresholds) -------------------------
    reports_dir: Path = Path("var/reports")
    evidently_workspace: str = ""  # empty: `evidently` next to REPORTS_DIR
    evidently_project: str = "persona-monthly-checks"
    evidently_port: Annotated[int, Field(gt=0, lt=65536)] = 8001
    # Most months of a grown monitoring reference: the champion's training months plus
    # the latest later months it judged `no_drift` (`monitoring.baseline`).
    baseline_max_months: PositiveInt = 12
    # Most rows of a grown monitoring reference: later stable months join newest first
    # while the total stays within it (the training months always stay).
    baseline_max_rows: PositiveInt = 6_000

    # --- alerts ------------------------------------------------------------------------
    alert_telegram_bot_token: str = ""
    alert_telegram_chat_id: str = ""
    alert_telegram_api_base: str = "https://api.telegram.org"
    alert_slack_webhook_url: str = ""
    alert_webhook_url: str = ""
    alert_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    alert_attempts: Annotated[int, Field(ge=1, le=10)] = 3

    # --- Spark jobs (persona.spark) ------------------------------------------------------
    spark_master: str = "local[2]"
    spark_driver_memory: str = "1g"
    spark_start_timeout_s: Annotated[float, Field(gt=0)] = 180.0
    spark_arrow_batch_rows: PositiveInt = 50_000
    spark_shuffle_partitions: PositiveInt = 8
    spark_label_method: Literal["native", "arrays", "spark_udf"] = "native"
    spark_jdbc_jar: Path = Path("/usr/share/java/postgresql.jar")
    spark_jdbc_batch_rows: PositiveInt = 10_000
    spark_jdbc_timeout_s: Annotated[float, Field(gt=0)] = 30.0

    # --- production stack --------------------------------------------------------------
    # The package never reads these four; they are listed so that `.env` is checked in one
    # place. GCS_BUCKET: docker-compose.yml (MLflow --artifacts-destination, the GCS
    # emulator's bucket), docker/compose.local.yml, 05_iac outputs. MAGE_HOST / MAGE_PORT:
    # 02_pipeline/start_mage.sh, mage_watchdog.py, docker-compose.yml (the mage service).
    # MAGE_API_TOKEN: 02_pipeline/prepare_mage.py (the API triggers' token), compose.
    gcs_bucket: str = "persona-mlflow-artifacts"
    mage_host: str = "127.0.0.1"
    mage_port: Annotated[int, Field(gt=0, lt=65536)] = 6789
    mage_api_token: str = ""

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str, info: Any) -> str:
        url = store_url(value)
        _check_sqlite_folder(url, info)
        return url

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _check_tracking_uri(cls, value: str, info: Any) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or not rest or not scheme.replace("+", "").isalnum():
            raise ValueError("expected a URI such as sqlite:///var/mlflow.db")
        _check_sqlite_folder(value, info)
        return _postgres_driver(value)

    @field_validator("feature_max")
    @classmethod
    def _check_bounds(cls, value: float, info: Any) -> float:
        low = info.data.get("feature_min")
        if low is not None and value <= low:
            raise ValueError(f"must be greater than FEATURE_MIN ({low}), got {value}")
        return value

    @property
    def training(self) -> TrainingSettings:
        """The training section (the parameters of `training.train`)."""
        return TrainingSettings.of(self)

    @property
    def gates(self) -> GateSettings:
        """The promotion-gate section."""
        return GateSettings.of(self)

    @property
    def policy(self) -> PolicySettings:
        """The monitoring-decision section (its dump keys a stored verdict)."""
        return PolicySettings.of(self)

    @property
    def serving(self) -> ServingSettings:
        """The REST API section."""
        return ServingSettings.of(self)

    @property
    def evidently_dir(self) -> Path:
        """The Evidently UI workspace folder (`EVIDENTLY_WORKSPACE`, default beside reports)."""
        if self.evidently_workspace:
            return Path(self.evidently_workspace)
        return self.reports_dir.parent / "evidently"

    @property
    def is_postgres(self) -> bool:
        """Whether the survey store is PostgreSQL (else the embedded SQLite file)."""
        return self.database_url.startswith("postgresql")


def _check_sqlite_folder(url: str, info: Any) -> None:
    var_dir = info.data.get("var_dir")
    problem = missing_sqlite_folder(url, var_dir) if isinstance(var_dir, Path) else None
    if problem:
        raise ValueError(problem)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, `.env` and explicit overrides.

    Args:
        **overrides: Field values that win over the environment (used by tests and flows).

    Returns:
        The frozen settings.

    Raises:
        SettingsError: A value is invalid; the message names the environment variable.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            shown = _PASSWORD.sub(r"\1***@", str(err.get("input")))
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message} (got {shown!r})")
        raise SettingsError("invalid setting: " + "; ".join(problems)) from None


@functools.cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once.

    Returns:
        The frozen settings of this process.
    """
    return load_settings()
