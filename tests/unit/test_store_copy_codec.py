"""persona.store.copy_codec without a database: PostgreSQL binary COPY bytes, both ways."""

from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pyarrow as pa
import pytest

from persona.errors import StoreError
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
