"""Fill the ``${NAME}`` placeholders of a spec template. Pure.

- A string that is exactly ``"${NAME}"`` becomes the value itself, keeping its type (a list of
  subnets stays a list).
- A placeholder inside a longer string is replaced by the value's text.
- An optional value left empty (``SERVICE_ROLE_ARN``) removes the key that holds it; a dict in a list
  that holds it (a policy statement on ``${INPUT_KMS_KEY_ARN}``) is removed whole.
- Policy documents written as JSON objects become the JSON strings the API takes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from faceidx.infra.values import DERIVED_PLACEHOLDERS, OUTPUT_PLACEHOLDERS, VALUES

PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
KNOWN_PLACEHOLDERS = frozenset(
    [v.placeholder for v in VALUES] + list(DERIVED_PLACEHOLDERS) + list(OUTPUT_PLACEHOLDERS)
)
OPTIONAL_PLACEHOLDERS = frozenset(v.placeholder for v in VALUES if v.optional)
# Request fields the API takes as a JSON document in a string.
DOCUMENT_FIELDS = frozenset(
    {"AssumeRolePolicyDocument", "PolicyDocument", "Policy", "RedrivePolicy", "RedriveAllowPolicy"}
)

_DROP = object()


class RenderError(ValueError):
    """A template names a placeholder that nothing fills."""


def placeholders_in(template: Any) -> set[str]:
    """Every placeholder name used anywhere in a template."""
    if isinstance(template, dict):
        return set().union(*(placeholders_in(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(placeholders_in(v) for v in template)) if template else set()
    if isinstance(template, str):
        return set(PLACEHOLDER.findall(template))
    return set()


def _fill_string(text: str, values: Mapping[str, Any], where: str) -> Any:
    whole = PLACEHOLDER.fullmatch(text)
    if whole:
        name = whole.group(1)
        if name not in values:
            raise RenderError(f"{where}: no value for ${{{name}}}")
        value = values[name]
        if name in OPTIONAL_PLACEHOLDERS and value in ("", None, []):
            return _DROP
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise RenderError(f"{where}: no value for ${{{name}}}")
        value = values[name]
        if isinstance(value, list | dict):
            raise RenderError(f"{where}: ${{{name}}} is a list; it must be the whole string")
        return str(value)

    return PLACEHOLDER.sub(substitute, text)


def _fill(node: Any, values: Mapping[str, Any], where: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, child in node.items():
            filled = _fill(child, values, f"{where}.{key}")
            if filled is _DROP:
                continue
            if key in DOCUMENT_FIELDS and isinstance(filled, dict | list):
                filled = json.dumps(filled, separators=(",", ":"))
            out[key] = filled
        return out
    if isinstance(node, list):
        items = []
        for index, child in enumerate(node):
            filled = _fill(child, values, f"{where}[{index}]")
            if filled is _DROP or (isinstance(child, dict) and _drops_a_key(child, values)):
                continue
            items.append(filled)
        return items
    if isinstance(node, str):
        return _fill_string(node, values, where)
    return node


def _drops_a_key(node: dict[str, Any], values: Mapping[str, Any]) -> bool:
    """Whether a direct value of ``node`` is an optional placeholder left empty."""
    for child in node.values():
        whole = PLACEHOLDER.fullmatch(child) if isinstance(child, str) else None
        if whole and whole.group(1) in OPTIONAL_PLACEHOLDERS and values.get(whole.group(1)) in ("", None, []):
            return True
    return False


def unknown_placeholders(templates: Mapping[str, Any]) -> dict[str, set[str]]:
    """Spec key -> placeholders that no value, derived value or output can ever fill."""
    unknown = {}
    for key, template in templates.items():
        names = placeholders_in(template) - KNOWN_PLACEHOLDERS
        if names:
            unknown[key] = names
    return unknown


def render(template: Any, values: Mapping[str, Any], name: str = "spec") -> Any:
    """A copy of ``template`` with every placeholder filled from ``values`` (placeholder -> value)."""
    return _fill(template, values, name)
