"""benchmarks/report.py: the headline table comes from the JSONs, stale rows are marked."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _module(name: str) -> ModuleType:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(
            f"bench_{name}", REPO / "benchmarks" / f"{name}.py"
        )
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"bench_{name}"] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def test_every_row_is_read_from_its_json_and_stale_rows_are_marked() -> None:
    report = _module("report")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    paths = ("src/persona/spark",)
    assert report.freshness(head, paths) == "current"
    assert report.freshness(None, paths) == "stale: no commit recorded"
    assert report.freshness(head, paths, dirty=True) == "stale: measured on uncommitted code"
    roots = ["git", "-C", str(REPO), "rev-list", "--max-parents=0", "HEAD"]
    first = subprocess.run(roots, capture_output=True, text=True, check=True).stdout.split()[0]
    assert report.freshness(first, paths).startswith("stale: code changed in")
    table = report.table()
    assert len(table.strip().splitlines()) == 2 + len(report.ROWS)
    page = f"intro\n{report.START}\nold\n{report.END}\nafter\n"
    assert report.render(page) == f"intro\n{report.START}\n{table}{report.END}\nafter\n"
    docs = (REPO / "docs" / "performance.md").read_text(encoding="utf-8")
    assert report.START in docs and report.END in docs


def test_check_says_whether_the_page_is_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _module("report")
    page = tmp_path / "performance.md"
    old = f"intro\n{report.START}\nold\n{report.END}\nafter\n"
    page.write_text(old, encoding="utf-8")
    monkeypatch.setattr(report, "PAGE", page)
    assert report.main(["--check"]) == 1
    assert page.read_text(encoding="utf-8") == old  # --check writes nothing
    page.write_text(report.render(old), encoding="utf-8")  # what `main([])` writes
    assert report.main(["--check"]) == 0


def test_provenance_records_commit_time_load_cpus_and_versions() -> None:
    provenance = _module("_provenance")
    record = provenance.finish(provenance.begin())
    assert len(record["commit"]) == 40 and record["cpu_count"] >= 1
    assert len(record["load_avg_before"]) == len(record["load_avg_after"]) == 3
    assert record["started_at"] <= record["finished_at"]
    assert {"python", "numpy", "pyarrow"} <= set(record["versions"])


def test_reliability_table_reads_gunicorn_alone_rows_old_and_new() -> None:
    """Local rows are gunicorn alone; an old run's in-process nginx rows are left out."""
    reliability = _module("reliability")
    old = [{"front": "nginx", "p99_ms": 13.3}, {"front": "none", "p99_ms": 11.9}]
    assert reliability.local_rows(old) == [{"front": "gunicorn", "p99_ms": 11.9}]
    slow = [{"front": "gunicorn", "slow_held": held, "p99_ms": 5.0 + held, "errors": held,
             "requests": 120} for held in (0, 64)]  # fmt: skip
    stack = [{**row, "front": "stack nginx", "errors": 0, "load": "1"} for row in slow]
    table = reliability.table({"slow_clients": slow, "stack": stack})
    local, nginx = table.splitlines()[2:]
    assert "c=4, gunicorn alone | p99 69.0 ms, 64/120 errors (p99 5.0 ms" in local
    assert "stack (its nginx)" in nginx and "0/120 errors" in nginx
    assert "0 errors (gunicorn alone: 64/120 errors)" in nginx
    recorded = reliability.table(reliability.json.loads(reliability.OUT.read_text()))
    assert "front=nginx" not in recorded and "gunicorn alone" in recorded
