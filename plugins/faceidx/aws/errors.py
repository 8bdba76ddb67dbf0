"""One set of AWS error codes and one explainer for every faceidx call to AWS.

Every message names the call, the resource, AWS's own code and message, and what to do. Absent
resources and denied calls are told apart by code, never by parsing a message.
"""

from __future__ import annotations

from collections.abc import Mapping

from botocore.exceptions import ClientError


class AwsCallError(RuntimeError):
    """An AWS call failed; the message names the call, the resource, AWS's answer and the fix."""


ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "403"}
)
MISSING_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
MISSING_BUCKET_CODES = frozenset({"NoSuchBucket", "404"})
MISSING_CODES = MISSING_QUEUE_CODES | MISSING_BUCKET_CODES | frozenset({"NoSuchEntity", "NotFound"})


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", "Unknown"))


def error_text(err: ClientError) -> str:
    """``Code: Message`` as AWS gave them."""
    error = err.response.get("Error", {})
    return f"{error.get('Code', 'Unknown')}: {error.get('Message', str(err))}"


def is_access_denied(err: ClientError) -> bool:
    return error_code(err) in ACCESS_DENIED_CODES


def is_missing(err: ClientError) -> bool:
    return error_code(err) in MISSING_CODES


def explain(
    err: ClientError,
    operation: str,
    resource: str,
    fix: str | None = None,
    fixes: Mapping[str, str] | None = None,
) -> str:
    """``<operation> on <resource> failed (<code>: <message>). <fix>``.

    ``fixes`` may hold a ``denied`` and a ``missing`` text, used when the code says so; ``fix`` is the
    text otherwise (by default: grant the call when denied, or fix the cause).
    """
    fixes = fixes or {}
    if is_access_denied(err) and fixes.get("denied"):
        chosen = fixes["denied"]
    elif is_missing(err) and fixes.get("missing"):
        chosen = fixes["missing"]
    elif fix is not None:
        chosen = fix
    elif is_access_denied(err):
        chosen = f"Grant {operation} on {resource} to the identity of the Airflow AWS connection."
    else:
        chosen = "Fix the cause above."
    return f"{operation} on {resource} failed ({error_text(err)}). {chosen}"
