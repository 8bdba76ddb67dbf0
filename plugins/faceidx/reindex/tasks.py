"""The bodies of face_reindex's tasks: select one interval's images, queue them, decide to signal.

Called from the DAG's ``@task`` functions with the rendered Params and the run's data interval;
the AWS calls go through :mod:`faceidx.aws.s3`, every decision through the pure modules.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from faceidx.aws.parsing import EntryFailure, ListedObject
from faceidx.common.tables import format_pairs, format_table
from faceidx.reindex import SELECT_LAST_MODIFIED, VAR_INPUT_BUCKET
from faceidx.reindex.events import SEND_BATCH_SIZE, batch_entries
from faceidx.reindex.index import parse_output_uri
from faceidx.reindex.selection import (
    Interval,
    ReindexRequestError,
    Selection,
    choose_mode,
    drop_indexed,
    iter_in_batches,
    normalise_suffixes,
    render_prefix,
    select_objects,
    summary_rows,
)

log = logging.getLogger(__name__)

MAX_NAMED_FAILURES = 20
PROGRESS_EVERY_BATCHES = 100
MODEL_PACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ReindexQueueError(RuntimeError):
    """Some images could not be queued; the message names them and says what to do."""


@dataclass(frozen=True)
class ReindexRequest:
    """One run's Params after templating (Variables already substituted for empty Params)."""

    bucket: str
    prefix_template: str
    select_by: str
    suffixes: tuple[str, ...]
    only_missing: bool
    queue_url: str
    output_uri: str
    dry_run: bool
    model_pack: str | None = None  # the pack the worker must use; None: the job definition's

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, bucket: str, queue_url: str, output_uri: str
    ) -> ReindexRequest:
        request = cls(
            bucket=bucket.strip(),
            prefix_template=str(params.get("prefix") or ""),
            select_by=str(params.get("select_by") or "auto"),
            suffixes=normalise_suffixes(params.get("suffixes") or ()),
            only_missing=bool(params.get("only_missing", True)),
            queue_url=queue_url.strip(),
            output_uri=output_uri.strip(),
            dry_run=bool(params.get("dry_run", False)),
            model_pack=str(params.get("model_pack") or "").strip() or None,
        )
        if not request.bucket:
            raise ReindexRequestError(
                f"no input bucket: set the bucket Param or the Airflow Variable {VAR_INPUT_BUCKET}."
            )
        if request.bucket.startswith("s3://") or "/" in request.bucket:
            raise ReindexRequestError(
                f"bucket {request.bucket!r} must be a bare bucket name; put the key part in the prefix Param."
            )
        if not request.queue_url and not request.dry_run:
            raise ReindexRequestError(
                "no queue: set the queue_url Param or the Airflow Variable faceidx_queue_url "
                "(face_infra_bootstrap sets it), or run with dry_run."
            )
        if request.model_pack is not None and not MODEL_PACK_NAME.fullmatch(request.model_pack):
            raise ReindexRequestError(
                f"model_pack {request.model_pack!r} is not a pack name (a folder name such as buffalo_l: "
                "letters, digits, '.', '_', '-'). Leave it empty to use the job definition's pack."
            )
        choose_mode(request.select_by, request.prefix_template)  # validates select_by
        if request.only_missing:
            parse_output_uri(request.output_uri)  # validates output_uri
        return request


def _pack(request: ReindexRequest) -> str:
    return request.model_pack or "(the job definition's FACEIDX_MODEL_PACK)"


def _send(
    sqs: Any,
    request: ReindexRequest,
    objects: list[ListedObject],
    *,
    region: str,
    partition: str,
    origin: Mapping[str, str],
) -> tuple[int, list[tuple[str, EntryFailure]]]:
    sent = 0
    failures: list[tuple[str, EntryFailure]] = []
    for number, chunk in enumerate(iter_in_batches(objects, SEND_BATCH_SIZE), start=1):
        entries = batch_entries(
            chunk,
            bucket=request.bucket,
            region=region,
            origin=origin,
            partition=partition,
            model_pack=request.model_pack,
        )
        report = sqs.send_batch(request.queue_url, entries)
        sent += report.sent
        failures.extend((chunk[int(failure.entry_id)].key, failure) for failure in report.failed)
        if number % PROGRESS_EVERY_BATCHES == 0:
            log.info("queued %s of %s images so far", sent, len(objects))
    return sent, failures


def _failure_message(failures: list[tuple[str, EntryFailure]], sent: int, request: ReindexRequest) -> str:
    named = "; ".join(
        f"{key} ({failure.code}: {failure.message}{', sender fault' if failure.sender_fault else ''})"
        for key, failure in failures[:MAX_NAMED_FAILURES]
    )
    more = f" and {len(failures) - MAX_NAMED_FAILURES} more" if len(failures) > MAX_NAMED_FAILURES else ""
    return (
        f"{len(failures)} image(s) of s3://{request.bucket} could not be queued on {request.queue_url}: "
        f"{named}{more}. {sent} other(s) were queued. Fix the cause and clear this run: with "
        "only_missing the rerun queues only what the index lacks; duplicates are harmless (the index "
        "dedups by bucket, key, etag)."
    )


