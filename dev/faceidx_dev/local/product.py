"""``LocalProduct``: the whole of faceidx on one machine, without Docker (``make up``, browser tests).

It starts, in this order:

1. an embedded moto server on loopback, seeded with what a real account already has (the input and
   output buckets, default VPC subnets and security group, a Batch service role);
2. the local Batch stand-in (``faceidx_dev.local.batch_compute``) inside the same process, so that every
   job or array child ``face_indexing`` submits runs as a real worker process on a real model pack;
3. the real Airflow 3 (api-server with the UI, scheduler, dag-processor, triggerer; LocalExecutor,
   sqlite), its ``aws_default`` connection pointing at moto and the per-account bootstrap values set as
   the Airflow Variables ``faceidx_<param>``, exactly as an account owner would set them once. So
   every DAG runs from the UI with its default Params.

:meth:`bootstrap` runs ``face_infra_bootstrap`` (dry run off) through the REST API and :meth:`upload`
puts photos in the input bucket (moto's S3 notifications queue them). :meth:`write_cli_env` writes
``<work>/env``, what a shell needs for the ``faceidx`` CLI against this product
(``source .faceidx-up/env``). :meth:`stop` ends every process it started. Everything it writes lives
under ``work`` and is wiped by the next start.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faceidx_dev.local.airflow_stack import REPO, AirflowStack, free_port
from faceidx_dev.local.batch_compute import LocalBatchCompute, LocalJobRun
from faceidx_dev.local.demo_inputs import resolve_model_pack
from faceidx_dev.local.moto_server import (
    MotoEndpoint,
    aws_connection_uri_json,
    moto_environment,
    start_moto_server,
)
from faceidx_dev.local.moto_setup import default_network, ensure_bucket, ensure_service_role
from faceidx_dev.local.shell_env import env_file_text, write_env_file

log = logging.getLogger(__name__)

INPUT_BUCKET = "faceidx-local-photos"
OUTPUT_BUCKET = "faceidx-local-index"
OUTPUT_URI = f"s3://{OUTPUT_BUCKET}/v1/"
WORKER_IMAGE = "faceidx-worker:local"
# Every DAG of the package: the product is up when the DAG processor has parsed them all.
DAG_IDS = tuple(sorted(path.stem for path in (REPO / "dags").glob("face_*.py")))

# What the stand-in changes in each worker's environment; logged at start, never hidden.
WORKER_OVERRIDES = {
    "FACEIDX_REQUIRE_GPU": "0",  # no GPU here; the job definition asks for one on AWS
    "FACEIDX_MAX_IDLE_SECONDS": "8",
    "FACEIDX_RECEIVE_WAIT_SECONDS": "2",
    "FACEIDX_ORT_THREADS": "1",
    "FACEIDX_DOWNLOAD_THREADS": "2",
    "FACEIDX_FLUSH_MAX_SECONDS": "10",
}


class LocalProductError(RuntimeError):
    """A part of the local product did not come up or a run failed; the message says which."""


@dataclass
class LocalProduct:
    work: Path
    assets: Path
    port: int = field(default_factory=free_port)
    password: str | None = None  # None: a random one (printed by ``make up``)
    indexing_schedule: str = "*/2 * * * *"
    max_workers: int = 2
    moto: MotoEndpoint | None = field(default=None, repr=False)
    compute: LocalBatchCompute | None = field(default=None, repr=False)
    stack: AirflowStack | None = field(default=None, repr=False)
    worker_lines: list[tuple[str, str]] = field(default_factory=list, repr=False)
    model_dir: Path | None = None  # the model pack the workers and face_search use (set by start)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def vectors_uri(self) -> str:
        """The vector index, in a local folder here (on AWS it sits beside the table on S3)."""
        return str(self.work / "vectors")

    @property
    def env_file(self) -> Path:
        return self.work / "env"

    def start(self, timeout: float = 180.0) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        model_dir, model_source = resolve_model_pack(self.assets, self.work)
        log.info("model pack %s (%s)", model_dir, model_source)
        self.model_dir = model_dir
        self.moto = moto = start_moto_server(load_managed_policies=True)
        s3 = moto.client("s3")
        for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
            ensure_bucket(s3, bucket)
        service_role = ensure_service_role(moto.client("iam"))
        subnets, groups = default_network(moto.client("ec2"))
        overrides = {"FACEIDX_MODEL_DIR": str(model_dir), **WORKER_OVERRIDES}
        log.info("local Batch overrides: %s", ", ".join(f"{k}={v}" for k, v in overrides.items()))
        self.compute = LocalBatchCompute(
            moto.url, REPO / "worker", overrides, max_parallel=self.max_workers, on_line=self._on_line
        ).install()
        variables = {
            "input_bucket": INPUT_BUCKET,
            "output_uri": OUTPUT_URI,
            "subnets": json.dumps(subnets),
            "security_group_ids": json.dumps(groups),
            "worker_image": WORKER_IMAGE,
            "service_role_arn": service_role,  # moto's Batch needs a named one; on AWS leave it empty
            "vectors_uri": self.vectors_uri,
        }
        extra_env = {f"AIRFLOW_VAR_FACEIDX_{k.upper()}": v for k, v in variables.items()}
        extra_env.update(
            {
                "FACEIDX_INDEXING_SCHEDULE": self.indexing_schedule,
                # wait_primary/wait_secondary poll Batch every 30 s on AWS; local jobs take seconds
                "FACEIDX_BATCH_POLL_SECONDS": "5",
                # face_search and face_identities run the worker's model code inside Airflow tasks
                "FACEIDX_MODEL_DIR": str(model_dir),
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        stack_args: dict[str, Any] = {"port": self.port}
        if self.password:
            stack_args["password"] = self.password
        self.stack = AirflowStack(
            home=self.work / "airflow",
            aws_connection=aws_connection_uri_json(moto.url),
            extra_env=extra_env,
            **stack_args,
        )
        self.password = self.stack.password
        self.stack.start(timeout=timeout)
        self.stack.wait_parsed(DAG_IDS, timeout=timeout)

    def _on_line(self, run: LocalJobRun, line: str) -> None:
        self.worker_lines.append((run.label, line))

    def bootstrap(self, timeout: float = 300.0) -> str:
        """``face_infra_bootstrap`` with ``dry_run`` off, through the REST API; returns the run id."""
        stack = self._stack()
        stack.unpause("face_infra_bootstrap")
        run_id = stack.trigger("face_infra_bootstrap", {"dry_run": False})
        state = stack.wait_run("face_infra_bootstrap", run_id, timeout)
        if state != "success":
            raise LocalProductError(
                f"face_infra_bootstrap run {run_id} ended {state}: open it in the UI ({self.url}) and "
                f"read the failed task's log; tasks: {stack.task_states('face_infra_bootstrap', run_id)}"
            )
        return run_id

    def upload(self, photos: Iterable[Path], prefix: str = "photos/") -> list[str]:
        """Put each photo in the input bucket under ``prefix``; returns the keys."""
        s3 = self._moto().client("s3")
        keys = []
        for photo in photos:
            key = f"{prefix}{photo.name}"
            s3.upload_file(str(photo), INPUT_BUCKET, key)
            keys.append(key)
        return keys

    def cli_environment(self) -> dict[str, str]:
        """What the ``faceidx`` CLI needs to reach this product: moto's endpoint and credentials, the
        index and its vector folder, the model pack (``faceidx search``), the work queue."""
        from faceidx.store.location import ENV_OUTPUT_URI, ENV_VECTORS_URI

        values = moto_environment(self._moto().url)
        values.update({ENV_OUTPUT_URI: OUTPUT_URI, ENV_VECTORS_URI: self.vectors_uri})
        if self.model_dir is not None:
            values["FACEIDX_MODEL_DIR"] = str(self.model_dir)
        values["FACEIDX_QUEUE_URL"] = self.queue_url()
        return values

    def write_cli_env(self) -> Path:
        """``<work>/env``: ``source`` it and run ``faceidx`` (the command of this Python's environment)
        against this product. Rewritten by each start, after the bootstrap has made the queue."""
        comment = (
            f"Written by make up {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC: the faceidx CLI against the "
            f"local product (UI {self.url}, moto {self._moto().url}),\nvalid while it runs. Usage: "
            f"source {self.env_file} && faceidx search photo.jpg"
        )
        text = env_file_text(self.cli_environment(), path_first=Path(sys.executable).parent, comment=comment)
        return write_env_file(self.env_file, text)

    def queue_url(self) -> str:
        from faceidx.infra.values import VALUES_BY_PARAM

        name = VALUES_BY_PARAM["queue_name"].default
        return str(self._moto().client("sqs").get_queue_url(QueueName=name)["QueueUrl"])

    def wait_queue(self, visible: int, timeout: float = 60.0) -> int:
        """Until the work queue shows at least ``visible`` messages; returns how many it shows."""
        sqs, url = self._moto().client("sqs"), self.queue_url()
        deadline = time.monotonic() + timeout
        count = 0
        while time.monotonic() < deadline:
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            count = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
            if count >= visible:
                break
            time.sleep(0.5)
        return count

    def stop(self) -> None:
        """Every process this started: the Airflow components (and their task processes), the
        workers, the moto server. Safe to call twice."""
        if self.stack is not None:
            self.stack.stop()
        if self.compute is not None:
            self.compute.uninstall()
            self.compute.terminate()
        if self.moto is not None:
            self.moto.stop()
        self.stack = self.compute = self.moto = None

    def __enter__(self) -> LocalProduct:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _stack(self) -> AirflowStack:
        if self.stack is None:
            raise LocalProductError("the local product is not started: call start() first")
        return self.stack

    def _moto(self) -> MotoEndpoint:
        if self.moto is None:
            raise LocalProductError("the local product is not started: call start() first")
        return self.moto
