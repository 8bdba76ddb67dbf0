"""The embedded moto server now lives in the package (``make demo`` uses it too); re-exported here.

:func:`moto_server_process` runs one in a process of its own instead: delta-rs holds the GIL while it
waits on S3, so a test that writes Delta tables on S3 in its own process needs a server outside it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from faceidx_dev.local.moto_server import (
    ACCOUNT_ID,
    REGION,
    MotoEndpoint,
    aws_connection_uri_json,
    start_moto_server,
)

__all__ = [
    "ACCOUNT_ID",
    "REGION",
    "MotoEndpoint",
    "aws_connection_uri_json",
    "moto_server_process",
    "start_moto_server",
]


@contextmanager
def moto_server_process(timeout: float = 30.0) -> Iterator[MotoEndpoint]:
    """``moto_server`` on a free loopback port, in its own process; stopped on exit."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server on port {port} did not start") from None
                time.sleep(0.2)
        yield MotoEndpoint(url=f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)
