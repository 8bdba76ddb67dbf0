"""SQS reads for faceidx: queue depth only. Nothing here receives or deletes a message."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from botocore.exceptions import ClientError

from faceidx.indexing.depth import DEPTH_ATTRIBUTES, QueueDepth, parse_queue_depth

_MISSING_QUEUE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


class SqsQueueDepthError(RuntimeError):
    """The depth could not be read; the message names the queue and what to do."""


def explain_sqs_error(queue_url: str, err: ClientError) -> str:
    code = err.response.get("Error", {}).get("Code", "")
    message = err.response.get("Error", {}).get("Message", str(err))
    if code in _MISSING_QUEUE_CODES:
        return (
            f"SQS queue {queue_url} does not exist ({code}: {message}). Run the face_infra_bootstrap DAG "
            "to create it, or fix the queue_url Param / faceidx_queue_url Variable."
        )
    if code in {"AccessDenied", "AccessDeniedException", "AuthorizationError"}:
        return (
            f"Not allowed to read the attributes of {queue_url} ({code}: {message}). Grant "
            "sqs:GetQueueAttributes on this queue to the identity of the Airflow AWS connection."
        )
    return f"GetQueueAttributes on {queue_url} failed ({code}: {message})."


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
