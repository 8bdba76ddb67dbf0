"""Entry point: settings -> model -> AWS clients -> loop, and the process's exit code.

Exit codes: those of :mod:`faceidx_worker.exits`, and 128+N on a second signal N (exit at once).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any

from faceidx_worker.exits import EXIT_BAD_CONFIG, EXIT_NO_GPU, EXIT_STALLED
from faceidx_worker.jsonlog import configure_logging, dumps, emit_event
from faceidx_worker.settings import SettingsError, WorkerSettings, build_job_id, load_settings, read

log = logging.getLogger("faceidx_worker")

_REGION_IN_QUEUE_URL = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


def _startup_failure(env: Mapping[str, str], reason: str, code: int) -> int:
    """Even a job that never started prints a summary line, so log readers can count it."""
    emit_event(
        {
            "event": "summary",
            "images": 0,
            "faces": 0,
            "errors": 0,
            "images_per_s": 0.0,
            "idle_seconds": 0.0,
            "job_id": build_job_id(env),
            "queue_role": read(env, "queue_role").lower(),
            "dag_id": read(env, "dag_id"),
            "dag_run_id": read(env, "dag_run_id"),
            "exit_reason": reason,
            "exit_code": code,
        }
    )
    return code


def region_for(settings: WorkerSettings, env: Mapping[str, str]) -> str | None:
    """The configured region, else the one in the queue URL (``https://sqs.<region>.amazonaws.com``)."""
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        return region
    match = _REGION_IN_QUEUE_URL.match(settings.queue_url)
    return match.group(1) if match else None


def build_clients(settings: WorkerSettings, env: Mapping[str, str]) -> tuple[Any, Any]:
    """SQS and S3 clients with botocore's standard retry mode. ``AWS_ENDPOINT_URL`` is honoured by boto3."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=region_for(settings, env))
    # AWS_MAX_ATTEMPTS / AWS_RETRY_MODE are the SDK's standard variables (total attempts, mode);
    # without them: standard mode, 8 retries (about a minute of backoff before a failure is final).
    retries: dict[str, Any] = {"mode": env.get("AWS_RETRY_MODE") or "standard"}
    if env.get("AWS_MAX_ATTEMPTS"):
        retries["total_max_attempts"] = int(env["AWS_MAX_ATTEMPTS"])
    else:
        retries["max_attempts"] = 8
    config = Config(
        retries=retries,  # type: ignore[arg-type]
        max_pool_connections=settings.download_threads + 4,
        read_timeout=settings.receive_wait_seconds + 40,
        connect_timeout=10,
    )
    return session.client("sqs", config=config), session.client("s3", config=config)


def main(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    configure_logging("INFO")
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        log.error("bad configuration: %s. Fix %s in the job definition and resubmit", exc, exc.variable)
        return _startup_failure(env, "bad_config", EXIT_BAD_CONFIG)
    configure_logging(settings.log_level)

    from faceidx_worker.accel import CUDA

    gpu = cuda_offered()
    settings = settings.with_thread_plan(gpu=gpu, cores=os.cpu_count() or 1)
    if settings.require_gpu and not gpu:
        log.error(
            "FACEIDX_REQUIRE_GPU is set but no GPU is usable here (no NVIDIA device is visible, or this "
            "ONNX Runtime offers no CUDAExecutionProvider: the CPU build is installed?): refusing to run "
            "on the CPU. Check that the job asks for a GPU in resourceRequirements and that the image has "
            "onnxruntime-gpu, or unset FACEIDX_REQUIRE_GPU"
        )
        return _startup_failure(env, "no_gpu", EXIT_NO_GPU)
    loaded = load_packs(settings)
    if isinstance(loaded, str):
        log.error("bad configuration: FACEIDX_MODEL_DIR: %s", loaded)
        return _startup_failure(env, "bad_config", EXIT_BAD_CONFIG)
    model, packs = loaded
    if settings.require_gpu and model.active_provider != CUDA:
        log.error(
            "FACEIDX_REQUIRE_GPU is set but the model sessions run on %s, not CUDAExecutionProvider: no "
            "GPU is visible, or CUDA/cuDNN libraries are missing (check the job asks for a GPU in "
            "resourceRequirements and the image's CUDA 12 / cuDNN 9 base). Refusing to run on the CPU",
            model.session_providers(),
        )
        return _startup_failure(env, "no_gpu", EXIT_NO_GPU)
    loop = build_loop(settings, env, model, packs)
    install_signal_handlers(loop)
    log.info(
        "worker started: queue %s, output %s, model %s (version %s) on %s, job %s; %s inference lane(s), "
        "ONNX Runtime threads %s, %s decode thread(s), %s download threads",
        settings.queue_url,
        settings.output.describe(),
        model.name,
        model.version,
        model.active_provider,
        settings.job_id,
        settings.model.inference_threads,
        settings.model.ort_threads or "auto",
        settings.images.decode_threads,
        settings.download_threads,
    )
    exit_code = loop.run().exit_code
    if exit_code == EXIT_STALLED:
        # The stuck lane is still inside its call. Interpreter shutdown would tear ONNX Runtime down
        # under it (or wait on it): leave at once, the summary and the release are already done.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)
    return exit_code


def cuda_offered() -> bool:
    """The device has a GPU and ONNX Runtime offers CUDA (``accel.choose_providers``, the one choice)."""
    from faceidx_worker.accel import CUDA, AccelOptions, choose_providers, gpu_device_count, provider_name

    offered = choose_providers(AccelOptions(), gpu_present=gpu_device_count() > 0)
    return CUDA in [provider_name(provider) for provider in offered]


def load_packs(settings: WorkerSettings) -> tuple[Any, Any] | str:
    """(the default model pack, loaded; the folder's packs) or, when the folder holds no usable
    pack, what is wrong with it."""
    from faceidx_worker.model import InsightFaceModelPack
    from faceidx_worker.packs import ModelPackError, ModelPacks, PackChoiceError, choose_default_pack

    config = settings.model

    def make_pack(name: str, folder: Any, version: str | None = None) -> InsightFaceModelPack:
        return InsightFaceModelPack.from_settings(config, folder, name=name, version=version)

    try:
        pack_name, pack_dir = choose_default_pack(config.model_dir, config.model_pack)
        model = make_pack(pack_name, pack_dir, config.model_version)
        model.load()
    except (ModelPackError, PackChoiceError) as exc:
        return str(exc)
    return model, ModelPacks(model, config.model_dir, make_pack)


def build_loop(settings: WorkerSettings, env: Mapping[str, str], model: Any, packs: Any) -> Any:
    """The loop over real AWS clients: SQS queue, S3 loader, Parquet sink, metrics, crops."""
    from faceidx_worker.crops import CropWriter
    from faceidx_worker.fetch import S3ImageLoader
    from faceidx_worker.loop import WorkerLoop
    from faceidx_worker.metrics import EmfMetrics
    from faceidx_worker.queue import SqsWorkQueue
    from faceidx_worker.sink import ParquetSink

    sqs, s3 = build_clients(settings, env)
    images = settings.images
    loader = S3ImageLoader(
        s3,
        max_image_bytes=images.max_image_bytes,
        max_image_pixels=images.max_image_pixels,
        decode_min_side=images.decode_min_side,
        allowed_buckets=images.allowed_buckets,
        decode_threads=images.decode_threads,
        decode_mode=images.decode,
        det_size=settings.model.det_size,
    )
    loop = WorkerLoop(
        settings,
        work_queue=SqsWorkQueue(
            sqs,
            settings.queue_url,
            wait_seconds=settings.receive_wait_seconds,
            max_messages=settings.receive_max_messages,
            visibility_timeout=settings.visibility_timeout,
        ),
        load_image=loader.load,
        model=model,
        packs=packs,
        sink=ParquetSink(
            settings.output,
            s3_client=s3 if settings.output.is_s3 else None,
            max_bytes=settings.flush_max_bytes,
            max_seconds=settings.flush_max_seconds,
        ),
        metrics=EmfMetrics(
            enabled=settings.metrics_enabled,
            namespace=settings.metrics_namespace,
            environment=settings.queue_role,
            model_pack=model.name,
        ),
    )
    if settings.crops_uri is not None:
        loop.crops = CropWriter(settings.crops_uri, s3_client=s3 if settings.crops_uri.is_s3 else None)
    return loop


def install_signal_handlers(loop: Any) -> None:
    """First SIGTERM/SIGINT: stop gracefully. A second one: exit at once with 128 + signal number."""

    received: list[int] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        received.append(signum)
        if len(received) > 1:
            line = dumps({"event": "log", "level": "WARNING", "message": f"second {name}: exiting at once"})
            os.write(sys.stdout.fileno(), (line + "\n").encode())
            os._exit(128 + signum)
        log.info("%s received: stop receiving, flush finished work, release the rest, exit", name)
        loop.request_stop(name.lower())

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
