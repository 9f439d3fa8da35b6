"""Benchmark: survey ingest into PostgreSQL through the store vs pandas `to_sql`.

Creates its own database, writes N synthetic respondents to a CSV, ingests it with
`persona.store.survey_ingest.ingest_file` (strict read + validation + hash, then one transaction:
batch row + binary COPY straight into survey_responses, the month being new), re-ingests it
(idempotent no-op), then ingests N other respondents of the same month (the month has rows:
binary COPY into a staging table + INSERT ... SELECT ... ON CONFLICT DO NOTHING). Then times
pandas `DataFrame.to_sql` (method=None and method="multi") on a slice of the same frame into
a plain table of the same columns, and extrapolates its rows/s. Prints a table with the
machine's load average, writes benchmarks/out/ingest.json (with its provenance), drops the
database.

Then, in the same run (issue 25), large deliveries with bounded memory: a `--large-rows`
(default 10,000,000) CSV and Parquet file of one month, each ingested by
`survey_ingest.file_reader(..., chunk_rows=INGEST_CHUNK_ROWS)` in a fresh child process
that reports its rows/s and peak RSS (``ru_maxrss``), beside the `--rows` CSV ingested the
same way (read whole: it is not larger than a chunk). The JSON's ``large`` key holds them.

Usage: python benchmarks/ingest.py [--rows 1000000] [--baseline-rows N] [--no-staging]
    [--large-rows 10000000] [--chunk-rows 1000000]
(--baseline-rows: to_sql slice size, default all rows; --large-rows 0: skip)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from _pg import scratch_database  # noqa: E402
from _provenance import begin, finish  # noqa: E402

from persona.catalog import load_catalog  # noqa: E402
from persona.store import survey_ingest  # noqa: E402
from persona.store.engine import open_store  # noqa: E402
from persona.store.schema import survey_responses  # noqa: E402
from persona.synth import generate_month  # noqa: E402


def _to_sql(url: str, frame: Any, method: str | None, chunksize: int) -> float:
    engine = create_engine(url)
    started = time.perf_counter()
    frame.to_sql(
        "bench_to_sql", engine, if_exists="replace", index=False, method=method, chunksize=chunksize
    )
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def _timed(call: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - started


def _write_large(frame: Any, rows: int, folder: Path) -> dict[str, Path]:
    """A `rows`-row month as CSV (2025-02) and as Parquet (2025-03), from a 1M-row frame.

    Written part by part (never whole); ids stay distinct and sorted
    (``YYYYMM-<part><row>``), the answers repeat per part.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    months = {"csv": "2025-02", "parquet": "2025-03"}
    paths = {kind: folder / f"survey_{month}.{kind}" for kind, month in months.items()}
    with (
        pacsv.CSVWriter(paths["csv"], table.schema) as csv_out,
        pq.ParquetWriter(paths["parquet"], table.schema) as parquet_out,
    ):
        done, part = 0, 0
        while done < rows:
            take = min(len(frame), rows - done)
            for kind, out in (("csv", csv_out), ("parquet", parquet_out)):
                month = months[kind]
                ids = [f"{month.replace('-', '')}-{part:03d}{i:07d}" for i in range(take)]
                piece = table.slice(0, take).set_column(0, "respondent_id", pa.array(ids))
                piece = piece.set_column(1, "survey_month", pa.array([month] * take))
                out.write_table(piece)
            done, part = done + take, part + 1
    return paths


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM): unlike ``ru_maxrss``, reset by exec, so a
    child does not report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure_child(path: str, url: str, chunk_rows: int) -> None:
    """In a child process: ingest one file, print seconds and peak RSS as JSON."""
    from persona.store.survey_ingest import IngestOptions, file_reader, ingest_delivery

    engine = open_store(url)
    rss_start = _peak_rss_mb()
    started = time.perf_counter()
    [result] = ingest_delivery(engine, [file_reader(path, 20, chunk_rows)], IngestOptions())
    seconds = time.perf_counter() - started
    engine.dispose()
    peak = _peak_rss_mb()
    from persona.survey_file import estimated_rows

    read = "chunks" if estimated_rows(Path(path)) > chunk_rows else "whole"
    document = {"rows": result.rows, "rows_new": result.rows_new, "seconds": seconds, "read": read}
    document |= {"peak_rss_mb": round(peak, 1), "rss_before_ingest_mb": round(rss_start, 1)}
    print(json.dumps(document))


