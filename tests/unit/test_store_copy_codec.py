"""persona.store.copy_codec without a database: PostgreSQL binary COPY bytes, both ways."""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from persona.errors import StoreError
from persona.store.assignment_copy import LabelEncoder, copy_stream, label_codes
from persona.store.copy_codec import (
    HEADER,
    TRAILER,
    TailTable,
    _Reader,
    field,
    fixed_tuples,
    micros,
    read_tuples,
    stream,
    text_field,
    text_first_tuples,
    tuple_dtype,
)
from persona.store.copy_stream import _Chunks


def test_header_trailer_and_time_follow_the_postgresql_format() -> None:
    assert HEADER == b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8 and TRAILER == b"\xff\xff"
    assert micros(dt.datetime(2000, 1, 1, 0, 0, 1, 5, tzinfo=dt.UTC)) == 1_000_005
    assert field(b"ab") == b"\x00\x00\x00\x02ab"
    assert text_field("é") == struct.pack(">i", 2) + "é".encode()
    assert b"".join(stream(iter([b"x"]))) == HEADER + b"x" + TRAILER


def test_fixed_tuples_fill_their_lengths_and_field_count() -> None:
    dtype = tuple_dtype([("a", ">i8"), ("b", ">f8")])
    assert dtype.names == ("n", "l_a", "a", "l_b", "b") and dtype.itemsize == 2 + 2 * 12
    rows = fixed_tuples(2, dtype, 2)
    rows["a"], rows["b"] = [1, 2], [0.5, -1.0]
    assert rows.tobytes()[:26] == struct.pack(">hiqid", 2, 8, 1, 8, 0.5)


def test_text_first_tuples_splice_variable_length_text() -> None:
    after = fixed_tuples(2, tuple_dtype([("v", ">f8")], count=False))
    after["v"] = [1.0, 2.0]
    data = text_first_tuples(2, pa.chunked_array([["ab"], ["é"]]), after)
    one = struct.pack(">hi", 2, 2) + b"ab" + struct.pack(">id", 8, 1.0)
    two = struct.pack(">hi", 2, 2) + "é".encode() + struct.pack(">id", 8, 2.0)
    assert data == one + two


def test_tail_table_appends_the_picked_tail_to_each_row() -> None:
    fixed = fixed_tuples(3, tuple_dtype([("v", ">i8")]), 2)
    fixed["v"] = [7, 8, 9]
    tails = TailTable([text_field("x"), text_field("long")])
    data = tails.tuples(fixed, np.array([1, 0, 1]))
    picked = ((7, "long"), (8, "x"), (9, "long"))
    expected = b"".join(struct.pack(">hiq", 2, 8, v) + text_field(t) for v, t in picked)
    assert data == expected


def test_read_tuples_round_trips_and_refuses_what_it_cannot_view() -> None:
    dtype = tuple_dtype([("a", ">i8"), ("s", "S3")])
    rows = fixed_tuples(2, dtype, 2)
    rows["a"], rows["s"] = [5, 6], [b"abc", b"xyz"]
    payload = HEADER + rows.tobytes() + TRAILER
    back = read_tuples(memoryview(payload), dtype, 2)
    assert back["a"].tolist() == [5, 6] and back["s"].tolist() == [b"abc", b"xyz"]
    with pytest.raises(StoreError, match="no binary header"):
        read_tuples(memoryview(b"COPY" + payload), dtype, 2)
    with pytest.raises(StoreError, match="size"):
        read_tuples(memoryview(payload), dtype, 3)
    rows["l_s"][1] = -1  # a NULL
    with pytest.raises(StoreError, match="field l_s is not 3 bytes"):
        read_tuples(memoryview(HEADER + rows.tobytes() + TRAILER), dtype, 2)


