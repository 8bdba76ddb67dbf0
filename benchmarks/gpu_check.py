"""The worker on a GPU: is CUDA really used, how fast are the models, how fast is the worker, end to end.

Made for a lent GPU machine with no network and no ``../shared`` (``benchmarks/gpu_stage.py`` carries
onnxruntime-gpu, the few wheels it lacks and the assets there), and runs anywhere: on a machine
without a GPU it runs with the CPU provider and says, first and last, that CUDA was not used.

    python benchmarks/gpu_check.py --models DIR --images DIR [--out DIR] [--corpus 64] [--quick]

``--models`` holds an insightface-style pack (one SCRFD detector, one ArcFace recognizer);
``--images`` holds photos, upscaled here to about 12 MP JPEGs (quality 95). Reports, and writes to
``OUT/gpu_check.json``:

1. device and sessions: GPUs seen by the device, each session's providers, and whether each model
   builds with CPU fallback disabled (``session.disable_cpu_ep_fallback``: no node left on the CPU);
2. detector (the batch-axis export, both sizes) and recognizer throughput at the worker's batch sizes;
3. the inference-only bound: pre-decoded, pre-sized tensors through batched detection and recognition;
4. fp16 (TensorRT EP): recognizer throughput and embedding drift against fp32, where TensorRT runs;
5. the real worker (``faceidx_worker.main``) draining in-memory stand-ins for SQS and S3, its images/s,
   the GPU busy % sampled by ``nvidia-smi`` meanwhile, and its fraction of the bound; once with a full
   decode (``FACEIDX_DECODE=scaled``, ``FACEIDX_DECODE_MIN_SIDE=0``) and once with the adaptive decode;
6. the decode paths side by side, each image decoded, detected and embedded in turn on one thread
   (images/s, CPU-ms per image, GPU busy %, faces and their drift): the CPU full decode, nvImageCodec's
   GPU decode copied back to the host (``faceidx_worker.gpu_decode``), the adaptive decode
   (``faceidx_worker.face_decode``), and the pixels kept on the device (``faceidx_worker.gpu_pixels``:
   nvImageCodec + CV-CUDA + IO binding). A path whose libraries or GPU are missing says why.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger("gpu_check")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "worker"))
sys.path.insert(0, str(REPO / "worker" / "image"))

from export_batched_detector import has_batch_axis, unfold_batch_axis  # noqa: E402

from faceidx_worker.accel import CUDA, TENSORRT, AccelOptions, gpu_device_count, run_bound  # noqa: E402
from faceidx_worker.face_decode import ADAPTIVE, FULL, decode_for_faces, detect_and_crop  # noqa: E402
from faceidx_worker.gpu_decode import GpuJpegDecoder  # noqa: E402
from faceidx_worker.gpu_pixels import index_on_device, load_device_pixels  # noqa: E402
from faceidx_worker.images import decode_image  # noqa: E402
from faceidx_worker.model import InsightFaceModelPack  # noqa: E402
from faceidx_worker.packs import find_pack_files  # noqa: E402
from faceidx_worker.scrfd import letterbox  # noqa: E402

DET_BATCHES = (1, 16)  # IMAGE_BATCH: the worker detects a whole batch per call
REC_BATCHES = (1, 16, 64)  # EMBED_BATCH 64, and a typical batch's faces


# -- in-memory AWS stand-ins ----------------------------------------------------------------------
class MemoryBody:
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)

    def close(self) -> None:
        self._data.close()


class MemoryS3:
    """``head_object`` / ``get_object`` over a dict, for the worker's S3 loader."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        return {"ContentLength": len(self.objects[Key]), "ETag": f'"{Key}"'}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        data = self.objects[Key]
        return {"Body": MemoryBody(data), "ContentLength": len(data), "ETag": f'"{Key}"'}


