"""Where the ``infra/`` spec files are: one place for the bootstrap, the IAM policy and the DAGs that
read a spec's literal (the waits read the job definition's attempt timeout)."""

from __future__ import annotations

import os
from pathlib import Path

SPEC_DIR_ENV = "FACEIDX_INFRA_DIR"


def default_spec_dir() -> Path:
    """``$FACEIDX_INFRA_DIR``, else ``infra/`` at the repository root (beside ``plugins/``)."""
    override = os.environ.get(SPEC_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "infra"
