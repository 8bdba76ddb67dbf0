"""The load run shared by tests/reliability/test_load.py (CI size) and benchmarks/soak.py (``make soak``).

N messages through moto, two (or more) real worker processes draining the same queue, small real
photos. Set-up: each source photo is uploaded once and copied server-side (S3 CopyObject) to N
distinct keys; the N S3 events are put straight into moto's queue (sending 10,000 through moto's HTTP
API is quadratic: moto recomputes every queue attribute on each SendMessage). Everything the workers
do (ReceiveMessage, GetObject, PutObject, DeleteMessageBatch, visibility heartbeats) goes over HTTP.

moto's SQS needs two fixes to stand in for SQS under this load, applied by :func:`moto_sqs_for_load`
for the duration of the run (they change the emulator, not the worker):

* it checks each message's visibility with datetime arithmetic on every ReceiveMessage, which at
  10,000 messages costs more CPU than the workers it serves: its clock becomes ``time.time()`` (the
  same value, about 20 times cheaper);
* it is not thread-safe: DeleteMessage rebuilds the message list without a lock, so two workers
  deleting at the same moment resurrect each other's deleted messages (seen in the first 10,000 run:
  272 images indexed twice, each exactly one visibility timeout apart, and 14 messages left behind),
  and two concurrent ReceiveMessage calls can hand out the same message or fail with a 500 ("Set
  changed size during iteration"). Deletes and receives on a queue are serialized with the queue's
  own lock, as SQS itself is consistent.

Checks: no message lost (the queue and its DLQ end empty, every message deleted), no image missing from
the index (every key has its true face count, once after dedup), peak RSS per worker (psutil, sampled
every 0.25 s) and throughput.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.support.moto_server import ACCOUNT_ID, REGION, MotoEndpoint
from tests.support.reliability_world import ReliabilityWorld, create_world, duplicate_groups, rows_by_key
from tests.support.worker_harness import WorkerProcess, WorkerRun, s3_event_body, s3_record

# Small real photos (14-33 KB, 250x250 to 320x240) and their face counts with det_500m at 0.6.
LOAD_SOURCES = {
    "lfw_Rob_Lowe_0001.jpg": 1,
    "lfw_Rob_Lowe_0002.jpg": 1,
    "lfw_Nathalie_Baye_0002.jpg": 1,
    "lfw_Teresa_Williams_0001.jpg": 1,
    "obama_small.jpg": 1,
    "no_face.png": 0,
}

WORKER_SETTINGS = {
    "FACEIDX_ORT_THREADS": 1,
    "FACEIDX_DOWNLOAD_THREADS": 2,
    "FACEIDX_IMAGE_BATCH": 16,
    "FACEIDX_RECEIVE_WAIT_SECONDS": 1,
    "FACEIDX_MAX_IDLE_SECONDS": 3,
    "FACEIDX_VISIBILITY_TIMEOUT": 120,
    "FACEIDX_FLUSH_MAX_SECONDS": 20,
}

MIB = 1024 * 1024


@contextlib.contextmanager
def moto_sqs_for_load() -> Iterator[None]:
    """moto's SQS with a cheap clock and serialized deletes and receives (see the module docstring)."""
    import moto.sqs.models as sqs_models

    clock = (sqs_models.unix_time, sqs_models.unix_time_millis)
    delete = sqs_models.Queue.delete_message
    receive = sqs_models.SQSBackend.receive_message

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else clock[0](dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else clock[1](dt)

    def locked_delete(queue: Any, receipt_handle: str) -> None:
        with queue._messages_lock:
            delete(queue, receipt_handle)

    def locked_receive(backend: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        # an RLock inside a Condition: the long poll's wait() inside still releases it while it waits
        with backend.get_queue(queue_name)._messages_lock:
            return receive(backend, queue_name, *args, **kwargs)

    sqs_models.unix_time, sqs_models.unix_time_millis = unix_time, unix_time_millis
    sqs_models.Queue.delete_message = locked_delete  # type: ignore[method-assign]
    sqs_models.SQSBackend.receive_message = locked_receive  # type: ignore[method-assign]
    try:
        yield
    finally:
        sqs_models.unix_time, sqs_models.unix_time_millis = clock
        sqs_models.Queue.delete_message = delete  # type: ignore[method-assign]
        sqs_models.SQSBackend.receive_message = receive  # type: ignore[method-assign]


@dataclass
class WorkerFigures:
    pid: int
    returncode: int
    exit_reason: str
    images: int
    faces: int
    errors: int
    images_per_s: float  # the worker's own figure: images / busy seconds
    idle_seconds: float
    peak_rss_mib: float
    rss_after_start_mib: float  # once the models are loaded (first batch)
    rss_late_mib: float  # at 90 % of this worker's images
    samples: int
    warnings: list[str] = field(default_factory=list)  # distinct WARNING/ERROR log messages (first 10)


@dataclass
class LoadReport:
    messages: int
    workers: list[WorkerFigures]
    setup_seconds: float
    drain_seconds: float  # first worker start -> queue empty (includes model loading)
    run_seconds: float  # first worker start -> last worker exit (includes the idle exit)
    images_indexed: int
    rows: int
    duplicate_rows: int
    parquet_files: int
    missing: list[str] = field(default_factory=list)
    wrong_face_counts: list[str] = field(default_factory=list)
    queue_left: int = 0
    dlq_left: int = 0
    duplicates_by_writers: dict[str, int] = field(default_factory=dict)  # "local:0+local:1" -> images
    duplicate_gap_seconds: list[float] = field(default_factory=list)  # between the two indexings (max 20)

    @property
    def throughput(self) -> float:
        """Images per second over the drain, all workers together."""
        return self.messages / self.drain_seconds if self.drain_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["throughput_images_per_s"] = round(self.throughput, 2)
        return data

    def lines(self) -> list[str]:
        lines = [
            f"messages: {self.messages}, workers: {len(self.workers)}",
            f"set-up (copies + enqueue): {self.setup_seconds:.1f} s",
            f"drain (start of the workers -> queue empty): {self.drain_seconds:.1f} s",
            f"throughput: {self.throughput:.1f} images/s all workers together "
            f"({sum(w.images_per_s for w in self.workers):.1f} images/s by the workers' busy-time figures)",
            f"index: {self.images_indexed} images, {self.rows} rows in {self.parquet_files} Parquet files, "
            f"{self.duplicate_rows} duplicate rows",
            f"lost: {len(self.missing)} images missing, {self.queue_left} messages left in the queue, "
            f"{self.dlq_left} in the DLQ, {len(self.wrong_face_counts)} wrong face counts",
        ]
        if self.duplicates_by_writers:
            gaps = ", ".join(f"{gap:.1f}" for gap in self.duplicate_gap_seconds)
            lines.append(
                f"images indexed more than once, by writers: {self.duplicates_by_writers}; gaps (s): {gaps}"
            )
        for number, w in enumerate(self.workers):
            lines.extend(f"worker {number} warning: {text}" for text in w.warnings)
            lines.append(
                f"worker {number}: exit {w.returncode} ({w.exit_reason}), {w.images} images, "
                f"{w.images_per_s:.1f} images/s busy, idle {w.idle_seconds:.1f} s, peak RSS "
                f"{w.peak_rss_mib:.0f} MiB (after start {w.rss_after_start_mib:.0f}, at 90 % "
                f"{w.rss_late_mib:.0f})"
            )
        return lines


def upload_corpus(world: ReliabilityWorld, assets: Path, count: int, threads: int = 8) -> dict[str, int]:
    """``count`` distinct keys, server-side copies of the sources; returns key -> face count. The events
    (with size and ETag, as S3 sends them) are put straight into moto's queue."""
    sources = sorted(LOAD_SOURCES)
    sizes = {}
    for name in sources:
        data = (assets / "images" / name).read_bytes()
        world.s3.put_object(Bucket=world.input_bucket, Key=f"sources/{name}", Body=data)
        sizes[name] = len(data)

    def copy(number: int) -> tuple[str, str, str]:
        name = sources[number % len(sources)]
        key = f"load/{number // 1000:02d}/{number:05d}-{name}"
        result = world.s3.copy_object(
            Bucket=world.input_bucket,
            Key=key,
            CopySource={"Bucket": world.input_bucket, "Key": f"sources/{name}"},
        )
        return key, name, result["CopyObjectResult"]["ETag"].strip('"')

    with ThreadPoolExecutor(threads) as pool:
        copies = list(pool.map(copy, range(count)))
    bodies = [
        s3_event_body([s3_record(world.input_bucket, key, size=sizes[name], etag=etag)])
        for key, name, etag in copies
    ]
    seed_queue(world.queue_url, bodies)
    return {key: LOAD_SOURCES[name] for key, name, _ in copies}


def seed_queue(queue_url: str, bodies: list[str]) -> None:
    """Put messages straight into moto's in-process SQS backend (as tests/support/sqs.py does)."""
    from moto.sqs.models import Message, sqs_backends

    queue = sqs_backends[ACCOUNT_ID][REGION].get_queue(queue_url.rstrip("/").rsplit("/", 1)[-1])
    messages = []
    for body in bodies:
        message = Message(str(uuid.uuid4()), body)
        message.mark_sent()
        messages.append(message)
    with queue._messages_lock:
        queue._messages.extend(messages)
        queue._messages_lock.notify_all()


class RssSampler:
    """Samples each worker's RSS and how many images it has finished, every ``interval`` seconds."""

    def __init__(self, workers: list[WorkerProcess], interval: float = 0.25) -> None:
        import psutil

        self.workers = workers
        self.interval = interval
        self.processes = [psutil.Process(w.process.pid) for w in workers if w.process is not None]
        self.samples: list[list[tuple[float, int, int]]] = [[] for _ in workers]  # (t, rss, images)
        self._parsed = [0 for _ in workers]
        self._images = [0 for _ in workers]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _images_done(self, index: int) -> int:
        lines = self.workers[index].text_lines
        for text in lines[self._parsed[index] : len(lines)]:
            if text.startswith('{"event":"batch"'):
                self._images[index] += int(json.loads(text).get("images", 0))
        self._parsed[index] = len(lines)
        return self._images[index]

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            now = time.monotonic()
            for index, process in enumerate(self.processes):
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue  # exited
                self.samples[index].append((now, rss, self._images_done(index)))
            self._stop.wait(self.interval)

    def figures(self, index: int) -> tuple[float, float, float]:
        """(peak, after start, at 90 % of the images) in MiB."""
        samples = self.samples[index]
        if not samples:
            return 0.0, 0.0, 0.0
        peak = max(rss for _, rss, _ in samples)
        total = samples[-1][2] or 1
        started = next((rss for _, rss, done in samples if done > 0), samples[0][1])
        late = next((rss for _, rss, done in samples if done >= 0.9 * total), samples[-1][1])
        return peak / MIB, started / MIB, late / MIB


def _warnings(run: WorkerRun) -> list[str]:
    found: list[str] = []
    for line in run.events("log"):
        message = str(line.get("message", ""))[:300]
        if line.get("level") in ("WARNING", "ERROR") and message not in found:
            found.append(message)
    return found[:10]


def run_load(
    moto: MotoEndpoint,
    *,
    assets: Path,
    model_dir: Path,
    messages: int,
    workers: int = 2,
    settings: dict[str, Any] | None = None,
    timeout: float | None = None,
    progress: Any = None,
) -> LoadReport:
    """Run the load on a freshly reset ``moto``; returns the figures (the caller asserts or prints)."""
    with moto_sqs_for_load():
        return _run_load(moto, assets, model_dir, messages, workers, settings, timeout, progress)


def _run_load(
    moto: MotoEndpoint,
    assets: Path,
    model_dir: Path,
    messages: int,
    workers: int,
    settings: dict[str, Any] | None,
    timeout: float | None,
    progress: Any,
) -> LoadReport:
    began = time.monotonic()
    world = create_world(moto, "load", visibility_timeout=120, max_receive_count=5)
    expected = upload_corpus(world, assets, messages)
    setup_seconds = time.monotonic() - began
    if progress:
        progress(f"set-up done in {setup_seconds:.1f} s: {messages} objects and messages")

    env = world.env(model_dir, **{**WORKER_SETTINGS, **(settings or {})})
    started = time.monotonic()
    # AWS_BATCH_JOB_ARRAY_INDEX gives each worker its own job_id (local:<n>) in the rows it writes
    processes = [
        WorkerProcess({**env, "AWS_BATCH_JOB_ARRAY_INDEX": str(number)}).start() for number in range(workers)
    ]
    sampler = RssSampler(processes).start()
    deadline = started + (timeout or max(180.0, messages * 0.5))
    drained_at = None
    last_report = started
    try:
        while time.monotonic() < deadline:
            visible, in_flight = world.counts()
            if drained_at is None and visible + in_flight == 0:
                drained_at = time.monotonic()
            if all(p.process is not None and p.process.poll() is not None for p in processes):
                break
            if progress and time.monotonic() - last_report >= 15:
                last_report = time.monotonic()
                progress(f"{time.monotonic() - started:6.0f} s: {visible} visible, {in_flight} in flight")
            time.sleep(0.5)
        runs = [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in processes]
    finally:
        sampler.stop()
        for p in processes:
            if p.process is not None and p.process.poll() is None:
                p.process.kill()
    finished = time.monotonic()

    rows = world.rows()
    grouped = rows_by_key(rows)
    missing = sorted(set(expected) - set(grouped))
    wrong = [
        f"{key}: {grouped[key][0]['face_count']} faces, expected {faces}"
        for key, faces in expected.items()
        if key in grouped and (grouped[key][0]["status"] != "ok" or grouped[key][0]["face_count"] != faces)
    ]
    figures = []
    for index, (process, run) in enumerate(zip(processes, runs, strict=True)):
        summary = (run.events("summary") or [{}])[-1]
        peak, after_start, late = sampler.figures(index)
        figures.append(
            WorkerFigures(
                pid=process.process.pid if process.process is not None else 0,
                returncode=run.returncode,
                exit_reason=str(summary.get("exit_reason", "none")),
                images=int(summary.get("images", 0)),
                faces=int(summary.get("faces", 0)),
                errors=int(summary.get("errors", 0)),
                images_per_s=float(summary.get("images_per_s", 0.0)),
                idle_seconds=float(summary.get("idle_seconds", 0.0)),
                peak_rss_mib=peak,
                rss_after_start_mib=after_start,
                rss_late_mib=late,
                samples=len(sampler.samples[index]),
                warnings=_warnings(run),
            )
        )
    writers, gaps = _duplicate_origins(rows)
    return LoadReport(
        messages=messages,
        workers=figures,
        setup_seconds=setup_seconds,
        drain_seconds=(drained_at or finished) - started,
        run_seconds=finished - started,
        images_indexed=len(grouped),
        rows=len(rows),
        duplicate_rows=sum(count - 1 for count in duplicate_groups(rows).values()),
        parquet_files=len(world.parquet_keys()),
        missing=missing,
        wrong_face_counts=wrong,
        queue_left=len(world.messages()),
        dlq_left=len(world.messages(dlq=True)),
        duplicates_by_writers=writers,
        duplicate_gap_seconds=gaps,
    )


def _duplicate_origins(rows: list[dict[str, Any]]) -> tuple[dict[str, int], list[float]]:
    """Which workers indexed a duplicated image, and how far apart in time (the first 20 images)."""
    indexings: dict[str, set[tuple[str, Any]]] = {}
    for row in rows:
        indexings.setdefault(row["image_key"], set()).add((row["job_id"], row["indexed_at"]))
    writers: dict[str, int] = {}
    gaps: list[float] = []
    for found in indexings.values():
        if len(found) < 2:
            continue
        label = "+".join(sorted(job for job, _ in found))
        writers[label] = writers.get(label, 0) + 1
        stamps = sorted(stamp for _, stamp in found)
        if len(gaps) < 20:
            gaps.append((stamps[-1] - stamps[0]).total_seconds())
    return writers, gaps
