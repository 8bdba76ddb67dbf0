"""Param builders that keep the Airflow trigger form usable with its defaults.

The UI's trigger and backfill forms validate every Param against its JSON schema before they enable
*Trigger* / *Run Backfill*. A ``type="string"`` Param whose default is ``""`` shows as required and
blocks the form until someone types something. An optional value is therefore *nullable*: its default
is ``None`` and its schema type lists ``"null"``, so an empty field is valid and means "fall back to
the Airflow Variable (or the built-in default)", as the description says.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param


def optional_param(description: str, kind: str = "string", **schema: Any) -> Param:
    """A Param that may stay empty (``None``). ``kind`` is its JSON-schema type when it is given."""
    return Param(None, type=["null", kind], description=description, **schema)


def optional_list_param(description: str) -> Param:
    """An optional list of strings (one per line in the form); empty means ``None``."""
    return optional_param(description, "array", items={"type": "string"})


def param_or_variable(param: str, variable: str) -> str:
    """A template: the Param's value when given, else the Airflow Variable's (read at run time)."""
    return "{{ params." + param + " or var.value.get('" + variable + "', '') }}"


def variable_value(variable: str) -> str:
    """A template: the Airflow Variable's value at run time, ``""`` when it is not set."""
    return "{{ var.value.get('" + variable + "', '') }}"
