"""The worker's exit codes, in one place: the entry point, the loop and the job definition's
``retryStrategy`` (``infra/batch/job-definition.json`` retries ``EXIT_STALLED``) speak of these."""

from __future__ import annotations

EXIT_OK = 0  # idle, FACEIDX_MAX_RUN_SECONDS reached, or stopped by a signal (unfinished work released)
EXIT_FAILURE = 1  # a persistent AWS or inference failure (nothing unwritten was deleted)
EXIT_BAD_CONFIG = 2  # a bad or missing FACEIDX_* value, a model folder without a pack, no such queue
EXIT_NO_GPU = 3  # FACEIDX_REQUIRE_GPU set but ONNX Runtime's CUDA provider is not the active one
EXIT_STALLED = 4  # an inference lane stuck for FACEIDX_PROGRESS_TIMEOUT_SECONDS (its messages released)
