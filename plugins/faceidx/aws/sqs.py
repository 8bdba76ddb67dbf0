"""SQS reads for faceidx: queue depth only. Nothing here receives or deletes a message."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from botocore.exceptions import ClientError

from faceidx.aws.errors import MISSING_QUEUE_CODES, error_code, error_text, explain, is_access_denied
from faceidx.indexing.depth import DEPTH_ATTRIBUTES, QueueDepth, parse_queue_depth


class SqsQueueDepthError(RuntimeError):
    """The depth could not be read; the message names the queue and what to do."""


def explain_sqs_error(queue_url: str, err: ClientError) -> str:
    if error_code(err) in MISSING_QUEUE_CODES:
        return (
            f"SQS queue {queue_url} does not exist ({error_text(err)}). Run the face_infra_bootstrap DAG "
            "to create it, or fix the queue_url Param / faceidx_queue_url Variable."
        )
    if is_access_denied(err):
        return (
            f"Not allowed to read the attributes of {queue_url} ({error_text(err)}). Grant "
            "sqs:GetQueueAttributes on this queue to the identity of the Airflow AWS connection."
        )
    return explain(err, "GetQueueAttributes", queue_url)


class SqsQueueDepthHook(SqsHook):
    """Reads ApproximateNumberOf{Messages,MessagesNotVisible,MessagesDelayed}, sync or async."""

    def get_queue_depth(self, queue_url: str) -> QueueDepth:
        try:
            response = self.conn.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=list(DEPTH_ATTRIBUTES)
            )
        except ClientError as err:
            raise SqsQueueDepthError(explain_sqs_error(queue_url, err)) from err
        return parse_queue_depth(response.get("Attributes", {}))

    @staticmethod
    async def aget_queue_depth(client: Any, queue_url: str) -> QueueDepth:
        """Same read through an aiobotocore client (from ``get_async_conn``), for triggers."""
        try:
            response = await client.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=list(DEPTH_ATTRIBUTES)
            )
        except ClientError as err:
            raise SqsQueueDepthError(explain_sqs_error(queue_url, err)) from err
        return parse_queue_depth(response.get("Attributes", {}))
