"""The index's steps a Batch job (or, when small, the Airflow task itself) runs: one name, one function.

Every step takes the index's location and a JSON-able mapping of parameters, holds the writer lease
(``faceidx.store.lease``) while it writes, logs its decisions as tables and returns a small JSON
summary. They are the same functions the tasks ran in Airflow before; only where they run changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from faceidx.store.location import IndexLocation

StepFunction = Callable[[IndexLocation, Mapping[str, Any]], dict[str, Any]]


class UnknownStepError(ValueError):
    """A step name no job knows."""


class StepRefused(ValueError):
    """The step cannot do what was asked (a target not in the index): nothing changed, and a retry
    cannot do better. The message says what to do."""


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    run: StepFunction


def _ingest(location: IndexLocation, params: Mapping[str, Any]) -> dict[str, Any]:
    from faceidx.maintenance.tasks import ingest_task

    return ingest_task(location, max_files=int(params.get("max_files", 500)))


def _compact(location: IndexLocation, params: Mapping[str, Any]) -> dict[str, Any]:
    from faceidx.maintenance.tasks import compact_task

    days = [str(day) for day in params.get("days", [])]
    return compact_task(location, days, target_file_mb=int(params.get("target_file_mb", 128)))


def _vacuum(location: IndexLocation, params: Mapping[str, Any]) -> dict[str, Any]:
    from faceidx.maintenance.tasks import vacuum_task

    return vacuum_task(location, retention_hours=int(params.get("retention_hours", 168)))


def _sync_vectors(location: IndexLocation, params: Mapping[str, Any]) -> dict[str, Any]:
    from faceidx.maintenance.tasks import sync_vectors_task

    return sync_vectors_task(location)


def _identities(location: IndexLocation, params: Mapping[str, Any]) -> dict[str, Any]:
    from faceidx.people.tasks import identities_task

    start = params.get("data_interval_start")
    interval_start = datetime.fromisoformat(str(start)) if start else None
    return identities_task(location, dict(params.get("params", {})), interval_start)


def _forget(location: IndexLocation, params: Mapping[str, Any]) -> dict[str, Any]:
    from faceidx.erasure.tasks import ForgetRefused, forget_request

    try:
        return forget_request(
            dict(params.get("params", {})),
            location=location,
            actor=str(params.get("actor") or "faceidx.jobs"),
            approver=str(params.get("approver") or ""),
        )
    except ForgetRefused as refused:
        raise StepRefused(str(refused)) from refused


STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step("ingest", "landing files into the face table", _ingest),
        Step("compact", "small data files of the interval's partitions rewritten", _compact),
        Step("vacuum", "files no young table version needs deleted", _vacuum),
        Step("sync_vectors", "the vector index brought up to the table", _sync_vectors),
        Step("identities", "faces become persons (incremental, or a full re-cluster)", _identities),
        Step("forget", "an erasure, from its intent to its receipt (the purge included)", _forget),
    )
}


def step_named(name: str) -> Step:
    try:
        return STEPS[name]
    except KeyError:
        raise UnknownStepError(f"no step {name!r}: one of {', '.join(sorted(STEPS))}") from None
