"""Throughput options for the model sessions, and the device facts they are chosen from.

* **GPU presence** is read from the device (:func:`gpu_device_count`: the CUDA runtime's
  ``cudaGetDeviceCount`` through ctypes, else the ``/dev/nvidia<N>`` nodes, else ``nvidia-smi -L``),
  not from ONNX Runtime's provider list: onnxruntime-gpu lists ``CUDAExecutionProvider`` on a machine
  without a GPU, and the CPU fallback must then get the CPU thread plan.
* **CUDA sessions** use cuDNN's heuristic convolution algorithm choice (``cudnn_conv_algo_search``
  ``HEURISTIC``), so a recognizer batch size seen for the first time costs no exhaustive search; the
  model still warms up every batch-size bucket at load (:func:`batch_buckets`), and chunks are padded
  up to a bucket, so production only ever runs warmed shapes.
* **No spin-waiting**: every session's intra- and inter-op threads block between runs
  (``allow_spinning`` 0), on the GPU too, where those threads only wait for the device.
* **IO binding** (:func:`run_bound`): inputs are bound once and outputs are pre-allocated on the
  session's device; on the CPU this is ONNX Runtime's CPU binding path, with outputs equal to
  ``session.run``.
* **fp16** (:class:`AccelOptions` ``fp16``): through the TensorRT execution provider with its engine and
  timing caches (``trt_fp16_enable``), CUDA then CPU behind it. onnxconverter-common (an fp16 model on
  the CUDA EP) is not in the worker's lock, so the option is TensorRT's.

Nothing here imports ONNX Runtime at module level.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
_CUDART_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")
_DEV_NODE = re.compile(r"/dev/nvidia\d+$")

ProviderSpec = str | tuple[str, dict[str, str]]
GPU_LANES = 2  # inference lanes on a GPU: one lane's CPU work overlaps the other's GPU work


@dataclass(frozen=True)
class AccelOptions:
    """How the model sessions run. Defaults are the production GPU plan; the CPU ignores GPU-only ones."""

    io_binding: bool = True
    cudnn_conv_algo_search: str = "HEURISTIC"  # HEURISTIC | EXHAUSTIVE | DEFAULT
    fp16: bool = False  # TensorRT EP with fp16 kernels (engine cache below)
    trt_cache_dir: Path = Path("/tmp/faceidx-trt-cache")
    batch_detect: bool = True  # one detector call per batch and size when the export has a batch axis
    gpu_decode: bool = False  # nvImageCodec JPEG decoding, CPU fallback (faceidx_worker.gpu_decode)
    gpu_lanes: int = GPU_LANES

    def __post_init__(self) -> None:
        if self.cudnn_conv_algo_search not in ("HEURISTIC", "EXHAUSTIVE", "DEFAULT"):
            raise ValueError(
                f"cudnn_conv_algo_search {self.cudnn_conv_algo_search!r}: "
                "use HEURISTIC, EXHAUSTIVE or DEFAULT"
            )
        if self.gpu_lanes < 1:
            raise ValueError(f"gpu_lanes {self.gpu_lanes} must be at least 1")


# -- device -------------------------------------------------------------------------------------
def _cuda_runtime_count() -> int | None:
    """``cudaGetDeviceCount`` through the CUDA runtime, or None when no runtime library loads."""
    for name in _CUDART_NAMES:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        status = library.cudaGetDeviceCount(ctypes.byref(count))
        return int(count.value) if status == 0 else 0  # e.g. 100: no device, 35: driver too old
    return None


def _device_nodes() -> int:
    return sum(1 for path in glob.glob("/dev/nvidia*") if _DEV_NODE.match(path))


def _nvidia_smi_count() -> int | None:
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return 0
    return sum(1 for line in result.stdout.splitlines() if line.startswith("GPU "))


def gpu_device_count() -> int:
    """How many NVIDIA GPUs this process can use, asked of the device, never of ONNX Runtime."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return 0
    count = _cuda_runtime_count()
    if count is not None:
        return count
    nodes = _device_nodes()
    if nodes:
        return nodes
    return _nvidia_smi_count() or 0


# -- sessions -----------------------------------------------------------------------------------
def provider_name(spec: ProviderSpec) -> str:
    return spec if isinstance(spec, str) else spec[0]


def choose_providers(
    options: AccelOptions, *, gpu_present: bool, available: list[str] | None = None
) -> list[ProviderSpec]:
    """TensorRT (fp16) / CUDA with their options when a GPU is present and the build offers them; else CPU."""
    if available is None:
        import onnxruntime

        available = list(onnxruntime.get_available_providers())
    if not gpu_present or CUDA not in available:
        return [CPU]
    cuda: ProviderSpec = (
        CUDA,
        {
            "cudnn_conv_algo_search": options.cudnn_conv_algo_search,
            "do_copy_in_default_stream": "1",
            "arena_extend_strategy": "kSameAsRequested",
        },
    )
    providers: list[ProviderSpec] = [cuda, CPU]
    if options.fp16:
        if TENSORRT in available:
            trt: ProviderSpec = (
                TENSORRT,
                {
                    "trt_fp16_enable": "True",
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": str(options.trt_cache_dir),
                    "trt_timing_cache_enable": "True",
                    "trt_timing_cache_path": str(options.trt_cache_dir),
                    "trt_max_workspace_size": str(2 << 30),
                },
            )
            providers.insert(0, trt)
        else:
            log.warning(
                "fp16 was asked for but this ONNX Runtime has no %s (available: %s): running fp32 on CUDA",
                TENSORRT,
                available,
            )
    return providers


def session_options(*, threads: int = 0) -> Any:
    """SessionOptions with blocking (non-spinning) thread pools; ``threads`` 0 leaves ORT's default."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def batch_buckets(largest: int) -> list[int]:
    """Batch sizes warmed up and padded to: powers of two below ``largest``, then ``largest``."""
    sizes = []
    size = 1
    while size < largest:
        sizes.append(size)
        size *= 2
    sizes.append(max(1, largest))
    return sizes


def bucket_for(count: int, buckets: list[int]) -> int:
    """The smallest bucket holding ``count`` items (``count`` itself beyond the largest)."""
    for size in buckets:
        if size >= count:
            return size
    return count


def pad_batch(blob: np.ndarray, size: int) -> np.ndarray:
    """``blob`` (N x ...) padded with zeros to ``size`` rows; the same array when already that size."""
    if blob.shape[0] >= size:
        return blob
    padded = np.zeros((size, *blob.shape[1:]), dtype=blob.dtype)
    padded[: blob.shape[0]] = blob
    return padded


def session_device(session: Any) -> str:
    """``cuda`` when the session's first provider is a GPU one, else ``cpu``."""
    first = session.get_providers()[0] if session.get_providers() else CPU
    return "cuda" if first in (CUDA, TENSORRT) else "cpu"


def run_bound(session: Any, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> list[Any]:
    """``session.run`` through an IO binding: inputs copied once, outputs allocated on the session's device.

    On a CUDA session the inputs go to the device in one copy each and the outputs stay there until
    the single copy back; on the CPU it is ONNX Runtime's CPU binding path (same floats as ``run``).
    """
    device = session_device(session)
    names = output_names or [output.name for output in session.get_outputs()]
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(value))
    for name in names:
        binding.bind_output(name, device)
    session.run_with_iobinding(binding)
    return list(binding.copy_outputs_to_cpu())
