"""The worker loop: receive -> download+decode (thread pool) -> batched inference -> Parquet -> delete.

Threads:

* **intake** (:mod:`faceidx_worker.intake`): the SQS receiver and the visibility heartbeat;
  every delete, release and hand-back goes through the one
  :class:`~faceidx_worker.tracking.MessageLedger`;
* **download pool** (``FACEIDX_DOWNLOAD_THREADS``): fetch and decode (at most
  ``FACEIDX_DECODE_THREADS`` decoding at once), so the models never wait on S3 or libjpeg;
* **inference lanes** (``FACEIDX_INFERENCE_THREADS``): each takes up to ``FACEIDX_IMAGE_BATCH``
  decoded images, detects, and embeds all their faces in batched calls. One lane on a GPU; on a CPU
  one per core, so single-threaded model calls keep every core busy;
* **the loop** (the main thread): does the book-keeping of computed batches (rows into the sink,
  hand-backs, counters, one JSON line per batch), and when the sink is due flushes it and deletes the
  messages whose images are all written. Only this thread touches the sink and deletes messages.

Flushing: when the sink reaches ``FACEIDX_FLUSH_MAX_BYTES`` or ``FACEIDX_FLUSH_MAX_SECONDS``, or as
soon as the queue looks drained (a poll came back empty, or, after a short batch, has waited half a
second unanswered) with every received image computed: a drained queue is written and deleted at
once, while a steady backlog never drains, so files stay large while there is work.

Stopping: a stop request (SIGTERM/SIGINT, idle for ``FACEIDX_MAX_IDLE_SECONDS``, running for
``FACEIDX_MAX_RUN_SECONDS``) stops receiving, lets the lanes finish the batch in hand, flushes what is
finished, deletes what is written, releases everything else with visibility 0 and returns exit code 0.
A fatal error (the sink or SQS failing after botocore's retries) releases what it can and returns exit
code 1: no unwritten message is ever deleted. The progress watchdog (no image finished for
``FACEIDX_PROGRESS_TIMEOUT_SECONDS`` while images wait: a lane is stuck) stops the heartbeat, stops the same
way and returns exit code 4, so the job fails and AWS Batch may retry it.
"""

from __future__ import annotations

import logging
import queue as queue_module
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from faceidx_worker.crops import CropWriter
from faceidx_worker.exits import EXIT_BAD_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_STALLED
from faceidx_worker.fetch import LoadedImage
from faceidx_worker.images import ImageError
from faceidx_worker.indexer import IndexedBatch, index_by_pack, stamp_of
from faceidx_worker.intake import QueueConfigError, SqsIntake
from faceidx_worker.jsonlog import emit_event
from faceidx_worker.metrics import EmfMetrics
from faceidx_worker.model import FaceModel
from faceidx_worker.packs import ModelPacks
from faceidx_worker.queue import SqsWorkQueue
from faceidx_worker.rows import ErrorReason, ModelStamp, outcome_rows, tombstone_row
from faceidx_worker.runstate import ProgressWatchdog, RunControl, RunStats
from faceidx_worker.settings import WorkerSettings
from faceidx_worker.sink import ParquetSink
from faceidx_worker.tracking import MessageLedger, WorkItem

log = logging.getLogger(__name__)

INFERENCE_FAILURE_LIMIT = 8  # consecutive inference_error images that mean the model itself is broken
_POLL = 0.2  # seconds a lane (or the loop) waits for its input before re-checking the state


@dataclass(frozen=True)
class ComputedBatch:
    """A lane's finished batch, waiting for the loop's book-keeping."""

    work: list[tuple[WorkItem, LoadedImage]]
    retry: list[tuple[WorkItem, LoadedImage]]
    indexed: IndexedBatch | None
    seconds: float
    removed: list[WorkItem] = field(default_factory=list)  # ObjectRemoved events: tombstone rows
    stamps: list[ModelStamp] = field(default_factory=list)  # the model of each ``work`` outcome


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    exit_reason: str
    summary: dict[str, Any]


