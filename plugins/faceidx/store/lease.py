"""One writer at a time per index location: a lease object beside the tables.

Every writer of the index (the ``face_table``, ``face_identities``, ``face_people``, ``face_forget`` and
``face_models`` tasks, the ``faceidx`` CLI, the ObjectRemoved path inside the ingest) holds the lease of
its location while it writes; readers (search, DuckDB, Athena) never take it. The lease is one small
JSON document, ``<output>/table/_faceidx/lease.json``::

    {"holder": "face_table/scheduled__2026-12-06T10:00:00+00:00/ingest try 1 @ host pid 4242",
     "purpose": "ingest", "token": "9c1f...", "acquired_at": ..., "renewed_at": ..., "expires_at": ...,
     "released": false}

It is taken and handed over with S3's conditional writes, which make the check and the write one
atomic step: ``PutObject`` with ``If-None-Match: *`` creates it only when there is none, and with
``If-Match: <ETag>`` replaces it only when nobody changed it since it was read (both answered
``412 PreconditionFailed`` otherwise). On a local folder the same two operations run under an
``flock``. Measured simpler than a DynamoDB lock item: no table to create, no extra IAM service, the
same bucket and credentials as the index (see docs/index-table.md).

* **Expiry.** The holder renews the lease every ``ttl / 4`` from a heartbeat thread. A holder that
  dies (SIGKILL, a lost spot instance) stops renewing; once ``expires_at`` has passed, the next writer
  takes the lease over (``If-Match`` on the dead holder's ETag, so two takers cannot both win).
* **Waiting.** A writer that finds the lease held waits, and says so in its log every minute: who holds
  it, for what, since when, until when. After ``wait_seconds`` it gives up with what to do.
* **Losing it.** A renewal that fails (someone took the lease after it expired, for example after a
  long stall of this process) marks the lease lost; :meth:`IndexLease.check` raises
  :class:`LeaseLost`, and writers call it before each commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faceidx.common.tables import format_pairs
from faceidx.common.uris import split_s3_uri
from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)

# How long a holder that stops renewing (killed) keeps others waiting; FACEIDX_LEASE_TTL_SECONDS
# overrides it (the tests kill holders on purpose and use a few seconds).
DEFAULT_TTL_SECONDS = float(os.environ.get("FACEIDX_LEASE_TTL_SECONDS") or 120.0)
DEFAULT_WAIT_SECONDS = float(os.environ.get("FACEIDX_LEASE_WAIT_SECONDS") or 3600.0)
DEFAULT_POLL_SECONDS = 2.0
LOG_EVERY_SECONDS = 60.0


class LeaseTimeout(TimeoutError):
    """Another writer held the lease for longer than this writer would wait."""


class LeaseLost(RuntimeError):
    """This writer's lease expired and another writer took it: stop before the next commit."""


@dataclass(frozen=True)
class LeaseDocument:
    holder: str
    purpose: str
    token: str
    acquired_at: float
    renewed_at: float
    expires_at: float
    released: bool = False

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> LeaseDocument:
        return cls(**json.loads(payload))

    def free(self, now: float) -> bool:
        return self.released or self.expires_at <= now

    def describe(self, now: float) -> list[tuple[str, Any]]:
        return [
            ("held by", self.holder),
            ("for", self.purpose),
            ("since", _stamp(self.acquired_at)),
            ("last renewed", _stamp(self.renewed_at)),
            ("expires", f"{_stamp(self.expires_at)} (in {max(0, round(self.expires_at - now))} s)"),
        ]


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def holder_identity(purpose: str) -> str:
    """Who is writing: the Airflow task (from the ``AIRFLOW_CTX_*`` variables Airflow sets in a task
    process) or the CLI user, with the host and process id."""
    dag, run, task = (os.environ.get(f"AIRFLOW_CTX_{k}") for k in ("DAG_ID", "DAG_RUN_ID", "TASK_ID"))
    try_number = os.environ.get("AIRFLOW_CTX_TRY_NUMBER")
    if dag and task:
        who = f"{dag}/{run}/{task}" + (f" try {try_number}" if try_number else "")
    else:
        who = f"{os.environ.get('FACEIDX_ACTOR') or os.environ.get('USER') or 'faceidx'} ({purpose})"
    return f"{who} @ {socket.gethostname()} pid {os.getpid()}"


