"""The worker's configuration: every ``FACEIDX_*`` variable, parsed once into one frozen object.

Each setting is declared once, as a dataclass field whose metadata names its variable, description,
kind and bounds (:func:`faceidx_worker.envvars.setting`). :class:`WorkerSettings` holds the queue, run
and output settings, and the :class:`~faceidx_worker.model_settings.ModelSettings` and
:class:`~faceidx_worker.model_settings.ImageSettings` that search by photo also reads on their own.
:data:`SETTINGS` lists every variable; the docs' environment table is generated from it.

A bad or missing value raises :class:`SettingsError`, which names the variable; the entry point turns
it into exit code 2. Nothing else in the worker reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from faceidx_worker.accel import GPU_LANES
from faceidx_worker.envvars import (
    Derived,
    OutputLocation,
    Setting,
    SettingsError,
    parse_output_uri,
    read_env,
    setting,
    settings_of,
)
from faceidx_worker.model_settings import ImageSettings, ModelSettings

__all__ = [
    "SETTINGS",
    "Derived",
    "ImageSettings",
    "ModelSettings",
    "OutputLocation",
    "Setting",
    "SettingsError",
    "WorkerSettings",
    "build_job_id",
    "load_settings",
    "parse_output_uri",
    "read",
]

_MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """The queue, the output, the run's limits and its threads; ``model`` and ``images`` hold the
    rest, and ``job_id`` comes from AWS Batch. Built by :func:`load_settings`."""

    queue_url: str = setting(
        "QUEUE_URL",
        "url",
        None,
        "The SQS queue the worker drains (https://sqs.<region>.amazonaws.com/...).",
        required=True,
    )
    output: OutputLocation = setting(  # noqa: RUF009 - setting() returns a dataclasses.field
        "OUTPUT_URI",
        "uri",
        None,
        "Where Parquet files go: s3://bucket/prefix, or a local directory (file:// allowed); files land "
        "under <uri>/faces/dt=YYYY-MM-DD/.",
        required=True,
    )
    crops_uri: OutputLocation | None = setting(  # noqa: RUF009 - setting() returns a dataclasses.field
        "CROPS_URI",
        "uri",
        None,
        "Write each face's aligned 112x112 crop as a JPEG to <uri>/<model_version>/<face_id>.jpg (s3:// or a "
        "local directory) before its row, and set the row's crop_uri. Unset: no crops.",
    )
    max_idle_seconds: float = setting(
        "MAX_IDLE_SECONDS",
        "float",
        60.0,
        "Exit 0 after this long with nothing received and nothing in flight.",
        low=0,
    )
    max_run_seconds: float = setting(
        "MAX_RUN_SECONDS",
        "float",
        3.5 * 3600.0,
        "Hand over and exit 0 after running this long; below the job definition's 4 h "
        "attemptDurationSeconds, which kills the container without a retry. 0 turns it off.",
        low=0,
    )
    progress_timeout_seconds: float = setting(
        "PROGRESS_TIMEOUT_SECONDS",
        "float",
        600.0,
        "An inference lane computing one batch this long is stuck (a hung native call): stop extending "
        "visibility, release what is held, exit 4. 0 turns it off.",
        low=0,
    )
    require_gpu: bool = setting(
        "REQUIRE_GPU",
        "bool",
        False,
        "Refuse to run without ONNX Runtime's CUDA provider (exit 3); the image sets it for AWS Batch.",
    )
    receive_wait_seconds: int = setting(
        "RECEIVE_WAIT_SECONDS", "int", 20, "SQS long-poll wait per ReceiveMessage.", low=0, high=20
    )
    receive_max_messages: int = setting(
        "RECEIVE_MAX_MESSAGES", "int", 10, "Messages asked for per ReceiveMessage.", low=1, high=10
    )
    visibility_timeout: int = setting(
        "VISIBILITY_TIMEOUT",
        "int",
        300,
        "Seconds a received message stays invisible; the heartbeat extends it while the work lasts.",
        low=1,
        high=43200,
    )
    heartbeat_seconds: float = setting(
        "HEARTBEAT_SECONDS",
        "float",
        Derived("min(60, FACEIDX_VISIBILITY_TIMEOUT / 3)", lambda v: min(60.0, v["visibility_timeout"] / 3)),
        "How often the visibility of held messages is extended; below FACEIDX_VISIBILITY_TIMEOUT.",
        low=0.1,
    )
    retry_delay_seconds: int = setting(
        "RETRY_DELAY_SECONDS",
        "int",
        30,
        "A message handed back (an image denied or failing transiently) becomes visible again after this.",
        low=0,
        high=43200,
    )
    prefetch_messages: int = setting(
        "PREFETCH_MESSAGES",
        "int",
        20,
        "Receive only while fewer messages than this still have images to compute.",
        low=1,
        high=1000,
    )
    download_threads: int = setting(
        "DOWNLOAD_THREADS", "int", 8, "Threads downloading (and decoding) images.", low=1, high=256
    )
    flush_max_bytes: int = setting(
        "FLUSH_MAX_BYTES", "int", 64 * _MIB, "Write a Parquet file once this many bytes of rows wait.", low=1
    )
    flush_max_seconds: float = setting(
        "FLUSH_MAX_SECONDS",
        "float",
        60.0,
        "Write a Parquet file once rows have waited this long (a drained queue is written at once).",
        low=0,
    )
    shutdown_grace_seconds: float = setting(
        "SHUTDOWN_GRACE_SECONDS",
        "float",
        20.0,
        "Time to stop after a signal: finish the batch in hand, write, release; below Batch's 30 s kill.",
        low=1,
        high=23,
    )
    metrics_enabled: bool = setting(
        "METRICS_ENABLED", "bool", True, "Print CloudWatch embedded-metric-format lines."
    )
    metrics_namespace: str = setting(
        "METRICS_NAMESPACE", "str", "faceidx", "The CloudWatch namespace of those metrics."
    )
    queue_role: str = setting(
        "QUEUE_ROLE",
        "str",
        "local",
        "primary, secondary or local: the metrics' environment dimension and the summary's queue_role; "
        "set by the indexing DAG.",
    )
    dag_id: str = setting(
        "DAG_ID", "str", "", "The DAG that submitted the job, for the summary line; set by the DAG."
    )
    dag_run_id: str = setting(
        "DAG_RUN_ID", "str", "", "The DAG run that submitted the job, for the summary line; set by the DAG."
    )
    log_level: str = setting(
        "LOG_LEVEL",
        "str",
        "INFO",
        "DEBUG, INFO, WARNING or ERROR.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    )
    model: ModelSettings
    images: ImageSettings
    job_id: str = "local"

    def with_thread_plan(self, *, gpu: bool, cores: int) -> WorkerSettings:
        """Resolve ``FACEIDX_INFERENCE_THREADS``, ``FACEIDX_ORT_THREADS`` and ``FACEIDX_DECODE_THREADS``
        left at 0 (auto).

        * GPU: two inference lanes (``accel.GPU_LANES``: one lane's CPU work, letterboxing, NMS and
          alignment, overlaps the other's GPU calls), ONNX Runtime's own CPU thread count for the
          little CPU work its sessions do, and a decoder on every core but one (JPEG decoding is what
          the GPU waits for). ``gpu`` comes from the device (``accel.gpu_device_count``).
        * CPU: one lane per core (at most 4), each running its ONNX Runtime calls single-threaded,
          and a decoder per core. Single-threaded calls in parallel lanes keep every core busy, where
          one lane with a multi-threaded call leaves cores waiting between calls and fights the
          decoders for them. ``make bench`` measures the difference.
        """
        cores = max(1, cores)
        model, images = self.model, self.images
        lanes = model.inference_threads or (GPU_LANES if gpu else min(cores, 4))
        ort = model.ort_threads or (0 if gpu or lanes == 1 else 1)
        decoders = images.decode_threads or (max(1, cores - 1) if gpu else cores)
        return replace(
            self,
            model=replace(model, inference_threads=lanes, ort_threads=ort),
            images=replace(images, decode_threads=decoders),
        )


SETTINGS: tuple[Setting, ...] = (
    *settings_of(WorkerSettings),
    *settings_of(ModelSettings),
    *settings_of(ImageSettings),
)
BY_NAME: dict[str, Setting] = {spec.name: spec for spec in SETTINGS}


def read(env: Mapping[str, str], name: str) -> str:
    """One ``str`` setting's raw value or default, without validation (for startup failures)."""
    spec = BY_NAME[name]
    raw = env.get(spec.env)
    return raw.strip() if raw is not None and raw.strip() else str(spec.default)


def build_job_id(env: Mapping[str, str]) -> str:
    """``AWS_BATCH_JOB_ID`` plus ``:<array index>`` unless already there; ``local`` outside Batch."""
    job = (env.get("AWS_BATCH_JOB_ID") or "").strip() or None
    index = (env.get("AWS_BATCH_JOB_ARRAY_INDEX") or "").strip() or None
    if job is None:
        return f"local:{index}" if index is not None else "local"
    if index is not None and not job.endswith(f":{index}"):
        return f"{job}:{index}"
    return job


def load_settings(env: Mapping[str, str] | None = None) -> WorkerSettings:
    """Parse the environment once. Raises :class:`SettingsError` naming the first bad variable."""
    env = os.environ if env is None else env
    values, used = read_env(WorkerSettings, env)
    model = ModelSettings.from_env(env)
    images = ImageSettings.from_env(env, model)
    values["queue_role"] = values["queue_role"].lower()
    heartbeat, visibility = values["heartbeat_seconds"], values["visibility_timeout"]
    if heartbeat >= visibility:
        raise SettingsError(
            used["heartbeat_seconds"],
            f"{heartbeat:g} must be below {used['visibility_timeout']} ({visibility})",
        )
    return WorkerSettings(**values, model=model, images=images, job_id=build_job_id(env))
