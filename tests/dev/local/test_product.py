"""``make up``'s environment file: with only ``source .faceidx-up/env``, a shell runs the real ``faceidx``
command against the product (moto's port changes on every start; the file follows it)."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator

import pytest

from faceidx.infra.values import VALUES_BY_PARAM
from faceidx.people.clustering import ClusterPolicy
from faceidx.people.identities import run_incremental
from faceidx.store.location import IndexLocation
from faceidx.store.persons import PeopleStore
from faceidx_dev.local.moto_server import REGION, MotoEndpoint
from faceidx_dev.local.product import OUTPUT_BUCKET, OUTPUT_URI, LocalProduct
from tests.plugins.faceidx.people.face_tables import Photo, add_photos, face_of, fid
from tests.plugins.faceidx.store.table_builders import VERSION
from tests.support.moto_server import moto_server_process


@pytest.fixture(scope="module")
def moto_process() -> Iterator[MotoEndpoint]:
    with moto_server_process() as endpoint:
        yield endpoint


@pytest.fixture
def product(moto_process: MotoEndpoint, tmp_path) -> LocalProduct:
    """The product as ``make up`` leaves it after the bootstrap (its buckets and queue in moto)."""
    moto_process.client("s3").create_bucket(Bucket=OUTPUT_BUCKET)
    moto_process.client("sqs").create_queue(QueueName=VALUES_BY_PARAM["queue_name"].default)
    return LocalProduct(
        work=tmp_path / "up", assets=tmp_path, moto=moto_process, model_dir=tmp_path / "models" / "pack"
    )


def shell(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``bash -c`` in a shell that knows nothing of this test's environment (no AWS variables, no venv)."""
    return subprocess.run(
        ["bash", "-c", command],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_people_list_json_with_only_the_env_file_sourced(product, moto_process):
    # what face_table and face_identities leave in the index: two persons of three faces each
    location = IndexLocation(
        OUTPUT_URI,
        region=REGION,
        endpoint_url=moto_process.url,
        credentials={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    add_photos(location, [Photo(f"p{p}-{v}.jpg", [face_of(p, v)]) for p in (1, 2) for v in range(3)])
    run_incremental(location, VERSION, ClusterPolicy(threshold=0.5))
    p1 = PeopleStore(location).mapping(VERSION)[fid("p1-0.jpg", 0)]

    env_file = product.write_cli_env()

    assert env_file == product.work / "env"
    source = f"source {shlex.quote(str(env_file))}"
    # a user's own AWS settings, which the file must override
    user = {"AWS_PROFILE": "someone-elses", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}
    result = shell(
        f"{source} && faceidx people label {p1} 'Rachel Green' >/dev/null && faceidx people list --json",
        **user,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    document = json.loads(result.stdout)  # stdout is the result alone
    assert document["model_version"] == VERSION
    persons = {person["person_id"]: person for person in document["persons"]}
    assert len(persons) == 2
    assert persons[p1]["label"] == "Rachel Green"
    assert persons[p1]["face_count"] == 3
    assert set(persons[p1]) == {"person_id", "label", "face_count", "representative_face_id"}

    # the table says the same
    result = shell(f"{source} && faceidx people list --labelled")
    assert result.returncode == 0, result.stderr
    assert "Rachel Green" in result.stdout
    assert p1 in result.stdout


def test_the_env_file_names_everything_the_cli_reads(product, moto_process):
    product.write_cli_env()
    names = ("AWS_ENDPOINT_URL", "FACEIDX_OUTPUT_URI", "FACEIDX_VECTORS_URI", "FACEIDX_MODEL_DIR")
    result = shell(
        f"source {shlex.quote(str(product.env_file))} && " + " && ".join(f'echo "${n}"' for n in names)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        moto_process.url,
        OUTPUT_URI,
        str(product.work / "vectors"),
        str(product.work.parent / "models" / "pack"),
    ]
    queue = shell(f"source {shlex.quote(str(product.env_file))} && echo $FACEIDX_QUEUE_URL").stdout.strip()
    assert queue == product.queue_url()
