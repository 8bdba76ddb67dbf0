"""Entry point: settings -> model -> AWS clients -> loop, and the process's exit code.

Exit codes: 0 idle, ``FACEIDX_MAX_RUN_SECONDS`` reached or stopped by a signal (work handed back); 1
persistent failure (nothing unwritten was deleted); 2 bad configuration (the message names the
variable); 3 ``FACEIDX_REQUIRE_GPU`` set but ONNX Runtime's CUDA provider is not the active one; 4 an
inference lane stuck for ``FACEIDX_PROGRESS_TIMEOUT_SECONDS`` (its messages released); 128+N a second
signal N (exit at once).
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

from faceidx_worker.jsonlog import configure_logging, dumps, emit_event
from faceidx_worker.settings import SettingsError, WorkerSettings, build_job_id, load_settings, read

log = logging.getLogger("faceidx_worker")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_CONFIG = 2
EXIT_NO_GPU = 3

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

    from faceidx_worker.model import CUDA, InsightFaceModelPack, ModelPackError, choose_providers

    gpu = CUDA in choose_providers()
    settings = settings.with_thread_plan(gpu=gpu, cores=os.cpu_count() or 1)
    if settings.require_gpu and not gpu:
        log.error(
            "FACEIDX_REQUIRE_GPU is set but no GPU is usable here (no NVIDIA device is visible, or this "
            "ONNX Runtime offers no CUDAExecutionProvider: the CPU build is installed?): refusing to run "
            "on the CPU. Check that the job asks for a GPU in resourceRequirements and that the image has "
            "onnxruntime-gpu, or unset FACEIDX_REQUIRE_GPU"
        )
        return _startup_failure(env, "no_gpu", EXIT_NO_GPU)
    from faceidx_worker.packs import ModelPacks, PackChoiceError, choose_default_pack

    def make_pack(name: str, folder: Any, version: str | None = None) -> InsightFaceModelPack:
        return InsightFaceModelPack.from_settings(settings, folder, name=name, version=version)

    try:
        pack_name, pack_dir = choose_default_pack(settings.model_dir, settings.model_pack)
        model = make_pack(pack_name, pack_dir, settings.model_version)
        model.load()
    except (ModelPackError, PackChoiceError) as exc:
        log.error("bad configuration: FACEIDX_MODEL_DIR: %s", exc)
        return _startup_failure(env, "bad_config", EXIT_BAD_CONFIG)
    packs = ModelPacks(model, settings.model_dir, make_pack)
    if settings.require_gpu and model.active_provider != CUDA:
        log.error(
            "FACEIDX_REQUIRE_GPU is set but the model sessions run on %s, not CUDAExecutionProvider: no "
            "GPU is visible, or CUDA/cuDNN libraries are missing (check the job asks for a GPU in "
            "resourceRequirements and the image's CUDA 12 / cuDNN 9 base). Refusing to run on the CPU",
            model.session_providers(),
        )
        return _startup_failure(env, "no_gpu", EXIT_NO_GPU)

    from faceidx_worker.crops import CropWriter
    from faceidx_worker.fetch import S3ImageLoader
    from faceidx_worker.loop import EXIT_STALLED, WorkerLoop
    from faceidx_worker.metrics import EmfMetrics
    from faceidx_worker.queue import SqsWorkQueue
    from faceidx_worker.sink import ParquetSink

    sqs, s3 = build_clients(settings, env)
    loader = S3ImageLoader(
        s3,
        max_image_bytes=settings.max_image_bytes,
        max_image_pixels=settings.max_image_pixels,
        decode_min_side=settings.decode_min_side,
        allowed_buckets=settings.allowed_buckets,
        decode_threads=settings.decode_threads,
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
        settings.inference_threads,
        settings.ort_threads or "auto",
        settings.decode_threads,
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
