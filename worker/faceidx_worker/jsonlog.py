"""Every line the worker prints to stdout is one JSON object.

Ordinary log records become ``{"event": "log", "level": ..., "logger": ..., "message": ...}``;
structured events (``batch``, ``summary``, EMF metric lines with their ``_aws`` key) are printed as given
through :func:`emit_event`. Both go through one handler, so lines from different threads never interleave.
Native libraries (ONNX Runtime, OpenCV) may still write plain text to stderr; readers skip non-JSON lines.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

EVENT_LOGGER = "faceidx_worker.events"
_HANDLER_NAME = "faceidx-json-stdout"


def _default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, default=_default, separators=(",", ":"), ensure_ascii=False)


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "json_event", None)
        if isinstance(event, dict):
            return dumps(event)
        payload: dict[str, Any] = {
            "event": "log",
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return dumps(payload)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time (pytest's capture, a pipe, a terminal)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._fixed = stream

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return self._fixed if self._fixed is not None else sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._fixed = value


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = _StdoutHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonLineFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    events = logging.getLogger(EVENT_LOGGER)
    events.setLevel(logging.INFO)


def emit_event(record: dict[str, Any]) -> None:
    """Print one structured JSON line (``batch``, ``summary``, EMF)."""
    logging.getLogger(EVENT_LOGGER).info("%s", record.get("event", "metrics"), extra={"json_event": record})
