"""Compute-environment status on moto as AWS reports it, for the INVALID / UPDATING tests.

moto describes every compute environment as VALID, deletes one that is ENABLED or still in a job
queue, and drops UpdateComputeEnvironment's ``updatePolicy``. AWS does none of that. ``BatchStatus``
patches moto (in this process, undone by ``monkeypatch``) so that:

- each environment's status follows a script per creation (``script(name, [("INVALID", reason),
  ("VALID", "")])``: the first create goes INVALID, the second VALID), or is set at once
  (``set(name, "UPDATING", reason)``);
- DeleteComputeEnvironment is refused, as AWS refuses it, while the environment is ENABLED or a job
  queue uses it;
- the last ``updatePolicy`` and every create are recorded, so tests assert on state.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class BatchStatus:
    scripts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    current: dict[str, tuple[str, str]] = field(default_factory=dict)
    creates: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    deletes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    update_policies: dict[str, Any] = field(default_factory=dict)

    def script(self, name: str, statuses: list[tuple[str, str]]) -> None:
        self.scripts[name] = list(statuses)

    def set(self, name: str, status: str, reason: str = "") -> None:
        self.current[name] = (status, reason)


def patch_batch_status(monkeypatch: pytest.MonkeyPatch) -> BatchStatus:
    from moto.batch.exceptions import ClientException
    from moto.batch.models import BatchBackend
    from moto.batch.responses import BatchResponse

    state = BatchStatus()
    create, describe, delete = (
        BatchBackend.create_compute_environment,
        BatchBackend.describe_compute_environments,
        BatchBackend.delete_compute_environment,
    )
    update_response = BatchResponse.updatecomputeenvironment

    def create_environment(self: Any, compute_environment_name: str, *args: Any, **kwargs: Any) -> Any:
        result = create(self, compute_environment_name, *args, **kwargs)
        generation = state.creates[compute_environment_name]
        state.creates[compute_environment_name] += 1
        script = state.scripts.get(compute_environment_name)
        if script:
            state.current[compute_environment_name] = script[min(generation, len(script) - 1)]
        return result

    def describe_environments(self: Any, environments: Any = None) -> list[dict[str, Any]]:
        described = describe(self, environments)
        for ce in described:
            if ce["computeEnvironmentName"] in state.current:
                ce["status"], ce["statusReason"] = state.current[ce["computeEnvironmentName"]]
        return described

    def delete_environment(self: Any, compute_environment_name: str) -> None:
        ce = self.get_compute_environment(compute_environment_name)
        if ce is not None:
            if ce.state != "DISABLED":
                raise ClientException(f"Cannot delete, compute environment {ce.name} is ENABLED")
            if any(ce in queue.environments for queue in self._job_queues.values()):
                raise ClientException("Cannot delete, found existing JobQueue relationship")
            state.deletes[ce.name] += 1
            state.current.pop(ce.name, None)
        delete(self, compute_environment_name)

    def update_environment(self: Any) -> str:
        policy = self._get_param("updatePolicy")
        if policy is not None:
            state.update_policies[self._get_param("computeEnvironment")] = policy
        return update_response(self)

    monkeypatch.setattr(BatchBackend, "create_compute_environment", create_environment)
    monkeypatch.setattr(BatchBackend, "describe_compute_environments", describe_environments)
    monkeypatch.setattr(BatchBackend, "delete_compute_environment", delete_environment)
    monkeypatch.setattr(BatchResponse, "updatecomputeenvironment", update_environment)
    return state
