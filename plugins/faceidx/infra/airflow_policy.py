"""The least-privilege IAM policy of the Airflow identity (``infra/iam/airflow-policy.json``). Pure.

Bootstrap does not apply it: the identity needs it before bootstrap can run. Render it with the same
values as the other specs and attach it to the role or user of the ``aws_default`` connection::

    python -m faceidx.infra.airflow_policy --account-id 123456789012 --region us-east-1 \\
        --param input_bucket=acme-photos --param output_uri=s3://acme-face-index/faces-v1/

The partition follows the region (``aws-cn`` for cn-*, ``aws-us-gov`` for us-gov-*). Statements on an
optional value left empty (``output_kms_key_arn``) are left out.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from faceidx.infra.catalog import default_spec_dir
from faceidx.infra.render import render
from faceidx.infra.values import resolve_values

POLICY_FILE = "iam/airflow-policy.json"


def partition_for_region(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def load_policy_template(spec_dir: Path | str | None = None) -> Any:
    root = Path(spec_dir) if spec_dir else default_spec_dir()
    return json.loads((root / POLICY_FILE).read_text(encoding="utf-8"))


def render_airflow_policy(
    params: Mapping[str, Any],
    account_id: str,
    region: str,
    variables: Mapping[str, Any] | None = None,
    spec_dir: Path | str | None = None,
) -> dict[str, Any]:
    """The policy document for this account: the bootstrap's values plus account, region, partition."""
    # Subnets, security groups and the image do not appear in the policy: stand-ins satisfy the check
    # that every required value is set.
    filler = {"subnets": ["subnet-unused"], "security_group_ids": ["sg-unused"], "worker_image": "unused"}
    values = resolve_values({**filler, **params}, variables or {})
    context = {
        **values,
        "ACCOUNT_ID": account_id,
        "REGION": region,
        "PARTITION": partition_for_region(region),
    }
    rendered: dict[str, Any] = render(load_policy_template(spec_dir), context, f"infra/{POLICY_FILE}")
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--account-id", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE, as the bootstrap's Params")
    args = parser.parse_args(argv)
    params = dict(item.split("=", 1) for item in args.param)
    print(json.dumps(render_airflow_policy(params, args.account_id, args.region), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
