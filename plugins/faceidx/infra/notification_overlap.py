"""Which of a bucket's other event notifications overlap ours. Pure.

S3 rejects a whole PutBucketNotificationConfiguration with ``InvalidArgument`` ("Configurations overlap.
Configurations on the same bucket cannot share a common event type.") when two configurations, of any
destination (queue, topic or Lambda), match a common event type for keys both filters can match. moto
accepts such a configuration, so the bootstrap checks it itself, before the call, and names the other
configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SECTIONS = {
    "QueueConfigurations": "QueueArn",
    "TopicConfigurations": "TopicArn",
    "LambdaFunctionConfigurations": "LambdaFunctionArn",
}


@dataclass(frozen=True)
class Overlap:
    ours: str  # our configuration's Id
    section: str  # the other configuration's section
    other: dict[str, Any]

    def describe(self) -> str:
        other = self.other
        prefix, suffix = key_filter(other)
        destination = other.get(SECTIONS[self.section], "?")
        return (
            f"{self.section[:-1]} {other.get('Id') or '(no Id)'} ({', '.join(other.get('Events', []))}; "
            f"prefix {prefix!r}, suffix {suffix!r}; to {destination}) overlaps faceidx's {self.ours}"
        )


def key_filter(configuration: dict[str, Any]) -> tuple[str, str]:
    """(prefix, suffix) of a configuration's key filter; empty for none. Rule names are case-blind."""
    rules = ((configuration.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
    found = {str(r.get("Name", "")).lower(): str(r.get("Value", "")) for r in rules}
    return found.get("prefix", ""), found.get("suffix", "")


def events_overlap(a: list[str], b: list[str]) -> bool:
    """``s3:ObjectCreated:*`` covers ``s3:ObjectCreated:Put``; equal names overlap."""

    def covers(x: str, y: str) -> bool:
        return x == y or (x.endswith("*") and y.startswith(x[:-1]))

    return any(covers(x, y) or covers(y, x) for x in a for y in b)


def keys_overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Some key matches both filters: one prefix starts the other and one suffix ends the other."""
    (prefix_a, suffix_a), (prefix_b, suffix_b) = key_filter(a), key_filter(b)
    prefixes = prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)
    suffixes = suffix_a.endswith(suffix_b) or suffix_b.endswith(suffix_a)
    return prefixes and suffixes


def overlaps(ours: list[dict[str, Any]], others: dict[str, list[dict[str, Any]]]) -> list[Overlap]:
    """Every (our configuration, other configuration) pair that S3 would reject together.
    ``others``: section name -> the bucket's configurations of that section that are not ours."""
    found = []
    for section, configurations in others.items():
        for other in configurations:
            for mine in ours:
                if events_overlap(mine.get("Events", []), other.get("Events", [])) and keys_overlap(
                    mine, other
                ):
                    found.append(Overlap(str(mine.get("Id")), section, other))
                    break
    return found


def overlap_message(bucket: str, found: list[Overlap]) -> str:
    return (
        f"The input bucket {bucket} already has event notifications that overlap faceidx's: "
        + "; ".join(o.describe() for o in found)
        + ". S3 rejects the whole PutBucketNotificationConfiguration with InvalidArgument "
        "('Configurations overlap') when two configurations match the same event type and key, so "
        "nothing was changed. Fix: turn on EventBridge for the bucket (EventBridgeConfiguration) and "
        "route 'Object Created' and 'Object Deleted' events to the work queue with an EventBridge rule "
        "(the workers read EventBridge events, and every other consumer can have its own rule), or "
        "narrow the other configuration's prefix or suffix so it no longer matches the images faceidx "
        "indexes."
    )
