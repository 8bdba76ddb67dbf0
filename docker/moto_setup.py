"""Prepare the compose stack's moto service for face_infra_bootstrap, and upload photos to it.

Run by the ``moto-setup`` service of docker-compose.yaml (in the Airflow image, so it uses the same
``aws_default`` connection as the DAGs):

``setup`` (what ``docker compose up`` runs, idempotent)
    creates the input and output buckets and the Batch service role moto requires, looks up moto's
    default subnets and security group, and stores every per-account value face_infra_bootstrap needs
    as the Airflow Variables it reads (``faceidx_<param>``). The bootstrap then needs no Params but
    ``dry_run: false``.
``upload DIR [--prefix P]``
    uploads the .jpg/.jpeg/.png files under DIR to the input bucket; once the bootstrap has added the
    bucket's event notification, moto queues one message per image.

It refuses to run unless ``aws_default`` has an ``endpoint_url`` (the moto service): in a real account
the buckets, subnets and roles are yours, and you pass them as Params instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

# faceidx_dev is development code, not installed: mounted at /opt/faceidx-dev by compose, or beside
# this file in a checkout.
for _dev in (Path("/opt/faceidx-dev"), Path(__file__).resolve().parents[1] / "dev"):
    if _dev.is_dir() and str(_dev) not in sys.path:
        sys.path.insert(0, str(_dev))

from faceidx_dev.local.moto_setup import default_network, ensure_bucket, ensure_service_role  # noqa: E402

log = logging.getLogger("faceidx.moto_setup")

AWS_CONN_ID = "aws_default"
INPUT_BUCKET = "faceidx-input"
OUTPUT_URI = "s3://faceidx-index/faces/"
# moto never pulls the image: any name does. Build the real one with `--profile worker build`.
WORKER_IMAGE = "faceidx-worker:local"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
EXIT_NOT_MOTO = 3


class NotMotoError(RuntimeError):
    """aws_default has no endpoint_url: this is a real account, which this script must not touch."""


def _hook(client_type: str) -> Any:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type=client_type)


def require_moto() -> str:
    """The endpoint of aws_default, or :class:`NotMotoError` when it has none."""
    endpoint = _hook("s3").conn_config.endpoint_url
    if not endpoint:
        raise NotMotoError(
            f"the {AWS_CONN_ID} connection has no endpoint_url, so it points at a real AWS account. "
            "moto_setup only prepares the local moto service: trigger face_infra_bootstrap with your "
            "account's Params instead (README.md, Docker: 'Pointing it at a real account')."
        )
    return str(endpoint)


def setup() -> dict[str, Any]:
    """Create what the bootstrap expects to exist; returns the bootstrap values it stored."""
    endpoint = require_moto()
    log.info("preparing moto at %s for face_infra_bootstrap", endpoint)
    s3 = _hook("s3").get_conn()
    output_bucket = OUTPUT_URI.removeprefix("s3://").split("/", 1)[0]
    for bucket in (INPUT_BUCKET, output_bucket):
        ensure_bucket(s3, bucket)
    service_role_arn = ensure_service_role(_hook("iam").get_conn())
    subnets, security_groups = default_network(_hook("ec2").get_conn())
    values: dict[str, Any] = {
        "input_bucket": INPUT_BUCKET,
        "output_uri": OUTPUT_URI,
        "subnets": subnets,
        "security_group_ids": security_groups,
        "worker_image": WORKER_IMAGE,
        "service_role_arn": service_role_arn,
    }
    _store_variables(values)
    log.info(
        "Done. Trigger face_infra_bootstrap with dry_run off (its other Params may stay empty: they come "
        "from these Variables), or from the CLI:\n  airflow dags trigger face_infra_bootstrap --conf '%s'",
        json.dumps({**values, "dry_run": False}),
    )
    return values


def _store_variables(values: dict[str, Any]) -> None:
    from airflow.models.variable import Variable

    for param, value in values.items():
        text = json.dumps(value) if isinstance(value, list) else str(value)
        Variable.set(f"faceidx_{param}", text)
        log.info("Airflow Variable faceidx_%s = %s", param, text)


def upload(directory: Path, prefix: str) -> int:
    """Upload the images under ``directory`` to the input bucket; returns how many."""
    require_moto()
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{directory} is not a folder inside the container: mount one, e.g. "
            '`docker compose run --rm -v "$PWD/photos:/photos:ro" moto-setup upload /photos`'
        )
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} files under {directory}")
    s3 = _hook("s3").get_conn()
    clean_prefix = prefix.strip("/")
    for path in files:
        key = "/".join(part for part in (clean_prefix, path.relative_to(directory).as_posix()) if part)
        s3.upload_file(str(path), INPUT_BUCKET, key)
    log.info("uploaded %d images to s3://%s/%s", len(files), INPUT_BUCKET, clean_prefix)
    return len(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="buckets, service role and bootstrap Variables in moto")
    upload_parser = commands.add_parser("upload", help="upload the images under DIR to the input bucket")
    upload_parser.add_argument("directory", type=Path)
    upload_parser.add_argument(
        "--prefix", default="photos", help="key prefix in the bucket (default: photos)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "setup":
            setup()
        else:
            upload(args.directory, args.prefix)
    except NotMotoError as error:
        # `docker compose up` runs setup in every mode: on a real account it has nothing to do.
        if args.command == "setup":
            log.info("nothing to set up: %s", error)
            return 0
        log.error("%s", error)
        return EXIT_NOT_MOTO
    return 0


if __name__ == "__main__":
    sys.exit(main())