# -- one conditionally written object ----------------------------------------------------------------
class _S3Slot:
    def __init__(self, location: IndexLocation, uri: str) -> None:
        parts = split_s3_uri(uri)
        assert parts is not None
        self.bucket, self.key = parts
        self.client = location.s3_client()

    def get(self) -> tuple[bytes, str] | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except self.client.exceptions.NoSuchKey:
            return None
        return response["Body"].read(), response["ETag"]

    def _put(self, payload: bytes, **condition: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return str(
                self.client.put_object(Bucket=self.bucket, Key=self.key, Body=payload, **condition)["ETag"]
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            # 412: the condition failed; 409 ConditionalRequestConflict: a concurrent conditional write
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return None
            raise

    def create(self, payload: bytes) -> str | None:
        return self._put(payload, IfNoneMatch="*")

    def replace(self, payload: bytes, etag: str) -> str | None:
        return self._put(payload, IfMatch=etag)


class _LocalSlot:
    """The same two conditional writes on a local file, made atomic with an ``flock`` on a side file.
    The ETag is the content's hash."""

    def __init__(self, uri: str) -> None:
        self.path = Path(uri.removeprefix("file://"))
        self.mutex = self.path.with_name(self.path.name + ".mutex")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.mutex, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> tuple[bytes, str] | None:
        if not self.path.exists():
            return None
        payload = self.path.read_bytes()
        return payload, hashlib.sha256(payload).hexdigest()

    def _write(self, payload: bytes) -> str:
        temporary = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_bytes(payload)
        temporary.replace(self.path)
        return hashlib.sha256(payload).hexdigest()

    def get(self) -> tuple[bytes, str] | None:
        with self._locked():
            return self._read()

    def create(self, payload: bytes) -> str | None:
        with self._locked():
            return None if self._read() is not None else self._write(payload)

    def replace(self, payload: bytes, etag: str) -> str | None:
        with self._locked():
            current = self._read()
            return self._write(payload) if current is not None and current[1] == etag else None


def lease_uri(location: IndexLocation) -> str:
    return f"{location.output_uri}/table/_faceidx/lease.json"


def _slot(location: IndexLocation) -> _S3Slot | _LocalSlot:
    uri = lease_uri(location)
    return _S3Slot(location, uri) if uri.startswith("s3://") else _LocalSlot(uri)


def current_holder(location: IndexLocation) -> LeaseDocument | None:
    """The lease as it is now (held, expired or released), or None when none was ever taken."""
    found = _slot(location).get()
    return None if found is None else LeaseDocument.from_bytes(found[0])


# The leases this process holds, by lease URI: a writer nested in another (an erasure inside an
# ingest, a registry change inside a task that already holds the lease) reuses the held one.
_HELD: dict[str, IndexLease] = {}
_HELD_GUARD = threading.Lock()


class IndexLease:
    """The writer lease of one index location; a context manager (acquire, heartbeat, release).
    Re-entrant within one process: an inner ``with`` of the same location reuses the outer lease."""

    def __init__(
        self,
        location: IndexLocation,
        purpose: str,
        *,
        holder: str | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.location = location
        self.purpose = purpose
        self.holder = holder or holder_identity(purpose)
        self.ttl = float(ttl_seconds)
        self.wait_seconds = float(wait_seconds)
        self.poll_seconds = float(poll_seconds)
        self.clock = clock
        self._slot = _slot(location)
        self._etag: str | None = None
        self._document: LeaseDocument | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._guard = threading.Lock()
        self._outer: IndexLease | None = None

    # -- taking and giving back ------------------------------------------------------------------------
    def _new_document(self, acquired_at: float | None = None) -> LeaseDocument:
        now = self.clock()
        token = self._document.token if self._document else uuid.uuid4().hex
        return LeaseDocument(
            holder=self.holder,
            purpose=self.purpose,
            token=token,
            acquired_at=acquired_at if acquired_at is not None else now,
            renewed_at=now,
            expires_at=now + self.ttl,
        )

    def try_acquire(self) -> LeaseDocument | None:
        """Take the lease if it is free; returns None when it is, or the document of who holds it."""
        found = self._slot.get()
        document = self._new_document()
        if found is None:
            etag = self._slot.create(document.to_bytes())
        else:
            held = LeaseDocument.from_bytes(found[0])
            if not held.free(self.clock()):
                return held
            if not held.released:
                log.warning(
                    "%s",
                    format_pairs(
                        held.describe(self.clock()),
                        title="The index lease expired unreleased (its holder died): taking it over",
                    ),
                )
            etag = self._slot.replace(document.to_bytes(), found[1])
        if etag is None:  # another writer won the same race: look again
            found = self._slot.get()
            return LeaseDocument.from_bytes(found[0]) if found else document
        self._etag, self._document, self._lost = etag, document, None
        return None

    def acquire(self) -> IndexLease:
        started = self.clock()
        logged = 0.0
        while True:
            holder = self.try_acquire()
            if holder is None:
                log.info("index lease taken for %s by %s", self.purpose, self.holder)
                return self
            now = self.clock()
            if now - started >= self.wait_seconds:
                raise LeaseTimeout(
                    f"waited {round(now - started)} s for the index lease of {self.location.output_uri}, "
                    f"held by {holder.holder} for {holder.purpose} since {_stamp(holder.acquired_at)} "
                    f"(expires {_stamp(holder.expires_at)}). Let that writer finish, then run this again; "
                    "a holder that died is replaced once its lease expires."
                )
            if now - logged >= LOG_EVERY_SECONDS or not logged:
                log.info(
                    "%s",
                    format_pairs(holder.describe(now), title=f"Waiting for the index lease ({self.purpose})"),
                )
                logged = now
            time.sleep(self.poll_seconds)

    def renew(self) -> None:
        """Push the expiry forward; a failed conditional write means the lease was taken: lost."""
        with self._guard:
            if self._etag is None or self._document is None or self._lost:
                return
            document = self._new_document(self._document.acquired_at)
            etag = self._slot.replace(document.to_bytes(), self._etag)
            if etag is None:
                self._lost = "another writer replaced the lease document (it had expired)"
                log.error("index lease lost by %s: %s", self.holder, self._lost)
                return
            self._etag, self._document = etag, document

    def release(self) -> None:
        with self._guard:
            if self._etag is None or self._document is None:
                return
            released = LeaseDocument(**{**asdict(self._document), "released": True})
            if self._slot.replace(released.to_bytes(), self._etag) is None and not self._lost:
                log.warning("index lease of %s was taken over before release", self.holder)
            self._etag = None
            log.info("index lease released by %s", self.holder)

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless this writer still holds an unexpired lease."""
        if self._lost:
            raise LeaseLost(f"{self.holder} lost the index lease: {self._lost}. Nothing more was written.")
        if self._document is None or self._etag is None:
            raise LeaseLost(f"{self.holder} does not hold the index lease")
        if self._document.expires_at <= self.clock():
            raise LeaseLost(
                f"{self.holder}'s index lease expired at {_stamp(self._document.expires_at)} without "
                "renewal (a stalled process): nothing more was written"
            )

    # -- context manager with a heartbeat -------------------------------------------------------------
    def _beat(self) -> None:
        interval = max(0.05, self.ttl / 4)
        while not self._stop.wait(interval):
            try:
                self.renew()
            except Exception:  # a transient S3 error: the next beat tries again before expiry
                log.exception("index lease renewal failed; trying again in %.0f s", interval)

    def __enter__(self) -> IndexLease:
        key = lease_uri(self.location)
        with _HELD_GUARD:
            outer = _HELD.get(key)
        if outer is not None and outer is not self:
            self._outer = outer
            return outer
        self._outer = None
        self.acquire()
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name="faceidx-lease", daemon=True)
        self._heartbeat.start()
        with _HELD_GUARD:
            _HELD[key] = self
        return self

    def __exit__(self, *exc: object) -> None:
        if self._outer is not None:
            return
        with _HELD_GUARD:
            _HELD.pop(lease_uri(self.location), None)
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        self.release()


def writer(location: IndexLocation, purpose: str, **kwargs: Any) -> IndexLease:
    """``with writer(location, "ingest"): ...``: the lease every writer of the index holds."""
    return IndexLease(location, purpose, **kwargs)
