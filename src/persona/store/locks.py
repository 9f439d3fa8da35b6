"""Cross-process locks on the survey store, for steps that must not run twice at once.

A Mage server can start a pipeline run's job again while the first one still runs (its
crash detection under heavy load); two copies of the same cycle step must then not both
train or promote. On PostgreSQL the lock is a session advisory lock named after the key;
waiting for it is bounded by `timeout_s`. The embedded SQLite store serves one user and
one process at a time: there the lock is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from persona.errors import StoreError


@contextmanager
def store_lock(engine: Engine, key: str, timeout_s: float) -> Iterator[None]:
    """Hold the exclusive lock `key` across processes while the block runs.

    Args:
        engine: The survey store.
        key: Name of the lock (e.g. ``"cycle:2025-03"``).
        timeout_s: Longest wait for the lock, seconds.

    Raises:
        StoreError: The lock was not obtained within `timeout_s`.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        try:
            conn.execute(text(f"SET lock_timeout = {int(timeout_s * 1000)}"))
            conn.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": key})
            conn.commit()
        except SQLAlchemyError as exc:
            conn.rollback()
            conn.execute(text("RESET lock_timeout"))
            conn.commit()
            raise StoreError(f"could not lock {key!r} within {timeout_s:g} s: {exc}") from exc
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
            conn.execute(text("RESET lock_timeout"))
            conn.commit()