class WorkerLoop:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        work_queue: SqsWorkQueue,
        load_image: Callable[[Any], LoadedImage],
        model: FaceModel,
        sink: ParquetSink,
        metrics: EmfMetrics,
        clock: Callable[[], float] = time.monotonic,
        crops: CropWriter | None = None,
        packs: ModelPacks | None = None,
    ) -> None:
        self.settings = settings
        self.crops = crops
        self.packs = packs or ModelPacks(model, settings.model.model_dir)
        self.load_image = load_image
        self.model = model
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.stats = RunStats()
        self.ledger = MessageLedger(work_queue, self.stats, retry_delay=settings.retry_delay_seconds)
        self.control = RunControl(clock)
        self._downloads: queue_module.Queue[WorkItem] = queue_module.Queue()
        self._ready: queue_module.Queue[tuple[WorkItem, LoadedImage]] = queue_module.Queue(
            maxsize=max(2 * settings.model.image_batch, settings.download_threads)
        )
        self._computed: queue_module.Queue[ComputedBatch] = queue_module.Queue()
        self._lanes: list[threading.Thread] = []
        self._started = clock()
        self._threads: list[threading.Thread] = []
        self._inference_failures = 0
        self._cpu_started = time.process_time()
        self.watchdog = ProgressWatchdog(settings.progress_timeout_seconds, clock)
        self._stalled: tuple[str, float, int] | None = None
        self.intake = SqsIntake(settings, self.ledger, self._downloads, self.control)

    @property
    def stamp(self) -> ModelStamp:
        """The model identity of this worker's rows (the model is loaded by then)."""
        return stamp_of(self.model)

    # -- control ------------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop (signal handlers call this). Idempotent: the first reason wins."""
        self.control.request_stop(reason)

    @property
    def stopping(self) -> bool:
        return self.control.stop.is_set()

    def _check_run_time(self) -> None:
        limit = self.settings.max_run_seconds
        ran = self.clock() - self._started
        if limit > 0 and ran >= limit and not self.stopping:
            log.info(
                "FACEIDX_MAX_RUN_SECONDS (%ss) reached after %ss with %s images indexed: stop receiving, "
                "write what is finished, release the %s messages still held (visibility 0) for the next "
                "worker, exit 0 before the job's attemptDurationSeconds timeout kills the container",
                f"{limit:g}",
                round(ran),
                self.stats.images,
                self.ledger.count(),
            )
            self.request_stop("max_run_time")

    def _check_progress(self) -> None:
        """Fire the progress watchdog when due: the heartbeat stops for good, the loop stops."""
        if self._stalled is not None:
            return
        self._stalled = self.watchdog.stalled()
        if self._stalled is None:
            return
        self.control.extending.clear()
        lane, waited, images = self._stalled
        log.error(
            "%s has been computing a batch of %s images for %ss with none finished "
            "(FACEIDX_PROGRESS_TIMEOUT_SECONDS %s): the lane is stuck, most likely in a hung native call "
            "(GPU driver, CUDA/cuDNN). Stopped extending visibility; writing what is finished, releasing "
            "the %s messages still held (visibility 0) and exiting %s so the job fails and AWS Batch may "
            "retry it. If the same images stall every worker, they reach the dead-letter queue after "
            "maxReceiveCount receives. Check the host (nvidia-smi, Xid errors in the instance log), or "
            "raise FACEIDX_PROGRESS_TIMEOUT_SECONDS if a batch is legitimately this slow",
            lane,
            images,
            round(waited),
            f"{self.watchdog.bound:g}",
            self.ledger.count(),
            EXIT_STALLED,
        )
        self.request_stop("stalled")

    # -- threads ------------------------------------------------------------------------------
    def _start_threads(self) -> None:
        self.intake.start()
        for number in range(self.settings.download_threads):
            self._threads.append(
                threading.Thread(target=self._download_loop, name=f"download-{number}", daemon=True)
            )
        for number in range(max(1, self.settings.model.inference_threads)):
            lane = threading.Thread(target=self._lane_loop, name=f"inference-{number}", daemon=True)
            self._lanes.append(lane)
        for thread in self._threads + self._lanes:
            thread.start()

    def _download_loop(self) -> None:
        while True:
            item = self._downloads.get()
            if self.stopping or item.tracked.finished:
                continue  # its message is (or will be) released or handed back
            # a removal becomes a tombstone row: there is nothing to read
            loaded = LoadedImage(ref=item.ref) if item.ref.removed_at is not None else self._load(item)
            while not self.stopping:
                try:
                    self._ready.put((item, loaded), timeout=_POLL)
                    break
                except queue_module.Full:
                    continue

    def _load(self, item: WorkItem) -> LoadedImage:
        try:
            return self.load_image(item.ref)
        except Exception as exc:  # a bug or an unexpected library error: one error row, logged
            log.exception("unexpected failure loading s3://%s/%s", item.ref.bucket, item.ref.key)
            return LoadedImage(
                ref=item.ref,
                error=ImageError(ErrorReason.DECODE_ERROR, f"unexpected {type(exc).__name__}: {exc}"),
            )

    # -- inference lanes ------------------------------------------------------------------------
    def _lane_loop(self) -> None:
        try:
            while not self.stopping:
                batch = self._gather()
                if batch:
                    self._computed.put(self._compute(batch))
        except Exception as exc:  # a bug, not a bad image: index_images turns those into error rows
            log.exception("inference lane %s failed", threading.current_thread().name)
            self.control.fail(exc)

    def _gather(self) -> list[tuple[WorkItem, LoadedImage]]:
        """Up to ``FACEIDX_IMAGE_BATCH`` ready images, but no more than this lane's share of what is ready."""
        try:
            batch = [self._ready.get(timeout=_POLL)]
        except queue_module.Empty:
            return []
        lanes = max(1, len(self._lanes))
        share = -(-(self._ready.qsize() + 1) // lanes)  # ceil: one lane must not take what two could share
        while len(batch) < min(self.settings.model.image_batch, share):
            try:
                batch.append(self._ready.get_nowait())
            except queue_module.Empty:
                break
        return [(item, loaded) for item, loaded in batch if not item.tracked.finished]

    def _compute(self, batch: list[tuple[WorkItem, LoadedImage]]) -> ComputedBatch:
        lane = threading.current_thread().name
        self.watchdog.started(lane, len(batch))
        try:
            return self._compute_batch(batch)
        finally:
            self.watchdog.finished(lane)

    def _compute_batch(self, batch: list[tuple[WorkItem, LoadedImage]]) -> ComputedBatch:
        started = time.perf_counter()
        removed = [(item, loaded) for item, loaded in batch if item.ref.removed_at is not None]
        batch = [(item, loaded) for item, loaded in batch if item.ref.removed_at is None]
        retry = [(item, loaded) for item, loaded in batch if loaded.retryable is not None]
        work = [(item, loaded) for item, loaded in batch if loaded.retryable is None]
        indexed, stamps = (
            index_by_pack(
                [loaded for _, loaded in work],
                self.model,
                self.packs,
                self.settings.model.quality_thresholds,
                crops=self.crops,
            )
            if work
            else (None, [])
        )
        return ComputedBatch(
            work=work,
            retry=retry,
            indexed=indexed,
            seconds=time.perf_counter() - started,
            removed=[item for item, _ in removed],
            stamps=stamps,
        )

    # -- book-keeping (the loop thread) -----------------------------------------------------------
    def _take_computed(self, timeout: float) -> None:
        """Record the lanes' finished batches, waiting up to ``timeout`` for the first one."""
        try:
            computed = self._computed.get(timeout=timeout) if timeout > 0 else self._computed.get_nowait()
        except queue_module.Empty:
            return
        while True:
            self._record(computed)
            try:
                computed = self._computed.get_nowait()
            except queue_module.Empty:
                return

    def _record(self, computed: ComputedBatch) -> None:
        started = time.perf_counter()
        for item, loaded in computed.retry:
            self._hand_back(item, loaded)
        self._record_removals(computed.removed)
        work, indexed = computed.work, computed.indexed
        if indexed is None:
            return
        indexed_at = datetime.now(UTC)
        faces = errors = 0
        reasons: Counter[ErrorReason] = Counter()
        for outcome in indexed.outcomes:
            if outcome.error_reason is ErrorReason.INFERENCE_ERROR:
                self._inference_failures += 1
            elif outcome.ok:
                self._inference_failures = 0
        if self._inference_failures >= INFERENCE_FAILURE_LIMIT:
            raise RuntimeError(
                f"{self._inference_failures} images in a row failed inference: the model or the GPU is "
                "broken, not the images (see the inference_error warnings above)"
            )
        for (item, _), outcome, stamp in zip(work, indexed.outcomes, computed.stamps, strict=True):
            rows = outcome_rows(outcome, model=stamp, job_id=self.settings.job_id, indexed_at=indexed_at)
            self.sink.add(rows, item)
            faces += len(outcome.faces)
            if outcome.error_reason is not None:
                errors += 1
                reasons[outcome.error_reason] += 1
        self.ledger.mark_processed([item for item, _ in work])
        stages = {
            "download": sum(loaded.download_seconds for _, loaded in work),
            "decode": sum(loaded.decode_seconds for _, loaded in work),
            "detect": indexed.timings.detect,
            "embed": indexed.timings.embed,
        }
        seconds = computed.seconds + time.perf_counter() - started
        self.stats.images += len(work)
        self.stats.faces += faces
        self.stats.errors += errors
        self.stats.batches += 1
        self.stats.errors_by_reason.update(reasons)
        self.control.last_activity = self.clock()
        emit_event(
            {
                "event": "batch",
                "images": len(work),
                "faces": faces,
                "errors": errors,
                "seconds": round(seconds, 4),
                "error_reasons": {reason.value: count for reason, count in reasons.items()},
                "stage_seconds": {name: round(value, 4) for name, value in stages.items()},
                "reduced_decodes": sum(1 for _, x in work if x.image is not None and x.image.factor > 1),
                "finer_decodes": sum(1 for _, x in work if _decoded_finer(x)),
                "pending_rows": self.sink.pending_rows,
                "in_flight_messages": self.ledger.count(),
            }
        )
        self.metrics.batch(images=len(work), faces=faces, errors_by_reason=reasons, stage_seconds=stages)

    def _record_removals(self, items: list[WorkItem]) -> None:
        """One ``removed`` row per ObjectRemoved event; its message is deleted once the row is written."""
        if not items:
            return
        stamp = self.stamp
        for item in items:
            assert item.ref.removed_at is not None
            ref, removed_at = item.ref, item.ref.removed_at
            row = tombstone_row(
                ref.bucket, ref.key, removed_at=removed_at, model=stamp, job_id=self.settings.job_id
            )
            self.sink.add([row], item)
            log.info(
                "s3://%s/%s was removed at %s: a tombstone row erases its faces up to then, in every "
                "model version",
                item.ref.bucket,
                item.ref.key,
                item.ref.removed_at.isoformat(),
            )
        self.ledger.mark_processed(items)
        self.stats.tombstones += len(items)
        self.control.last_activity = self.clock()

    def _hand_back(self, item: WorkItem, loaded: LoadedImage) -> None:
        self.stats.retried += 1
        log.warning(
            "no row for s3://%s/%s, it may be readable later: %s. Its message %s goes back to the queue "
            "in %ss; after maxReceiveCount receives SQS moves it to the dead-letter queue",
            item.ref.bucket,
            item.ref.key,
            loaded.retryable,
            item.tracked.message.message_id,
            self.settings.retry_delay_seconds,
        )
        self.ledger.hand_back(item)

    def _flush(self) -> None:
        result = self.sink.flush()
        if not result.tokens:
            return
        self.stats.rows_written += result.rows
        self.stats.files_written += len(result.files)
        self.metrics.flush(rows=result.rows, seconds=result.seconds)
        self.control.last_activity = self.clock()
        deleted = self.ledger.written(result.tokens)
        emit_event(
            {
                "event": "flush",
                "rows": result.rows,
                "files": result.files,
                "seconds": round(result.seconds, 4),
                "messages_deleted": deleted,
            }
        )

    def _drained(self) -> bool:
        """The queue came back empty and every received image is computed: write now."""
        return (
            self.sink.pending_tokens > 0
            and self.intake.queue_seems_drained()
            and self._ready.empty()
            and self._downloads.empty()
            and self.ledger.all_processed()
        )

    def _idle_expired(self) -> bool:
        if self.ledger.count() or not self._ready.empty() or not self._downloads.empty():
            return False
        if self.intake.awaiting_redrive():
            # an unreadable message released for SQS's redrive: exit once it is in the dead-letter
            # queue, not before (it would come back and start another job). It never resets the clock.
            return False
        started = self.intake.receive_started_at
        if started is not None and self.clock() - started > self.settings.receive_wait_seconds + 5:
            # a long poll that outlives its wait is botocore retrying a failing SQS: not an empty
            # queue. Exiting 0 here would report success; the receiver reports the failure instead.
            return False
        return self.clock() - self.control.last_activity >= self.settings.max_idle_seconds

    # -- run ----------------------------------------------------------------------------------
    def run(self) -> RunResult:
        self._cpu_started = time.process_time()
        self._started = self.clock()
        self.control.last_activity = self._started
        self._start_threads()
        exit_code = EXIT_OK
        try:
            while not self.stopping:
                self._take_computed(_POLL)
                if self.sink.should_flush() or self._drained():
                    self._flush()
                self.control.busy.settle(self.ledger.count)
                if self._idle_expired():
                    self.request_stop("idle")
                self._check_run_time()
                self._check_progress()
            if self.control.fatal is not None:  # no point waiting for the lanes
                raise self.control.fatal
            self._finish_lanes()
            if self.control.fatal is not None:  # a lane failed while finishing
                raise self.control.fatal
            self._flush()  # what is finished is written before anything is released
            if self._stalled is not None:
                exit_code = EXIT_STALLED
        except QueueConfigError as exc:
            log.error("%s: fix FACEIDX_QUEUE_URL (or the region/endpoint) and resubmit", exc)
            exit_code = EXIT_BAD_CONFIG
            self.request_stop("error")
        except Exception as exc:
            log.exception(
                "the worker is stopping on a persistent failure (%s): no unwritten message was deleted; "
                "they return to the queue. Check the job role's SQS/S3 permissions and FACEIDX_OUTPUT_URI",
                exc,
            )
            exit_code = EXIT_FAILURE
            self.request_stop("error")
        finally:
            self._shutdown()
        reason = self.control.reason or "stopped"
        summary = self.stats.summary(
            self.settings,
            reason=reason,
            exit_code=exit_code,
            run_seconds=self.clock() - self._started,
            busy_seconds=self.control.busy.seconds(),
            cpu_seconds=time.process_time() - self._cpu_started,
            model=(self.model.name, self.model.version),
        )
        emit_event(summary)
        self.metrics.final(
            images_per_second=summary["images_per_s"],
            idle_seconds=summary["idle_seconds"],
            run_seconds=summary["run_seconds"],
        )
        return RunResult(exit_code=exit_code, exit_reason=reason, summary=summary)

    def _finish_lanes(self) -> None:
        """Let the lanes finish the batch in hand (within half the grace period) and record it."""
        began = self.control.requested_at if self.control.requested_at is not None else self.clock()
        deadline = began + self.settings.shutdown_grace_seconds / 2
        for lane in self._lanes:
            lane.join(max(0.0, deadline - self.clock()))
        self._take_computed(0)
        busy = [lane.name for lane in self._lanes if lane.is_alive()]
        if busy:
            log.warning(
                "%s still computing at shutdown: their images are released, not written", ", ".join(busy)
            )

    def _shutdown(self) -> None:
        self.control.stop.set()
        held = self.ledger.count()
        try:
            self.ledger.release_all()
        except Exception:
            log.exception(
                "releasing %s unfinished messages failed: they reappear after their visibility timeout "
                "(%ss) instead of at once",
                held,
                self.settings.visibility_timeout,
            )
        began = self.control.requested_at if self.control.requested_at is not None else self.clock()
        budget = self.settings.shutdown_grace_seconds - (self.clock() - began)
        if not self.intake.join_receiver(budget):
            log.warning(
                "the SQS long poll did not return within the shutdown grace period; messages it "
                "receives stay invisible for up to %ss",
                self.settings.visibility_timeout,
            )
        self.control.busy.settle(lambda: 0)  # whatever was still in flight was released above


def _decoded_finer(loaded: Any) -> bool:
    """Whether the adaptive decode had to decode this image again at a finer scale for a face."""
    faces = loaded.image.faces if loaded.image is not None else None
    return faces is not None and faces.finer_decodes > 0
