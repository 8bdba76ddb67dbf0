"""What turns a photo into embeddings: the model settings and the image settings.

Each field is one ``FACEIDX_*`` variable, declared once with :func:`faceidx_worker.envvars.setting`.
The worker reads them inside its :class:`~faceidx_worker.settings.WorkerSettings`; search by photo
reads them alone (:meth:`ModelSettings.from_env`, :meth:`ImageSettings.from_env`), with no queue or
output to invent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceidx_worker.envvars import Derived, SettingsError, read_env, setting
from faceidx_worker.quality import QualityThresholds

_QUALITY = QualityThresholds()  # the gate's defaults live with the gate
_MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """The model pack, detection, batches and threads, and the quality gate."""

    model_dir: Path = setting(  # noqa: RUF009 - setting() returns a dataclasses.field
        "MODEL_DIR",
        "dir",
        None,
        "A model pack folder (one SCRFD detector and one ArcFace recognizer .onnx; the image bakes one in), "
        "or a folder of such packs as subfolders (FACEIDX_MODEL_PACK picks the default).",
        required=True,
    )
    model_pack: str = setting(
        "MODEL_PACK",
        "str",
        Derived("the model folder's name", lambda v: Path(v["model_dir"]).resolve().name),
        "The default model pack's name (a subfolder of FACEIDX_MODEL_DIR when that holds several), written "
        "to the model_pack column and the metrics' model_pack.",
    )
    model_version: str | None = setting(
        "MODEL_VERSION",
        "str",
        None,
        "The model version written to every row's model_version column. Unset: <pack>-<first 12 hex of "
        "the sha256 over the pack's .onnx files in name order>, so new weights make a new version.",
    )
    det_thresh: float = setting(
        "DET_THRESH",
        "float",
        0.5,
        "Detector score threshold: boxes scoring below it are dropped.",
        low=0.01,
        high=0.99,
    )
    det_size: int = setting(
        "DET_SIZE",
        "int",
        640,
        "Detector input size in pixels; a multiple of 32 (SCRFD's largest stride).",
        low=32,
        high=4096,
    )
    det_small_size: int = setting(
        "DET_SMALL_SIZE",
        "int",
        128,
        "A second, cheaper detector pass size for small images; 0 turns it off, else a multiple of 32 below "
        "FACEIDX_DET_SIZE.",
        low=0,
        high=4096,
    )
    rotation_retry: bool = setting(
        "ROTATION_RETRY",
        "bool",
        False,
        "Detect an image in which no face is found again turned by 90, 180 and 270 degrees (a sideways "
        "photo without EXIF orientation); the turn whose best face scores highest wins, and its faces' "
        "rotation column says which. Three more detector calls per image without a face, and for a large "
        "one full-scale decodes: off by default (see the worker page).",
    )
    genderage: bool = setting(
        "GENDERAGE",
        "bool",
        False,
        "Estimate age and gender with the pack's genderage model (insightface's 96x96 genderage.onnx); "
        "a pack without one logs a warning and leaves the columns null.",
    )
    quality_min_box_px: float = setting(
        "QUALITY_MIN_BOX_PX",
        "float",
        _QUALITY.min_box_px,
        "Quality gate: a face whose shorter box side (original pixels) is below this gets "
        "SMALL_BOUNDING_BOX.",
        low=0,
    )
    quality_min_sharpness: float = setting(
        "QUALITY_MIN_SHARPNESS",
        "float",
        _QUALITY.min_sharpness,
        "Quality gate: a face whose sharpness (variance of the Laplacian of the aligned 112x112 gray crop) "
        "is below this gets LOW_SHARPNESS.",
        low=0,
    )
    quality_max_yaw: float = setting(
        "QUALITY_MAX_YAW",
        "float",
        _QUALITY.max_yaw,
        "Quality gate: a face turned sideways by more than this many degrees gets EXTREME_POSE.",
        low=0,
        high=180,
    )
    quality_max_pitch: float = setting(
        "QUALITY_MAX_PITCH",
        "float",
        _QUALITY.max_pitch,
        "Quality gate: a face looking up or down by more than this many degrees gets EXTREME_POSE.",
        low=0,
        high=180,
    )
    quality_min_det_score: float = setting(
        "QUALITY_MIN_DET_SCORE",
        "float",
        _QUALITY.min_det_score,
        "Quality gate: a face the detector scores below this gets LOW_CONFIDENCE (FACEIDX_DET_THRESH "
        "drops faces altogether; this only flags them).",
        low=0,
        high=1,
    )
    image_batch: int = setting("IMAGE_BATCH", "int", 16, "Images per inference batch.", low=1, high=1024)
    embed_batch: int = setting("EMBED_BATCH", "int", 64, "Faces per recognizer call.", low=1, high=4096)
    ort_threads: int = setting(
        "ORT_THREADS",
        "int",
        0,
        "ONNX Runtime intra-op threads per session; 0 = auto (its own default on a GPU or with one lane, "
        "1 per lane on a CPU).",
        low=0,
        high=256,
    )
    inference_threads: int = setting(
        "INFERENCE_THREADS",
        "int",
        0,
        "Inference lanes; 0 = auto (1 on a GPU, one per core up to 4 on a CPU).",
        low=0,
        high=64,
    )
    cpu_graph_rewrite: bool = setting(
        "CPU_GRAPH_REWRITE",
        "bool",
        True,
        "Rewrite the recognizer's PRelu for ONNX Runtime's CPU provider (same outputs, faster).",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModelSettings:
        """Parse the model's variables. Raises :class:`SettingsError` naming the first bad one."""
        values, used = read_env(cls, env)
        det_size, small = values["det_size"], values["det_small_size"]
        if det_size % 32:
            raise SettingsError(
                used["det_size"], f"{det_size} must be a multiple of 32 (SCRFD's largest stride)"
            )
        if small % 32 or (small and small >= det_size):
            raise SettingsError(
                used["det_small_size"],
                f"{small} must be 0 (off) or a multiple of 32 below {used['det_size']}",
            )
        return cls(**values)

    @property
    def quality_thresholds(self) -> QualityThresholds:
        return QualityThresholds(
            min_box_px=self.quality_min_box_px,
            min_sharpness=self.quality_min_sharpness,
            max_yaw=self.quality_max_yaw,
            max_pitch=self.quality_max_pitch,
            min_det_score=self.quality_min_det_score,
        )


@dataclass(frozen=True, kw_only=True)
class ImageSettings:
    """Which images are read, and how they are decoded."""

    allowed_buckets: frozenset[str] | None = setting(
        "ALLOWED_BUCKETS",
        "list",
        None,
        "Comma-separated buckets the worker may read; an image elsewhere gets a bucket_not_allowed row. "
        "Unset: any bucket.",
    )
    max_image_bytes: int = setting(
        "MAX_IMAGE_BYTES",
        "int",
        50 * _MIB,
        "Larger objects get a too_large row, checked before the body is read.",
        low=1,
    )
    max_image_pixels: int = setting(
        "MAX_IMAGE_PIXELS",
        "int",
        100_000_000,
        "Images with more pixels get a too_many_pixels row, checked from the header before decoding.",
        low=1,
    )
    decode: str = setting(
        "DECODE",
        "str",
        "adaptive",
        "How a JPEG is decoded. adaptive: detect on a 1/2, 1/4 or 1/8 DCT-scaled decode sized for "
        "FACEIDX_DET_SIZE, and decode again at a finer scale only when a face is too small there for its "
        "crop. full: every pixel, with the same face-scale resampling (the reference). scaled: the DCT "
        "reduction of FACEIDX_DECODE_MIN_SIDE with insightface's own resampling. PNG, WebP and CMYK "
        "images, and JPEGs under 2 x FACEIDX_DET_SIZE, are decoded in full in every mode.",
        choices=("adaptive", "full", "scaled"),
    )
    decode_min_side: int = setting(
        "DECODE_MIN_SIDE",
        "int",
        Derived("2 x FACEIDX_DET_SIZE", lambda v: 2 * v["det_size"]),
        "With FACEIDX_DECODE=scaled: a JPEG is decoded at 1/2, 1/4 or 1/8 scale while its long side stays "
        "at least this; 0 decodes at full resolution, resampled exactly as insightface's FaceAnalysis does.",
        low=0,
    )
    decode_threads: int = setting(
        "DECODE_THREADS",
        "int",
        0,
        "Images decoded at once; 0 = auto (every core but one on a GPU, every core on a CPU).",
        low=0,
        high=256,
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str], model: ModelSettings) -> ImageSettings:
        """Parse the image variables; the decode size follows ``model``'s detector size."""
        context: dict[str, Any] = {"det_size": model.det_size}
        return cls(**read_env(cls, env, context)[0])
