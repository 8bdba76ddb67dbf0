"""A shell environment file: ``source FILE`` sets what a command line needs to reach the local product.

``make up`` writes one (``.faceidx-up/env``) so that ``source .faceidx-up/env && faceidx search photo.jpg``
works against it: moto's endpoint (its port changes on every start), its dummy credentials, the index
and vector locations, the model pack. Every value is shell-quoted; the file is plain ``export``
lines a user can read.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

# Settings of the user's own shell that would otherwise win over the file's (a profile or a session
# token of a real account, an S3-only endpoint) and send the CLI elsewhere.
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3")


def env_file_text(
    values: Mapping[str, str],
    *,
    path_first: Path | None = None,
    unset: Iterable[str] = UNSET,
    comment: str = "",
) -> str:
    """``export NAME=value`` lines (values shell-quoted), after ``comment`` lines and an ``unset`` line;
    ``path_first``: a folder put at the front of ``PATH`` (where the ``faceidx`` command is)."""
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    names = [name for name in unset if name not in values]
    if names:
        lines.append(f"unset {' '.join(names)}")
    if path_first is not None:
        lines.append(f'export PATH={shlex.quote(str(path_first))}:"$PATH"')
    for name, value in values.items():
        if not name.isidentifier():
            raise ValueError(f"{name!r} is not a shell variable name")
        lines.append(f"export {name}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` at once (a shell sourcing it never reads half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)
    return path
