"""The native Spark labels (column expressions, no Python worker) and the streamed file path.

Both must give the single machine's labels row for row, ties included (rows exactly half-way
between two centroids: numpy's argmin keeps the first). One real SparkSession (local[2]).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from persona.catalog import load_catalog
from persona.errors import DataValidationError
from persona.features import FEATURE_NAMES
from persona.file_labeling import label_file
from persona.model import MODEL_JSON, LoadedModel, from_catalog, model_to_dict
from persona.settings import load_settings
from persona.spark.label import label_dataset
from persona.spark.session import start_session
from persona.synth import generate_month

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "01_model" / "personas.yaml"
LABELS = ("persona_id", "persona_name", "nearest_persona_id", "unassigned")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = start_session(load_settings(_env_file=None), "persona-tests-native")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    model = from_catalog(load_catalog(CATALOG), np.array([12.0, 11.0, 12.5]))
    return LoadedModel(model, "persona-classifier", "3", "champion", "test", {})


@pytest.fixture(scope="module")
def respondents(loaded: LoadedModel) -> pd.DataFrame:
    """Two months of synthetic rows, plus exact ties and rows on and beyond a radius."""
    frames = []
    for month, scenario in (("2025-03", "stable"), ("2025-04", "shift")):
        frame, _ = generate_month(load_catalog(CATALOG), month, 1500, scenario, seed=5)
        frames.append(frame[["survey_month", *FEATURE_NAMES]])
    c = loaded.model.centroids
    ties = np.vstack([(c[0] + c[1]) / 2, (c[1] + c[2]) / 2, (c[0] + c[2]) / 2, np.zeros(10),
                      np.ones(10), np.full(10, 40.0), c[2]])  # fmt: skip
    tie_rows = pd.DataFrame(ties, columns=list(FEATURE_NAMES)).assign(survey_month="2025-04")
    data = pd.concat([*frames, tie_rows], ignore_index=True)
    data.insert(0, "response_id", np.arange(1, len(data) + 1, dtype=np.int64) * 3)
    return data


def _write(frame: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, part in enumerate(np.array_split(frame, 3)):
        part.to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


def _expected(loaded: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    pred = loaded.model.predict(frame[list(FEATURE_NAMES)].to_numpy())
    return pd.DataFrame({
        "response_id": frame["response_id"].to_numpy(), "persona_id": pred.persona_id,
        "persona_name": pred.persona_name, "nearest_persona_id": pred.nearest_id,
        "distance": pred.distance, "margin": pred.margin, "unassigned": ~pred.assigned,
    })  # fmt: skip


def _same_labels(out: Path, expected: pd.DataFrame) -> pd.DataFrame:
    got = pd.read_parquet(out).sort_values("response_id", ignore_index=True)
    assert got["response_id"].tolist() == expected["response_id"].tolist()
    for col in LABELS:
        assert got[col].astype(object).tolist() == expected[col].astype(object).tolist(), col
    # x.x - 2x.c + c.c cancels near a centroid: sqrt of a rounding residual (1e-14) is 1e-7,
    # and numpy's matmul rounds differently with the batch's shape. Labels are exact.
    np.testing.assert_allclose(got["distance"], expected["distance"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["margin"], expected["margin"], rtol=0, atol=1e-6)
    return got


def test_native_labels_equal_single_machine_ties_included(
    spark: Any, loaded: LoadedModel, respondents: pd.DataFrame, tmp_path: Path
) -> None:
    src = _write(respondents, tmp_path / "in")
    out = tmp_path / "labels"
    settings = load_settings(_env_file=None)
    assert settings.spark_label_method == "native"
    result = label_dataset(spark, settings, str(src), str(out), loaded=loaded)
    assert result.method == "native" and result.rows == len(respondents)
    got = _same_labels(out, _expected(loaded, respondents))
    assert 0 < got["unassigned"].sum() < len(got)
    assert got["margin"].iloc[-7:-4].abs().max() < 1e-9  # the half-way rows: near-ties
    # The streamed single-machine file path writes the same layout and labels.
    file_out = tmp_path / "file-labels"
    done = label_file(loaded, src, file_out)
    assert done.rows == len(respondents) and done.persona_mix == result.persona_mix
    assert sorted(p.relative_to(file_out).as_posix() for p in file_out.glob("*/*/*")) == sorted(
        p.relative_to(out).as_posix() for p in out.glob("*/*/*")
    )
    _same_labels(file_out, _expected(loaded, respondents))


def test_native_refuses_non_finite_and_writes_nothing(
    spark: Any, loaded: LoadedModel, respondents: pd.DataFrame, tmp_path: Path
) -> None:
    broken = respondents.copy()
    broken.loc[40, "x6"] = np.inf
    src = _write(broken, tmp_path / "in")
    for run in ("spark", "file"):
        out = tmp_path / run
        with pytest.raises(DataValidationError, match="x6") as info:
            if run == "spark":
                label_dataset(spark, load_settings(_env_file=None), str(src), str(out),
                              loaded=loaded)  # fmt: skip
            else:
                label_file(loaded, src, out)
        assert f"response_id {broken.loc[40, 'response_id']}" in str(info.value)
        assert not list(out.rglob("*.parquet"))


def test_file_labeling_streams_csv_reruns_and_keeps_other_months(
    loaded: LoadedModel, respondents: pd.DataFrame, tmp_path: Path
) -> None:
    src = tmp_path / "respondents.csv"
    respondents.to_csv(src, index=False)
    out = tmp_path / "labels"
    first = label_file(loaded, src, out)
    again = label_file(loaded, src, out, month="2025-04")
    assert again.rows == (respondents.survey_month == "2025-04").sum()
    assert first.rows == len(pd.read_parquet(out)) == len(respondents)
    _same_labels(out, _expected(loaded, respondents))


def test_cli_labels_a_file_and_spark_submit_runs_the_documented_command(
    loaded: LoadedModel, respondents: pd.DataFrame, tmp_path: Path
) -> None:
    """`persona label --input/--output`, then the spark-submit line of docs/dataproc.md."""
    (tmp_path / MODEL_JSON).write_text(json.dumps(model_to_dict(loaded.model)))
    src = _write(respondents, tmp_path / "in")
    env = {**os.environ, "MODEL_URI": str(tmp_path), "PYSPARK_PYTHON": sys.executable,
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}  # fmt: skip
    persona = Path(sys.executable).parent / "persona"
    done = subprocess.run([str(persona), "label", "--input", str(src), "--output",
                           str(tmp_path / "file-labels"), "--json"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["rows"] == len(respondents)
    half = subprocess.run([str(persona), "label", "--input", str(src)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert half.returncode == 2 and "--output" in half.stderr
    command = _documented_spark_submit()
    assert command[:2] == ["spark-submit", "--master"]
    values = {"$MASTER": "local[2]", "$JOB": str(REPO / "src" / "persona" / "spark" / "job.py"),
              "$INPUT": str(src), "$OUTPUT": str(tmp_path / "spark-labels"),
              "$MONTH": "2025-04"}  # fmt: skip
    argv = [str(Path(sys.executable).parent / "spark-submit")]
    argv += [values.get(a, a) for a in command[1:]]
    ran = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stdout[-3000:]
    last = [line for line in ran.stdout.splitlines() if line.startswith("{")][-1]
    assert json.loads(last)["rows"] == (respondents.survey_month == "2025-04").sum()
    assert json.loads(last)["method"] == "native"


@pytest.mark.parametrize(("column", "cell"), [("x3", "abc"), ("response_id", "1.5")])
def test_cli_refuses_a_bad_csv_cell_in_one_line_and_writes_nothing(
    loaded: LoadedModel, respondents: pd.DataFrame, tmp_path: Path, column: str, cell: str
) -> None:
    """A cell Arrow cannot read as its column's type: exit 2, no traceback, no labels."""
    (tmp_path / MODEL_JSON).write_text(json.dumps(model_to_dict(loaded.model)))
    src = tmp_path / "respondents.csv"
    broken = respondents.astype({column: object})
    broken.loc[len(broken) - 1, column] = cell
    broken.to_csv(src, index=False)
    out = tmp_path / "labels"
    env = {**os.environ, "MODEL_URI": str(tmp_path)}
    persona = Path(sys.executable).parent / "persona"
    ran = subprocess.run([str(persona), "label", "--input", str(src), "--output", str(out)],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ran.returncode == 2, ran.stderr[-2000:]
    assert ran.stderr.count("error:") == 1 and "Traceback" not in ran.stderr, ran.stderr
    line = next(x for x in ran.stderr.splitlines() if "error:" in x)
    assert src.name in line and cell in ran.stderr, ran.stderr
    assert not [p for p in out.rglob("*") if p.is_file()]


def _documented_spark_submit() -> list[str]:
    """The ``spark-submit`` label line of docs/dataproc.md marked ``local-test``."""
    text = (REPO / "docs" / "dataproc.md").read_text(encoding="utf-8")
    block = text.split("```bash local-test\n", 1)[1].split("```", 1)[0]
    return " ".join(line.rstrip("\\").strip() for line in block.splitlines()).split()
