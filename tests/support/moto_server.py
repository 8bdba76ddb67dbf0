"""The embedded moto server now lives in the package (``make demo`` uses it too); re-exported here."""

from faceidx_dev.local.moto_server import (
    ACCOUNT_ID,
    REGION,
    MotoEndpoint,
    aws_connection_uri_json,
    start_moto_server,
)

__all__ = ["ACCOUNT_ID", "REGION", "MotoEndpoint", "aws_connection_uri_json", "start_moto_server"]