def test_the_reader_serves_pieces_whole_or_in_slices() -> None:
    reader = _Reader(iter([b"", b"abc", b"defgh"]))
    assert reader.read(4) == b"abc"  # a piece that fits goes out as is; empty ones skipped
    assert [reader.read(2), reader.read(2), reader.read(2)] == [b"de", b"fg", b"h"]
    assert reader.read(2) == b""


def _prediction(rows: int) -> Any:
    from persona.catalog import load_catalog
    from persona.model import from_catalog

    catalog = Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml"
    model = from_catalog(load_catalog(catalog), np.full(3, 1.5))  # many rows unassigned
    x = np.random.default_rng(4).normal(0.0, 3.0, size=(rows, 10)) + model.centroids[0]
    return model.predict(x)


def test_label_codes_from_the_model_indexes_equal_those_from_the_texts() -> None:
    pred = _prediction(2000)
    assert 1 < len(set(zip(pred.persona_id, pred.nearest_id, strict=True))) < 2000
    codes, first = label_codes(pred)
    api_like = replace(pred, nearest_index=np.full(len(pred), -1))  # what the REST client has
    codes2, first2 = label_codes(api_like)
    np.testing.assert_array_equal(codes, codes2)
    np.testing.assert_array_equal(first, first2)
    assert first.tolist() == [int(np.flatnonzero(codes == c)[0]) for c in range(len(first))]
    for column in (pred.persona_id, pred.persona_name, pred.nearest_id):
        assert (column == column[first][codes]).all()  # a code stands for its three texts
    encoder = LabelEncoder(("2025-04", "m", "1", dt.datetime(2025, 5, 1, tzinfo=dt.UTC)), "utf-8")
    ids = np.arange(len(pred), dtype=np.int64)
    assert encoder.tuples(ids, pred) == encoder.tuples(ids, api_like)


def test_label_tuples_follow_the_copy_columns() -> None:
    pred = _prediction(3)
    when = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    encoder = LabelEncoder(("2025-04", "mödel", "7", when), "utf-8")
    data = encoder.tuples(np.array([5, 6, 7]), pred)
    expected = b"".join(
        struct.pack(
            ">hiqididiq", 10, 8, rid, 8, pred.distance[i], 8, pred.margin[i], 8, micros(when)
        )
        + b"".join(text_field(v) for v in ("2025-04", "mödel", "7"))
        + b"".join(text_field(v[i]) for v in (pred.persona_id, pred.persona_name, pred.nearest_id))
        for i, rid in enumerate((5, 6, 7))
    )
    assert data == expected
    whole = b"".join(copy_stream(np.array([5, 6, 7]), pred, ("2025-04", "mödel", "7", when),
                                 "utf-8"))  # fmt: skip
    assert whole == HEADER + expected + TRAILER


def test_copy_out_chunks_are_cut_at_whole_rows_whatever_the_pieces() -> None:
    dtype = tuple_dtype([("a", ">i8")])
    rows = fixed_tuples(7, dtype, 1)
    rows["a"] = np.arange(7)
    payload = HEADER + rows.tobytes() + TRAILER
    got: list[list[int]] = []
    sink = _Chunks(dtype, 3, lambda records: got.append(records["a"].tolist()))
    for start in range(0, len(payload), 5):  # pieces that split headers and rows
        sink.write(payload[start : start + 5])
    sink.close()
    assert got == [[0, 1, 2], [3, 4, 5], [6]] and sink.rows == 7
    bad = _Chunks(dtype, 3, got.append)
    with pytest.raises(StoreError, match="no binary header"):
        bad.write(b"COPY" + payload)
    short = _Chunks(dtype, 10, got.append)
    short.write(payload[:-3])  # a cut-off row and no trailer
    with pytest.raises(StoreError, match="at the end"):
        short.close()
    rows["l_a"][4] = -1  # a NULL
    nulls = _Chunks(dtype, 10, got.append)
    nulls.write(HEADER + rows.tobytes() + TRAILER)
    with pytest.raises(StoreError, match="field l_a is not 8 bytes"):
        nulls.close()
