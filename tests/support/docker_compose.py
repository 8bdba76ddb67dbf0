"""Read docker-compose.yaml, its env files, Dockerfiles and .dockerignore files the way Docker does.

No Docker engine runs here, so tests/docker checks the files statically. These readers follow the
Compose specification (interpolation, env files) and Docker's build rules (.dockerignore matching,
Dockerfile line continuations) closely enough for the constructs this repository uses; anything they do
not understand raises :class:`ComposeReadError` instead of being guessed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
COMPOSE_SCHEMA = REPO / "tests" / "docker" / "schemas" / "compose-spec.json"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class ComposeReadError(ValueError):
    """A construct the readers do not support, or a malformed value."""


@cache
def load_docker_script(name: str) -> ModuleType:
    """Import ``docker/<name>.py`` (a script mounted into a container, not a package module)."""
    path = REPO / "docker" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"faceidx_docker_{name}", path)
    if spec is None or spec.loader is None:
        raise ComposeReadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- interpolation (compose-spec "Interpolation") ------------------------------------------------------


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` whose body starts at ``start`` (nested ``${`` counted)."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ComposeReadError(f"unclosed '${{' in {text!r}")


def _expand(body: str, env: Mapping[str, str]) -> str:
    match = re.fullmatch(rf"({_NAME})(?:(:?[-?+])(.*))?", body, flags=re.DOTALL)
    if match is None:
        raise ComposeReadError(f"invalid interpolation '${{{body}}}'")
    name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
    value = env.get(name)
    is_set = value is not None
    is_nonempty = bool(value)
    if operator is None:
        return value or ""
    if operator in (":-", "-"):
        use_value = is_nonempty if operator == ":-" else is_set
        return value if use_value and value is not None else interpolate(argument, env)
    if operator in (":?", "?"):
        ok = is_nonempty if operator == ":?" else is_set
        if not ok:
            raise ComposeReadError(f"required variable {name} is missing: {argument}")
        return value or ""
    ok = is_nonempty if operator == ":+" else is_set
    return interpolate(argument, env) if ok else ""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-x}``, ``${VAR-x}``, ``:?``, ``:+``; ``$$`` becomes ``$``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            end = _closing_brace(text, i + 2)
            out.append(_expand(text[i + 2 : end], env))
            i = end + 1
        else:
            match = re.match(_NAME, text[i + 1 :])
            if match is None:
                raise ComposeReadError(f"a lone '$' in {text!r}: write '$$' for a literal dollar")
            out.append(env.get(match.group(), ""))
            i += 1 + match.end()
    return "".join(out)


def mask_interpolations(text: str, token: str = "<var>") -> str:
    """Replace every ``${...}`` with ``token`` (``$$`` kept), to look at what is literal in a value."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$$")
            i += 2
        elif text.startswith("${", i):
            i = _closing_brace(text, i + 2) + 1
            out.append(token)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value of a parsed compose file (keys are left as they are)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


# --- the compose file ------------------------------------------------------------------------------------


