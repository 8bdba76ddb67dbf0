"""Where each per-account value comes from: Param, then Variable, then default; all missing at once."""

from __future__ import annotations

import pytest

from faceidx.common.constants import VAR_OUTPUT_URI
from faceidx.infra.values import (
    VALUES,
    InvalidValueError,
    MissingValuesError,
    example_params,
    parse_list,
    resolve_values,
    split_s3_uri,
)

REQUIRED = ["input_bucket", "output_uri", "subnets", "security_group_ids", "worker_image"]


def test_every_missing_value_is_named_in_one_error():
    with pytest.raises(MissingValuesError) as caught:
        resolve_values({}, {})
    assert caught.value.missing == REQUIRED
    message = str(caught.value)
    for name in REQUIRED:
        assert name in message
        assert f"faceidx_{name}" in message, "says which Variable can supply it"


def test_param_wins_over_variable_and_variable_over_default():
    params = {**example_params(), "input_bucket": "from-param", "queue_name": ""}
    variables = {"faceidx_input_bucket": "from-variable", "faceidx_queue_name": "queue-from-variable"}
    values = resolve_values(params, variables)
    assert values["INPUT_BUCKET"] == "from-param"
    assert values["QUEUE_NAME"] == "queue-from-variable"
    assert values["DEAD_LETTER_QUEUE_NAME"] == "queue-from-variable-dlq"
    assert values["JOB_ROLE_NAME"] == "faceidx-batch-job-role", "built-in default"


def test_variables_alone_can_supply_everything():
    variables = {v.variable: v.example for v in VALUES}
    variables["faceidx_subnets"] = "subnet-a, subnet-b"  # Variables are strings
    variables["faceidx_security_group_ids"] = '["sg-1"]'
    values = resolve_values({v.param: v.empty for v in VALUES}, variables)
    assert values["SUBNETS"] == ["subnet-a", "subnet-b"]
    assert values["SECURITY_GROUP_IDS"] == ["sg-1"]


def test_output_uri_variable_is_the_one_face_indexing_reads():
    assert next(v for v in VALUES if v.param == "output_uri").variable == VAR_OUTPUT_URI


def test_optional_service_role_may_stay_empty():
    assert resolve_values(example_params(), {})["SERVICE_ROLE_ARN"] == ""


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://index/faces-v1/", "index", "faces-v1/"),
        ("s3://index/faces-v1", "index", "faces-v1/"),
        ("s3://index/a/b/", "index", "a/b/"),
        ("s3://index", "index", ""),
        ("s3://index/", "index", ""),
    ],
)
def test_output_uri_splits_into_bucket_and_prefix(uri, bucket, prefix):
    assert split_s3_uri(uri) == (bucket, prefix)


@pytest.mark.parametrize("uri", ["index/faces", "/tmp/index", "s3://", "https://index.s3.amazonaws.com/x"])
def test_output_uri_must_be_s3(uri):
    with pytest.raises(InvalidValueError, match="output_uri must look like s3://"):
        split_s3_uri(uri)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["a", " b "], ["a", "b"]),
        ("a,b", ["a", "b"]),
        ('["a", "b"]', ["a", "b"]),
        ("a", ["a"]),
        ("", []),
    ],
)
def test_list_values(raw, expected):
    assert parse_list(raw) == expected