def queue_interval(
    request: ReindexRequest,
    interval: Interval,
    *,
    origin: Mapping[str, str],
    s3: Any,
    sqs: Any,
    region: str,
    partition: str = "aws",
    table_location: Any = None,
) -> dict[str, Any]:
    """List, filter and queue one interval's images. Returns the run's summary (also logged).

    ``table_location``: the :class:`faceidx.store.location.IndexLocation` of ``output_uri`` that
    ``only_missing`` reads the face table from; None: :func:`table_location_for` without an AWS
    connection (a local index, or boto3's own environment)."""
    started = time.perf_counter()
    mode = choose_mode(request.select_by, request.prefix_template)
    prefix = render_prefix(request.prefix_template, interval)
    log.info(
        "%s",
        format_pairs(
            [
                ("bucket", request.bucket),
                ("prefix template", request.prefix_template or "(none)"),
                ("prefix", prefix or "(whole bucket)"),
                ("select by", f"{mode} (Param select_by={request.select_by})"),
                ("data interval", interval.describe()),
                ("suffixes", ", ".join(request.suffixes)),
                ("only_missing", request.only_missing),
                ("index", request.output_uri if request.only_missing else "(not read)"),
                ("queue", request.queue_url or "(none)"),
                ("model pack", _pack(request)),
                ("dry_run", request.dry_run),
            ],
            title="face_reindex request",
        ),
    )
    window = interval if mode == SELECT_LAST_MODIFIED else None
    selection: Selection = select_objects(
        s3.iter_objects(request.bucket, prefix), suffixes=request.suffixes, interval=window
    )
    lookup: dict[str, Any] = {"index_files_read": 0}
    if request.only_missing and selection.selected:
        from faceidx.reindex.lookup import indexed_images

        found = indexed_images(
            s3,
            output_uri=request.output_uri,
            table_location=table_location or table_location_for(request.output_uri),
            bucket=request.bucket,
            candidates=selection.selected,
            model_pack=request.model_pack,
        )
        selection = drop_indexed(selection, found.pairs)
        lookup = found.summary()

    sent = 0
    failures: list[tuple[str, EntryFailure]] = []
    if selection.selected and not request.dry_run:
        sent, failures = _send(
            sqs, request, selection.selected, region=region, partition=partition, origin=origin
        )
    queued = len(selection.selected) if request.dry_run else sent
    log.info(
        "%s",
        format_table(
            ("images", "count"),
            summary_rows(selection, queued=queued, dry_run=request.dry_run),
            title=f"face_reindex s3://{request.bucket}/{prefix} {interval.describe()} ({mode}), "
            f"model pack: {_pack(request)}",
        ),
    )
    if request.dry_run and selection.selected:
        sample = ", ".join(obj.key for obj in selection.selected[:10])
        log.info("dry run: nothing sent; the first images it would queue: %s", sample)
    if failures:
        raise ReindexQueueError(_failure_message(failures, sent, request))
    return {
        "bucket": request.bucket,
        "prefix": prefix,
        "mode": mode,
        "interval_start": interval.start.isoformat(),
        "interval_end": interval.end.isoformat(),
        "found": selection.found,
        "skipped": dict(sorted(selection.skipped.items())),
        "queued": queued,
        "dry_run": request.dry_run,
        "only_missing": request.only_missing,
        **lookup,
        "queue_url": request.queue_url,
        "model_pack": request.model_pack,
        "seconds": round(time.perf_counter() - started, 3),
    }


def table_location_for(output_uri: str, aws_conn_id: str | None = None) -> Any:
    """The face table's location for ``output_uri`` (the face_table DAG's own), a local directory as is."""
    from faceidx.store.location import IndexLocation

    parsed = parse_output_uri(output_uri)
    if parsed.local_dir is not None:
        return IndexLocation(output_uri=str(parsed.local_dir))
    if aws_conn_id is None:
        return IndexLocation(output_uri=output_uri.strip())
    from faceidx.erasure.tasks import location_for

    return location_for(output_uri, aws_conn_id=aws_conn_id)


def signal_reason(summary: Mapping[str, Any]) -> str | None:
    """Why face_indexing must *not* be signalled (the task then skips, emitting no Asset event)."""
    if summary.get("dry_run"):
        return "dry run: nothing was queued, so face_indexing is not signalled"
    if not summary.get("queued"):
        return "nothing was queued in this interval, so face_indexing is not signalled"
    return None


def asset_extra(summary: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The Asset event's extra: enough to find the run and the interval from the event alone."""
    return {
        "queued": int(summary["queued"]),
        "bucket": summary["bucket"],
        "prefix": summary["prefix"],
        "interval_start": summary["interval_start"],
        "interval_end": summary["interval_end"],
        "queue_url": summary["queue_url"],
        "run_id": run_id,
    }


def queue_task(
    params: Mapping[str, Any],
    *,
    bucket: str,
    queue_url: str,
    output_uri: str,
    data_interval_start: Any,
    data_interval_end: Any,
    dag_id: str,
    run_id: str,
    aws_conn_id: str,
) -> dict[str, Any]:
    """The ``queue_images`` task: a Param problem fails at once (a retry cannot fix it)."""
    from airflow.sdk.exceptions import AirflowFailException

    from faceidx.aws.s3 import ReindexS3Hook
    from faceidx.aws.sqs import SqsWorkQueueHook
    from faceidx.reindex.selection import interval_from_context

    try:
        request = ReindexRequest.from_params(
            params, bucket=bucket, queue_url=queue_url, output_uri=output_uri
        )
        interval = interval_from_context(data_interval_start, data_interval_end)
    except ReindexRequestError as exc:
        raise AirflowFailException(str(exc)) from exc
    s3 = ReindexS3Hook(aws_conn_id=aws_conn_id)
    sqs = SqsWorkQueueHook(aws_conn_id=aws_conn_id)
    try:
        return queue_interval(
            request,
            interval,
            origin={"origin": "face_reindex", "dag_id": dag_id, "run_id": run_id},
            s3=s3,
            sqs=sqs,
            region=s3.conn_region_name or "us-east-1",
            partition=s3.conn_partition or "aws",
            table_location=(
                table_location_for(request.output_uri, aws_conn_id) if request.only_missing else None
            ),
        )
    except ReindexRequestError as exc:
        raise AirflowFailException(str(exc)) from exc
