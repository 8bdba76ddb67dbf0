"""Landing files: list them, read and validate them, set rejected ones aside, delete ingested ones.

A landing file is ``<out>/faces/dt=YYYY-MM-DD/part-*.parquet`` as the worker's sink writes it. Each
file is validated against :func:`faceidx.store.schema.landing_schema`:

* a column the file lacks is null, except on the face rows of a file from a worker older than the
  column (:func:`faceidx.store.schema.face_column_defaults`: ``rotation`` 0);
* a file that cannot be read as Parquet, or lacks a required column, or whose columns cannot be cast
  to the table's types, is **rejected whole**: copied to ``<out>/faces-rejected/dt=.../<name>`` with
  ``<name>.reason.json`` beside it;
* a row with an unknown status, a face without an embedding, or an embedding of the wrong dimension
  for its model version is **rejected alone**: the file's rejected rows are written to
  ``<out>/faces-rejected/dt=.../<stem>.rejected.parquet`` with a ``rejected_reason`` column, and the
  file's other rows are ingested.

Rejected names are derived from the landing file's name, so a rerun after a crash rewrites the same
objects instead of adding copies.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from faceidx.common.uris import split_s3_uri as _split_or_none
from faceidx.store.location import IndexLocation
from faceidx.store.schema import (
    EMBEDDING,
    STATUS_ERROR,
    STATUS_OK,
    STATUSES,
    embedding_dimension,
    face_column_defaults,
    required_columns,
    table_schema,
)

log = logging.getLogger(__name__)

REJECTED_DIR = "faces-rejected"
REJECTED_REASON = "rejected_reason"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; a prefix ending in ``/`` keeps its slash."""
    parts = _split_or_none(uri)
    if parts is None:
        raise ValueError(f"not an S3 URI with a bucket: {uri!r}")
    bucket, key = parts
    return bucket, key + "/" if uri.endswith("/") and key else key


@dataclass(frozen=True)
class LandingFile:
    uri: str
    size: int

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def partition(self) -> str:
        """``dt=YYYY-MM-DD`` of the file, or ``dt=unknown`` outside the layout."""
        parent = self.uri.rsplit("/", 2)[-2] if self.uri.count("/") >= 2 else ""
        return parent if parent.startswith("dt=") else "dt=unknown"


@dataclass
class ValidatedFile:
    """One landing file after validation: rows to ingest, rows set aside, or the whole file refused."""

    file: LandingFile
    rows: pa.Table | None = None
    rejected_rows: pa.Table | None = None
    file_reason: str | None = None
    reasons: Counter[str] = field(default_factory=Counter)


class LandingStore:
    """Reads, copies and deletes landing and rejected objects, local or on S3."""

    def __init__(self, location: IndexLocation) -> None:
        self.location = location
        self._s3 = location.s3_client() if location.is_s3 else None

    # -- listing -------------------------------------------------------------------------------
    def pending(self, max_files: int | None = None) -> list[LandingFile]:
        """Landing files in name order (date partitions first), at most ``max_files``."""
        root = self.location.landing_uri
        found: list[LandingFile] = []
        if self._s3 is not None:
            bucket, prefix = split_s3_uri(root + "/")
            paginator = self._s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    name = item["Key"].rsplit("/", 1)[-1]
                    if name.endswith(".parquet") and not name.startswith("."):
                        found.append(LandingFile(f"s3://{bucket}/{item['Key']}", int(item["Size"])))
        else:
            base = Path(root)
            if base.is_dir():
                for path in base.rglob("*.parquet"):
                    if not path.name.startswith("."):  # the sink's temporary files are hidden
                        found.append(LandingFile(str(path), path.stat().st_size))
        found.sort(key=lambda item: item.uri)
        return found[:max_files] if max_files else found

    # -- bytes ---------------------------------------------------------------------------------
    def read_bytes(self, uri: str) -> bytes:
        if self._s3 is not None:
            bucket, key = split_s3_uri(uri)
            return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return Path(uri).read_bytes()

    def write_bytes(self, uri: str, payload: bytes) -> None:
        if self._s3 is not None:
            bucket, key = split_s3_uri(uri)
            self._s3.put_object(Bucket=bucket, Key=key, Body=payload)
            return
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(payload)
        os.replace(temporary, path)

    def delete(self, uris: list[str]) -> None:
        """Delete landing files (after the commit that holds their rows)."""
        if self._s3 is not None:
            by_bucket: dict[str, list[str]] = {}
            for uri in uris:
                bucket, key = split_s3_uri(uri)
                by_bucket.setdefault(bucket, []).append(key)
            for bucket, keys in by_bucket.items():
                for start in range(0, len(keys), 1000):
                    chunk = [{"Key": key} for key in keys[start : start + 1000]]
                    answer = self._s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                    if answer.get("Errors"):
                        first = answer["Errors"][0]
                        raise OSError(
                            f"could not delete {len(answer['Errors'])} landing file(s) in s3://{bucket}, "
                            f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}. They are "
                            "already in the table; the next ingest skips and deletes them"
                        )
            return
        for uri in uris:
            Path(uri).unlink(missing_ok=True)

    # -- rejected ------------------------------------------------------------------------------
    def rejected_uri(self, file: LandingFile, suffix: str = "") -> str:
        return "/".join([self.location.output_uri, REJECTED_DIR, file.partition, file.name + suffix])

    def set_aside(self, validated: ValidatedFile) -> list[str]:
        """Write what was rejected of one file under faces-rejected/; returns the objects written."""
        written = []
        if validated.file_reason is not None:
            target = self.rejected_uri(validated.file)
            self.write_bytes(target, self.read_bytes(validated.file.uri))
            note = {"landing_file": validated.file.uri, "reason": validated.file_reason}
            self.write_bytes(self.rejected_uri(validated.file, ".reason.json"), json.dumps(note).encode())
            written.append(target)
        elif validated.rejected_rows is not None and validated.rejected_rows.num_rows:
            target = self.rejected_uri(validated.file, ".rejected.parquet")
            buffer = io.BytesIO()
            pq.write_table(validated.rejected_rows, buffer, compression="zstd")
            self.write_bytes(target, buffer.getvalue())
            written.append(target)
        return written


