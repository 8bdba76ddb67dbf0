"""Start moto's server for the docker-compose stack, with AWS Batch in its Docker-free mode.

moto runs a Batch job's container with Docker by default. Inside compose there is no Docker socket, so
each job would fail. ``{"batch": {"use_docker": False}}`` switches Batch to moto's simple backend, which
accepts jobs and marks them SUCCEEDED (the local stand-in for Batch compute runs the real workers).

moto reads that setting from no environment variable: the tests POST it to ``/moto-api/config`` after
each start and reset. Setting it here, before the server starts, makes it hold for every request and
survive container restarts and ``/moto-api/reset`` (the reset clears the backends, not this config).

Run by the ``moto`` service of docker-compose.yaml (mounted read-only into the moto image):
``python3 /faceidx/moto_serve.py``. Listens on ``$MOTO_HOST`` (default 0.0.0.0, every interface of the
container) and ``$MOTO_PORT`` (default 5000).
"""

from __future__ import annotations

import logging
import os

from moto.core.config import default_user_config
from moto.server import main

log = logging.getLogger("faceidx.moto_serve")


def serve() -> None:
    default_user_config["batch"] = {"use_docker": False}
    host = os.environ.get("MOTO_HOST", "0.0.0.0")
    port = os.environ.get("MOTO_PORT", "5000")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    log.info("moto server on %s:%s, AWS Batch without Docker (jobs succeed at once)", host, port)
    main(["--host", host, "--port", port])


if __name__ == "__main__":
    serve()
