"""An embedded moto server on a free loopback port, as the tests and ``make demo`` use it.

The server runs in a thread of the calling process, so the caller can also reach moto's backends
directly (the Batch stand-in does, to move jobs through their states as real workers run).
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


@dataclass
class MotoEndpoint:
    """A running moto server: its URL plus helpers to reset it and build clients on it."""

    url: str
    server: Any = None

    def _post(self, path: str, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(  # noqa: S310 - http on loopback only
            f"{self.url}{path}", data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()

    def configure(self) -> None:
        """Batch without Docker: submitted jobs are accepted and marked finished (no container)."""
        self._post("/moto-api/config", {"batch": {"use_docker": False}})

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def reset(self) -> None:
        self._post("/moto-api/reset")
        self.configure()

    def client(self, service: str, region_name: str = REGION, **kwargs: Any) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region_name,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
            **kwargs,
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def start_moto_server(load_managed_policies: bool = False) -> MotoEndpoint:
    import logging

    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    # AWS managed policies (AmazonEC2ContainerServiceforEC2Role) exist in a real account; the
    # bootstrap attaches it, so moto must know it. Must be set before the IAM backend is created.
    # Loading them costs about a second per reset, so only the callers that need them ask.
    if load_managed_policies:
        default_user_config.setdefault("iam", {})["load_aws_managed_policies"] = True

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = MotoEndpoint(url=f"http://{host}:{port}", server=server)
    if load_managed_policies:
        # moto's backends are per process: one created earlier (another server in this process, a
        # test) was built without the managed policies. A reset rebuilds them with this config.
        endpoint.reset()
    endpoint.configure()
    return endpoint


def moto_environment(endpoint_url: str, region_name: str = REGION) -> dict[str, str]:
    """boto3's (and the AWS CLI's) environment for a moto server: its endpoint, moto's dummy
    credentials, the region; no instance metadata lookups."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": region_name,
        "AWS_DEFAULT_REGION": region_name,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def aws_connection_uri_json(endpoint_url: str, region_name: str = REGION) -> str:
    """The ``aws_default`` connection as AIRFLOW_CONN_AWS_DEFAULT: endpoint in the extra, no code path."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint_url, "region_name": region_name},
        }
    )
