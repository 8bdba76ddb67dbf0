"""face_indexing's monitoring on moto: worker log tables, queue health warnings, the run summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.support.airflow_dags import FAST, run_dag, xcom
from tests.support.batch import fake_worker_logs
from tests.support.sqs import seed_messages

HEALTH_CALLS: list[dict] = []


def record_health(health, context):
    """A queue_health_callback: what an engineer would wire to Slack or PagerDuty."""
    HEALTH_CALLS.append({"health": health, "run_id": context["run_id"]})


@pytest.fixture
def dag(indexing_dag):
    return indexing_dag


def _lines(images, faces, errors, summary=True):
    out = [
        "worker starting",  # non-JSON lines are ignored
        json.dumps({"event": "batch", "images": images, "faces": faces, "errors": errors, "seconds": 2.0}),
    ]
    if summary:
        out.append(
            json.dumps(
                {"event": "summary", "images": images, "faces": faces, "errors": errors, "images_per_s": 3.5}
            )
        )
    return out


def test_worker_logs_cover_every_array_child_and_add_up(dag, moto, queue_url):
    seed_messages(queue_url, 2500)  # primary plain job + secondary array of 2

    def lines_for(job_name, index):
        return _lines(7, 11, 1) if "secondary" in job_name else _lines(5, 4, 0, summary=False)

    with fake_worker_logs(lines_for):
        run, states = run_dag(dag, {"queue_url": queue_url, **FAST})
    assert states["worker_logs"] == states["report"] == "success"
    workers = xcom(run, "worker_logs")["workers"]
    assert sorted((w["role"], w["array_index"]) for w in workers) == [
        ("primary", None),
        ("secondary", 0),
        ("secondary", 1),
    ]
    primary = next(w for w in workers if w["role"] == "primary")
    assert primary["partial"] is True  # no summary line: rebuilt from its batch lines
    assert primary["images_per_s"] == pytest.approx(2.5)
    summary = xcom(run, "report")
    assert (summary["images"], summary["faces"], summary["error_rows"]) == (19, 26, 2)
    assert summary["submitted"]["secondary"]["array_size"] == 2
    assert summary["submitted"]["secondary"]["status"] == "SUCCEEDED"
    assert set(summary["cost_by_environment"]) == {"primary", "secondary"}
    assert summary["cost_by_environment"]["secondary"]["workers"] == 2


def test_queue_health_warns_on_old_messages_and_dead_letters(dag, moto, queue_url):
    sqs = moto.client("sqs")
    dlq = sqs.create_queue(QueueName="faceidx-work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})},
    )
    sqs.send_message(QueueUrl=dlq, MessageBody="not json")
    seed_messages(queue_url, 10)
    moto.client("cloudwatch").put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": "faceidx-work"}],
                "Timestamp": datetime.now(UTC),
                "Value": 7200.0,
                "Unit": "Seconds",
            }
        ],
    )
    HEALTH_CALLS.clear()
    run, states = run_dag(
        dag,
        {
            "queue_url": queue_url,
            "max_message_age_seconds": 3600,
            "queue_health_callback": f"{__name__}.record_health",
            **FAST,
        },
    )
    assert states["queue_health"] == "success"
    health = xcom(run, "queue_health")
    assert health["oldest_message_age_seconds"] == 7200.0
    assert health["dlq_depth"] == 1
    assert [w["check"] for w in health["warnings"]] == ["oldest_message", "dead_letter_queue"]
    assert len(HEALTH_CALLS) == 1
    assert HEALTH_CALLS[0]["run_id"] == run.run_id
    summary = xcom(run, "report")
    assert summary["oldest_message_age_seconds"] == 7200.0
    assert summary["dlq_depth"] == 1


def test_healthy_queue_has_no_warning_and_no_callback(dag, moto, queue_url):
    seed_messages(queue_url, 3)
    HEALTH_CALLS.clear()
    run, _ = run_dag(
        dag, {"queue_url": queue_url, "queue_health_callback": f"{__name__}.record_health", **FAST}
    )
    health = xcom(run, "queue_health")
    assert health["warnings"] == []
    assert "no redrive policy" in " ".join(health["notes"])
    assert HEALTH_CALLS == []
