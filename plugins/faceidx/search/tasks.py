"""The body of face_search's task: search the index with one photo and log the matches as tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from faceidx.common.tables import format_pairs
from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)


def search_task(params: Mapping[str, Any], *, location: IndexLocation) -> dict[str, Any]:
    """The ``search`` task: the Params' photo, k, model_version, quality_only; returns the result."""
    from airflow.sdk.exceptions import AirflowFailException

    from faceidx.search.photo import PhotoSearchError, format_table, search_photo
    from faceidx.store.persons import person_lookup

    photo = str(params.get("photo") or "").strip()
    if not photo:
        raise AirflowFailException("no photo: set the photo Param to s3://bucket/key and trigger again")
    k = int(params.get("k") or 10)
    version = (params.get("model_version") or "").strip() or None
    quality_only = bool(params.get("quality_only"))
    log.info(
        "%s",
        format_pairs(
            [
                ("photo", photo),
                ("k", k),
                ("model version", version or "(the current one)"),
                ("quality-passed faces only", quality_only),
                ("vector index", location.vectors_uri),
            ],
            title="face_search request",
        ),
    )
    try:
        result = search_photo(
            location,
            photo,
            k=k,
            model_version=version,
            quality_only=quality_only,
            person_lookup=person_lookup(location),
        )
    except (PhotoSearchError, LookupError) as error:
        raise AirflowFailException(f"{error}. Fix the Params and trigger again.") from error
    log.info("%s", format_table(result))
    return result.to_dict()
