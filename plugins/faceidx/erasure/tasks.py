"""The bodies of face_forget's tasks (preview; forget, run as the index step ``forget`` in the task or
as a Batch job), and the ObjectRemoved hook the face table's ingest step calls.

The receipt is logged as a table; a target not in the index fails the task at once (a retry cannot
find it either) and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from faceidx.common.tables import format_pairs, format_table
from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)


def _target(params: Mapping[str, Any]) -> Any:
    from airflow.sdk.exceptions import AirflowFailException

    from faceidx.erasure.forget import ForgetTarget

    try:
        return ForgetTarget(str(params.get("target_type") or ""), str(params.get("target") or "").strip())
    except ValueError as error:
        raise AirflowFailException(f"{error}. Set the target_type and target Params.") from error


def preview_task(
    params: Mapping[str, Any], *, location: IndexLocation, resolve_person: Any = None
) -> dict[str, Any]:
    """The ``preview`` task: what forgetting the target would remove, counted without writing; the
    approval's Markdown body (``body``) and the counts (``preview``). Not there: the run fails now."""
    from airflow.sdk.exceptions import AirflowFailException

    from faceidx.erasure.forget import ForgetTargetNotFound, ForgetUnavailable
    from faceidx.erasure.preview import preview

    target = _target(params)
    try:
        found = preview(location, target, resolve_person)
    except (ForgetTargetNotFound, ForgetUnavailable) as error:
        raise AirflowFailException(f"{error}. Check the target and trigger again.") from error
    pairs = [(name, value) for name, value in found.to_dict().items() if name not in {"images"}]
    log.info("%s", format_pairs(pairs, title=f"face_forget preview (nothing written): {target.describe()}"))
    return {"body": found.markdown(), "preview": found.to_dict()}


def approval_of(answer: Mapping[str, Any] | None) -> str:
    """The approving user from the ``approve`` task's result ("" when no approval was required); an
    answer that is not an approval by a named user fails the task (nothing is deleted)."""
    from airflow.sdk.exceptions import AirflowFailException

    from faceidx.erasure.approval import approver_of

    try:
        return approver_of(answer)
    except ValueError as error:
        raise AirflowFailException(str(error)) from error


class ForgetRefused(ValueError):
    """The target is not in the index (or cannot be forgotten now): nothing changed; a retry cannot
    do better. The message says what to do."""


def forget_request(
    params: Mapping[str, Any],
    *,
    location: IndexLocation,
    actor: str,
    resolve_person: Any = None,
    approver: str = "",
) -> dict[str, Any]:
    """One target from the Params (in the task, or as the ``forget`` step of a Batch job); returns the
    receipt (also logged). ``approver``: the user who approved the erasure in the UI ("" when no
    approval was required). Raises :class:`ForgetRefused` (logged as a table) when the target is not
    there."""
    from faceidx.erasure.forget import ForgetTarget, ForgetTargetNotFound, ForgetUnavailable, forget

    try:
        target = ForgetTarget(str(params.get("target_type") or ""), str(params.get("target") or "").strip())
    except ValueError as error:
        raise ForgetRefused(f"{error}. Set the target_type and target Params.") from error
    reason = str(params.get("reason") or "")
    log.info(
        "%s",
        format_pairs(
            [
                ("target", target.describe()),
                ("reason", reason or "-"),
                ("actor", actor),
                ("approver", approver or "- (no approval required)"),
                ("index", location.output_uri),
                ("vectors", location.vectors_uri),
            ],
            title="face_forget request",
        ),
    )
    try:
        receipt = forget(
            location, target, reason=reason, actor=actor, resolve_person=resolve_person, approver=approver
        )
    except (ForgetTargetNotFound, ForgetUnavailable) as error:
        log.error(
            "%s",
            format_pairs(
                [
                    ("why", str(error)),
                    (
                        "changed",
                        "nothing of this target, no receipt for it (pending landing files and "
                        "ObjectRemoved tombstones were ingested first, as face_table's ingest does)",
                    ),
                    (
                        "what to do",
                        "check the target (an indexed s3://bucket/key, a face_id or a person_id) "
                        "and its target_type, then trigger again",
                    ),
                ],
                title="face_forget refused",
            ),
        )
        raise ForgetRefused(f"{error}. Check the target and trigger again.") from error
    log.info("%s", format_pairs(receipt.summary_rows(), title=f"face_forget receipt {receipt.id}"))
    return receipt.to_dict()


def forget_tombstones_step(location: IndexLocation, tombstones: Iterable[Any]) -> list[dict[str, Any]]:
    """After an ingest commit: forget the images S3 reported removed, and log one line per receipt."""
    from faceidx.erasure.forget import forget_tombstones

    receipts = forget_tombstones(location, tombstones)
    if receipts:
        log.info(
            "%s",
            format_table(
                ("image", "table rows", "vectors", "verified", "receipt"),
                [
                    (
                        r.target["value"],
                        sum(r.removed.get("table_rows", {}).values()),
                        sum(r.removed.get("vectors", {}).values()),
                        "yes" if r.verified else "NO",
                        r.uri,
                    )
                    for r in receipts
                ],
                title="ObjectRemoved: images forgotten",
            ),
        )
    return [r.to_dict() for r in receipts]


def location_for(output_uri: str, vectors_uri: str = "", *, aws_conn_id: str) -> IndexLocation:
    """The index of a task: the rendered Params/Variables and the AWS connection's credentials."""
    from airflow.sdk.exceptions import AirflowFailException

    output = (output_uri or "").strip()
    if not output:
        raise AirflowFailException(
            "no index: set the output_uri Param or the Airflow Variable faceidx_output_uri "
            "(face_infra_bootstrap sets it)."
        )
    if not output.startswith("s3://"):
        return IndexLocation(output_uri=output, vectors_uri=(vectors_uri or "").strip())
    return IndexLocation.from_airflow(
        output, aws_conn_id=aws_conn_id, vectors_uri=(vectors_uri or "").strip()
    )


def run_actor(context: Mapping[str, Any]) -> str:
    """Who asked: the user who triggered the run, else the run itself."""
    run = context.get("dag_run")
    user = getattr(run, "triggering_user_name", None) if run is not None else None
    return str(user) if user else f"airflow:{context.get('run_id', '?')}"
