"""The worker's configuration: one declarative table of environment variables, parsed once.

:data:`SETTINGS` declares every setting once: the attribute on :class:`WorkerSettings`, its
``FACEIDX_``-prefixed environment variable, the name it had before (still read for one release, with a
deprecation warning), its default, its type, its bounds and what it does. The docs' environment table
is generated from it. :func:`load_settings` parses the environment through the table into one frozen
:class:`WorkerSettings`.

A bad or missing value raises :class:`SettingsError`, which names the variable; the entry point turns
it into exit code 2. Nothing else in the worker reads ``os.environ``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from faceidx_worker.accel import GPU_LANES
from faceidx_worker.quality import QualityThresholds

log = logging.getLogger(__name__)

PREFIX = "FACEIDX_"
_QUALITY = QualityThresholds()  # the gate's defaults live with the gate
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_MIB = 1024 * 1024


class SettingsError(ValueError):
    """A configuration value is missing or invalid. ``variable`` names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Derived:
    """A default computed from settings declared above it. ``str()`` is how the docs show it."""

    text: str
    compute: Callable[[Mapping[str, Any]], Any]

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Setting:
    """One environment variable of the worker.

    ``default`` is a value, a :class:`Derived` default, or ``None`` when ``required`` (or when unset
    means "none"). ``kind`` is the type: ``str``, ``int``, ``float``, ``bool`` (1/0, true/false,
    yes/no, on/off), ``url``, ``uri``, ``dir`` or ``list`` (comma-separated). ``low``/``high`` bound
    numbers; ``choices`` bound a ``str``.
    """

    name: str
    env: str
    deprecated_env: str | None
    default: Any
    kind: str
    description: str
    required: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """The variables read for this setting, the one that wins first."""
        return (self.env,) if self.deprecated_env is None else (self.env, self.deprecated_env)


def _s(
    name: str,
    kind: str,
    default: Any,
    description: str,
    *,
    env: str | None = None,
    old: str | bool | None = True,
    **limits: Any,
) -> Setting:
    """``FACEIDX_<ENV>`` (``env`` defaults to the upper-cased name); ``old`` is the name before the
    prefix (``True``: the same ``<ENV>``; ``None``: there was none)."""
    suffix = env or name.upper()
    deprecated = suffix if old is True else (old or None)
    return Setting(
        name=name,
        env=PREFIX + suffix,
        deprecated_env=deprecated,
        default=default,
        kind=kind,
        description=description,
        **limits,
    )


