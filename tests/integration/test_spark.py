"""Spark jobs in local mode: labels and verdicts equal the single-machine path's.

One real SparkSession (local[2], Java from the system, pyspark from the venv) for the
module; small synthetic months written as Parquet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from persona.catalog import load_catalog
from persona.errors import DataValidationError, StoreError
from persona.features import FEATURE_NAMES
from persona.model import LoadedModel, PersonaModel, calibrate_radii, from_catalog
from persona.monitoring import check, decide
from persona.months import Month, Window
from persona.settings import Settings, load_settings
from persona.spark.label import label_dataset
from persona.spark.monitor import monitor_dataset
from persona.spark.session import start_session
from persona.synth import generate_month
from tests.store_reads import count_assignments, load_assignments

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "01_model" / "personas.yaml"
MONTHS = (
    ("2025-01", "stable", 1500, {}),
    ("2025-02", "stable", 1200, {}),
    ("2025-03", "shift", 1200, {}),
    ("2025-04", "spread", 1200, {}),
    ("2025-05", "new_segment", 1200, {}),
    # A segment 8 from its persona: partly within the reference's extreme distance.
    ("2025-06", "new_segment", 1200, {"new_share": 0.15, "new_distance": 8.0}),
)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = start_session(load_settings(_env_file=None), "persona-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def months() -> pd.DataFrame:
    catalog = load_catalog(CATALOG)
    frames = []
    for month, scenario, n, params in MONTHS:
        frame, _ = generate_month(catalog, month, n, scenario, seed=21, **params)
        frames.append(frame[["survey_month", *FEATURE_NAMES]])
    data = pd.concat(frames, ignore_index=True)
    data.insert(0, "response_id", np.arange(1, len(data) + 1, dtype=np.int64) * 7)
    return data


@pytest.fixture(scope="module")
def loaded(months: pd.DataFrame) -> LoadedModel:
    ref = months[months.survey_month == "2025-01"][list(FEATURE_NAMES)].to_numpy()
    base = from_catalog(load_catalog(CATALOG))
    model = from_catalog(load_catalog(CATALOG), calibrate_radii(base, ref, 0.999, 1.25))
    return LoadedModel(model, "persona-classifier", "7", "champion", "test", {})


@pytest.fixture(scope="module")
def dataset(months: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("spark") / "respondents"
    path.mkdir()
    for i, part in enumerate(np.array_split(months, 3)):  # several files, as a real dataset
        part.to_parquet(path / f"part-{i}.parquet", index=False)
    return str(path)


def _expected(model: PersonaModel, frame: pd.DataFrame) -> pd.DataFrame:
    pred = model.predict(frame[list(FEATURE_NAMES)].to_numpy())
    return pd.DataFrame({
        "response_id": frame["response_id"].to_numpy(),
        "persona_id": pred.persona_id.astype(object),
        "persona_name": pred.persona_name.astype(object),
        "nearest_persona_id": pred.nearest_id.astype(object),
        "distance": pred.distance,
        "margin": pred.margin,
        "unassigned": ~pred.assigned,
    })  # fmt: skip


def test_labels_equal_single_machine_row_for_row(
    spark: Any,
    dataset: str,
    months: pd.DataFrame,
    loaded: LoadedModel,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    out = tmp_path / "labels"
    settings = make_settings()
    result = label_dataset(spark, settings, dataset, str(out), loaded=loaded)
    assert result.rows == len(months)
    assert result.model_version == "7" and result.method == "native"
    parts = sorted(
        p.name for p in (out / "model_name=persona-classifier" / "model_version=7").iterdir()
    )
    assert parts == [f"survey_month={m}" for m, _, _, _ in MONTHS]
    got = pd.read_parquet(out).sort_values("response_id", ignore_index=True)
    expected = _expected(loaded.model, months)
    for col in ("response_id", "persona_id", "persona_name", "nearest_persona_id", "unassigned"):
        assert got[col].astype(object).tolist() == expected[col].astype(object).tolist(), col
    np.testing.assert_allclose(got["distance"], expected["distance"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["margin"], expected["margin"], rtol=0, atol=1e-12)
    assert got["survey_month"].astype(str).tolist() == months["survey_month"].tolist()
    assert set(got["model_name"].astype(str)) == {"persona-classifier"}
    assert got["assigned_at"].notna().all()
    assert 0 < got["unassigned"].sum() < len(got)  # the shifted month leaves some unassigned
    # Rerun: the run's partitions are replaced, not appended to.
    again = label_dataset(spark, settings, dataset, str(out), loaded=loaded, month="2025-02")
    assert again.rows == 1200
    assert len(pd.read_parquet(out)) == len(months)


def test_spark_udf_gives_the_same_labels(
    spark: Any,
    dataset: str,
    months: pd.DataFrame,
    loaded: LoadedModel,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    from persona.pyfunc import log_pyfunc
    from persona.registry.tracking import client, configure, parent_run

    settings = make_settings()
    mlc = client(settings)
    with parent_run(mlc, configure(settings), "spark-udf-test", {}) as run:
        info = log_pyfunc(mlc, run, loaded.model, tmp_path)
    pyfunc = LoadedModel(loaded.model, loaded.name, "8", "champion", info.model_uri, {})
    out = tmp_path / "labels"
    result = label_dataset(spark, settings, dataset, str(out), month="2025-03",
                           method="spark_udf", loaded=pyfunc)  # fmt: skip
    assert result.rows == 1200 and result.method == "spark_udf"
    got = pd.read_parquet(out).sort_values("response_id", ignore_index=True)
    expected = _expected(loaded.model, months[months.survey_month == "2025-03"])
    assert got["persona_id"].tolist() == expected["persona_id"].tolist()
    assert got["persona_name"].tolist() == expected["persona_name"].tolist()
    assert got["unassigned"].tolist() == expected["unassigned"].tolist()
    np.testing.assert_allclose(got["distance"], expected["distance"], rtol=0, atol=1e-12)
    # Without the nearest persona in the pyfunc output, unassigned rows have none.
    assert got.loc[got["unassigned"], "nearest_persona_id"].isna().all()


@pytest.mark.parametrize(
    ("month", "verdict", "fired", "reference"),
    [
        ("2025-02", "no_drift", set(), ("2025-01",)),
        ("2025-03", "retrain", {"shift", "feature_shift"}, ("2025-01",)),
        ("2025-04", "retrain", {"spread", "feature_spread"}, ("2025-01",)),
        ("2025-05", "retrain", {"far"}, ("2025-01",)),
        ("2025-06", "retrain", {"near"}, ("2025-01",)),
        # Two reference months: the mix test's overdispersion from counts per month.
        ("2025-05", "retrain", {"far"}, ("2025-01", "2025-02")),
    ],
)
def test_same_tests_and_verdict_as_single_machine(
    spark: Any,
    dataset: str,
    months: pd.DataFrame,
    loaded: LoadedModel,
    make_settings: Callable[..., Settings],
    month: str,
    verdict: str,
    fired: set[str],
    reference: tuple[str, ...],
) -> None:
    """Stable, shifted, spread and new-segment months: the same tests, p-values and verdict."""
    settings = make_settings()
    on_spark = monitor_dataset(
        spark, settings, dataset, Month(month), Window.of(list(reference)), loaded=loaded
    )
    x = {m: g[list(FEATURE_NAMES)].to_numpy() for m, g in months.groupby("survey_month")}
    single = check(
        x[month],
        np.vstack([x[m] for m in reference]),
        loaded.model,
        settings.policy,
        seed=settings.random_seed,
        unassigned_floor=1.0 - settings.radius_quantile,
        reference_months=np.concatenate([[m] * len(x[m]) for m in reference]),
    )
    decision = decide(single, settings.policy)
    assert decision.verdict == verdict
    assert fired <= {t.kind for t in decision.fired}
    assert on_spark["verdict"] == decision.verdict
    assert on_spark["reasons"] == decision.reasons
    if month == "2025-06":  # the segment is named first; its persona is not said to move
        assert decision.reasons[0].startswith("new segment?")
        assert not {"shift", "spread"} & {t.kind for t in decision.fired}
    spark_check, local = on_spark["check"], single.to_dict()
    assert spark_check["n_current"] == local["n_current"]
    assert spark_check["n_reference"] == local["n_reference"]
    assert spark_check["params"] == {**local["params"], "engine": "spark"}
    # Months within DRIFT_SAMPLE_ROWS: the K-S runs on the same rows, same p-values.
    for a, b in zip(spark_check["drift"]["features"], local["drift"]["features"], strict=True):
        assert a["feature"] == b["feature"] and a["drifted"] == b["drifted"]
        assert a["score"] == pytest.approx(b["score"], rel=1e-9, abs=1e-12)
    fit_s, fit_l = spark_check["persona_fit"], local["persona_fit"]
    for key in ("unassigned_rate", "reference_unassigned_rate", "mean_distance", "distance_ratio"):
        assert fit_s[key] == pytest.approx(fit_l[key], rel=1e-9), key
    # Groups by nearest persona on both: the same counts, mix and far rows exactly.
    assert fit_s["mix"] == fit_l["mix"]
    assert fit_s["far"] == fit_l["far"]
    for pid, entry in fit_l["centroid_shift"].items():
        for key, value in entry.items():
            want = value if value is None else pytest.approx(value, rel=1e-9)
            assert fit_s["centroid_shift"][pid][key] == want, (pid, key)
    keys = [(t["kind"], t["persona"], t["feature"]) for t in fit_s["tests"]]
    assert keys == [(t["kind"], t["persona"], t["feature"]) for t in fit_l["tests"]]
    for a, b in zip(fit_s["tests"], fit_l["tests"], strict=True):
        assert a["effect"] == pytest.approx(b["effect"], rel=1e-9, abs=1e-12), a
        assert a["pvalue"] == pytest.approx(b["pvalue"], rel=1e-9, abs=1e-300), a


def test_bad_input_is_named_and_writes_nothing(
    spark: Any,
    months: pd.DataFrame,
    loaded: LoadedModel,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    settings = make_settings()
    src = tmp_path / "bad"
    src.mkdir()
    months.drop(columns=["x4"]).to_parquet(src / "a.parquet", index=False)
    with pytest.raises(DataValidationError, match="x4"):
        label_dataset(spark, settings, str(src), str(tmp_path / "out1"), loaded=loaded)
    broken = months.copy()
    broken.loc[100, "x7"] = np.nan
    (src / "a.parquet").unlink()
    broken.to_parquet(src / "a.parquet", index=False)
    out = tmp_path / "out2"
    with pytest.raises(DataValidationError, match="x7") as info:
        label_dataset(spark, settings, str(src), str(out), loaded=loaded)
    assert f"response_id {broken.loc[100, 'response_id']}" in str(info.value)
    assert not list(out.rglob("*.parquet"))


@pytest.mark.postgres
def test_jdbc_appends_to_persona_assignments_once(
    spark: Any,
    loaded: LoadedModel,
    make_settings: Callable[..., Settings],
    pg_url: str,
    tmp_path: Path,
) -> None:
    from sqlalchemy import inspect

    from persona.store import survey_ingest, survey_queries
    from persona.store.engine import open_store

    engine = open_store(pg_url)
    survey, _ = generate_month(load_catalog(CATALOG), "2025-04", 900, seed=3)
    survey_ingest.ingest_frame(engine, survey, "2025-04")
    frame = survey_queries.load_month(engine, "2025-04")
    src = tmp_path / "month"
    src.mkdir()
    frame.drop(columns=["respondent_id"]).to_parquet(src / "m.parquet", index=False)
    settings = make_settings(database_url=pg_url)
    out = str(tmp_path / "labels")
    first = label_dataset(spark, settings, str(src), out, jdbc=True, loaded=loaded)
    again = label_dataset(spark, settings, str(src), out, jdbc=True, loaded=loaded)
    assert (first.jdbc_written, again.jdbc_written) == (900, 0)
    stored = load_assignments(engine, "2025-04", loaded.name, "7")
    expected = _expected(loaded.model, frame)
    assert stored["response_id"].tolist() == expected["response_id"].tolist()
    assert stored["persona_id"].tolist() == expected["persona_id"].tolist()
    assert stored["nearest_persona_id"].tolist() == expected["nearest_persona_id"].tolist()
    np.testing.assert_allclose(stored["distance"], expected["distance"], rtol=0, atol=1e-12)
    assert not [t for t in inspect(engine).get_table_names() if "spark_stage" in t]
    # Labels of respondents that are not in the store are refused, and nothing is written.
    frame["response_id"] += 10_000_000
    frame.drop(columns=["respondent_id"]).to_parquet(src / "m.parquet", index=False)
    with pytest.raises(StoreError, match="ingested survey response"):
        label_dataset(spark, settings, str(src), out, jdbc=True,
                      loaded=dataclasses.replace(loaded, version="9"))  # fmt: skip
    assert count_assignments(engine, "2025-04", loaded.name, "9") == 0
    assert not [t for t in inspect(engine).get_table_names() if "spark_stage" in t]
    engine.dispose()


def test_spark_submit_entry_point_prints_one_json_document(
    dataset: str, loaded: LoadedModel, tmp_path: Path
) -> None:
    """`spark-submit persona/spark/job.py label ...`, as on Dataproc (here: local[2])."""
    import json
    import os
    import subprocess
    import sys

    from persona.model import MODEL_JSON, model_to_dict

    (tmp_path / MODEL_JSON).write_text(json.dumps(model_to_dict(loaded.model)))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MODEL_URI": str(tmp_path), "PYSPARK_PYTHON": sys.executable,
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}  # fmt: skip
    job = REPO / "src" / "persona" / "spark" / "job.py"
    out = tmp_path / "labels"
    command = [str(bin_dir / "spark-submit"), "--master", "local[2]", "--driver-memory", "512m",
               str(job), "label", "--input", dataset, "--output", str(out), "--month", "2025-02",
               "--json"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = _last_json(done.stdout)
    assert result["rows"] == 1200 and result["model_version"] == "local"
    assert len(pd.read_parquet(out)) == 1200
    bad = [*command[:6], "monitor", "--input", dataset, "--month", "2025-13", "--json"]
    failed = subprocess.run(bad, env=env, capture_output=True, text=True, timeout=600)
    assert failed.returncode == 2
    assert "2025-13" in _last_json(failed.stdout)["error"]


def _last_json(stdout: str) -> dict[str, Any]:
    """spark-submit merges the driver's stderr into stdout: the document is the last line."""
    import json

    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, stdout[-2000:]
    document: dict[str, Any] = json.loads(lines[-1])
    return document
