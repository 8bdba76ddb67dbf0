"""Worker metrics in CloudWatch's embedded metric format (EMF): JSON log lines with an ``_aws`` key.

CloudWatch Logs turns each line into metric data points, so the worker needs no PutMetricData call and
no extra permission. Namespace ``FACEIDX_METRICS_NAMESPACE`` (default ``faceidx``); dimensions ``environment``
(``FACEIDX_QUEUE_ROLE``: primary, secondary or local) and ``model_pack``. ``FACEIDX_METRICS_ENABLED=0`` turns
the lines off.

Lines and metrics (all values of one run add up to its ``summary`` line):

* per batch: ``ImagesIndexed``, ``FacesFound``, ``ErrorRows`` (Count) and ``DownloadSeconds``,
  ``DecodeSeconds``, ``DetectSeconds``, ``EmbedSeconds`` (Seconds, summed over the batch's images);
* per batch with errors, one line per reason: ``ErrorRows`` with the extra dimension ``reason``;
* per Parquet flush: ``WriteSeconds``, ``RowsWritten``;
* once, at exit: ``ImagesPerSecond`` (Count/Second), ``IdleSeconds``, ``RunSeconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from faceidx_worker.jsonlog import emit_event
from faceidx_worker.rows import ErrorReason

BASE_DIMENSIONS = ("environment", "model_pack")
STAGES = ("download", "decode", "detect", "embed")


class EmfMetrics:
    def __init__(
        self,
        *,
        enabled: bool,
        namespace: str,
        environment: str,
        model_pack: str,
        emit: Callable[[dict[str, Any]], None] = emit_event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = enabled
        self.namespace = namespace
        self.dimensions = {"environment": environment, "model_pack": model_pack}
        self.emit = emit
        self.clock = clock

    def _line(
        self, values: Mapping[str, tuple[float, str]], extra_dimensions: Mapping[str, str] | None = None
    ) -> None:
        if not self.enabled:
            return
        dimensions = dict(self.dimensions)
        dimensions.update(extra_dimensions or {})
        record: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(self.clock() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [list(dimensions)],
                        "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in values.items()],
                    }
                ],
            },
            **dimensions,
        }
        for name, (value, _) in values.items():
            record[name] = value
        self.emit(record)

    def batch(
        self,
        *,
        images: int,
        faces: int,
        errors_by_reason: Mapping[ErrorReason, int],
        stage_seconds: Mapping[str, float],
    ) -> None:
        values: dict[str, tuple[float, str]] = {
            "ImagesIndexed": (images, "Count"),
            "FacesFound": (faces, "Count"),
            "ErrorRows": (sum(errors_by_reason.values()), "Count"),
        }
        for stage in STAGES:
            values[f"{stage.capitalize()}Seconds"] = (round(stage_seconds.get(stage, 0.0), 6), "Seconds")
        self._line(values)
        for reason, count in sorted(errors_by_reason.items()):
            self._line({"ErrorRows": (count, "Count")}, {"reason": str(reason)})

    def flush(self, *, rows: int, seconds: float) -> None:
        self._line({"WriteSeconds": (round(seconds, 6), "Seconds"), "RowsWritten": (rows, "Count")})

    def final(self, *, images_per_second: float, idle_seconds: float, run_seconds: float) -> None:
        self._line(
            {
                "ImagesPerSecond": (images_per_second, "Count/Second"),
                "IdleSeconds": (idle_seconds, "Seconds"),
                "RunSeconds": (run_seconds, "Seconds"),
            }
        )
