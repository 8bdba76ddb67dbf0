"""The SQS depth snapshot: pure parsing of GetQueueAttributes, shared by the hook and the trigger."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True)
class QueueDepth:
    """Approximate counts (they lag by up to a minute): backlog, in flight, delayed."""

    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueueDepth:
        return cls(int(data["visible"]), int(data["in_flight"]), int(data["delayed"]))


def parse_queue_depth(attributes: dict[str, str]) -> QueueDepth:
    """Read the three approximate counters out of a GetQueueAttributes ``Attributes`` map."""
    missing = [name for name in DEPTH_ATTRIBUTES if name not in attributes]
    if missing:
        raise ValueError(f"GetQueueAttributes answer lacks {', '.join(missing)}: got {sorted(attributes)}")
    return QueueDepth(
        visible=int(attributes["ApproximateNumberOfMessages"]),
        in_flight=int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        delayed=int(attributes["ApproximateNumberOfMessagesDelayed"]),
    )
