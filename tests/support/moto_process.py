"""A moto server in its own process, for code that must not share a process with moto.

delta-rs holds the GIL while it waits on S3, so a moto server on a thread of the test process (the
``moto`` fixture's) never answers it: the face table on S3 is tested against this one instead.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MOTO_SERVER = Path(sys.executable).with_name("moto_server")


@contextmanager
def moto_server_process() -> Iterator[str]:
    """Start ``moto_server`` on a free loopback port; yields its URL, stops it afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
