"""Placeholder filling: types kept, optional keys dropped, policies serialized, unknown names refused."""

from __future__ import annotations

import json

import pytest

from faceidx.infra.catalog import SPECS, load_templates
from faceidx.infra.render import KNOWN_PLACEHOLDERS, RenderError, render, unknown_placeholders


def test_whole_string_placeholder_keeps_the_value_type():
    out = render({"subnets": "${SUBNETS}", "n": 3}, {"SUBNETS": ["subnet-a", "subnet-b"]})
    assert out == {"subnets": ["subnet-a", "subnet-b"], "n": 3}


def test_embedded_placeholders_become_text():
    out = render(
        {"Resource": "arn:aws:s3:::${OUTPUT_BUCKET}/${OUTPUT_PREFIX}*"},
        {"OUTPUT_BUCKET": "index", "OUTPUT_PREFIX": "faces-v1/"},
    )
    assert out == {"Resource": "arn:aws:s3:::index/faces-v1/*"}


def test_empty_optional_value_removes_its_key():
    template = {"computeEnvironmentName": "x", "serviceRole": "${SERVICE_ROLE_ARN}"}
    assert render(template, {"SERVICE_ROLE_ARN": ""}) == {"computeEnvironmentName": "x"}
    assert render(template, {"SERVICE_ROLE_ARN": "arn:r"})["serviceRole"] == "arn:r"


def test_policy_documents_become_json_strings():
    template = {"RoleName": "r", "PolicyDocument": {"Statement": [{"Resource": "${QUEUE_ARN}"}]}}
    out = render(template, {"QUEUE_ARN": "arn:aws:sqs:us-east-1:1:q"})
    assert isinstance(out["PolicyDocument"], str)
    assert json.loads(out["PolicyDocument"]) == {"Statement": [{"Resource": "arn:aws:sqs:us-east-1:1:q"}]}


def test_a_value_nobody_supplies_is_an_error_naming_the_field():
    with pytest.raises(RenderError, match=r"spec.a.b: no value for \$\{QUEUE_URL\}"):
        render({"a": {"b": "${QUEUE_URL}"}}, {})


def test_a_list_cannot_be_embedded_in_text():
    with pytest.raises(RenderError, match="must be the whole string"):
        render({"a": "x-${SUBNETS}"}, {"SUBNETS": ["s"]})


def test_shipped_specs_use_only_known_placeholders():
    assert unknown_placeholders(load_templates()) == {}
    assert unknown_placeholders({"k": {"a": "${NOT_A_THING}"}}) == {"k": {"NOT_A_THING"}}
    assert "QUEUE_ARN" in KNOWN_PLACEHOLDERS


def test_every_catalog_entry_has_a_spec_file():
    assert set(load_templates()) == {entry.key for entry in SPECS}
