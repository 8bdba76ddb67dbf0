"""A real Airflow (api-server, scheduler, dag-processor, triggerer) for the tests in this folder.

The stack is torn down however the test ends, and a failing test gets the components' logs attached
to its report (section "airflow components").
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faceidx_dev.local.airflow_stack import AirflowStack
from tests.support.moto_server import ACCOUNT_ID, MotoEndpoint, aws_connection_uri_json
from tests.support.reindex_moto import INPUT_BUCKET, OUTPUT_URI, QUEUE_NAME


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "airflow_stack", None)
    if stack is not None and report.failed:
        report.sections.append((f"airflow components ({report.when})", stack.diagnostics()))


@pytest.fixture
def airflow_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, moto_session: MotoEndpoint
) -> Iterator[AirflowStack]:
    stack = AirflowStack(
        home=tmp_path_factory.mktemp("airflow-live"),
        aws_connection=aws_connection_uri_json(moto_session.url),
        # what face_infra_bootstrap publishes (and the input bucket it reads), as Airflow Variables
        extra_env={
            "AIRFLOW_VAR_FACEIDX_INPUT_BUCKET": INPUT_BUCKET,
            "AIRFLOW_VAR_FACEIDX_QUEUE_URL": f"{moto_session.url}/{ACCOUNT_ID}/{QUEUE_NAME}",
            "AIRFLOW_VAR_FACEIDX_OUTPUT_URI": OUTPUT_URI,
        },
    )
    request.node.airflow_stack = stack
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
