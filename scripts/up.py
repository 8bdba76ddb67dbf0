"""``make up``: the whole of faceidx in a browser, no Docker. ``make down`` (or Ctrl-C) stops it.

Starts an embedded moto, the local Batch stand-in and the real Airflow (UI on
http://127.0.0.1:8080 by default, ``FACEIDX_UP_PORT``), runs ``face_infra_bootstrap``, uploads the
sample photos, unpauses ``face_indexing`` (every 2 minutes, ``FACEIDX_UP_SCHEDULE``), ``face_reindex``,
``face_table`` and the DAGs its Asset starts (``face_vectors``, ``face_identities``), writes
``.faceidx-up/env`` (``source`` it to run the ``faceidx`` CLI against this product), prints the URL,
the login and that ``source`` line, then waits. Everything goes to ``.faceidx-up/``
(``FACEIDX_UP_DIR``), which the next ``make up`` wipes.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "dev")]

from faceidx_dev.local.demo_inputs import sample_photos  # noqa: E402
from faceidx_dev.local.product import INPUT_BUCKET, OUTPUT_URI, LocalProduct  # noqa: E402

WORK = Path(os.environ.get("FACEIDX_UP_DIR", REPO / ".faceidx-up"))
PID_FILE = WORK.parent / f"{WORK.name}.pid"


def say(message: str) -> None:
    print(f"[make up] {message}", flush=True)


def shown(path: Path) -> str:
    """``path`` as the user types it from here: relative when under the current folder."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    assets = Path(os.environ.get("FACEIDX_ASSETS", REPO.parent / "shared" / "assets"))
    port = int(os.environ.get("FACEIDX_UP_PORT", "8080"))
    product = LocalProduct(
        work=WORK,
        assets=assets,
        port=port,
        password=os.environ.get("FACEIDX_UP_PASSWORD") or None,
        indexing_schedule=os.environ.get("FACEIDX_UP_SCHEDULE", "*/2 * * * *"),
    )
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    PID_FILE.write_text(str(os.getpid()))
    try:
        say(f"starting moto, the local Batch stand-in and Airflow on {product.url} (about a minute) ...")
        product.start()
        say("running face_infra_bootstrap (dry_run off) ...")
        product.bootstrap()
        env_file = shown(product.write_cli_env())
        photos, source = sample_photos(assets)
        keys = product.upload(photos)
        say(f"uploaded {len(keys)} photos from {source} to s3://{INPUT_BUCKET}/photos/")
        assert product.stack is not None
        for dag_id in ("face_indexing", "face_reindex", "face_table", "face_vectors", "face_identities"):
            product.stack.unpause(dag_id)
        print(
            f"""
faceidx is up.
  Airflow UI  {product.url}   login: admin / {product.password}
  index       {OUTPUT_URI} (moto: {product.moto.url if product.moto else "?"})
  CLI         source {env_file} && faceidx search photo.jpg   (also people, forget, models, table)
  face_indexing runs every few minutes and starts a local worker per submitted Batch job;
  trigger it now from the UI (▶ Trigger) to index the uploaded photos at once.
  face_table (hourly; trigger it after indexing) moves the workers' files into the face table; its
  commit's Asset event starts face_vectors (the vector index) and face_identities (people); their
  heavy steps run as local Batch jobs of the maintenance queue. Then trigger face_search with a
  photo path, or face_forget.
  Task logs, backfills of face_reindex and the bootstrap's summary are all in the UI.
  Stop with Ctrl-C or `make down`. Files: {WORK}
""",
            flush=True,
        )
        while True:
            time.sleep(5)
            assert product.stack is not None
            product.stack.check_alive()
    except KeyboardInterrupt:
        say("stopping every process make up started ...")
        return 0
    finally:
        product.stop()
        PID_FILE.unlink(missing_ok=True)
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
