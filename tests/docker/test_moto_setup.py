"""docker/moto_setup.py, and the compose stack's first steps run against its moto (no Docker needed).

The documented path (README.md, Docker): ``docker compose up`` runs ``moto-setup``; then
face_infra_bootstrap runs with ``dry_run`` off and no other Params; then uploaded photos land in the work
queue. The slow test runs exactly that against docker/moto_serve.py with the moto service's environment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support import docker_compose as dc


def load_moto_setup() -> ModuleType:
    return dc.load_docker_script("moto_setup")


def _all_faceidx_variables() -> dict[str, str]:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        keys = [v.key for v in session.query(Variable).filter(Variable.key.like("faceidx_%"))]
    return {key: Variable.get(key) for key in keys}


@pytest.fixture
def faceidx_variables(airflow_db: Path) -> Iterator[None]:
    """Whatever faceidx_* Variables the test sets are gone afterwards (other tests share the DB)."""
    from airflow.models.variable import Variable

    before = _all_faceidx_variables()
    yield
    for key in _all_faceidx_variables():
        Variable.delete(key)
    for key, value in before.items():
        Variable.set(key, value)


@pytest.fixture
def aws_default_on(monkeypatch: pytest.MonkeyPatch, moto_env: dict[str, str]) -> Any:
    """Point aws_default at an endpoint, keeping the rest of the env file's connection."""

    def point(endpoint: str | None) -> None:
        connection = json.loads(moto_env["AIRFLOW_CONN_AWS_DEFAULT"])
        if endpoint is None:
            connection["extra"].pop("endpoint_url")
        else:
            connection["extra"]["endpoint_url"] = endpoint
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))

    return point


def _photos(assets_dir: Path, target: Path) -> list[str]:
    """The shared photos, in a sub-folder so that keys keep their relative path."""
    names = []
    for path in sorted((assets_dir / "images").iterdir()):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            (target / "set").mkdir(parents=True, exist_ok=True)
            (target / "set" / path.name).write_bytes(path.read_bytes())
            names.append(f"set/{path.name}")
    assert names, f"no photos in {assets_dir / 'images'}"
    return names


def test_setup_refuses_a_real_account_and_upload_fails(
    aws_default_on: Any, faceidx_variables: None, tmp_path: Path
) -> None:
    aws_default_on(None)
    moto_setup = load_moto_setup()
    assert moto_setup.main(["setup"]) == 0  # `docker compose up` runs it in every mode
    assert _all_faceidx_variables() == {}
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert moto_setup.main(["upload", str(tmp_path)]) == moto_setup.EXIT_NOT_MOTO


def test_setup_creates_what_the_bootstrap_expects_and_is_idempotent(
    moto: Any, aws_default_on: Any, faceidx_variables: None
) -> None:
    aws_default_on(moto.url)
    moto_setup = load_moto_setup()
    first = moto_setup.setup()
    second = moto_setup.setup()
    assert first == second
    buckets = {b["Name"] for b in moto.client("s3").list_buckets()["Buckets"]}
    assert buckets == {moto_setup.INPUT_BUCKET, "faceidx-index"}
    roles = [r["Arn"] for r in moto.client("iam").list_roles()["Roles"]]
    assert roles == [first["service_role_arn"]]
    subnets = moto.client("ec2").describe_subnets(SubnetIds=first["subnets"])["Subnets"]
    assert {s["DefaultForAz"] for s in subnets} == {True}
    stored = _all_faceidx_variables()
    assert json.loads(stored["faceidx_subnets"]) == first["subnets"]
    assert json.loads(stored["faceidx_security_group_ids"]) == first["security_group_ids"]
    assert stored["faceidx_output_uri"] == moto_setup.OUTPUT_URI
    assert stored["faceidx_input_bucket"] == moto_setup.INPUT_BUCKET


def test_upload_keeps_relative_keys_under_the_prefix(
    moto: Any, aws_default_on: Any, faceidx_variables: None, assets_dir: Path, tmp_path: Path
) -> None:
    aws_default_on(moto.url)
    moto_setup = load_moto_setup()
    moto_setup.setup()
    names = _photos(assets_dir, tmp_path)
    (tmp_path / "set" / "notes.txt").write_text("not an image")
    assert moto_setup.main(["upload", str(tmp_path), "--prefix", "/batch-1/"]) == 0
    listed = moto.client("s3").list_objects_v2(Bucket=moto_setup.INPUT_BUCKET)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(f"batch-1/{name}" for name in names)


@pytest.mark.slow
def test_documented_first_steps_fill_the_work_queue(
    compose_moto: str, aws_default_on: Any, faceidx_variables: None, assets_dir: Path, tmp_path: Path
) -> None:
    """moto-setup, then face_infra_bootstrap with only dry_run off, then an upload: one message per photo."""
    import boto3

    from faceidx_worker.events import ImageRef, MessageKind, parse_body
    from tests.support.airflow_dags import load_dag, run_dag

    aws_default_on(compose_moto)
    moto_setup = load_moto_setup()
    moto_setup.setup()

    _run, states = run_dag(load_dag("face_infra_bootstrap"), conf={"dry_run": False})
    assert set(states.values()) == {"success"}, states
    queue_url = _all_faceidx_variables()["faceidx_queue_url"]

    names = _photos(assets_dir, tmp_path)
    assert moto_setup.main(["upload", str(tmp_path)]) == 0

    sqs = boto3.client("sqs", endpoint_url=compose_moto, region_name="us-east-1")
    images: list[ImageRef] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            parsed = parse_body(message["Body"])  # what the worker will make of it
            assert parsed.kind in (MessageKind.IMAGES, MessageKind.TEST), parsed.reason
            images += parsed.images
    assert sorted(image.key for image in images) == sorted(f"photos/{name}" for name in names)
    assert {image.bucket for image in images} == {moto_setup.INPUT_BUCKET}
