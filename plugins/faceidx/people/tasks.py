"""Task bodies of the face_identities and face_people DAGs (Airflow stays at the edges)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from faceidx.common.tables import format_pairs
from faceidx.people.clustering import ClusterPolicy
from faceidx.people.identities import RunReport
from faceidx.store.calibration import DEFAULT_FAR
from faceidx.store.location import IndexLocation

if TYPE_CHECKING:
    from faceidx.store.calibration import Calibration, ThresholdChoice

log = logging.getLogger(__name__)

ASSIGNMENT_FAR = DEFAULT_FAR  # the false-accept rate a person assignment is held to
RECLUSTER_WEEKDAY = 0  # Monday: the scheduled run whose interval starts at 00:00 re-clusters in full


def model_version_of(location: IndexLocation, requested: str | None) -> str:
    """The Param's version, else the registry's current one."""
    if requested:
        return requested
    from faceidx.store.registry import ModelRegistry

    return ModelRegistry(location).current()


def wants_full_recluster(full_recluster: bool | None, interval_start: datetime | None) -> bool:
    """The Param, or the weekly cadence: the run whose interval starts Monday 00:00 UTC."""
    if full_recluster:
        return True
    if interval_start is None:
        return False
    return interval_start.weekday() == RECLUSTER_WEEKDAY and interval_start.hour == 0


def assignment_threshold(
    calibration: Calibration | None, version: str, requested: float | None
) -> ThresholdChoice:
    """The threshold an assignment (and a clustering edge) needs: the Param when set, else the
    version's calibrated threshold at :data:`ASSIGNMENT_FAR`, else ``ClusterPolicy.threshold``."""
    from faceidx.store.calibration import ThresholdChoice, choose_threshold

    if requested is not None:
        return ThresholdChoice(float(requested), None, "the threshold Param", False)
    return choose_threshold(
        calibration,
        version,
        far=ASSIGNMENT_FAR,
        default=ClusterPolicy.threshold,
        default_name="ClusterPolicy.threshold",
    )


def identities_task(
    location: IndexLocation, params: Mapping[str, Any], interval_start: datetime | None
) -> dict[str, Any]:
    from faceidx.people.identities import run_incremental, run_recluster
    from faceidx.store.registry import ModelRegistry

    version = model_version_of(location, params.get("model_version"))
    requested = params.get("threshold")
    carry_from = params.get("carry_from")
    full = wants_full_recluster(params.get("full_recluster"), interval_start) or bool(carry_from)
    from faceidx.people.review import review_items
    from faceidx.store.lease import writer
    from faceidx.store.persons import now

    started = now()

    with writer(location, f"identities {'re-cluster' if full else 'incremental'} {version}"):
        calibration = ModelRegistry(location).calibrate(version)  # refreshed: the index grew
        choice = assignment_threshold(
            calibration, version, None if requested in (None, "") else float(requested)
        )
        proposal = params.get("merge_proposal")
        policy = ClusterPolicy(
            threshold=choice.threshold,
            margin=float(params.get("margin") or ClusterPolicy.margin),
            merge_proposal=ClusterPolicy.merge_proposal if proposal in (None, "") else float(proposal),
        )
        report: RunReport = (
            run_recluster(location, version, policy, carry_from=carry_from)
            if full
            else run_incremental(location, version, policy)
        )
        review = review_items(location, version, started, policy)
    pairs = report.pairs() + choice.pairs() + [("impostor pairs (calibration)", calibration.pairs)]
    pairs.append(("to review in Required Actions", len(review)))
    log.info("%s", format_pairs(pairs, title=f"identities of {version}: {report.mode}"))
    return {**{name: value for name, value in pairs}, "review": review}


def review_prompts(report: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The review task's mapped arguments (``subject``, ``body``), one per item of the identities
    run's report, in its order; an empty list skips the review."""
    from faceidx.people.review import prompt

    return [prompt(item) for item in (report or {}).get("review") or []]


def apply_review_task(
    location: IndexLocation, report: Mapping[str, Any], answers: Sequence[Mapping[str, Any] | None]
) -> dict[str, Any]:
    """Each answer of the review as a correction event (recorded and applied under the writer lease);
    a person that changed since the question (merged away, erased) is reported, not guessed."""
    from faceidx.common.tables import format_table
    from faceidx.people.actions import CorrectionError, correct
    from faceidx.people.review import corrections
    from faceidx.store.lease import writer

    items = list(report.get("review") or [])
    answers = list(answers)
    if len(answers) != len(items):
        raise ValueError(f"{len(answers)} answers for {len(items)} review items: the review was changed")
    rows, recorded = [], []
    with writer(location, "identities review"):
        for item, answer in zip(items, answers, strict=True):
            chosen = ", ".join((answer or {}).get("chosen_options") or []) or "-"
            about = item.get("other_person_id") or item.get("face_id")
            done = corrections(item, answer)
            if not done:
                rows.append((item["kind"], item["person_id"], about, chosen, "nothing recorded"))
            for change in done:
                kwargs = dict(change)
                action = kwargs.pop("action")
                try:
                    event = correct(location, item["model_version"], action, **kwargs)
                except CorrectionError as error:
                    rows.append((item["kind"], item["person_id"], about, chosen, f"not recorded: {error}"))
                    continue
                recorded.append({"event_id": event.event_id, "kind": event.kind.value, "actor": event.actor})
                rows.append(
                    (item["kind"], item["person_id"], about, chosen, f"{event.kind.value} {event.event_id}")
                )
    log.info(
        "%s",
        format_table(
            ("item", "person", "other / face", "answer", "correction"), rows, title="identities review"
        ),
    )
    return {"items": len(items), "recorded": recorded}


def people_task(location: IndexLocation, params: Mapping[str, Any], actor: str) -> dict[str, Any]:
    """One correction (or a full re-cluster for ``cluster``), logged as a table."""
    from faceidx.store.lease import writer

    version = model_version_of(location, params.get("model_version"))
    with writer(location, f"people {params['action']} {version}"):
        return _people(location, params, actor, version)


def _people(location: IndexLocation, params: Mapping[str, Any], actor: str, version: str) -> dict[str, Any]:
    from faceidx.people.actions import correct
    from faceidx.people.identities import run_recluster

    action = params["action"]
    if action == "cluster":
        from faceidx.store.registry import ModelRegistry

        choice = assignment_threshold(ModelRegistry(location).calibration(version), version, None)
        log.info("%s", format_pairs(choice.pairs(), title=f"threshold of {version}"))
        report = run_recluster(location, version, ClusterPolicy(threshold=choice.threshold))
        log.info("%s", format_pairs(report.pairs(), title=f"identities of {version}: {report.mode}"))
        return {name: value for name, value in report.pairs()}
    event = correct(
        location,
        version,
        action,
        person_id=params.get("person_id"),
        other_person_id=params.get("other_person_id"),
        face_ids=list(params.get("face_ids") or []),
        label=params.get("label"),
        actor=actor,
    )
    pairs = [
        ("model version", version),
        ("event", event.event_id),
        ("kind", event.kind.value),
        ("actor", actor),
    ]
    pairs += [(f"payload: {key}", _short(value)) for key, value in sorted(event.payload.items())]
    log.info("%s", format_pairs(pairs, title="correction recorded and applied"))
    return {"event_id": event.event_id, "kind": event.kind.value}


def _short(value: Any) -> Any:
    if isinstance(value, list) and len(value) > 5:
        return f"{', '.join(map(str, value[:5]))} ... ({len(value)})"
    return value
