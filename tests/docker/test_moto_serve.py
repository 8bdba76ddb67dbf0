"""docker/moto_serve.py and the moto service's healthcheck, run here for real (no Docker needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.docker.conftest import free_port, start_moto, stop


def _healthcheck(services: dict[str, Any], port: int) -> subprocess.CompletedProcess[str]:
    """The moto service's healthcheck command as compose runs it, with this interpreter as python3."""
    test = list(services["moto"]["healthcheck"]["test"])
    assert test[0] == "CMD"
    argv = [sys.executable if part == "python3" else part for part in test[1:]]
    env = {**os.environ, "MOTO_PORT": str(port)}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


def _config(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{endpoint}/moto-api/config", timeout=10) as response:
        return dict(json.load(response))


def test_launcher_runs_batch_without_docker_and_passes_the_healthcheck(
    services: dict[str, Any], compose_moto: str
) -> None:
    port = int(compose_moto.rsplit(":", 1)[1])
    assert _config(compose_moto)["batch"] == {"use_docker": False}
    result = _healthcheck(services, port)
    assert result.returncode == 0, result.stderr


def test_launcher_keeps_batch_without_docker_across_a_reset(
    services: dict[str, Any], compose_moto: str
) -> None:
    request = urllib.request.Request(f"{compose_moto}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    assert _config(compose_moto)["batch"] == {"use_docker": False}
    assert _healthcheck(services, int(compose_moto.rsplit(":", 1)[1])).returncode == 0


def _batch_world(client: Any) -> Any:
    role = client("iam").create_role(RoleName="faceidx-batch-service", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    batch = client("batch")
    environment = batch.create_compute_environment(
        computeEnvironmentName="faceidx-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
    )["computeEnvironmentArn"]
    batch.create_job_queue(
        jobQueueName="faceidx-queue",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
    )
    batch.register_job_definition(
        jobDefinitionName="faceidx-job",
        type="container",
        containerProperties={
            "image": "faceidx-worker:test",
            "command": ["python", "run_detection_service.py"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
        },
    )
    return batch


def _wait_finished(batch: Any, job_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        [job] = batch.describe_jobs(jobs=[job_id])["jobs"]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return dict(job)
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['status']} after 60 s")


def _log_lines(client: Any, job: dict[str, Any]) -> list[dict[str, Any]]:
    events = client("logs").get_log_events(
        logGroupName="/aws/batch/job", logStreamName=job["container"]["logStreamName"]
    )["events"]
    return [json.loads(e["message"]) for e in events]


def test_launcher_runs_each_job_and_array_child_as_a_worker_process(compose_moto: str) -> None:
    """What the compose stack relies on: face_indexing's jobs run real workers, not an instant SUCCEEDED."""
    import boto3

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=compose_moto, region_name="us-east-1")

    batch = _batch_world(client)
    environment = [{"name": "FACEIDX_QUEUE_URL", "value": "http://moto:5000/123456789012/faceidx-work"}]
    plain = batch.submit_job(
        jobName="plain",
        jobQueue="faceidx-queue",
        jobDefinition="faceidx-job",
        containerOverrides={"environment": environment},
    )["jobId"]
    job = _wait_finished(batch, plain)
    assert job["status"] == "SUCCEEDED"
    [line] = _log_lines(client, job)
    assert line["AWS_BATCH_JOB_ID"] == plain
    assert line["FACEIDX_QUEUE_URL"] == environment[0]["value"], "the job's environment reaches the worker"
    assert line["AWS_ENDPOINT_URL"].startswith("http://localhost:"), "workers reach moto in-container"
    assert line["FACEIDX_REQUIRE_GPU"] == "0"

    array = batch.submit_job(
        jobName="array", jobQueue="faceidx-queue", jobDefinition="faceidx-job", arrayProperties={"size": 2}
    )["jobId"]
    assert _wait_finished(batch, array)["status"] == "SUCCEEDED"
    indexes = sorted(
        _log_lines(client, _wait_finished(batch, f"{array}:{i}"))[0]["AWS_BATCH_JOB_ARRAY_INDEX"]
        for i in range(2)
    )
    assert indexes == ["0", "1"]

    failing = batch.submit_job(
        jobName="failing",
        jobQueue="faceidx-queue",
        jobDefinition="faceidx-job",
        containerOverrides={"environment": [{"name": "FAKE_EXIT", "value": "3"}]},
    )["jobId"]
    failed = _wait_finished(batch, failing)
    assert failed["status"] == "FAILED"
    assert "exit code 3" in failed["statusReason"]


def test_healthcheck_fails_on_a_plain_moto_server(services: dict[str, Any], tmp_path: Path) -> None:
    """Without the launcher, moto's Batch would try to run Docker: the healthcheck must say so."""
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = start_moto(argv, dict(os.environ), port, tmp_path / "plain.log")
    try:
        assert _healthcheck(services, port).returncode != 0
    finally:
        stop(process)
