"""The Mage stall watchdog (02_pipeline/mage_watchdog.py): its rule and its reading of Mage's DB."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "02_pipeline"))

import mage_watchdog as wd  # noqa: E402


def _run(rid: int, age: float, *blocks: str) -> wd.Run:
    return wd.Run(rid, "monthly_persona_cycle", {"month": "2025-03"}, age, blocks)


def test_a_run_is_stalled_only_when_no_block_started_in_time() -> None:
    assert wd.stalled(_run(1, 91, "initial", "initial"), 90)
    assert not wd.stalled(_run(1, 89, "initial", "initial"), 90)
    assert not wd.stalled(_run(1, 500, "completed", "initial"), 90)
    assert not wd.stalled(_run(1, 500, "running", "initial"), 90)


def test_each_stalled_run_is_fired_again_once_and_a_chain_at_most_twice() -> None:
    fired: dict[int, int] = {}
    first = wd.to_refire([_run(1, 100, "initial"), _run(2, 10, "initial")], 90, fired)
    assert [(r.id, place) for r, place in first] == [(1, 1)]
    fired.update({1: 1, -3: 1})  # run 3 is the watchdog's re-fire of run 1
    assert wd.to_refire([_run(1, 200, "initial")], 90, fired) == []  # handled already
    second = wd.to_refire([_run(3, 100, "initial")], 90, fired)
    assert [(r.id, place) for r, place in second] == [(3, 2)]
    fired.update({3: 2, -4: 2})
    assert wd.to_refire([_run(4, 100, "initial")], 90, fired) == []  # chain of two: stop


def test_runs_are_read_from_mages_database(tmp_path: Path) -> None:
    db = tmp_path / "mage-ai.db"
    assert wd.read_runs(db) == []  # not there yet
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE pipeline_run (id INTEGER, pipeline_uuid TEXT, variables TEXT,
                                   status TEXT, created_at TEXT);
        CREATE TABLE block_run (pipeline_run_id INTEGER, status TEXT);
        INSERT INTO pipeline_run VALUES
          (7, 'monthly_persona_cycle', '{"month": "2025-02"}', 'running',
           datetime('now', '-120 seconds')),
          (8, 'monthly_persona_cycle', '{}', 'completed', datetime('now', '-600 seconds'));
        INSERT INTO block_run VALUES (7, 'initial'), (7, 'initial'), (8, 'completed');
        """
    )
    conn.commit()
    conn.close()
    (run,) = wd.read_runs(db)
    assert run.id == 7 and run.variables == {"month": "2025-02"}
    assert 100 < run.age_s < 400 and run.block_statuses == ("initial", "initial")
    assert wd.stalled(run, 90)
