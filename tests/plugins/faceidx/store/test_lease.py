"""The writer lease: one writer at a time per index location, across processes, on a local folder and
on S3 (moto in its own process, with S3's conditional writes); a dead holder is replaced after expiry.

Real processes contend for the lease: each appends ``enter``/``leave`` lines to a shared journal while
it holds it, and the journal must never show two holders at once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from faceidx.store.lease import IndexLease, LeaseLost, LeaseTimeout, current_holder, writer
from faceidx.store.location import IndexLocation


def _holder(output_uri: str, endpoint: str | None, journal: str, name: str, rounds: int) -> None:
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
    location = IndexLocation(output_uri=output_uri, endpoint_url=endpoint, region="us-east-1")
    for _ in range(rounds):
        with writer(location, f"test {name}", holder=name, ttl_seconds=5, poll_seconds=0.05):
            with open(journal, "a") as out:
                out.write(f"enter {name}\n")
                out.flush()
            time.sleep(0.05)
            with open(journal, "a") as out:
                out.write(f"leave {name}\n")


def _never_two_at_once(journal: Path) -> int:
    inside = None
    entries = 0
    for line in journal.read_text().splitlines():
        kind, name = line.split()
        if kind == "enter":
            assert inside is None, f"{name} entered while {inside} held the lease"
            inside = name
            entries += 1
        else:
            assert inside == name
            inside = None
    return entries


def _race(output_uri: str, endpoint: str | None, journal: Path, processes: int = 3, rounds: int = 5) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_holder, args=(output_uri, endpoint, str(journal), f"p{i}", rounds))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert _never_two_at_once(journal) == processes * rounds


def test_processes_take_turns_on_a_local_folder(tmp_path: Path):
    _race(str(tmp_path / "out"), None, tmp_path / "journal")
    held = current_holder(IndexLocation(output_uri=str(tmp_path / "out")))
    assert held is not None
    assert held.released


def test_processes_take_turns_on_s3_with_conditional_writes(tmp_path: Path):
    from tests.support.moto_server import moto_server_process

    with moto_server_process() as moto:
        moto.client("s3").create_bucket(Bucket="index")
        _race("s3://index/v1", moto.url, tmp_path / "journal")
        body = moto.client("s3").get_object(Bucket="index", Key="v1/table/_faceidx/lease.json")["Body"]
        assert json.loads(body.read())["released"] is True


def _hold_forever(output_uri: str, ready: str) -> None:
    location = IndexLocation(output_uri=output_uri)
    with writer(location, "stuck", holder="the killed one", ttl_seconds=2):
        Path(ready).touch()
        time.sleep(600)


def test_a_killed_holder_is_replaced_after_its_lease_expires(tmp_path: Path, caplog):
    output = str(tmp_path / "out")
    ready = tmp_path / "ready"
    process = multiprocessing.get_context("spawn").Process(target=_hold_forever, args=(output, str(ready)))
    process.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    location = IndexLocation(output_uri=output)
    assert current_holder(location).holder == "the killed one"
    caplog.set_level("INFO")
    started = time.monotonic()
    with writer(location, "after the kill", holder="the next one", poll_seconds=0.1):
        waited = time.monotonic() - started
        assert current_holder(location).holder == "the next one"
    assert waited <= 30, "taken over once the dead holder's 2 s lease expired, not after the wait limit"
    assert "held by" in caplog.text, "the wait says who holds it"
    assert "the killed one" in caplog.text


def test_a_writer_gives_up_with_who_holds_it(tmp_path: Path):
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    with writer(location, "long ingest", holder="face_table/run-1/ingest", ttl_seconds=30):
        late = IndexLease(location, "forget", holder="cli", wait_seconds=0.3, poll_seconds=0.1)
        with pytest.raises(LeaseTimeout, match="held by face_table/run-1/ingest for long ingest"):
            late.acquire()


def test_a_lease_taken_over_after_expiry_is_lost_for_its_old_holder(tmp_path: Path):
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    now = [1000.0]
    stalled = IndexLease(location, "stalled", holder="slow", ttl_seconds=10, clock=lambda: now[0])
    stalled.acquire()
    now[0] += 11  # it stalled past its expiry without renewing
    other = IndexLease(location, "ingest", holder="fast", ttl_seconds=10, clock=lambda: now[0])
    other.acquire()
    stalled.renew()
    with pytest.raises(LeaseLost):
        stalled.check()
    other.check()


def test_a_nested_writer_in_one_process_reuses_the_held_lease(tmp_path: Path):
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    with writer(location, "ingest", holder="outer") as outer, writer(location, "forget tombstones") as inner:
        assert inner is outer
        assert current_holder(location).holder == "outer"
    assert current_holder(location).released
