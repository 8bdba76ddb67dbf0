"""What the worker's threads share with the loop: the stop request, activity and busy time, the
run's counters and the summary line built from them, and the progress watchdog.

:class:`RunControl` holds the stop, the first fatal error and the last activity (the idle exit);
:class:`BusyClock` the time with work in flight; :class:`RunStats` the counters and
:meth:`RunStats.summary`, the run's last stdout line; :class:`ProgressWatchdog` notices a stuck lane.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faceidx_worker.rows import ErrorReason

if TYPE_CHECKING:
    from faceidx_worker.settings import WorkerSettings


@dataclass
class RunStats:
    """Counters of one run, for the summary line (written by the receiver and the inference thread)."""

    images: int = 0
    faces: int = 0
    errors: int = 0
    batches: int = 0
    retried: int = 0
    messages_deleted: int = 0
    messages_released: int = 0
    messages_malformed: int = 0
    messages_skipped: int = 0
    tombstones: int = 0  # ObjectRemoved events recorded as removed rows
    rows_written: int = 0
    files_written: int = 0
    errors_by_reason: Counter[ErrorReason] = field(default_factory=Counter)

    def summary(
        self,
        settings: WorkerSettings,
        *,
        reason: str,
        exit_code: int,
        run_seconds: float,
        busy_seconds: float,
        cpu_seconds: float,
        model: tuple[str, str],
    ) -> dict[str, Any]:
        """The run's summary line: what was done, how fast (images per busy second), who ran it and why
        it stopped. ``model`` is the default pack's (name, version)."""
        busy = min(busy_seconds, run_seconds)
        rate = self.images / busy if self.images and busy > 0 else 0.0
        return {
            "event": "summary",
            "images": self.images,
            "faces": self.faces,
            "errors": self.errors,
            "images_per_s": round(rate, 3),
            "idle_seconds": round(run_seconds - busy, 3),
            "run_seconds": round(run_seconds, 3),
            "cpu_seconds": round(cpu_seconds, 3),
            "error_reasons": {error.value: n for error, n in self.errors_by_reason.items()},
            "batches": self.batches,
            "rows_written": self.rows_written,
            "files_written": self.files_written,
            "messages_deleted": self.messages_deleted,
            "messages_released": self.messages_released,
            "messages_malformed": self.messages_malformed,
            "messages_skipped": self.messages_skipped,
            "tombstones": self.tombstones,
            "retried": self.retried,
            "model_pack": model[0],
            "model_version": model[1],
            "threads": {
                "inference": max(1, settings.model.inference_threads),
                "decode": settings.images.decode_threads,
                "onnxruntime": settings.model.ort_threads,
            },
            "job_id": settings.job_id,
            "queue_role": settings.queue_role,
            "dag_id": settings.dag_id,
            "dag_run_id": settings.dag_run_id,
            "exit_reason": reason,
            "exit_code": exit_code,
        }


class BusyClock:
    """Wall time with work in flight: from the first received message until none is left.

    The receiver calls :meth:`start` after it tracks a message; the loop calls :meth:`settle` with the
    tracked count after every step. Both hold the clock's lock, so a message tracked while the loop
    reads a count of 0 restarts the clock right after it stops. Idle time is the run's rest.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._total = 0.0

    def start(self) -> None:
        with self._lock:
            if self._since is None:
                self._since = self._clock()

    def settle(self, in_flight: Callable[[], int]) -> None:
        with self._lock:
            if self._since is not None and in_flight() == 0:
                self._total += self._clock() - self._since
                self._since = None

    def seconds(self) -> float:
        with self._lock:
            running = self._clock() - self._since if self._since is not None else 0.0
            return self._total + running


class RunControl:
    """What the receiver and heartbeat threads share with the loop: the stop request, the first fatal
    error, the last activity (for the idle exit) and whether visibility may still be extended."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.stop = threading.Event()
        self.reason: str | None = None
        self.requested_at: float | None = None
        self.fatal: BaseException | None = None
        self.extending = threading.Event()  # cleared for good by the progress watchdog
        self.extending.set()
        self.busy = BusyClock(clock)
        self.last_activity = clock()

    def request_stop(self, reason: str) -> None:
        """Idempotent: the first reason wins."""
        if self.reason is None:
            self.reason = reason
            self.requested_at = self.clock()
        self.stop.set()

    def fail(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.request_stop("error")

    def touch(self) -> None:
        """Work arrived or finished: the idle clock restarts, the busy clock runs."""
        self.last_activity = self.clock()
        self.busy.start()


class ProgressWatchdog:
    """Notices an inference lane stuck in one batch: ``bound`` seconds without finishing its images.

    Each lane calls :meth:`started` before it computes a batch and :meth:`finished` after. The loop and
    the heartbeat (which must not keep extending the messages of a stuck lane) ask :meth:`stalled`.
    Per lane, so one hung lane is noticed while the others keep indexing, and a quiet queue or a slow
    download never counts. ``bound`` 0 switches the watchdog off.
    """

    def __init__(self, bound: float, clock: Callable[[], float]) -> None:
        self.bound = bound
        self._clock = clock
        self._lock = threading.Lock()
        self._computing: dict[str, tuple[float, int]] = {}  # lane -> (started at, images)

    def started(self, lane: str, images: int) -> None:
        with self._lock:
            self._computing[lane] = (self._clock(), images)

    def finished(self, lane: str) -> None:
        with self._lock:
            self._computing.pop(lane, None)

    def stalled(self) -> tuple[str, float, int] | None:
        """(lane, seconds, images) of the lane computing longest, once past the bound; else ``None``."""
        if self.bound <= 0:
            return None
        with self._lock:
            if not self._computing:
                return None
            now = self._clock()
            lane, (since, images) = min(self._computing.items(), key=lambda item: item[1][0])
        waited = now - since
        return (lane, waited, images) if waited >= self.bound else None
