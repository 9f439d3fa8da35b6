"""The model a worker serves, swapped atomically when the registry alias moves.

`ModelHolder.current` is one attribute holding an immutable `LoadedModel`; a request reads
it once and uses that object to the end, so a swap never mixes two versions in one
response. A daemon thread (one per worker process, started lazily after fork) asks the
`ModelSource` every `interval_s` which version the alias points at and loads it when it
differs. A failed load keeps the old model serving and is logged; `last_error` shows it
until the next successful check. The holder only reads: governing a champion move made
outside the platform is the governance receiver's job (`persona.governance`), not the API's.

Nothing here waits on the registry in a request or at start: the first load runs in the
reload thread. A `ModelCache` (optional) keeps the last model loaded on local disk, so a
worker started while the registry is unreachable serves that model (and says so) instead
of nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from persona.model import PersonaModel

log = logging.getLogger(__name__)


class Loaded(Protocol):
    """What the holder needs of a loaded model (`registry.LoadedModel` satisfies it)."""

    @property
    def model(self) -> PersonaModel:
        """The persona model."""

    @property
    def name(self) -> str:
        """Registered model name."""

    @property
    def version(self) -> str:
        """Registered version."""

    @property
    def alias(self) -> str | None:
        """Alias it was loaded through, if any."""

    @property
    def uri(self) -> str:
        """Where it was loaded from."""

    @property
    def tags(self) -> dict[str, str]:
        """Version tags (training months, data hash...)."""


@dataclass(frozen=True)
class ModelSource:
    """Where the served model comes from.

    Attributes:
        load: Loads the model the source points at now (raises on failure).
        target_version: Returns the version the alias points at now, or None when the
            source is pinned (local folder, fixed version) and never changes.
        description: Human-readable origin, for logs and `/model`.
    """

    load: Callable[[], Loaded]
    target_version: Callable[[], str | None]
    description: str


@dataclass(frozen=True)
class ReloadStatus:
    """The reload state of one worker (the ``reload`` object of `/model`).

    Attributes:
        source: Where the model comes from (`ModelSource.description`).
        interval_s: Seconds between checks of the alias.
        loaded_at: When the model in use was loaded (epoch seconds), if any.
        last_check: When the source was last checked, if ever.
        last_error: The last failure, until a check succeeds.
        from_cache: Whether the model in use is the local cache's.
        checking_since: When the check under way started, if one is.
    """

    source: str
    interval_s: float
    loaded_at: float | None
    last_check: float | None
    last_error: str | None
    from_cache: bool
    checking_since: float | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (keys in field order)."""
        return asdict(self)


class ModelCache(Protocol):
    """Local copy of the last model loaded (`serving.source.FileModelCache`)."""

    def save(self, loaded: Loaded) -> None:
        """Keep `loaded` (never raises)."""

    def load(self) -> Loaded | None:
        """The kept model, or None (never raises)."""


class ModelHolder:
    """Holds the live model of one worker and reloads it in the background.

    Args:
        source: Where to load from.
        interval_s: Seconds between checks of the alias.
        on_loaded: Called with each newly loaded model (metrics).
        on_failed: Called after each failed load (metrics).
        cache: Where the last loaded model is kept on disk (None: no cache).
    """

    def __init__(
        self,
        source: ModelSource,
        interval_s: float,
        on_loaded: Callable[[Loaded], None] | None = None,
        on_failed: Callable[[], None] | None = None,
        cache: ModelCache | None = None,
    ) -> None:
        self.source = source
        self.interval_s = interval_s
        self.current: Loaded | None = None
        self.loaded_at: float | None = None
        self.last_check: float | None = None
        self.last_error: str | None = None
        self._on_loaded = on_loaded
        self._on_failed = on_failed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._failed_target: str | None = None
        self.cache = cache
        self.from_cache = False
        self.checking_since: float | None = None
        self.first_check = threading.Event()

    def load_cached(self) -> bool:
        """Serve the cached model if there is one and nothing is loaded yet (disk only).

        Returns:
            True when the cached model is now served.
        """
        if self.cache is None or self.current is not None:
            return False
        cached = self.cache.load()
        if cached is None:
            return False
        self.current, self.loaded_at, self.from_cache = cached, time.time(), True
        if self._on_loaded is not None:
            self._on_loaded(cached)
        log.warning(
            "pid %s serving cached %s version %s until the registry answers",
            os.getpid(),
            cached.name,
            cached.version,
        )
        return True

    def refresh(self) -> bool:
        """Check the source once and load a new model if the target version moved.

        Never raises: a failure is logged, remembered in `last_error` and the current
        model keeps serving.

        Returns:
            True when a new model was swapped in.
        """
        with self._lock:
            self.checking_since = self.last_check = time.time()
            try:
                return self._check()
            finally:
                self.checking_since = None
                self.first_check.set()

    def _check(self) -> bool:
        try:
            target = self.source.target_version()
        except Exception as exc:
            self._failed(None, f"cannot read the model alias: {_one_line(exc)}")
            return False
        current = self.current
        if (
            current is not None
            and not self.from_cache
            and (target is None or target == current.version)
        ):
            self.last_error = None  # the registry answered: an old error is over
            self._failed_target = None
            return False
        try:
            loaded = self.source.load()
        except Exception as exc:
            self._failed(
                target,
                f"cannot load version {target} ({self.source.description}): {_one_line(exc)}",
            )
            return False
        self.current = loaded  # one reference assignment: atomic for readers
        self.loaded_at = time.time()
        self.last_error = None
        self._failed_target = None
        self.from_cache = False
        if self.cache is not None:
            self.cache.save(loaded)
        if self._on_loaded is not None:
            self._on_loaded(loaded)
        old = current.version if current is not None else None
        log.warning(
            "pid %s serving %s version %s (was %s)",
            os.getpid(),
            loaded.name,
            loaded.version,
            old,
        )
        return True

    def _failed(self, target: str | None, message: str) -> None:
        self.last_error = message
        if self._on_failed is not None:
            self._on_failed()
        if target is not None and target == self._failed_target:
            log.debug("%s (still failing)", message)
            return
        self._failed_target = target
        keeping = self.current.version if self.current is not None else "none"
        log.error("%s; keeping the model in use (version %s)", message, keeping)

    def ensure_started(self) -> None:
        """Start the reload thread in this process if it is not running here yet.

        Safe to call from every request or after fork: threads do not survive fork, so
        the thread is (re)started once per process id.
        """
        pid = os.getpid()
        if self._thread_pid == pid and self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="persona-model-reload", daemon=True)
        self._thread_pid = pid
        self._thread.start()

    def stop(self) -> None:
        """Stop the reload thread (tests)."""
        self._stop.set()
        if self._thread is not None and self._thread_pid == os.getpid():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        stop = self._stop
        # Nothing (or only the cache) served yet: check now, not after one interval.
        delay = 0.0 if self.current is None or self.from_cache else self.interval_s
        while not stop.wait(delay):
            delay = self.interval_s
            try:
                self.refresh()
            except Exception:  # refresh never raises; belt and braces for the thread
                log.exception("model reload check failed")

    def status(self) -> ReloadStatus:
        """Return the reload state for `/model`."""
        return ReloadStatus(
            source=self.source.description,
            interval_s=self.interval_s,
            loaded_at=self.loaded_at,
            last_check=self.last_check,
            last_error=self.last_error,
            from_cache=self.from_cache,
            checking_since=self.checking_since,
        )


def _one_line(exc: BaseException, limit: int = 500) -> str:
    """An exception as one bounded line (MLflow's messages span many lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
