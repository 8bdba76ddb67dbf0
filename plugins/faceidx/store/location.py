"""Where every part of the index lives, derived from one output URI.

The workers write landing Parquet under ``<output>/faces/`` (their durable-before-delete contract);
everything else sits beside it::

    <output>/faces/dt=YYYY-MM-DD/part-*.parquet    landing files, one per worker flush
    <output>/table/faces/                          the face table (Delta Lake)
    <output>/table/persons/                        persons, one set per model version
    <output>/table/face_persons/                   face -> person mapping
    <output>/table/person_events/                  corrections, append-only
    <output>/table/_faceidx/models.json            model versions: the current one and the known ones
    <output>/receipts/forget/                      erasure receipts (JSON)
    <vectors>/                                     the LanceDB vector index, one table per model version

``<vectors>`` is ``<output>/vectors`` unless given (``make up`` keeps it in a local folder).
The same object serves the Airflow tasks (:meth:`IndexLocation.from_airflow`, credentials from the AWS
connection) and the CLI (:meth:`IndexLocation.from_env`, boto3's usual environment).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceidx.common.uris import split_s3_uri

ENV_OUTPUT_URI = "FACEIDX_OUTPUT_URI"
ENV_VECTORS_URI = "FACEIDX_VECTORS_URI"


@dataclass(frozen=True)
class IndexLocation:
    output_uri: str
    vectors_uri: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    credentials: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_uri", self.output_uri.rstrip("/"))
        if not self.vectors_uri:
            object.__setattr__(self, "vectors_uri", f"{self.output_uri}/vectors")

    # -- paths ---------------------------------------------------------------------------------
    @property
    def is_s3(self) -> bool:
        return self.output_uri.startswith("s3://")

    def _under(self, *parts: str) -> str:
        return "/".join([self.output_uri, *parts])

    @property
    def landing_uri(self) -> str:
        return self._under("faces")

    @property
    def table_uri(self) -> str:
        return self._under("table", "faces")

    @property
    def persons_uri(self) -> str:
        return self._under("table", "persons")

    @property
    def face_persons_uri(self) -> str:
        return self._under("table", "face_persons")

    @property
    def person_events_uri(self) -> str:
        return self._under("table", "person_events")

    @property
    def registry_uri(self) -> str:
        return self._under("table", "_faceidx", "models.json")

    @property
    def receipts_uri(self) -> str:
        return self._under("receipts", "forget")

    def job_result_uri(self, job_id: str) -> str:
        """Where a Batch job of the index's steps (``faceidx.jobs``) leaves its outcome for the task."""
        return self._under("jobs", f"{job_id.replace(':', '_')}.json")

    # -- clients -------------------------------------------------------------------------------
    def storage_options(self) -> dict[str, str]:
        """Options for delta-rs (object_store): region, endpoint, credentials, S3 conditional put."""
        if not self.is_s3:
            return {}
        options: dict[str, str] = {"conditional_put": "etag"}
        if self.region:
            options["AWS_REGION"] = self.region
        if self.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        options.update(self.credentials)
        return options

    def lance_storage_options(self) -> dict[str, str]:
        """Options for LanceDB when the vector index is on S3 (lower-case object_store keys)."""
        if not self.vectors_uri.startswith("s3://"):
            return {}
        options: dict[str, str] = {}
        if self.region:
            options["aws_region"] = self.region
        if self.endpoint_url:
            options["aws_endpoint"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["allow_http"] = "true"
        options.update({key.lower(): value for key, value in self.credentials.items()})
        return options

    def s3_client(self) -> Any:
        import boto3

        kwargs: dict[str, Any] = {"region_name": self.region, "endpoint_url": self.endpoint_url}
        if self.credentials:
            kwargs["aws_access_key_id"] = self.credentials.get("AWS_ACCESS_KEY_ID")
            kwargs["aws_secret_access_key"] = self.credentials.get("AWS_SECRET_ACCESS_KEY")
            kwargs["aws_session_token"] = self.credentials.get("AWS_SESSION_TOKEN")
        return boto3.client("s3", **kwargs)

    # -- small JSON documents (registry, receipts) ------------------------------------------------
    def read_json(self, uri: str) -> Any | None:
        """The JSON document at ``uri``, or None when there is none."""
        if uri.startswith("s3://"):
            bucket, key = _bucket_and_key(uri)
            client = self.s3_client()
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except client.exceptions.NoSuchKey:
                return None
            return json.loads(body)
        path = Path(uri)
        return json.loads(path.read_text()) if path.exists() else None

    def exists(self, uri: str) -> bool:
        """Whether an object (``s3://``) or a local file is there (a crop, a receipt)."""
        if uri.startswith("s3://"):
            bucket, key = _bucket_and_key(uri)
            client = self.s3_client()
            try:
                client.head_object(Bucket=bucket, Key=key)
            except client.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True
        return Path(uri.removeprefix("file://")).exists()

    def write_json(self, uri: str, document: Any) -> None:
        payload = json.dumps(document, indent=2, sort_keys=True, default=str).encode()
        if uri.startswith("s3://"):
            bucket, key = _bucket_and_key(uri)
            self.s3_client().put_object(Bucket=bucket, Key=key, Body=payload, ContentType="application/json")
            return
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_bytes(payload)
        temporary.replace(path)

    # -- constructors ----------------------------------------------------------------------------
    @classmethod
    def from_env(cls, output_uri: str | None = None, vectors_uri: str | None = None) -> IndexLocation:
        """For the CLI: ``FACEIDX_OUTPUT_URI`` / ``FACEIDX_VECTORS_URI`` and boto3's own environment."""
        output = output_uri or os.environ.get(ENV_OUTPUT_URI)
        if not output:
            raise ValueError(f"no index location: pass --output-uri or set {ENV_OUTPUT_URI}")
        credentials = {
            name: os.environ[name]
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
            if os.environ.get(name)
        }
        return cls(
            output_uri=output,
            vectors_uri=vectors_uri or os.environ.get(ENV_VECTORS_URI, ""),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
            credentials=credentials,
        )

    @classmethod
    def from_airflow(
        cls, output_uri: str, *, aws_conn_id: str = "aws_default", vectors_uri: str = ""
    ) -> IndexLocation:
        """For the tasks: region, endpoint and (frozen) credentials from the Airflow AWS connection."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")
        frozen = hook.get_credentials()
        credentials = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
        if frozen.token:
            credentials["AWS_SESSION_TOKEN"] = frozen.token
        extra = hook.conn_config
        return cls(
            output_uri=output_uri,
            vectors_uri=vectors_uri,
            region=hook.region_name,
            endpoint_url=extra.endpoint_url,
            credentials=credentials,
        )


def _bucket_and_key(uri: str) -> tuple[str, str]:
    parts = split_s3_uri(uri)
    if parts is None or not parts[1]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return parts