def _measure(path: Path, url: str, chunk_rows: int, label: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", str(path), "--url", url]
    command += ["--chunk-rows", str(chunk_rows)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    size_mb = path.stat().st_size / 1e6
    return {
        "path": label,
        "file_mb": round(size_mb, 1),
        "chunk_rows": chunk_rows,
        **found,
        "rows_per_s": found["rows"] / found["seconds"],
    }


def _large(survey: Any, args: argparse.Namespace, small: Path) -> list[dict[str, Any]]:
    """The `--rows` CSV and the `--large-rows` CSV and Parquet, each in a child process."""
    with scratch_database("persona_bench_large") as (_, url), tempfile.TemporaryDirectory() as tmp:
        runs = [_measure(small, url, args.chunk_rows, f"{args.rows:,}-row CSV")]
        paths = _write_large(survey, args.large_rows, Path(tmp))
        for kind, label in (("csv", "CSV"), ("parquet", "Parquet")):
            name = f"{args.large_rows:,}-row {label}"
            runs.append(_measure(paths[kind], url, args.chunk_rows, name))
    return runs


def _loads(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--baseline-rows", type=int, default=None, help="to_sql slice size (default: all rows)"
    )
    parser.add_argument(
        "--no-staging", action="store_true", help="skip the ingest into a month that has rows"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "ingest.json")
    parser.add_argument("--large-rows", type=int, default=10_000_000, help="0: skip")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000, help="INGEST_CHUNK_ROWS")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child of `_measure`
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure_child(args.measure, args.url, args.chunk_rows)
        return
    provenance = begin()

    with scratch_database("persona_bench") as (_, url):
        catalog = load_catalog(REPO / "01_model" / "personas.yaml")
        survey, _ = generate_month(catalog, "2025-01", args.rows, seed=42)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "survey_2025-01.csv"
            survey.to_csv(path, index=False)
            size_mb = path.stat().st_size / 1e6
            engine = open_store(url)
            load_before = os.getloadavg()
            result, store_s = _timed(survey_ingest.ingest_file, engine, path)
            again, noop_s = _timed(survey_ingest.ingest_file, engine, path)
            staging_s = None
            if not args.no_staging:
                other = path.with_name("survey_2025-01_more.csv")
                survey.assign(respondent_id="more-" + survey["respondent_id"]).to_csv(
                    other, index=False
                )
                more, staging_s = _timed(survey_ingest.ingest_file, engine, other)
                assert more.rows_new == args.rows
            with engine.connect() as conn:
                stored = conn.execute(
                    select(func.count()).select_from(survey_responses)
                ).scalar_one()
            engine.dispose()
            large = _large(survey, args, path) if args.large_rows else []
        expected = args.rows * (1 if args.no_staging else 2)
        assert result.rows_new == args.rows and stored == expected and again.already_ingested
        base_rows = min(args.baseline_rows or args.rows, args.rows)
        sample = survey.iloc[:base_rows]
        baselines = {
            "to_sql(method=None, chunksize=10000)": _to_sql(url, sample, None, 10_000),
            "to_sql(method='multi', chunksize=1000)": _to_sql(url, sample, "multi", 1_000),
        }

    store_rate = args.rows / store_s
    rows: list[dict[str, Any]] = [
        {
            "path": "store.ingest_file (COPY)",
            "rows": args.rows,
            "seconds": store_s,
            "rows_per_s": store_rate,
            "measured": "full",
        },
        {
            "path": "store.ingest_file again (no-op)",
            "rows": args.rows,
            "seconds": noop_s,
            "rows_per_s": args.rows / noop_s,
            "measured": "full",
        },
    ]
    if staging_s is not None:
        rows.append(
            {
                "path": "store.ingest_file, month has rows (staging)",
                "rows": args.rows,
                "seconds": staging_s,
                "rows_per_s": args.rows / staging_s,
                "measured": "full",
            }
        )
    for name, seconds in baselines.items():
        rate = base_rows / seconds
        measured = "full" if base_rows == args.rows else f"{base_rows} rows, extrapolated"
        rows.append(
            {
                "path": f"pandas {name}",
                "rows": base_rows,
                "seconds": seconds,
                "rows_per_s": rate,
                "extrapolated_seconds_full": args.rows / rate,
                "measured": measured,
            }
        )
    best_baseline = max(r["rows_per_s"] for r in rows if r["path"].startswith("pandas"))
    ratio = store_rate / best_baseline
    print(
        f"\ningest benchmark: {args.rows:,} respondents, CSV {size_mb:.1f} MB, "
        "fresh PostgreSQL database"
    )
    if base_rows < args.rows:
        print(
            f"NOTE: to_sql timed on a {base_rows:,}-row slice; its full-size time is extrapolated"
        )
    print(f"{'path':44} {'rows':>10} {'seconds':>9} {'rows/s':>11}  measured")
    for r in rows:
        print(
            f"{r['path']:44} {r['rows']:>10,} {r['seconds']:>9.2f} {r['rows_per_s']:>11,.0f}  "
            f"{r['measured']}"
        )
    print(f"speed-up of the store over the best to_sql: {ratio:.1f}x (target >= 10x)")
    if large:
        print(f"\nlarge deliveries, one child process each, INGEST_CHUNK_ROWS={args.chunk_rows:,}")
        print(
            f"{'file':26} {'read':>6} {'MB':>7} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12}"
        )
        for r in large:
            print(
                f"{r['path']:26} {r.get('read', '?'):>6} {r['file_mb']:>7,.0f} "
                f"{r['seconds']:>8.1f} {r['rows_per_s']:>10,.0f} {r['peak_rss_mb']:>12,.0f}"
            )
    load_after = os.getloadavg()
    print(
        f"load average (1, 5, 15 min) at the start: {_loads(load_before)}, at the end: "
        f"{_loads(load_after)} on {os.cpu_count()} CPUs"
    )
    report = {
        "benchmark": "ingest",
        "rows": args.rows,
        "csv_mb": round(size_mb, 1),
        "baseline_rows": base_rows,
        "baseline_extrapolated": base_rows < args.rows,
        "results": rows,
        "store_rows_per_s": store_rate,
        "best_to_sql_rows_per_s": best_baseline,
        "ratio": ratio,
        "target_ratio": 10.0,
        "meets_target": ratio >= 10.0,
        "large": {"chunk_rows": args.chunk_rows, "large_rows": args.large_rows, "runs": large},
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_start": load_before,
            "load_avg_end": load_after,
        },
    }
    report["provenance"] = finish(provenance)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
