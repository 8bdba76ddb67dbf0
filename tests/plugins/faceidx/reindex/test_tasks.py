"""queue_interval end to end on moto (without Airflow), its Param checks and its failure report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber

from faceidx.aws.s3 import ReindexS3Hook
from faceidx.aws.sqs import SqsWorkQueueHook
from faceidx.reindex.selection import Interval, ReindexRequestError
from faceidx.reindex.tasks import (
    ReindexQueueError,
    ReindexRequest,
    asset_extra,
    queue_interval,
    signal_reason,
)
from tests.support.reindex_moto import INPUT_BUCKET, backdate, create_resources, drain, index_file_bytes, put

START = datetime(2026, 11, 20, tzinfo=UTC)
DAY = Interval(START, START + timedelta(days=1))
ORIGIN = {"origin": "face_reindex", "dag_id": "face_reindex", "run_id": "manual__x"}
PARAMS = {"prefix": "", "select_by": "auto", "suffixes": [".jpg"], "only_missing": True, "dry_run": False}


def request(**overrides):
    values = {"bucket": INPUT_BUCKET, "queue_url": "https://q", "output_uri": "s3://idx/v1"}
    params = dict(PARAMS)
    for name in list(overrides):
        if name in values:
            values[name] = overrides.pop(name)
    params.update(overrides)
    return ReindexRequest.from_params(params, **values)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bucket": ""}, "faceidx_input_bucket"),
        ({"bucket": "s3://photos/uploads"}, "bare bucket name"),
        ({"queue_url": ""}, "faceidx_queue_url"),
        ({"output_uri": ""}, "faceidx_output_uri"),
        ({"select_by": "newest"}, "not one of"),
        ({"suffixes": []}, "suffixes is empty"),
        ({"model_pack": "../etc"}, "not a pack name"),
    ],
)
def test_param_problems_are_refused_before_any_aws_call(overrides, message):
    with pytest.raises(ReindexRequestError, match=message):
        request(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [{"queue_url": "", "dry_run": True}, {"output_uri": "", "only_missing": False}],
)
def test_what_a_run_does_not_need_may_stay_empty(overrides):
    request(**overrides)


def test_a_local_index_and_last_modified_selection(moto, tmp_path):
    queue_url = create_resources(moto)
    for key, at in (("in.jpg", START + timedelta(hours=3)), ("done.jpg", START), ("late.jpg", DAY.end)):
        upload = put(moto, key)
        backdate(INPUT_BUCKET, key, at)
        if key == "done.jpg":
            target = tmp_path / "faces" / "dt=2026-11-20" / "part-1.parquet"
            target.parent.mkdir(parents=True)
            target.write_bytes(
                index_file_bytes([(key, upload.etag, "ok")], indexed_at=START + timedelta(hours=1))
            )
    summary = queue_interval(
        request(queue_url=queue_url, output_uri=str(tmp_path)),
        DAY,
        origin=ORIGIN,
        s3=ReindexS3Hook(aws_conn_id="aws_default"),
        sqs=SqsWorkQueueHook(aws_conn_id="aws_default"),
        region="us-east-1",
    )
    assert [b["Records"][0]["s3"]["object"]["key"] for b in drain(moto, queue_url)] == ["in.jpg"]
    assert summary["found"] == 3
    assert summary["queued"] == 1
    assert summary["skipped"] == {"already_indexed": 1, "outside_interval": 1}
    assert summary["mode"] == "last_modified"
    assert summary["index_files_read"] == 1
    json.dumps(summary)  # an XCom: plain JSON


def test_a_model_pack_rides_on_every_queued_message_and_in_the_log(moto, caplog):
    caplog.set_level("INFO", logger="faceidx.reindex.tasks")
    queue_url = create_resources(moto)
    for key in ("a.jpg", "b.jpg"):
        put(moto, key)
        backdate(INPUT_BUCKET, key, START + timedelta(hours=1))
    summary = queue_interval(
        request(queue_url=queue_url, only_missing=False, model_pack="antelopev2"),
        DAY,
        origin=ORIGIN,
        s3=ReindexS3Hook(aws_conn_id="aws_default"),
        sqs=SqsWorkQueueHook(aws_conn_id="aws_default"),
        region="us-east-1",
    )
    bodies = drain(moto, queue_url)
    assert sorted(b["Records"][0]["s3"]["object"]["key"] for b in bodies) == ["a.jpg", "b.jpg"]
    assert {b["model_pack"] for b in bodies} == {"antelopev2"}
    assert summary["model_pack"] == "antelopev2"
    assert "model pack: antelopev2" in caplog.text


def test_without_a_model_pack_the_bodies_name_none(moto):
    queue_url = create_resources(moto)
    put(moto, "a.jpg")
    backdate(INPUT_BUCKET, "a.jpg", START + timedelta(hours=1))
    queue_interval(
        request(queue_url=queue_url, only_missing=False, model_pack=None),
        DAY,
        origin=ORIGIN,
        s3=ReindexS3Hook(aws_conn_id="aws_default"),
        sqs=SqsWorkQueueHook(aws_conn_id="aws_default"),
        region="us-east-1",
    )
    (body,) = drain(moto, queue_url)
    assert "model_pack" not in body


def test_images_that_cannot_be_queued_fail_the_run_by_name(moto):
    create_resources(moto)
    for n in range(12):
        put(moto, f"p/{n:02d}.jpg")
    sqs = SqsWorkQueueHook(aws_conn_id="aws_default")
    sqs.max_attempts = 1
    refused = {"Id": "3", "SenderFault": True, "Code": "InvalidMessageContents", "Message": "bad"}
    with Stubber(sqs.conn) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [
                    {"Id": str(n), "MessageId": "m", "MD5OfMessageBody": "x"} for n in range(10) if n != 3
                ],
                "Failed": [refused],
            },
        )
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": str(n), "MessageId": "m", "MD5OfMessageBody": "x"} for n in range(2)],
                "Failed": [],
            },
        )
        with pytest.raises(
            ReindexQueueError, match=r"1 image\(s\).*p/03\.jpg \(InvalidMessageContents.*11 other"
        ):
            queue_interval(
                request(prefix="p/", select_by="prefix", only_missing=False),
                DAY,
                origin=ORIGIN,
                s3=ReindexS3Hook(aws_conn_id="aws_default"),
                sqs=sqs,
                region="us-east-1",
            )


@pytest.mark.parametrize(
    ("summary", "signalled"),
    [
        ({"queued": 3, "dry_run": False}, True),
        ({"queued": 0, "dry_run": False}, False),
        ({"queued": 3, "dry_run": True}, False),
    ],
)
def test_signal_only_when_something_was_queued(summary, signalled):
    assert (signal_reason(summary) is None) == signalled


def test_asset_extra_identifies_the_run_and_interval():
    summary = {
        "queued": 3,
        "bucket": "b",
        "prefix": "p/",
        "interval_start": "2026-11-20T00:00:00+00:00",
        "interval_end": "2026-11-21T00:00:00+00:00",
        "queue_url": "q",
    }
    assert asset_extra(summary, "backfill__x") == {**summary, "run_id": "backfill__x"}


def test_the_input_bucket_variable_is_the_one_face_infra_bootstrap_reads():
    from faceidx.infra.values import VALUES
    from faceidx.reindex import VAR_INPUT_BUCKET

    assert [v.variable for v in VALUES if v.param == "input_bucket"] == [VAR_INPUT_BUCKET]
