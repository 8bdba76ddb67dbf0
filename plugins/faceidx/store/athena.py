"""Athena: the DDL that registers the face table (a Delta table) in the Glue catalog.

Athena reads the schema and the partitions from the Delta log, so the DDL names no column: it gives
the location and ``table_type`` ``DELTA`` only (Athena engine version 3).
"""

from __future__ import annotations

from faceidx.store.location import IndexLocation


def create_table_ddl(location: IndexLocation, *, database: str = "faceidx", table: str = "faces") -> str:
    """``CREATE EXTERNAL TABLE`` for the face table at ``location.table_uri`` (an S3 location)."""
    if not location.is_s3:
        raise ValueError(f"Athena reads tables on S3 only; {location.table_uri} is a local path")
    return (
        f"CREATE EXTERNAL TABLE `{database}`.`{table}`\n"
        f"LOCATION '{location.table_uri}/'\n"
        "TBLPROPERTIES ('table_type' = 'DELTA')"
    )
