"""Waits in the triggerer until an SQS queue holds enough visible messages. Never receives one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from faceidx.aws.sqs import SqsQueueDepthError, SqsWorkQueueHook


class SqsQueueDepthTrigger(BaseTrigger):
    """Polls GetQueueAttributes with the async client until ``visible >= min_depth`` or ``deadline``.

    Emits ``{"status": "success" | "timeout" | "error", "depth": {...}, "message": str}``. The sensor
    turns ``timeout`` into a skip and ``error`` into a failure.
    """

    def __init__(
        self,
        *,
        queue_url: str,
        min_depth: int,
        poke_interval: float,
        deadline: float,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__()
        self.queue_url = queue_url
        self.min_depth = min_depth
        self.poke_interval = poke_interval
        self.deadline = deadline
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            {
                "queue_url": self.queue_url,
                "min_depth": self.min_depth,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
            },
        )

    def hook(self) -> SqsWorkQueueHook:
        return SqsWorkQueueHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        depth = None
        try:
            async with await self.hook().get_async_conn() as client:
                while True:
                    depth = await SqsWorkQueueHook.aget_queue_depth(client, self.queue_url)
                    if depth.visible >= self.min_depth:
                        yield TriggerEvent(
                            {
                                "status": "success",
                                "depth": depth.to_dict(),
                                "message": f"{depth.visible} visible >= min_depth {self.min_depth}",
                            }
                        )
                        return
                    remaining = self.deadline - time.time()
                    if remaining <= 0:
                        yield TriggerEvent(
                            {
                                "status": "timeout",
                                "depth": depth.to_dict(),
                                "message": (
                                    f"{self.queue_url} stayed below min_depth {self.min_depth} "
                                    f"(last: {depth.visible} visible, {depth.in_flight} in flight)"
                                ),
                            }
                        )
                        return
                    self.log.info(
                        "%s: %d visible, %d in flight, %d delayed; waiting for %d",
                        self.queue_url,
                        depth.visible,
                        depth.in_flight,
                        depth.delayed,
                        self.min_depth,
                    )
                    await asyncio.sleep(min(self.poke_interval, max(remaining, 0.1)))
        except SqsQueueDepthError as err:
            yield TriggerEvent(
                {"status": "error", "depth": depth.to_dict() if depth else None, "message": str(err)}
            )