def _conform(raw: pa.Table) -> pa.Table:
    """The file's columns cast to the table's types, absent optional columns as nulls (on face rows,
    their :func:`face_column_defaults` value).

    Raises ValueError naming the problem when the file is not a landing file.
    """
    schema = table_schema()
    missing = [name for name in required_columns() if name not in raw.column_names]
    if missing:
        raise ValueError(f"not a landing file: missing required column(s) {', '.join(missing)}")
    columns = []
    defaults = face_column_defaults()
    for target in schema:
        if target.name == "indexed_date":
            day = pc.strftime(raw.column("indexed_at").cast(pa.timestamp("us", tz="UTC")), format="%Y-%m-%d")
            columns.append(day)
            continue
        if target.name not in raw.column_names:
            if target.name in defaults and "face_index" in raw.column_names:
                default = pa.scalar(defaults[target.name], target.type)
                faces = pc.is_valid(raw.column("face_index"))
                columns.append(pc.if_else(faces, default, pa.scalar(None, target.type)))
            else:
                columns.append(pa.nulls(raw.num_rows, target.type))
            continue
        column = raw.column(target.name)
        if target.name == EMBEDDING and pa.types.is_fixed_size_list(column.type):
            column = column.cast(pa.list_(column.type.value_type))
        try:
            columns.append(column.cast(target.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise ValueError(
                f"not a landing file: column {target.name} is {column.type}, expected {target.type} ({error})"
            ) from error
    nullable = pa.schema([target.with_nullable(True) for target in schema])
    return pa.Table.from_arrays(columns, schema=nullable)


def row_reasons(rows: pa.Table, dimensions: dict[str, int]) -> list[str | None]:
    """Why each row is rejected (None: it is fine). ``dimensions``: model version -> embedding length."""
    statuses = rows.column("status").to_pylist()
    face_indexes = rows.column("face_index").to_pylist()
    versions = rows.column("model_version").to_pylist()
    lengths = pc.list_value_length(rows.column(EMBEDDING)).to_pylist()
    required = {name: rows.column(name).null_count > 0 for name in required_columns()}
    nulls = {name: rows.column(name).is_null().to_pylist() for name, has in required.items() if has}
    reasons: list[str | None] = []
    for position, status in enumerate(statuses):
        empty = [name for name, flags in nulls.items() if flags[position]]
        if empty:
            reasons.append(f"null required column(s): {', '.join(empty)}")
        elif status not in STATUSES:
            reasons.append(f"unknown status {status!r} (expected one of {', '.join(STATUSES)})")
        elif status == STATUS_OK and face_indexes[position] is not None:
            length, expected = lengths[position], dimensions.get(versions[position])
            if length is None:
                reasons.append("face row without an embedding")
            elif expected is not None and length != expected:
                reasons.append(
                    f"embedding has {length} values; model version {versions[position]} has {expected}"
                )
            else:
                reasons.append(None)
        elif status == STATUS_ERROR and face_indexes[position] is not None:
            reasons.append("error row with a face_index")
        else:
            reasons.append(None)
    return reasons


def validate(file: LandingFile, payload: bytes, dimensions: dict[str, int]) -> ValidatedFile:
    """Validate one file. ``dimensions`` is updated with the dimension of any model version first seen."""
    try:
        raw = pq.read_table(io.BytesIO(payload))
    except (pa.ArrowInvalid, OSError) as error:
        return ValidatedFile(file, file_reason=f"not a Parquet file: {error}")
    try:
        rows = _conform(raw)
    except ValueError as error:
        return ValidatedFile(file, file_reason=str(error))
    if pa.types.is_fixed_size_list(raw.schema.field(EMBEDDING).type):
        declared = int(raw.schema.field(EMBEDDING).type.list_size)
        for version in pc.unique(rows.column("model_version")).to_pylist():
            if version is not None:
                dimensions.setdefault(version, declared)
    for version in pc.unique(rows.column("model_version")).to_pylist():
        if version is not None and version not in dimensions:
            mask = pc.and_(
                pc.equal(rows.column("model_version"), version), pc.is_valid(rows.column(EMBEDDING))
            )
            first = embedding_dimension(rows.filter(mask))
            if first is not None:
                dimensions[version] = first
    reasons = row_reasons(rows, dimensions)
    rejected_mask = pa.array([reason is not None for reason in reasons])
    validated = ValidatedFile(file, rows=rows.filter(pc.invert(rejected_mask)))
    if any(reason is not None for reason in reasons):
        kept = [reason for reason in reasons if reason is not None]
        validated.rejected_rows = rows.filter(rejected_mask).append_column(
            REJECTED_REASON, pa.array(kept, pa.string())
        )
        validated.reasons.update(kept)
    return validated