class MemorySqs:
    """``receive_message`` / ``delete_message_batch`` / ``change_message_visibility_batch`` over a list."""

    def __init__(self, bodies: list[str]) -> None:
        self._lock = threading.Lock()
        self.visible = [(str(uuid.uuid4()), body) for body in bodies]
        self.in_flight: dict[str, tuple[str, str]] = {}
        self.deleted = 0

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            taken, self.visible = (
                self.visible[: kwargs["MaxNumberOfMessages"]],
                self.visible[kwargs["MaxNumberOfMessages"] :],
            )
            messages = []
            for message_id, body in taken:
                handle = str(uuid.uuid4())
                self.in_flight[handle] = (message_id, body)
                messages.append(
                    {
                        "MessageId": message_id,
                        "ReceiptHandle": handle,
                        "Body": body,
                        "Attributes": {"ApproximateReceiveCount": "1"},
                    }
                )
        if not messages:
            time.sleep(min(1.0, float(kwargs.get("WaitTimeSeconds", 0))))
        return {"Messages": messages}

    def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            for entry in kwargs["Entries"]:
                if self.in_flight.pop(entry["ReceiptHandle"], None) is not None:
                    self.deleted += 1
        return {"Successful": [{"Id": e["Id"]} for e in kwargs["Entries"]], "Failed": []}

    def change_message_visibility_batch(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            for entry in kwargs["Entries"]:
                if entry["VisibilityTimeout"] == 0 and entry["ReceiptHandle"] in self.in_flight:
                    self.visible.append(self.in_flight.pop(entry["ReceiptHandle"]))
        return {"Successful": [{"Id": e["Id"]} for e in kwargs["Entries"]], "Failed": []}


# -- GPU busy sampling ----------------------------------------------------------------------------
class GpuBusySampler:
    """``nvidia-smi`` utilization.gpu every 200 ms while in use; None where there is no nvidia-smi."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuBusySampler:
        binary = shutil.which("nvidia-smi")
        if binary is not None:
            self._process = subprocess.Popen(
                [binary, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with contextlib.suppress(ValueError):
                self.samples.append(float(line.strip().split(",")[0]))

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)

    @property
    def busy_percent(self) -> float | None:
        return statistics.mean(self.samples) if self.samples else None


# -- steps ----------------------------------------------------------------------------------------
def build_pack(models: Path, out: Path) -> Path:
    """The worker image's pack: the detector with its batch axis restored, the recognizer as it is."""
    import onnx

    files = find_pack_files(models)
    pack = out / "pack"
    shutil.rmtree(pack, ignore_errors=True)
    pack.mkdir(parents=True)
    detector = onnx.load_model(str(files.detector))
    if not has_batch_axis(detector):
        detector = unfold_batch_axis(detector)
    onnx.save_model(detector, str(pack / files.detector.name))
    shutil.copyfile(files.recognizer, pack / files.recognizer.name)
    return pack


def build_corpus(images: Path, count: int, pixels: int) -> dict[str, bytes]:
    sources = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    corpus: dict[str, bytes] = {}
    rng = np.random.default_rng(20260101)
    index = 0
    while len(corpus) < count:
        image = cv2.imread(str(sources[index % len(sources)]), cv2.IMREAD_COLOR)
        index += 1
        if image is None:
            continue
        scale = (pixels / (image.shape[0] * image.shape[1])) ** 0.5
        big = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
        if index // len(sources) % 2:
            big = big[:, ::-1]
        noisy = np.clip(big.astype(np.float32) + rng.normal(0, 4, big.shape), 0, 255).astype(np.uint8)
        ok, data = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        corpus[f"img{len(corpus):04d}.jpg"] = data.tobytes()
    return corpus


def fallback_check(pack: Path, providers: list[Any]) -> dict[str, str]:
    """Each model built with CPU fallback disabled: ``ok``, or why ONNX Runtime refused."""
    import onnxruntime

    if all((p if isinstance(p, str) else p[0]) not in (CUDA, TENSORRT) for p in providers):
        return {"detector": "not checked: CUDA is not used", "recognizer": "not checked: CUDA is not used"}
    files = find_pack_files(pack)
    result = {}
    for role, path in (("detector", files.detector), ("recognizer", files.recognizer)):
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        try:
            onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
            result[role] = "ok: every node runs on the GPU provider"
        except Exception as exc:  # ORT's pybind errors share no useful base class
            log.warning("%s refused with CPU fallback disabled", role, exc_info=True)
            log.warning("%s refused with CPU fallback disabled", role, exc_info=True)
            result[role] = f"refused: {str(exc)[:300]}"
    return result


def timed(function: Any, iterations: int) -> float:
    function()  # warm (shapes are warmed at load; this is the allocator's first use of the buffers)
    started = time.perf_counter()
    for _ in range(iterations):
        function()
    return (time.perf_counter() - started) / iterations


def model_throughput(model: InsightFaceModelPack, iterations: int) -> dict[str, Any]:
    det, rec = model.detector, model.recognizer
    rows: dict[str, Any] = {"detector": {}, "recognizer": {}}
    for width, height in model.det_sizes:
        for batch in DET_BATCHES if model.batch_detector else (1,):
            blob = np.random.default_rng(1).normal(size=(batch, 3, height, width)).astype(np.float32)
            seconds = timed(lambda b=blob: run_bound(det.session, {det.input_name: b}), iterations)
            rows["detector"][f"{width}x{height} batch {batch}"] = round(batch / seconds, 1)
    size = rec.input_size[0]
    for batch in (1,) if model.batch_one else REC_BATCHES:
        blob = np.random.default_rng(2).normal(size=(batch, 3, size, size)).astype(np.float32)
        seconds = timed(lambda b=blob: run_bound(rec.session, {rec.input_name: b}), iterations)
        rows["recognizer"][f"batch {batch}"] = round(batch / seconds, 1)
    return rows


def ready_batches(
    model: InsightFaceModelPack, corpus: dict[str, bytes]
) -> tuple[list[Any], list[np.ndarray]]:
    """Per 16-image batch: detector blobs per size and the recognizer blob of its faces; all crops too."""
    from faceidx_worker.images import decode_image

    det, rec = model.detector, model.recognizer
    batches, all_crops = [], []
    names = sorted(corpus)
    for start in range(0, len(names), DET_BATCHES[-1]):
        pixels = [
            decode_image(corpus[n], max_pixels=10**9).pixels for n in names[start : start + DET_BATCHES[-1]]
        ]
        det_blobs = [
            cv2.dnn.blobFromImages(
                [letterbox(p, w, h)[0] for p in pixels],
                1.0 / det.input_std,
                (w, h),
                (det.input_mean,) * 3,
                swapRB=True,
            )
            for w, h in model.det_sizes
        ]
        crops = [
            model.align(p, points)
            for p, (_, marks) in zip(pixels, model.detect_many(pixels), strict=True)
            for points in marks
        ]
        all_crops += crops
        rec_blob = (
            cv2.dnn.blobFromImages(
                crops, 1.0 / rec.input_std, tuple(rec.input_size), (rec.input_mean,) * 3, swapRB=True
            )
            if crops
            else None
        )
        batches.append((det_blobs, rec_blob))
    return batches, all_crops


def inference_bound(model: InsightFaceModelPack, batches: list[Any], images: int, lanes: int) -> float:
    from concurrent.futures import ThreadPoolExecutor

    det, rec = model.detector, model.recognizer
    sessions = det.session if model.batch_detector else None

    def run(batch: Any) -> None:
        det_blobs, rec_blob = batch
        for blob in det_blobs:
            if sessions is not None:
                run_bound(sessions, {det.input_name: blob})
            else:
                for row in range(blob.shape[0]):
                    run_bound(det.session, {det.input_name: blob[row : row + 1]})
        if rec_blob is not None:
            for chunk in range(0, rec_blob.shape[0], model.embed_batch):
                run_bound(rec.session, {rec.input_name: rec_blob[chunk : chunk + model.embed_batch]})

    run(batches[0])
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        started = time.perf_counter()
        list(pool.map(run, batches))
        return images / (time.perf_counter() - started)


def fp16_drift(pack: Path, crops: list[np.ndarray], reference: np.ndarray, iterations: int) -> dict[str, Any]:
    import onnxruntime

    if TENSORRT not in onnxruntime.get_available_providers() or not gpu_device_count():
        return {
            "measured": False,
            "why": "no TensorRT execution provider with a GPU here: fp16 drift not measured",
        }
    model = InsightFaceModelPack(pack, accel=AccelOptions(fp16=True, trt_cache_dir=pack.parent / "trt-cache"))
    model.load()
    embeddings = model.embed(crops)
    cosines = np.sum(embeddings * reference, axis=1)
    return {
        "measured": True,
        "providers": model.session_providers(),
        "median_cosine": float(np.median(cosines)),
        "min_cosine": float(np.min(cosines)),
        "recognizer": model_throughput(model, iterations)["recognizer"],
    }


def run_worker(
    pack: Path, corpus: dict[str, bytes], out: Path, cuda: bool, decode: str = "full"
) -> dict[str, Any]:
    """``faceidx_worker.main`` itself, its AWS clients swapped for the in-memory stand-ins; ``decode``:
    ``full`` (every pixel, as the bound's tensors) or ``adaptive``."""
    from faceidx_worker import main as worker_main

    bodies = [
        json.dumps(
            {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {
                            "bucket": {"name": "gpu-check"},
                            "object": {"key": key, "size": len(data), "eTag": key},
                        },
                    }
                ]
            }
        )
        for key, data in corpus.items()
    ]
    sqs, s3 = MemorySqs(bodies), MemoryS3(corpus)
    output = out / "worker-output"
    shutil.rmtree(output, ignore_errors=True)
    env = {
        "FACEIDX_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/gpu-check",
        "FACEIDX_OUTPUT_URI": str(output),
        "FACEIDX_MODEL_DIR": str(pack),
        "FACEIDX_MAX_IDLE_SECONDS": "2",
        "FACEIDX_RECEIVE_WAIT_SECONDS": "1",
        "FACEIDX_METRICS_ENABLED": "0",
        # a full decode: like for like with the bound's tensors
        **({"FACEIDX_DECODE": "scaled", "FACEIDX_DECODE_MIN_SIDE": "0"} if decode == "full" else {}),
        **({"FACEIDX_DECODE": "adaptive"} if decode == "adaptive" else {}),
    }
    if cuda:  # the GPU plan's two lanes: one lane's CPU work overlaps the other's GPU work
        env["FACEIDX_INFERENCE_THREADS"] = str(AccelOptions().gpu_lanes)
    original = worker_main.build_clients
    worker_main.build_clients = lambda _settings, _env: (sqs, s3)  # type: ignore[assignment]
    captured = io.StringIO()
    try:
        with GpuBusySampler() as sampler, contextlib.redirect_stdout(captured):
            code = worker_main.main(env)
    finally:
        worker_main.build_clients = original  # type: ignore[assignment]
    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.startswith("{")]
    summary: dict[str, Any] = next((line for line in lines if line.get("event") == "summary"), {})
    return {
        "exit_code": code,
        "images_per_s": summary.get("images_per_s"),
        "images": summary.get("images"),
        "faces": summary.get("faces"),
        "threads": summary.get("threads"),
        "messages_deleted": sqs.deleted,
        "gpu_busy_percent": sampler.busy_percent,
    }


