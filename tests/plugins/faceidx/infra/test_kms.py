"""KMS-encrypted buckets: the job role gets kms:Decrypt / kms:GenerateDataKey on the keys an account
names, and no KMS statement at all when it names none (the default)."""

from __future__ import annotations

import json

import pytest

from faceidx.infra.validate import InfraSpecError, validate_specs
from faceidx.infra.values import VALUES_BY_PARAM, example_params
from tests.plugins.faceidx.infra.conftest import actions

INPUT_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OUTPUT_KEY = "arn:aws:kms:us-east-1:123456789012:key/0987dcba-09fe-87dc-65ba-ab0987654321"


def _statements(params):
    rendered = validate_specs(params, {}).rendered["iam/job-role-policy"]
    return {s["Sid"]: s for s in json.loads(rendered["PolicyDocument"])["Statement"]}


def test_no_kms_statement_by_default():
    assert VALUES_BY_PARAM["input_kms_key_arn"].default == ""
    statements = _statements(example_params())
    assert not [s for s in statements.values() if "kms" in json.dumps(s["Action"])]
    assert all("Resource" in s for s in statements.values())


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"input_kms_key_arn": INPUT_KEY},
            {"DecryptInputImagesWithTheirKmsKey": (["kms:Decrypt"], INPUT_KEY)},
        ),
        (
            {"output_kms_key_arn": OUTPUT_KEY},
            {"EncryptIndexWithTheOutputKmsKey": (["kms:Decrypt", "kms:GenerateDataKey"], OUTPUT_KEY)},
        ),
        (
            {"input_kms_key_arn": INPUT_KEY, "output_kms_key_arn": OUTPUT_KEY},
            {
                "DecryptInputImagesWithTheirKmsKey": (["kms:Decrypt"], INPUT_KEY),
                "EncryptIndexWithTheOutputKmsKey": (["kms:Decrypt", "kms:GenerateDataKey"], OUTPUT_KEY),
            },
        ),
    ],
)
def test_kms_statements_only_for_the_keys_given(params, expected):
    statements = _statements({**example_params(), **params})
    kms = {
        sid: (sorted([s["Action"]] if isinstance(s["Action"], str) else s["Action"]), s["Resource"])
        for sid, s in statements.items()
        if "kms:" in json.dumps(s["Action"])
    }
    assert kms == expected


@pytest.mark.parametrize(
    "value",
    ["1234abcd-12ab-34cd-56ef-1234567890ab", "alias/photos", "arn:aws:kms:us-east-1:123456789012:alias/x"],
)
def test_a_key_id_or_alias_is_rejected(value):
    with pytest.raises(InfraSpecError, match="is not a KMS key ARN"):
        validate_specs({**example_params(), "input_kms_key_arn": value}, {})


def test_setting_a_key_later_updates_the_job_role_policy(bootstrap, account):
    bootstrap()
    run = bootstrap(input_kms_key_arn=INPUT_KEY)
    assert actions(run)["iam inline policy faceidx-batch-job-role/faceidx-worker"] == "updated"
    document = account.client("iam").get_role_policy(
        RoleName="faceidx-batch-job-role", PolicyName="faceidx-worker"
    )["PolicyDocument"]
    (statement,) = [s for s in document["Statement"] if s["Sid"] == "DecryptInputImagesWithTheirKmsKey"]
    assert (statement["Action"], statement["Resource"]) == ("kms:Decrypt", INPUT_KEY)
    assert actions(bootstrap(input_kms_key_arn=INPUT_KEY))[
        "iam inline policy faceidx-batch-job-role/faceidx-worker"
    ] == ("unchanged")
