"""face_forget's approval: the standard provider's ``ApprovalOperator``, and who approved.

The operator waits in Airflow's required actions (``awaiting_input``: no worker slot, no pool slot of
the writers) until a user answers in the UI. *Approve* lets the ``forget`` task run, and the approving
user is written into the receipt; *Reject* skips ``forget`` (nothing is deleted) and says so in this
task's log. An unanswered approval is rejected when its response timeout passes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from faceidx.common.tables import format_pairs

log = logging.getLogger(__name__)

APPROVAL_TIMEOUT = timedelta(days=7)  # unanswered: rejected (the default), nothing deleted


def approver_of(answer: Mapping[str, Any] | None) -> str:
    """The user who approved, from the approval task's result (``responded_by_user``); "" when the
    run needed no approval. An approval the timeout answered names no user: that is refused."""
    if not answer:
        return ""
    chosen = list(answer.get("chosen_options") or [])
    if chosen != [ApprovalOperator.APPROVE]:
        raise ValueError(f"the erasure was not approved (answer {chosen}): nothing may be deleted")
    user = answer.get("responded_by_user") or {}
    name = str(user.get("name") or user.get("id") or "")
    if not name:
        raise ValueError("the approval names no user: nothing may be deleted")
    return name


class ForgetApprovalOperator(ApprovalOperator):
    """``ApprovalOperator`` whose *Reject* ends the run with a clear message in its log."""

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        result = super().execute_complete(context=context, event=event)
        if list(result["chosen_options"]) != [self.APPROVE]:
            user = result.get("responded_by_user") or {}
            params = context["params"]
            who = user.get("name") or user.get("id") or "nobody (the response timeout passed)"
            log.info(
                "%s",
                format_pairs(
                    [
                        ("target", f"{params.get('target_type')} {params.get('target')}"),
                        ("answer", ", ".join(result["chosen_options"])),
                        ("by", who),
                        ("changed", "nothing: the forget task is skipped, no receipt is written"),
                    ],
                    title="face_forget rejected: nothing was deleted",
                ),
            )
        return result