SETTINGS: tuple[Setting, ...] = (
    _s(
        "queue_url",
        "url",
        None,
        "The SQS queue the worker drains (https://sqs.<region>.amazonaws.com/...).",
        required=True,
    ),
    _s(
        "output",
        "uri",
        None,
        "Where Parquet files go: s3://bucket/prefix, or a local directory (file:// allowed); files land "
        "under <uri>/faces/dt=YYYY-MM-DD/.",
        env="OUTPUT_URI",
        required=True,
    ),
    _s(
        "model_dir",
        "dir",
        None,
        "A model pack folder (one SCRFD detector and one ArcFace recognizer .onnx; the image bakes one in), "
        "or a folder of such packs as subfolders (FACEIDX_MODEL_PACK picks the default).",
        env="MODEL_DIR",
        old="FACE_MODEL_DIR",
        required=True,
    ),
    _s(
        "model_pack",
        "str",
        Derived("the model folder's name", lambda v: v["model_dir"].resolve().name),
        "The default model pack's name (a subfolder of FACEIDX_MODEL_DIR when that holds several), written "
        "to the model_pack column and the metrics' model_pack.",
        old="FACEIDX_MODEL_NAME",
    ),
    _s(
        "model_version",
        "str",
        None,
        "The model version written to every row's model_version column. Unset: <pack>-<first 12 hex of "
        "the sha256 over the pack's .onnx files in name order>, so new weights make a new version.",
        old=None,
    ),
    _s(
        "det_thresh",
        "float",
        0.5,
        "Detector score threshold: boxes scoring below it are dropped.",
        low=0.01,
        high=0.99,
    ),
    _s(
        "det_size",
        "int",
        640,
        "Detector input size in pixels; a multiple of 32 (SCRFD's largest stride).",
        low=32,
        high=4096,
    ),
    _s(
        "det_small_size",
        "int",
        128,
        "A second, cheaper detector pass size for small images; 0 turns it off, else a multiple of 32 below "
        "FACEIDX_DET_SIZE.",
        low=0,
        high=4096,
    ),
    _s(
        "crops_uri",
        "uri",
        None,
        "Write each face's aligned 112x112 crop as a JPEG to <uri>/<model_version>/<face_id>.jpg (s3:// or a "
        "local directory) before its row, and set the row's crop_uri. Unset: no crops.",
        env="CROPS_URI",
        old=None,
    ),
    _s(
        "genderage",
        "bool",
        False,
        "Estimate age and gender with the pack's genderage model (insightface's 96x96 genderage.onnx); "
        "a pack without one logs a warning and leaves the columns null.",
        old=None,
    ),
    _s(
        "quality_min_box_px",
        "float",
        _QUALITY.min_box_px,
        "Quality gate: a face whose shorter box side (original pixels) is below this gets "
        "SMALL_BOUNDING_BOX.",
        old=None,
        low=0,
    ),
    _s(
        "quality_min_sharpness",
        "float",
        _QUALITY.min_sharpness,
        "Quality gate: a face whose sharpness (variance of the Laplacian of the aligned 112x112 gray crop) "
        "is below this gets LOW_SHARPNESS.",
        old=None,
        low=0,
    ),
    _s(
        "quality_max_yaw",
        "float",
        _QUALITY.max_yaw,
        "Quality gate: a face turned sideways by more than this many degrees gets EXTREME_POSE.",
        old=None,
        low=0,
        high=180,
    ),
    _s(
        "quality_max_pitch",
        "float",
        _QUALITY.max_pitch,
        "Quality gate: a face looking up or down by more than this many degrees gets EXTREME_POSE.",
        old=None,
        low=0,
        high=180,
    ),
    _s(
        "quality_min_det_score",
        "float",
        _QUALITY.min_det_score,
        "Quality gate: a face the detector scores below this gets LOW_CONFIDENCE (FACEIDX_DET_THRESH "
        "drops faces altogether; this only flags them).",
        old=None,
        low=0,
        high=1,
    ),
    _s(
        "max_idle_seconds",
        "float",
        60.0,
        "Exit 0 after this long with nothing received and nothing in flight.",
        low=0,
    ),
    _s(
        "max_run_seconds",
        "float",
        3.5 * 3600.0,
        "Hand over and exit 0 after running this long; below the job definition's 4 h "
        "attemptDurationSeconds, which kills the container without a retry. 0 turns it off.",
        low=0,
    ),
    _s(
        "progress_timeout_seconds",
        "float",
        600.0,
        "An inference lane computing one batch this long is stuck (a hung native call): stop extending "
        "visibility, release what is held, exit 4. 0 turns it off.",
        low=0,
    ),
    _s(
        "allowed_buckets",
        "list",
        None,
        "Comma-separated buckets the worker may read; an image elsewhere gets a bucket_not_allowed row. "
        "Unset: any bucket.",
    ),
    _s(
        "max_image_bytes",
        "int",
        50 * _MIB,
        "Larger objects get a too_large row, checked before the body is read.",
        low=1,
    ),
    _s(
        "max_image_pixels",
        "int",
        100_000_000,
        "Images with more pixels get a too_many_pixels row, checked from the header before decoding.",
        low=1,
    ),
    _s(
        "decode_min_side",
        "int",
        Derived("2 x FACEIDX_DET_SIZE", lambda v: 2 * v["det_size"]),
        "A JPEG is decoded at 1/2, 1/4 or 1/8 scale while its long side stays at least this; 0 decodes at "
        "full resolution.",
        low=0,
    ),
    _s(
        "require_gpu",
        "bool",
        False,
        "Refuse to run without ONNX Runtime's CUDA provider (exit 3); the image sets it for AWS Batch.",
    ),
    _s("receive_wait_seconds", "int", 20, "SQS long-poll wait per ReceiveMessage.", low=0, high=20),
    _s("receive_max_messages", "int", 10, "Messages asked for per ReceiveMessage.", low=1, high=10),
    _s(
        "visibility_timeout",
        "int",
        300,
        "Seconds a received message stays invisible; the heartbeat extends it while the work lasts.",
        low=1,
        high=43200,
    ),
    _s(
        "heartbeat_seconds",
        "float",
        Derived("min(60, FACEIDX_VISIBILITY_TIMEOUT / 3)", lambda v: min(60.0, v["visibility_timeout"] / 3)),
        "How often the visibility of held messages is extended; below FACEIDX_VISIBILITY_TIMEOUT.",
        low=0.1,
    ),
    _s(
        "retry_delay_seconds",
        "int",
        30,
        "A message handed back (an image denied or failing transiently) becomes visible again after this.",
        low=0,
        high=43200,
    ),
    _s(
        "prefetch_messages",
        "int",
        20,
        "Receive only while fewer messages than this still have images to compute.",
        low=1,
        high=1000,
    ),
    _s("download_threads", "int", 8, "Threads downloading (and decoding) images.", low=1, high=256),
    _s(
        "decode_threads",
        "int",
        0,
        "Images decoded at once; 0 = auto (every core but one on a GPU, every core on a CPU).",
        low=0,
        high=256,
    ),
    _s("image_batch", "int", 16, "Images per inference batch.", low=1, high=1024),
    _s("embed_batch", "int", 64, "Faces per recognizer call.", low=1, high=4096),
    _s("flush_max_bytes", "int", 64 * _MIB, "Write a Parquet file once this many bytes of rows wait.", low=1),
    _s(
        "flush_max_seconds",
        "float",
        60.0,
        "Write a Parquet file once rows have waited this long (a drained queue is written at once).",
        low=0,
    ),
    _s(
        "shutdown_grace_seconds",
        "float",
        20.0,
        "Time to stop after a signal: finish the batch in hand, write, release; below Batch's 30 s kill.",
        low=1,
        high=23,
    ),
    _s(
        "ort_threads",
        "int",
        0,
        "ONNX Runtime intra-op threads per session; 0 = auto (its own default on a GPU or with one lane, "
        "1 per lane on a CPU).",
        low=0,
        high=256,
    ),
    _s(
        "inference_threads",
        "int",
        0,
        "Inference lanes; 0 = auto (1 on a GPU, one per core up to 4 on a CPU).",
        low=0,
        high=64,
    ),
    _s(
        "cpu_graph_rewrite",
        "bool",
        True,
        "Rewrite the recognizer's PRelu for ONNX Runtime's CPU provider (same outputs, faster).",
    ),
    _s("metrics_enabled", "bool", True, "Print CloudWatch embedded-metric-format lines."),
    _s("metrics_namespace", "str", "faceidx", "The CloudWatch namespace of those metrics."),
    _s(
        "queue_role",
        "str",
        "local",
        "primary, secondary or local: the metrics' environment dimension and the summary's queue_role; "
        "set by the indexing DAG.",
        old=None,
    ),
    _s(
        "dag_id", "str", "", "The DAG that submitted the job, for the summary line; set by the DAG.", old=None
    ),
    _s(
        "dag_run_id",
        "str",
        "",
        "The DAG run that submitted the job, for the summary line; set by the DAG.",
        old=None,
    ),
    _s(
        "log_level",
        "str",
        "INFO",
        "DEBUG, INFO, WARNING or ERROR.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


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


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """Every knob of the worker, one attribute per entry of :data:`SETTINGS` (defaults live there),
    plus ``job_id`` from AWS Batch. Built by :func:`load_settings`."""

    queue_url: str
    output: OutputLocation
    model_dir: Path
    model_pack: str
    model_version: str | None
    det_thresh: float
    det_size: int
    det_small_size: int
    crops_uri: OutputLocation | None
    genderage: bool
    quality_min_box_px: float
    quality_min_sharpness: float
    quality_max_yaw: float
    quality_max_pitch: float
    quality_min_det_score: float
    max_idle_seconds: float
    max_run_seconds: float
    progress_timeout_seconds: float
    allowed_buckets: frozenset[str] | None
    max_image_bytes: int
    max_image_pixels: int
    decode_min_side: int
    require_gpu: bool
    receive_wait_seconds: int
    receive_max_messages: int
    visibility_timeout: int
    heartbeat_seconds: float
    retry_delay_seconds: int
    prefetch_messages: int
    download_threads: int
    decode_threads: int
    image_batch: int
    embed_batch: int
    flush_max_bytes: int
    flush_max_seconds: float
    shutdown_grace_seconds: float
    ort_threads: int
    inference_threads: int
    cpu_graph_rewrite: bool
    metrics_enabled: bool
    metrics_namespace: str
    queue_role: str
    dag_id: str
    dag_run_id: str
    log_level: str
    job_id: str

    @property
    def quality_thresholds(self) -> QualityThresholds:
        return QualityThresholds(
            min_box_px=self.quality_min_box_px,
            min_sharpness=self.quality_min_sharpness,
            max_yaw=self.quality_max_yaw,
            max_pitch=self.quality_max_pitch,
            min_det_score=self.quality_min_det_score,
        )

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
        lanes = self.inference_threads or (GPU_LANES if gpu else min(cores, 4))
        ort = self.ort_threads or (0 if gpu or lanes == 1 else 1)
        decoders = self.decode_threads or (max(1, cores - 1) if gpu else cores)
        return replace(self, inference_threads=lanes, ort_threads=ort, decode_threads=decoders)


def lookup(env: Mapping[str, str], setting: Setting) -> tuple[str, str | None]:
    """(the variable that decides, its raw value or ``None`` when unset). The ``FACEIDX_`` name wins.

    A blank value counts as unset, except for a ``bool`` (blank means false).
    """
    for name in setting.names():
        raw = env.get(name)
        if raw is not None and (setting.kind == "bool" or raw.strip()):
            return name, raw
    return setting.env, None


def _warn_deprecated(env: Mapping[str, str], setting: Setting) -> None:
    old = setting.deprecated_env
    if old is None or old not in env:
        return
    if lookup(env, setting)[0] == setting.env:
        log.warning(
            "%s and %s are both set: %s wins and %s is ignored. Remove %s (deprecated, read for one more "
            "release)",
            setting.env, old, setting.env, old, old,
        )  # fmt: skip
    else:
        log.warning(
            "%s is deprecated and is read for one more release only: rename it to %s", old, setting.env
        )


def _bool(variable: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SettingsError(variable, f"{raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def _number(variable: str, raw: str, setting: Setting) -> int | float:
    kind: Callable[[str], int | float] = int if setting.kind == "int" else float
    try:
        value = kind(raw.strip())
    except ValueError:
        raise SettingsError(variable, f"{raw!r} is not a valid {setting.kind}") from None
    if setting.low is not None and value < setting.low:
        raise SettingsError(variable, f"{raw} is below the minimum {setting.low:g}")
    if setting.high is not None and value > setting.high:
        raise SettingsError(variable, f"{raw} is above the maximum {setting.high:g}")
    return value


def parse_output_uri(raw: str, variable: str = BY_NAME["output"].env) -> OutputLocation:
    """``s3://bucket/prefix`` or a local directory (``file://`` allowed). Raises ``SettingsError``."""
    if raw.startswith("s3://"):
        rest = raw[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise SettingsError(variable, f"{raw!r} has no bucket: use s3://bucket/prefix")
        return OutputLocation(bucket=bucket, prefix=prefix.strip("/"), local_dir=None)
    if "://" in raw and not raw.startswith("file://"):
        raise SettingsError(variable, f"{raw!r}: only s3:// URIs or local directories are supported")
    path = Path(raw.removeprefix("file://")).expanduser()
    return OutputLocation(bucket=None, prefix="", local_dir=path)


def _parse(variable: str, raw: str, setting: Setting) -> Any:
    kind = setting.kind
    if kind == "bool":
        return _bool(variable, raw)
    if kind in ("int", "float"):
        return _number(variable, raw, setting)
    text = raw.strip()
    if kind == "url":
        if not text.startswith(("https://", "http://")):
            raise SettingsError(variable, f"{text!r} is not a queue URL (https://sqs.<region>...)")
        return text
    if kind == "uri":
        return parse_output_uri(text, variable)
    if kind == "dir":
        path = Path(text)
        if not path.is_dir():
            raise SettingsError(variable, f"{path} is not a directory")
        return path
    if kind == "list":
        names = frozenset(part.strip() for part in text.split(",") if part.strip())
        if not names:
            raise SettingsError(variable, "is set but names no bucket (comma-separated names)")
        return names
    if setting.choices:
        text = text.upper()
        if text not in setting.choices:
            raise SettingsError(variable, f"{text!r}: use {', '.join(setting.choices)}")
    return text


def read(env: Mapping[str, str], name: str) -> str:
    """One ``str`` setting's raw value or default, without validation or warnings (startup failures)."""
    setting = BY_NAME[name]
    raw = lookup(env, setting)[1]
    return raw.strip() if raw is not None else str(setting.default)


def build_job_id(env: Mapping[str, str]) -> str:
    """``AWS_BATCH_JOB_ID`` plus ``:<array index>`` unless already there; ``local`` outside Batch."""
    job = (env.get("AWS_BATCH_JOB_ID") or "").strip() or None
    index = (env.get("AWS_BATCH_JOB_ARRAY_INDEX") or "").strip() or None
    if job is None:
        return f"local:{index}" if index is not None else "local"
    if index is not None and not job.endswith(f":{index}"):
        return f"{job}:{index}"
    return job


def _check_together(values: Mapping[str, Any], used: Mapping[str, str]) -> None:
    """The rules that tie settings together."""
    det_size, small = values["det_size"], values["det_small_size"]
    if det_size % 32:
        raise SettingsError(used["det_size"], f"{det_size} must be a multiple of 32 (SCRFD's largest stride)")
    if small % 32 or (small and small >= det_size):
        raise SettingsError(
            used["det_small_size"], f"{small} must be 0 (off) or a multiple of 32 below {used['det_size']}"
        )
    heartbeat, visibility = values["heartbeat_seconds"], values["visibility_timeout"]
    if heartbeat >= visibility:
        raise SettingsError(
            used["heartbeat_seconds"],
            f"{heartbeat:g} must be below {used['visibility_timeout']} ({visibility})",
        )


def load_settings(env: Mapping[str, str] | None = None) -> WorkerSettings:
    """Parse the environment once through :data:`SETTINGS`. Raises :class:`SettingsError` naming the
    first bad variable; logs one warning per deprecated name in use."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    used: dict[str, str] = {}
    for setting in SETTINGS:
        _warn_deprecated(env, setting)
        variable, raw = lookup(env, setting)
        used[setting.name] = variable
        if raw is not None:
            values[setting.name] = _parse(variable, raw, setting)
        elif setting.required:
            raise SettingsError(variable, f"is required: {setting.description}")
        elif isinstance(setting.default, Derived):
            values[setting.name] = setting.default.compute(values)
        else:
            values[setting.name] = setting.default
    values["queue_role"] = values["queue_role"].lower()
    _check_together(values, used)
    return WorkerSettings(**values, job_id=build_job_id(env))


def _check_table() -> None:
    """The table and :class:`WorkerSettings` name the same attributes (a typo fails at import)."""
    attributes = {f.name for f in fields(WorkerSettings)} - {"job_id"}
    if attributes != set(BY_NAME):
        raise AssertionError(f"SETTINGS and WorkerSettings differ: {attributes ^ set(BY_NAME)}")


_check_table()
