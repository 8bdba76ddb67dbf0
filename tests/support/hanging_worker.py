"""The worker's real entry point with one model call that never returns (the progress-watchdog test).

``FACEIDX_TEST_HANG_SHAPE=H,W``: detecting an image decoded to H x W pixels blocks for good, as a hung
native call (GPU driver, CUDA) does. Everything else is the worker as the job definition runs it.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "worker"))

from faceidx_worker.main import main
from faceidx_worker.model import InsightFaceModelPack

_HANG_SHAPE = tuple(int(part) for part in os.environ["FACEIDX_TEST_HANG_SHAPE"].split(","))
_real_detect = InsightFaceModelPack.detect


def _detect(self: InsightFaceModelPack, pixels: Any) -> Any:
    if tuple(pixels.shape[:2]) == _HANG_SHAPE:
        threading.Event().wait()  # never set
    return _real_detect(self, pixels)


InsightFaceModelPack.detect = _detect  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