def load_raw(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as YAML gives it (anchors and ``<<`` merges resolved, nothing interpolated)."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ComposeReadError(f"{path} is not a YAML mapping")
    return data


def load(path: Path = COMPOSE_FILE, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file interpolated with ``env`` (default: nothing set, so every default applies)."""
    return interpolate_tree(load_raw(path), env or {})


def environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    """A service's ``environment`` as a dict, from either the mapping or the list form."""
    raw = service.get("environment") or {}
    if isinstance(raw, dict):
        return {str(key): None if value is None else str(value) for key, value in raw.items()}
    result: dict[str, str | None] = {}
    for item in raw:
        key, sep, value = str(item).partition("=")
        result[key] = value if sep else None
    return result


def env_files(service: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """``(path, required)`` for each ``env_file`` entry (string, list, or long syntax)."""
    raw = service.get("env_file")
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    result = []
    for item in items:
        if isinstance(item, str):
            result.append((item, True))
        else:
            result.append((str(item["path"]), bool(item.get("required", True))))
    return result


def depends_on(service: Mapping[str, Any]) -> list[str]:
    raw = service.get("depends_on") or []
    return list(raw) if isinstance(raw, (list, dict)) else [raw]


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    kind: str  # "bind" or "volume"
    read_only: bool


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    """The service's volumes in both syntaxes. A short source starting with . / or ~ is a bind mount."""
    result = []
    for item in service.get("volumes") or []:
        if isinstance(item, dict):
            kind = str(item.get("type", "volume"))
            result.append(
                Mount(str(item.get("source", "")), str(item["target"]), kind, bool(item.get("read_only")))
            )
            continue
        parts = str(item).split(":")
        if len(parts) == 1:  # an anonymous volume
            result.append(Mount("", parts[0], "volume", False))
            continue
        source, target = parts[0], parts[1]
        options = parts[2].split(",") if len(parts) > 2 else []
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        result.append(Mount(source, target, kind, "ro" in options))
    return result


def iter_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a parsed YAML tree, with a dotted path to it (keys included)."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from iter_strings(item, f"{path}[{index}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, str(key)
            yield from iter_strings(value, child)


# --- env files (compose-spec "env_file" format) ----------------------------------------------------------


def parse_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments; single quotes literal; double quotes with \\n and \\" escapes.

    Values that would be interpolated by Compose (a ``$`` outside single quotes) are refused: the files in
    this repository have none, and a reader that ignored them would check the wrong value.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        stripped = stripped.removeprefix("export ")
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)", stripped)
        if match is None:
            raise ComposeReadError(f"{path}:{number}: not KEY=VALUE: {line!r}")
        key, raw = match.groups()
        if raw.startswith("'"):
            if not raw.endswith("'") or len(raw) < 2:
                raise ComposeReadError(f"{path}:{number}: unterminated single quote")
            value = raw[1:-1]
        elif raw.startswith('"'):
            if not raw.endswith('"') or len(raw) < 2:
                raise ComposeReadError(f"{path}:{number}: unterminated double quote")
            value = raw[1:-1].replace("\\n", "\n").replace('\\"', '"')
            if "$" in value:
                raise ComposeReadError(f"{path}:{number}: interpolation in env files is not supported here")
        else:
            value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
            if "$" in value:
                raise ComposeReadError(f"{path}:{number}: interpolation in env files is not supported here")
        values[key] = value
    return values


# --- connections ------------------------------------------------------------------------------------------


def parse_connection(value: str) -> dict[str, Any]:
    """An ``AIRFLOW_CONN_*`` value (JSON or URI) as ``{conn_type, login, password, host, port, extra}``."""
    text = value.strip()
    if text.startswith("{"):
        data = json.loads(text)
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra else {}
        return {**data, "extra": extra}
    parts = urlsplit(text)
    return {
        "conn_type": parts.scheme,
        "login": parts.username,
        "password": parts.password,
        "host": parts.hostname,
        "port": parts.port,
        "extra": dict(parse_qsl(parts.query)),
    }


# --- credential literals ----------------------------------------------------------------------------------

AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b")
AWS_CREDENTIAL_VARIABLES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|ACCESS_KEY|PRIVATE_KEY|FERNET_KEY|API_KEY|CREDENTIAL")
# A whole value that is one interpolation, possibly with a default: ${NAME}, ${NAME:-x}, ${NAME-x}.
SINGLE_INTERPOLATION = re.compile(rf"\$\{{{_NAME}(?::?-[^{{}}$]*)?\}}")
URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@/\s]*)@")
CONNECTION_SECRET_KEYS = {
    "login",
    "password",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
}


def credential_literals(compose: Mapping[str, Any]) -> list[str]:
    """Where the raw (uninterpolated) compose file holds a credential instead of taking it from outside.

    - AWS key ids (AKIA..., ASIA...) anywhere;
    - AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN set in any service's environment
      (they belong in an env file chosen at run time, not in the compose file);
    - any other secret-named variable (PASSWORD, SECRET, TOKEN, ...) whose value is not one ``${VAR}``
      interpolation (a default is allowed: it can be overridden without editing the file);
    - a password in a URL (``scheme://user:password@``) that is not an interpolation;
    - an ``AIRFLOW_CONN_*`` connection carrying a login, password or AWS keys.
    """
    problems = []
    for path, text in iter_strings(compose):
        if AWS_KEY_ID.search(text):
            problems.append(f"{path}: an AWS access key id")
        for password in URL_PASSWORD.findall(mask_interpolations(text)):
            if password not in ("", "<var>"):
                problems.append(f"{path}: a literal password in a URL")
    for name, service in (compose.get("services") or {}).items():
        for key, value in environment(service).items():
            where = f"services.{name}.environment.{key}"
            if key in AWS_CREDENTIAL_VARIABLES:
                problems.append(f"{where}: AWS credentials belong in an env file, not in the compose file")
                continue
            if key.startswith("AIRFLOW_CONN_") and value:
                try:
                    connection = parse_connection(value) if "${" not in value else {}
                except (ValueError, json.JSONDecodeError):
                    problems.append(f"{where}: not a JSON or URI connection")
                    continue
                fields = {**connection, **(connection.get("extra") or {})}
                leaked = sorted(k for k in CONNECTION_SECRET_KEYS if fields.get(k))
                if leaked:
                    problems.append(f"{where}: the connection carries {', '.join(leaked)}")
                continue
            if key.endswith(("_FILE", "_PATH", "_CMD")) or not SECRET_NAME.search(key):
                continue
            if value and not SINGLE_INTERPOLATION.fullmatch(value):
                problems.append(f"{where}: a literal secret (use ${{{key}:-...}} or an env file)")
    return problems


# --- Dockerfiles and .dockerignore --------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with their line continuations joined; comments and the parser directive dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(arguments.split())))
    if pending:
        raise ComposeReadError(f"{path}: the last instruction ends with a continuation")
    return instructions


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def read_dockerignore(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append(stripped)
    return lines


def dockerignore_excludes(relative_path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = relative_path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = (raw[1:] if negated else raw).strip().strip("/")
        regex = _pattern_regex(pattern)
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded
