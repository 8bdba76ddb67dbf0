"""The worker's configuration: environment variables, parsed once into one frozen object.

A bad or missing value raises :class:`SettingsError`, which names the variable; the entry point turns
it into exit code 2. Nothing else in the worker reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_MIB = 1024 * 1024

# Below the job definition's 4 h timeout (infra/batch/job-definition.json, attemptDurationSeconds
# 14400), which kills the container and is not retried: the worker hands over cleanly 30 min before.
MAX_RUN_SECONDS = 3.5 * 3600.0
# A batch takes seconds on a GPU and well under a minute on a CPU: ten minutes in which no image
# finishes while images wait means a lane is stuck (a hung native call), not slow.
PROGRESS_TIMEOUT_SECONDS = 600.0


class SettingsError(ValueError):
    """A configuration value is missing or invalid. ``variable`` names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class OutputLocation:
    """Where Parquet files go: an S3 bucket and prefix, or a local directory."""

    bucket: str | None
    prefix: str
    local_dir: Path | None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def describe(self) -> str:
        if self.bucket is not None:
            return f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return str(self.local_dir)


@dataclass(frozen=True)
class WorkerSettings:
    """Every knob of the worker. Built by :func:`load_settings`; see the README's "Worker" section."""

    queue_url: str
    output: OutputLocation
    model_dir: Path
    model_name: str
    det_thresh: float = 0.5
    det_size: int = 640
    det_small_size: int = 128
    max_idle_seconds: float = 60.0
    max_run_seconds: float = MAX_RUN_SECONDS
    progress_timeout_seconds: float = PROGRESS_TIMEOUT_SECONDS
    allowed_buckets: frozenset[str] | None = None
    max_image_bytes: int = 50 * _MIB
    max_image_pixels: int = 100_000_000
    decode_min_side: int = 1280
    require_gpu: bool = False
    receive_wait_seconds: int = 20
    receive_max_messages: int = 10
    visibility_timeout: int = 300
    heartbeat_seconds: float = 60.0
    retry_delay_seconds: int = 30
    prefetch_messages: int = 20
    download_threads: int = 8
    decode_threads: int = 0  # 0 = auto, see with_thread_plan()
    image_batch: int = 16
    embed_batch: int = 64
    flush_max_bytes: int = 64 * _MIB
    flush_max_seconds: float = 60.0
    shutdown_grace_seconds: float = 20.0
    ort_threads: int = 0
    inference_threads: int = 0  # 0 = auto, see with_thread_plan()
    cpu_graph_rewrite: bool = True
    metrics_enabled: bool = True
    metrics_namespace: str = "faceidx"
    queue_role: str = "local"
    dag_id: str = ""
    dag_run_id: str = ""
    job_id: str = "local"
    log_level: str = "INFO"

    def with_thread_plan(self, *, gpu: bool, cores: int) -> WorkerSettings:
        """Resolve ``INFERENCE_THREADS``, ``ORT_THREADS`` and ``DECODE_THREADS`` left at 0 (auto).

        * GPU: one inference lane (the GPU runs one batch at a time; batching is the win there),
          ONNX Runtime's own CPU thread count for the little CPU work its sessions do, and a decoder
          on every core but one (JPEG decoding is what the GPU waits for; the lane keeps a core).
        * CPU: one lane per core (at most 4), each running its ONNX Runtime calls single-threaded,
          and a decoder per core. Single-threaded calls in parallel lanes keep every core busy, where
          one lane with a multi-threaded call leaves cores waiting between calls and fights the
          decoders for them. ``make bench`` measures the difference.
        """
        cores = max(1, cores)
        lanes = self.inference_threads or (1 if gpu else min(cores, 4))
        ort = self.ort_threads or (0 if gpu or lanes == 1 else 1)
        decoders = self.decode_threads or (max(1, cores - 1) if gpu else cores)
        return replace(self, inference_threads=lanes, ort_threads=ort, decode_threads=decoders)


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _required(env: Mapping[str, str], name: str, hint: str) -> str:
    value = _get(env, name)
    if value is None:
        raise SettingsError(name, f"is required: {hint}")
    return value


