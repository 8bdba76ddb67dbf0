"""A small fault-injecting HTTP proxy to put in front of the moto server.

Point a client's endpoint (``AWS_ENDPOINT_URL`` for the worker, the ``aws_default`` connection for
Airflow) at :attr:`FaultProxy.url`. Every request is forwarded to moto unchanged, except those that
match a :class:`FaultRule`, which get the rule's fault instead:

* ``"503"``: a 5xx answer in the service's own error shape (S3 XML, SQS JSON or query XML, REST JSON);
* ``"throttle"``: a throttling error (S3 ``SlowDown`` XML with 503; SQS ``ThrottlingException`` 400);
* ``"access_denied"``: a 403 ``AccessDenied`` / ``AccessDeniedException``;
* ``"reset"``: the request is read, never forwarded, and the TCP connection is reset (RST);
* ``"drop_response"``: the request *is* forwarded (moto acts on it), then the connection is reset
  before the answer: the client cannot know whether its call happened;
* ``"cut_body"``: forwarded; the answer's headers and half its body are sent, then the connection is
  reset (a download that dies half-way: botocore has already returned, the body read fails);
* ``"hang"``: the request is held until :meth:`FaultProxy.release` (or ``seconds``), then the
  connection is reset without forwarding: a call cut off by a crash;
* ``"delay"``: the request is held for ``seconds``, then forwarded normally (a slow service).

The operation is read from the request the way AWS routes it: the service from the SigV4 credential
scope, SQS operations from ``X-Amz-Target`` (JSON protocol) or the ``Action`` parameter (query
protocol), S3 operations from method + path (path-style addressing, as boto3 uses on an IP endpoint),
REST JSON services (Batch) from the path (``POST /v1/listjobs`` is ``ListJobs``).

Every request is recorded (:attr:`FaultProxy.requests`), so a test can check that a fault really was
injected and that the client retried it.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

FAULTS = ("503", "throttle", "access_denied", "reset", "drop_response", "cut_body", "hang", "delay")

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "content-length",
    "server",
    "date",
}

# REST JSON operations (Batch) whose path segment is the lower-cased operation name.
_REST_JSON_NAMES = {
    name.lower(): name
    for name in (
        "ListJobs",
        "SubmitJob",
        "DescribeJobs",
        "DescribeJobQueues",
        "DescribeJobDefinitions",
        "DescribeComputeEnvironments",
        "TerminateJob",
        "CancelJob",
        "RegisterJobDefinition",
        "CreateJobQueue",
        "CreateComputeEnvironment",
        "UpdateJobQueue",
        "UpdateComputeEnvironment",
        "TagResource",
    )
}


@dataclass(frozen=True)
class AwsCall:
    """What a request is, as AWS would route it."""

    service: str
    operation: str
    method: str
    path: str
    protocol: str  # "s3", "json" (X-Amz-Target), "query", "rest-json"
    detail: str  # decoded path plus the start of the body, for ``FaultRule.match``


@dataclass
class FaultRule:
    """Inject ``fault`` into requests for ``service``/``operation``.

    ``times``: how many matching requests get the fault (``None``: every one, a persistent failure).
    ``after``: let this many matching requests through first. ``match``: a substring that must occur
    in the decoded path or the body (an S3 key, a queue name).
    """

    service: str
    operation: str
    fault: str
    times: int | None = 1
    after: int = 0
    match: str | None = None
    seconds: float = 60.0
    seen: int = 0
    hits: int = 0

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}: use one of {FAULTS}")

    def applies(self, call: AwsCall) -> bool:
        if call.service != self.service or call.operation.lower() != self.operation.lower():
            return False
        return self.match is None or self.match in call.detail

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


@dataclass(frozen=True)
class RequestRecord:
    at: float
    service: str
    operation: str
    outcome: str  # the fault injected, or the upstream status code


def classify(method: str, raw_path: str, headers: Any, body: bytes) -> AwsCall:
    """Which AWS service and operation a request is (see the module docstring)."""
    split = urlsplit(raw_path)
    path = unquote(split.path)
    query = parse_qs(split.query, keep_blank_values=True)
    service = _service_from_auth(headers.get("Authorization", ""))
    target = headers.get("X-Amz-Target", "")
    text = body[:4000].decode("utf-8", errors="replace")
    detail = f"{path} {text}"
    if target:
        service = service or ("sqs" if target.startswith("AmazonSQS") else "")
        return AwsCall(service, target.rsplit(".", 1)[-1], method, path, "json", detail)
    form = parse_qs(text) if "x-www-form-urlencoded" in headers.get("Content-Type", "") else {}
    action = (query.get("Action") or form.get("Action") or [""])[0]
    if action:
        return AwsCall(service, action, method, path, "query", detail)
    if service == "s3" or (not service and not path.startswith("/v1/")):
        return AwsCall("s3", _s3_operation(method, path, query, headers), method, path, "s3", detail)
    segment = path.rstrip("/").rsplit("/", 1)[-1]
    return AwsCall(service, _REST_JSON_NAMES.get(segment.lower(), segment), method, path, "rest-json", detail)


def _service_from_auth(authorization: str) -> str:
    # "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sqs/aws4_request, SignedHeaders=..."
    marker = "Credential="
    if marker not in authorization:
        return ""
    scope = authorization.split(marker, 1)[1].split(",", 1)[0].split("/")
    return scope[3] if len(scope) >= 5 else ""


def _s3_operation(method: str, path: str, query: dict[str, list[str]], headers: Any) -> str:
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets"
    if key:
        if "uploadId" in query or "uploads" in query:
            return f"Multipart{method.title()}"
        if method == "GET":
            return "GetObject"
        if method == "HEAD":
            return "HeadObject"
        if method == "PUT":
            return "CopyObject" if headers.get("x-amz-copy-source") else "PutObject"
        if method == "DELETE":
            return "DeleteObject"
        return f"{method.title()}Object"
    if method == "GET":
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    if method == "HEAD":
        return "HeadBucket"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "PUT" and not query:
        return "CreateBucket"
    if method == "DELETE" and not query:
        return "DeleteBucket"
    return f"{method.title()}Bucket"


def error_response(call: AwsCall, fault: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of an AWS error answer in the protocol of ``call``."""
    request_id = str(uuid.uuid4())
    if fault == "throttle":
        status, code, message = (503, "SlowDown", "Please reduce your request rate.")
        if call.protocol != "s3":
            status, code, message = (400, "ThrottlingException", "Rate exceeded")
    elif fault == "access_denied":
        status, code = 403, "AccessDenied" if call.protocol in ("s3", "query") else "AccessDeniedException"
        message = (
            "User: arn:aws:iam::123456789012:user/test is not authorized to perform: "
            f"{call.service}:{call.operation}"
        )
    else:
        status, code, message = (503, "ServiceUnavailable", "Service is unable to handle request.")
    if call.protocol == "s3":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        return status, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body.encode()
    if call.protocol == "query":
        fault_type = "Sender" if status < 500 else "Receiver"
        body = (
            f"<ErrorResponse><Error><Type>{fault_type}</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()
    prefix = {"sqs": "com.amazonaws.sqs#"}.get(call.service, "")
    payload = json.dumps({"__type": f"{prefix}{code}", "message": message}).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.0" if call.protocol == "json" else "application/json",
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": f"{code}:",
    }
    if call.service == "sqs":
        headers["x-amzn-query-error"] = f"{code};{'Sender' if status < 500 else 'Receiver'}"
    return status, headers, payload


