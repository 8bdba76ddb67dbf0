"""Check a rendered spec against its operation's input shape in botocore's service model. Offline.

``botocore.validate.ParamValidator`` catches missing required keys, unknown keys, wrong types and
out-of-range lengths and numbers. It does not check enum values, so ``enum_errors`` walks the shape
for those (a typo such as ``"SPOT_CAPACITY_OPTIMISED"`` would otherwise reach AWS).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape
from botocore.validate import ParamValidator


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@lru_cache(maxsize=32)
def operation_model(service: str, operation: str) -> OperationModel:
    return _session().get_service_model(service).operation_model(operation)


def enum_errors(value: Any, shape: Shape, path: str) -> list[str]:
    """Values outside their shape's enum, as ``path: 'x' is not one of [...]``."""
    errors: list[str] = []
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for key, child in value.items():
            if key in shape.members:
                errors.extend(enum_errors(child, shape.members[key], f"{path}.{key}"))
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for index, item in enumerate(value):
            errors.extend(enum_errors(item, shape.member, f"{path}[{index}]"))
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        for key, item in value.items():
            errors.extend(enum_errors(item, shape.value, f"{path}.{key}"))
    elif isinstance(value, str) and getattr(shape, "enum", None) and value not in shape.enum:
        errors.append(f"{path}: {value!r} is not one of {list(shape.enum)}")
    return errors


def shape_errors(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """Every problem botocore's model finds in ``params`` for ``service.operation``; empty when valid."""
    shape = operation_model(service, operation).input_shape
    report = ParamValidator().validate(params, shape)
    errors: list[str] = []
    if report.has_errors():
        # generate_report() gives one line per problem.
        errors.extend(line.strip() for line in report.generate_report().splitlines() if line.strip())
    errors.extend(enum_errors(params, shape, "input"))
    return errors