# -- decode paths ----------------------------------------------------------------------------------
Faces = tuple[np.ndarray, np.ndarray]  # boxes+scores, embeddings


def _cpu_full(model: InsightFaceModelPack, data: bytes) -> Faces:
    pixels = decode_image(data, max_pixels=10**9).pixels
    boxes, landmarks = model.detect(pixels)
    crops = [model.align(pixels, points) for points in landmarks]
    return boxes, model.embed(crops) if crops else np.empty((0, 0), np.float32)


def _face_scale(mode: str) -> Any:
    def index(model: InsightFaceModelPack, data: bytes) -> Faces:
        image = decode_for_faces(data, max_pixels=10**9, mode=mode, det_size=model.det_size)
        if image.faces is None:  # too small to reduce: a plain full decode
            return _cpu_full(model, data)
        boxes, _, crops = detect_and_crop(model, image.faces)
        return boxes, model.embed(crops) if crops else np.empty((0, 0), np.float32)

    return index


def _drift(reference: list[Faces], candidate: list[Faces]) -> dict[str, Any]:
    """Face-count changes and the cosine of each reference face to the candidate's nearest box."""
    changes, cosines = 0, []
    for (ref_boxes, ref_emb), (boxes, emb) in zip(reference, candidate, strict=True):
        changes += len(ref_boxes) != len(boxes)
        if not len(boxes):
            continue
        centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
        for box, embedding in zip(ref_boxes, ref_emb, strict=True):
            nearest = int(np.argmin(((centres - (box[:2] + box[2:4]) / 2) ** 2).sum(1)))
            cosines.append(float(embedding @ emb[nearest]))
    return {
        "count_changes": changes,
        "min_cosine": min(cosines) if cosines else None,
        "median_cosine": float(np.median(cosines)) if cosines else None,
    }


