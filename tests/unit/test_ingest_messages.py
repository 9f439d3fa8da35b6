"""Ingest messages that say what is wrong with a file: encoding, delimiter, months, lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from persona.catalog import load_catalog
from persona.errors import DataValidationError, IngestError
from persona.store import survey_ingest
from persona.store.engine import open_store
from persona.store.schema import survey_responses
from persona.synth import generate_month

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_store(f"sqlite:///{tmp_path}/store.db")


@pytest.fixture
def text(tmp_path: Path) -> str:
    survey, _ = generate_month(CATALOG, "2025-03", 6, seed=3)
    return str(survey.to_csv(index=False))


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(survey_responses)).scalar_one())


def refused(engine: Engine, path: Path, error: type[Exception]) -> str:
    with pytest.raises(error) as info:
        survey_ingest.ingest_file(engine, path)
    assert rows(engine) == 0
    return str(info.value)


def test_utf16_file_is_named_as_such(engine: Engine, tmp_path: Path, text: str) -> None:
    path = tmp_path / "utf16.csv"
    path.write_text(text, encoding="utf-16")
    assert "UTF-16" in refused(engine, path, IngestError)
    no_bom = tmp_path / "utf16le.csv"
    no_bom.write_bytes(text.encode("utf-16-le"))
    message = refused(engine, no_bom, IngestError)
    assert "UTF-16" in message and "fields" not in message


def test_semicolon_delimiter_is_named(engine: Engine, tmp_path: Path, text: str) -> None:
    path = tmp_path / "semi.csv"
    path.write_text(text.replace(",", ";"))
    message = refused(engine, path, IngestError)
    assert "separated by semicolons (';'), not commas" in message
    assert "missing feature column" not in message
    tabs = tmp_path / "tabs.csv"
    tabs.write_text(text.replace(",", "\t"))
    assert "separated by tabs" in refused(engine, tabs, IngestError)


@pytest.mark.parametrize(
    "content",
    [bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n" + bytes(range(1, 256)), b"id,x1\n\x1b[31mred,1\n"],
    ids=["nul-bytes", "invalid-utf8", "terminal-escape"],
)
def test_binary_garbage_is_described_not_echoed(
    engine: Engine, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(content)
    message = refused(engine, path, IngestError)
    assert "not a text CSV file" in message or "not UTF-8 text" in message
    assert message.isprintable() or "\n" not in message
    assert not any(ch in message for ch in ("\x00", "\x1b", "\x89", "\ufffd"))


def test_all_invalid_month_cells_are_listed(engine: Engine, tmp_path: Path, text: str) -> None:
    lines = text.splitlines()
    body = [lines[0]] + [line.replace(",2025-03,", ",March,") for line in lines[1:]]
    path = tmp_path / "months.csv"
    path.write_text("\n".join(body) + "\n")
    with pytest.raises(DataValidationError) as info:
        survey_ingest.ingest_file(engine, path)
    message = str(info.value)
    assert "no survey_month cell holds a valid month" in message
    assert "no survey month: give one" not in message
    assert info.value.total == 6
    first = info.value.issues[0]
    assert (first.row, first.column) == (2, "survey_month") and "'March'" in first.message
    assert rows(engine) == 0


def test_field_count_lines_count_blank_lines(engine: Engine, tmp_path: Path, text: str) -> None:
    lines = text.splitlines()
    # line 1 header, 2 data, 3 blank, 4 data, 5 blank, 6 bad, 7 data
    body = [lines[0], lines[1], "", lines[2], "", lines[3] + ",extra", lines[4]]
    path = tmp_path / "blank.csv"
    path.write_text("\n".join(body) + "\n")
    with pytest.raises(DataValidationError) as info:
        survey_ingest.ingest_file(engine, path)
    assert "line 6 has 13 fields, expected 12" in str(info.value)
    assert info.value.issues[0].row == 6
