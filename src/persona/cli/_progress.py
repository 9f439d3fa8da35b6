"""Progress on stderr for long work, shown only when stderr is a terminal.

A person running `persona data generate --n 1000000` or ingesting one large file sees a
spinner, the step being done, a bar over the steps and the elapsed time; a script, a pipe,
a Mage block or a `--json` caller reading stderr from a file sees nothing of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from persona.cli._common import console

Step = Callable[[str], None]
Done = Callable[..., None]


def shown() -> bool:
    """Whether progress is shown: stderr is a terminal (rich's detection, FORCE_TERMINAL...)."""
    return bool(console.is_terminal)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[tuple[Step, Done]]:
    """Show progress of `total` steps (or a spinner when None) while the block runs.

    Args:
        description: What is being done, shown until the first step starts.
        total: Number of steps, or None for work that cannot be counted.

    Yields:
        ``(start, done)``: ``start(text)`` names the step now running; ``done(text)``
        counts one step as finished.
    """
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not shown(),
    )
    with bar:
        task = bar.add_task(description, total=total)

        def start(text: str) -> None:
            bar.update(task, description=text)

        def done(text: str = "") -> None:
            bar.update(task, advance=1, description=text or bar.tasks[task].description)

        yield start, done


def size_text(nbytes: int) -> str:
    """Return a file size for people, e.g. ``85.2 MB``."""
    size = float(nbytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - loop always returns