def decode_paths(model: InsightFaceModelPack, corpus: dict[str, bytes]) -> dict[str, Any]:
    """Each decode path over the corpus on one thread: images/s, CPU-ms per image, GPU busy %, faces,
    drift (the GPU decode against the CPU full decode, adaptive and device against the full decode with
    the same face-scale resampling)."""
    gpu_decoder = GpuJpegDecoder()
    device, why_not = load_device_pixels()

    def gpu_decode(model: InsightFaceModelPack, data: bytes) -> Faces:
        pixels = gpu_decoder(data, max_pixels=10**9).pixels
        boxes, landmarks = model.detect(pixels)
        crops = [model.align(pixels, points) for points in landmarks]
        return boxes, model.embed(crops) if crops else np.empty((0, 0), np.float32)

    def on_device(model: InsightFaceModelPack, data: bytes) -> Faces:
        assert device is not None
        boxes, _, embeddings = index_on_device(device, model, data)
        return boxes, embeddings

    paths: dict[str, tuple[Any, str | None]] = {
        "cpu_full": (_cpu_full, None),
        "cpu_full_face_scale": (_face_scale(FULL), None),
        "gpu_decode": (gpu_decode, None if gpu_decoder.on_gpu else "nvImageCodec is not available"),
        "adaptive": (_face_scale(ADAPTIVE), None),
        "device": (on_device, None if device is not None else why_not),
    }
    blobs = list(corpus.values())
    results: dict[str, Any] = {}
    found: dict[str, list[Faces]] = {}
    for name, (index, missing) in paths.items():
        if missing is not None:
            results[name] = {"available": False, "why": missing}
            continue
        index(model, blobs[0])  # warm-up
        with GpuBusySampler() as sampler:
            started, cpu_started = time.perf_counter(), time.process_time()
            found[name] = [index(model, data) for data in blobs]
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        results[name] = {
            "available": True,
            "images": len(blobs),
            "images_per_s": len(blobs) / seconds,
            "cpu_ms_per_image": 1000 * cpu_seconds / len(blobs),
            "gpu_busy_percent": sampler.busy_percent,
            "faces": sum(len(boxes) for boxes, _ in found[name]),
        }
    references = {
        "gpu_decode": "cpu_full",
        "adaptive": "cpu_full_face_scale",
        "device": "cpu_full_face_scale",
    }
    for name, reference in references.items():
        if name in found:
            results[name]["drift"] = {"against": reference, **_drift(found[reference], found[name])}
    results["gpu_decodes"] = gpu_decoder.gpu_decodes
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="a pack folder: SCRFD + ArcFace .onnx")
    parser.add_argument("--images", type=Path, required=True, help="photos to build the corpus from")
    parser.add_argument("--out", type=Path, default=REPO / "bench-output" / "gpu-check")
    parser.add_argument("--corpus", type=int, default=64, help="images in the end-to-end corpus")
    parser.add_argument("--pixels", type=int, default=12_000_000, help="pixels per corpus image")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="8 small images, 2 iterations: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.corpus, args.pixels, args.iterations = 8, 1_000_000, 2
    import onnxruntime

    args.out.mkdir(parents=True, exist_ok=True)
    gpus = gpu_device_count()
    report: dict[str, Any] = {
        "gpus_seen_by_the_device": gpus,
        "onnxruntime": onnxruntime.__version__,
        "available_providers": onnxruntime.get_available_providers(),
    }
    if shutil.which("nvidia-smi"):
        report["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, check=False
        ).stdout.strip()
    pack = build_pack(args.models, args.out)
    model = InsightFaceModelPack(pack, det_batch=DET_BATCHES[-1], embed_batch=REC_BATCHES[-1])
    model.load()
    cuda = model.active_provider == CUDA
    report["cuda_used"] = cuda
    report["session_providers"] = model.session_providers()
    report["cpu_fallback_disabled"] = fallback_check(pack, model.detector.session.get_providers())
    headline = "CUDA USED" if cuda else "CUDA NOT USED: every figure below is the CPU provider's"
    print(
        f"== {headline} (GPUs seen by the device: {gpus}; ONNX Runtime {onnxruntime.__version__}, "
        f"providers {report['available_providers']})",
        flush=True,
    )
    print(
        f"sessions: {report['session_providers']}; CPU fallback disabled: {report['cpu_fallback_disabled']}"
    )
    report["throughput"] = model_throughput(model, args.iterations)
    print(f"detector images/s: {report['throughput']['detector']}")
    print(f"recognizer faces/s: {report['throughput']['recognizer']}", flush=True)
    corpus = build_corpus(args.images, args.corpus, args.pixels)
    batches, crops = ready_batches(model, corpus)
    lanes = AccelOptions().gpu_lanes if cuda else min(os.cpu_count() or 1, 4)
    report["inference_bound_images_per_s"] = inference_bound(model, batches, len(corpus), lanes)
    print(
        f"inference-only bound: {report['inference_bound_images_per_s']:.1f} images/s ({lanes} lanes)",
        flush=True,
    )
    reference = model.embed(crops) if crops else np.empty((0, 0))
    report["fp16"] = fp16_drift(pack, crops, reference, args.iterations) if crops else {"measured": False}
    print(f"fp16: {report['fp16']}", flush=True)
    report["decode_paths"] = decode_paths(model, corpus)
    for name, path in report["decode_paths"].items():
        if not isinstance(path, dict):
            continue
        if not path["available"]:
            print(f"decode path {name}: not measured ({path['why']})")
            continue
        busy = path["gpu_busy_percent"]
        print(
            f"decode path {name}: {path['images_per_s']:.1f} images/s, {path['cpu_ms_per_image']:.0f} CPU-ms "
            f"per image, GPU busy {'n/a' if busy is None else f'{busy:.0f} %'}, {path['faces']} faces"
            + (f", drift {path['drift']}" if "drift" in path else ""),
            flush=True,
        )
    del model
    report["worker_adaptive"] = run_worker(pack, corpus, args.out, cuda, decode="adaptive")
    report["worker"] = run_worker(pack, corpus, args.out, cuda)
    rate = report["worker"]["images_per_s"] or 0.0
    report["fraction_of_bound"] = rate / report["inference_bound_images_per_s"]
    busy = report["worker"]["gpu_busy_percent"]
    print(
        f"worker end to end: {rate:.1f} images/s ({report['worker']['images']} images, "
        f"{report['worker']['faces']} faces, threads {report['worker']['threads']}); GPU busy "
        f"{'n/a (no nvidia-smi)' if busy is None else f'{busy:.0f} %'}; "
        f"{report['fraction_of_bound']:.0%} of the inference-only bound"
    )
    adaptive_rate = report["worker_adaptive"]["images_per_s"] or 0.0
    adaptive_busy = report["worker_adaptive"]["gpu_busy_percent"]
    print(
        f"worker end to end, adaptive decode: {adaptive_rate:.1f} images/s "
        f"({adaptive_rate / rate if rate else 0:.2f}x the full decode); GPU busy "
        f"{'n/a (no nvidia-smi)' if adaptive_busy is None else f'{adaptive_busy:.0f} %'}"
    )
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"== {headline}; report in {args.out / 'gpu_check.json'}")
    return 0 if report["worker"]["exit_code"] == 0 and report["worker_adaptive"]["exit_code"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
