"""One worker setting declared once: a dataclass field whose metadata names its variable.

:func:`setting` makes the field (the house's ``ScalingPolicy`` pattern): its metadata carries the
``FACEIDX_``-prefixed environment variable, the description, the kind, the bounds and, for a default
computed from other settings, a :class:`Derived`. :func:`settings_of` lists a settings class's fields as
:class:`Setting` rows (the docs' table is generated from them), and :func:`read_env` parses an
environment through them. Nothing else in the worker reads ``os.environ``.

Kinds: ``str``, ``int``, ``float``, ``bool`` (1/0, true/false, yes/no, on/off; blank is false),
``url``, ``uri`` (``s3://bucket/prefix`` or a local directory), ``dir`` (an existing directory) and
``list`` (comma-separated). A blank value counts as unset, except for a ``bool``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PREFIX = "FACEIDX_"
KINDS = ("str", "int", "float", "bool", "url", "uri", "dir", "list")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A configuration value is missing or invalid. ``variable`` names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Derived:
    """A default computed from the settings read before it. ``str()`` is how the docs show it."""

    text: str
    compute: Callable[[Mapping[str, Any]], Any]

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Setting:
    """One environment variable, as its field declares it: what the docs table and the parser read.

    ``default`` is a value, a :class:`Derived`, or ``None`` (required, or unset means "none")."""

    name: str
    env: str
    kind: str
    default: Any
    description: str
    required: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputLocation:
    """Where files go: an S3 bucket and prefix, or a local directory."""

    bucket: str | None
    prefix: str
    local_dir: Path | None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def describe(self) -> str:
        if self.bucket is not None:
            return f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return str(self.local_dir)


def setting(
    env: str,
    kind: str,
    default: Any,
    description: str,
    *,
    required: bool = False,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """The field of the setting read from ``FACEIDX_<env>``. A required or :class:`Derived` one has no
    dataclass default: :func:`read_env` always gives it."""
    if kind not in KINDS:
        raise ValueError(f"{env}: kind {kind!r} is not one of {KINDS}")
    metadata = {
        "env": PREFIX + env,
        "kind": kind,
        "default": default,
        "description": description,
        "required": required,
        "low": low,
        "high": high,
        "choices": choices,
    }
    if required or isinstance(default, Derived):
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


def settings_of(cls: type) -> tuple[Setting, ...]:
    """The settings a dataclass declares with :func:`setting`, in field order."""
    return tuple(
        Setting(name=spec.name, **{k: v for k, v in spec.metadata.items()})
        for spec in fields(cls)
        if "env" in spec.metadata
    )


def read_env(
    cls: type, env: Mapping[str, str], context: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, variables) of ``cls``'s settings read from ``env``. A :class:`Derived` default sees the
    values read before it and ``context`` (settings of another class it depends on)."""
    values: dict[str, Any] = {}
    for spec in settings_of(cls):
        raw = env.get(spec.env)
        if raw is not None and (spec.kind == "bool" or raw.strip()):
            values[spec.name] = parse_value(spec, raw)
        elif spec.required:
            raise SettingsError(spec.env, f"is required: {spec.description}")
        elif isinstance(spec.default, Derived):
            values[spec.name] = spec.default.compute({**(context or {}), **values})
        else:
            values[spec.name] = spec.default
    return values, {spec.name: spec.env for spec in settings_of(cls)}


def parse_output_uri(raw: str, variable: str = PREFIX + "OUTPUT_URI") -> OutputLocation:
    """``s3://bucket/prefix`` or a local directory (``file://`` allowed). Raises ``SettingsError``."""
    if raw.startswith("s3://"):
        rest = raw[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise SettingsError(variable, f"{raw!r} has no bucket: use s3://bucket/prefix")
        return OutputLocation(bucket=bucket, prefix=prefix.strip("/"), local_dir=None)
    if "://" in raw and not raw.startswith("file://"):
        raise SettingsError(variable, f"{raw!r}: only s3:// URIs or local directories are supported")
    path = Path(raw.removeprefix("file://")).expanduser()
    return OutputLocation(bucket=None, prefix="", local_dir=path)


def parse_value(spec: Setting, raw: str) -> Any:
    """``raw`` as the setting's kind, within its bounds. Raises :class:`SettingsError` naming the variable."""
    name, kind, text = spec.env, spec.kind, raw.strip()
    if kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise SettingsError(name, f"{raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off")
    if kind in ("int", "float"):
        return _number(spec, text)
    if kind == "url":
        if not text.startswith(("https://", "http://")):
            raise SettingsError(name, f"{text!r} is not a queue URL (https://sqs.<region>...)")
        return text
    if kind == "uri":
        return parse_output_uri(text, name)
    if kind == "dir":
        path = Path(text)
        if not path.is_dir():
            raise SettingsError(name, f"{path} is not a directory")
        return path
    if kind == "list":
        names = frozenset(part.strip() for part in text.split(",") if part.strip())
        if not names:
            raise SettingsError(name, "is set but names no bucket (comma-separated names)")
        return names
    if spec.choices:  # any case; the value is the choice as declared
        chosen = [choice for choice in spec.choices if choice.upper() == text.upper()]
        if not chosen:
            raise SettingsError(name, f"{text.upper()!r}: use {', '.join(spec.choices)}")
        return chosen[0]
    return text


def _number(spec: Setting, text: str) -> int | float:
    kind: Callable[[str], int | float] = int if spec.kind == "int" else float
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(spec.env, f"{text!r} is not a valid {spec.kind}") from None
    if spec.low is not None and value < spec.low:
        raise SettingsError(spec.env, f"{text} is below the minimum {spec.low:g}")
    if spec.high is not None and value > spec.high:
        raise SettingsError(spec.env, f"{text} is above the maximum {spec.high:g}")
    return value
