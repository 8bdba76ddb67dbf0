"""The body of face_search's task: search the index with one photo and log the matches as tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from faceidx.common.tables import format_pairs
from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)


def search_task(params: Mapping[str, Any], *, location: IndexLocation) -> dict[str, Any]:
    """The ``search`` task: the Params' photo, k, model_version, quality_only, far, min_similarity,
    list_all, persons; returns the result."""
    from airflow.sdk.exceptions import AirflowFailException

    from faceidx.search.photo import PhotoSearchError, format_table, search_photo
    from faceidx.store.persons import person_lookup

    photo = str(params.get("photo") or "").strip()
    if not photo:
        raise AirflowFailException("no photo: set the photo Param to s3://bucket/key and trigger again")
    k = int(params.get("k") or 10)
    version = (params.get("model_version") or "").strip() or None
    quality_only = bool(params.get("quality_only"))
    far = _number(params.get("far"))
    min_similarity = _number(params.get("min_similarity"))
    list_all = bool(params.get("list_all"))
    persons = bool(params.get("persons"))
    log.info(
        "%s",
        format_pairs(
            [
                ("photo", photo),
                ("k", k),
                ("model version", version or "(the current one)"),
                ("quality-passed faces only", quality_only),
                ("FAR", far if far is not None else "(default 1e-4)"),
                ("min similarity", min_similarity if min_similarity is not None else "(from the FAR)"),
                ("list matches below the threshold", list_all),
                ("rank persons", persons),
                ("vector index", location.vectors_uri),
            ],
            title="face_search request",
        ),
    )
    try:
        if persons:
            from faceidx.search.persons import format_persons, search_persons

            found = search_persons(
                location,
                photo,
                k=k,
                model_version=version,
                far=far,
                min_similarity=min_similarity,
                list_all=list_all,
            )
            log.info("%s", format_persons(found))
            return found.to_dict()
        result = search_photo(
            location,
            photo,
            k=k,
            model_version=version,
            quality_only=quality_only,
            person_lookup=person_lookup(location),
            far=far,
            min_similarity=min_similarity,
            list_all=list_all,
        )
    except (PhotoSearchError, LookupError) as error:
        raise AirflowFailException(f"{error}. Fix the Params and trigger again.") from error
    log.info("%s", format_table(result))
    return result.to_dict()


def _number(value: Any) -> float | None:
    """An optional number Param (empty: None)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return float(value)
