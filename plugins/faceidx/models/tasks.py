"""The body of face_models's task: list the versions, switch the current one, or drop one.

A refused step (an unknown version, dropping the current one) fails the task at once with the reason
and the choices; a retry could not change the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)

ACTIONS = ("list", "use", "drop")


def models_task(params: Mapping[str, Any], *, location: IndexLocation, actor: str) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException

    from faceidx.models.cli import versions_report
    from faceidx.store.registry import ModelRegistry, ModelVersionError

    action = str(params.get("action") or "list")
    version = str(params.get("version") or "").strip()
    if action not in ACTIONS:
        raise AirflowFailException(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    if action != "list" and not version:
        raise AirflowFailException(f"action {action} needs the version Param: one of the listed versions")
    registry = ModelRegistry(location)
    entry: dict[str, Any] | None = None
    from faceidx.store.lease import writer

    try:
        if action in ("use", "drop"):
            with writer(location, f"face_models {action} {version}"):
                entry = registry.use(version, actor) if action == "use" else registry.drop(version, actor)
    except ModelVersionError as error:
        log.info("%s", versions_report(registry))
        raise AirflowFailException(str(error)) from error
    log.info("%s", versions_report(registry))
    if entry is not None:
        log.info("%s: %s", action, entry)
    return {
        "action": action,
        "step": entry,
        "versions": [vars(s) for s in registry.stats()],
    }