class FaultProxy:
    """A threaded HTTP proxy on a free loopback port that forwards to ``upstream`` (the moto URL)."""

    def __init__(self, upstream: str) -> None:
        split = urlsplit(upstream)
        self.upstream_host = split.hostname or "127.0.0.1"
        self.upstream_port = split.port or 80
        self.rules: list[FaultRule] = []
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(
        self,
        service: str,
        operation: str,
        fault: str,
        *,
        times: int | None = 1,
        after: int = 0,
        match: str | None = None,
        seconds: float = 60.0,
    ) -> FaultRule:
        rule = FaultRule(service, operation, fault, times, after, match, seconds)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def release(self) -> None:
        """Let every held (``hang``) request end (reset, never forwarded)."""
        self._release.set()

    def count(self, operation: str, outcome: str | None = None) -> int:
        """Requests seen for ``operation`` (with that outcome: a fault name or a status like ``200``)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if r.operation.lower() == operation.lower() and (outcome is None or r.outcome == outcome)
            )

    def wait_for(self, rule: FaultRule, hits: int = 1, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if rule.hits >= hits:
                return True
            time.sleep(0.02)
        return rule.hits >= hits

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- used by the handler --------------------------------------------------------------------
    def _decide(self, call: AwsCall) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.applies(call) or rule.exhausted:
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                rule.hits += 1
                return rule
        return None

    def _record(self, call: AwsCall, outcome: str) -> None:
        with self._lock:
            self.requests.append(RequestRecord(time.monotonic(), call.service, call.operation, outcome))


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(length) if length else b""

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass  # the client is already gone: nothing left to reset

    def _handle(self) -> None:
        body = self._read_body()
        call = classify(self.command, self.path, self.headers, body)
        rule = self.owner._decide(call)
        fault = rule.fault if rule is not None else None
        if fault == "hang":
            assert rule is not None
            self.owner._record(call, "hang")
            self.owner._release.wait(rule.seconds)
            self._reset()
            return
        if fault == "delay":
            assert rule is not None
            time.sleep(rule.seconds)
        if fault == "reset":
            self.owner._record(call, "reset")
            self._reset()
            return
        if fault in ("503", "throttle", "access_denied"):
            status, headers, payload = error_response(call, fault)
            self.owner._record(call, fault)
            self._answer(status, headers, payload)
            return
        status, headers, payload = self._forward(body)
        if fault == "drop_response":
            self.owner._record(call, "drop_response")
            self._reset()
            return
        if fault == "cut_body":
            self.owner._record(call, "cut_body")
            self._answer(status, headers, payload, send=len(payload) // 2)
            self._reset()
            return
        self.owner._record(call, "delay" if fault == "delay" else str(status))
        self._answer(status, headers, payload)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(
            self.owner.upstream_host, self.owner.upstream_port, timeout=120
        )
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            if self.command == "HEAD":
                length = response.getheader("Content-Length")
                if length is not None:
                    kept.append(("Content-Length", length))
            return response.status, kept, payload
        finally:
            connection.close()

    def _answer(self, status: int, headers: Any, payload: bytes, send: int | None = None) -> None:
        self.send_response(status)
        items = headers.items() if isinstance(headers, dict) else headers
        for key, value in items:
            self.send_header(key, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload if send is None else payload[:send])
            self.wfile.flush()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()