def _number(
    env: Mapping[str, str],
    name: str,
    default: T,
    kind: Callable[[str], T],
    *,
    low: float | None = None,
    high: float | None = None,
) -> T:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(name, f"{raw!r} is not a valid {kind.__name__}") from None
    number = float(value)  # type: ignore[arg-type]
    if low is not None and number < low:
        raise SettingsError(name, f"{raw} is below the minimum {low:g}")
    if high is not None and number > high:
        raise SettingsError(name, f"{raw} is above the maximum {high:g}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SettingsError(name, f"{raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def parse_output_uri(raw: str) -> OutputLocation:
    """``s3://bucket/prefix`` or a local directory (``file://`` allowed). Raises ``SettingsError``."""
    if raw.startswith("s3://"):
        rest = raw[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise SettingsError("OUTPUT_URI", f"{raw!r} has no bucket: use s3://bucket/prefix")
        return OutputLocation(bucket=bucket, prefix=prefix.strip("/"), local_dir=None)
    if "://" in raw and not raw.startswith("file://"):
        raise SettingsError("OUTPUT_URI", f"{raw!r}: only s3:// URIs or local directories are supported")
    path = Path(raw.removeprefix("file://")).expanduser()
    return OutputLocation(bucket=None, prefix="", local_dir=path)


def build_job_id(env: Mapping[str, str]) -> str:
    """``AWS_BATCH_JOB_ID`` plus ``:<array index>`` unless already there; ``local`` outside Batch."""
    job = _get(env, "AWS_BATCH_JOB_ID")
    index = _get(env, "AWS_BATCH_JOB_ARRAY_INDEX")
    if job is None:
        return f"local:{index}" if index is not None else "local"
    if index is not None and not job.endswith(f":{index}"):
        return f"{job}:{index}"
    return job


def load_settings(env: Mapping[str, str] | None = None) -> WorkerSettings:
    """Parse the environment once. Raises :class:`SettingsError` naming the first bad variable."""
    env = os.environ if env is None else env
    queue_url = _required(env, "QUEUE_URL", "the SQS queue URL the worker drains")
    if not queue_url.startswith(("https://", "http://")):
        raise SettingsError("QUEUE_URL", f"{queue_url!r} is not a queue URL (https://sqs.<region>...)")
    output = parse_output_uri(_required(env, "OUTPUT_URI", "s3://bucket/prefix or a local directory"))

    model_dir = Path(_required(env, "FACE_MODEL_DIR", "a folder holding the detector and recognizer .onnx"))
    if not model_dir.is_dir():
        raise SettingsError("FACE_MODEL_DIR", f"{model_dir} is not a directory")
    model_name = _get(env, "MODEL_NAME") or model_dir.resolve().name

    det_size = _number(env, "DET_SIZE", 640, int, low=32, high=4096)
    if det_size % 32:
        raise SettingsError("DET_SIZE", f"{det_size} must be a multiple of 32 (SCRFD's largest stride)")
    det_small_size = _number(env, "DET_SMALL_SIZE", 128, int, low=0, high=4096)
    if det_small_size % 32 or (det_small_size and det_small_size >= det_size):
        raise SettingsError(
            "DET_SMALL_SIZE", f"{det_small_size} must be 0 (off) or a multiple of 32 below DET_SIZE"
        )

    allowed_raw = _get(env, "ALLOWED_BUCKETS")
    allowed = None
    if allowed_raw is not None:
        allowed = frozenset(part.strip() for part in allowed_raw.split(",") if part.strip())
        if not allowed:
            raise SettingsError("ALLOWED_BUCKETS", "is set but names no bucket (comma-separated names)")

    visibility_timeout = _number(env, "VISIBILITY_TIMEOUT", 300, int, low=1, high=43200)
    heartbeat = _number(env, "HEARTBEAT_SECONDS", min(60.0, visibility_timeout / 3), float, low=0.1)
    if heartbeat >= visibility_timeout:
        raise SettingsError(
            "HEARTBEAT_SECONDS", f"{heartbeat:g} must be below VISIBILITY_TIMEOUT ({visibility_timeout})"
        )

    role = (_get(env, "FACEIDX_QUEUE_ROLE") or "local").lower()
    log_level = (_get(env, "LOG_LEVEL") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError("LOG_LEVEL", f"{log_level!r}: use DEBUG, INFO, WARNING or ERROR")

    return WorkerSettings(
        queue_url=queue_url,
        output=output,
        model_dir=model_dir,
        model_name=model_name,
        det_thresh=_number(env, "DET_THRESH", 0.5, float, low=0.01, high=0.99),
        det_size=det_size,
        det_small_size=det_small_size,
        max_idle_seconds=_number(env, "MAX_IDLE_SECONDS", 60.0, float, low=0),
        max_run_seconds=_number(env, "MAX_RUN_SECONDS", MAX_RUN_SECONDS, float, low=0),
        progress_timeout_seconds=_number(
            env, "PROGRESS_TIMEOUT_SECONDS", PROGRESS_TIMEOUT_SECONDS, float, low=0
        ),
        allowed_buckets=allowed,
        max_image_bytes=_number(env, "MAX_IMAGE_BYTES", 50 * _MIB, int, low=1),
        max_image_pixels=_number(env, "MAX_IMAGE_PIXELS", 100_000_000, int, low=1),
        decode_min_side=_number(env, "DECODE_MIN_SIDE", 2 * det_size, int, low=0),
        require_gpu=_bool(env, "REQUIRE_GPU", False),
        receive_wait_seconds=_number(env, "RECEIVE_WAIT_SECONDS", 20, int, low=0, high=20),
        receive_max_messages=_number(env, "RECEIVE_MAX_MESSAGES", 10, int, low=1, high=10),
        visibility_timeout=visibility_timeout,
        heartbeat_seconds=heartbeat,
        retry_delay_seconds=_number(env, "RETRY_DELAY_SECONDS", 30, int, low=0, high=43200),
        prefetch_messages=_number(env, "PREFETCH_MESSAGES", 20, int, low=1, high=1000),
        download_threads=_number(env, "DOWNLOAD_THREADS", 8, int, low=1, high=256),
        decode_threads=_number(env, "DECODE_THREADS", 0, int, low=0, high=256),
        image_batch=_number(env, "IMAGE_BATCH", 16, int, low=1, high=1024),
        embed_batch=_number(env, "EMBED_BATCH", 64, int, low=1, high=4096),
        flush_max_bytes=_number(env, "FLUSH_MAX_BYTES", 64 * _MIB, int, low=1),
        flush_max_seconds=_number(env, "FLUSH_MAX_SECONDS", 60.0, float, low=0),
        shutdown_grace_seconds=_number(env, "SHUTDOWN_GRACE_SECONDS", 20.0, float, low=1, high=23),
        ort_threads=_number(env, "ORT_THREADS", 0, int, low=0, high=256),
        inference_threads=_number(env, "INFERENCE_THREADS", 0, int, low=0, high=64),
        cpu_graph_rewrite=_bool(env, "CPU_GRAPH_REWRITE", True),
        metrics_enabled=_bool(env, "METRICS_ENABLED", True),
        metrics_namespace=_get(env, "METRICS_NAMESPACE") or "faceidx",
        queue_role=role,
        dag_id=_get(env, "FACEIDX_DAG_ID") or "",
        dag_run_id=_get(env, "FACEIDX_DAG_RUN_ID") or "",
        job_id=build_job_id(env),
        log_level=log_level,
    )
