"""Load at CI size: a few hundred messages, two concurrent worker processes, one moto queue.

``make soak`` runs the same code (tests/support/reliability_load.py) with 10,000 messages and prints
the figures; this test checks the promises on a count that fits in CI and prints the same figures.
"""

from __future__ import annotations

import os

import pytest

from tests.support.reliability_load import run_load

pytestmark = [pytest.mark.assets, pytest.mark.slow]

MESSAGES = int(os.environ.get("FACEIDX_LOAD_MESSAGES", "300"))
PEAK_RSS_LIMIT_MIB = 1024  # a CPU worker with the small pack settles near 300 MiB; see the soak figures


def test_two_workers_drain_the_queue_losing_nothing(moto, small_pack, assets_dir):
    report = run_load(moto, assets=assets_dir, model_dir=small_pack, messages=MESSAGES, workers=2)
    print("\n" + "\n".join(report.lines()))

    assert report.queue_left == 0, "messages left in the queue"
    assert report.dlq_left == 0
    assert not report.missing, f"{len(report.missing)} images missing, e.g. {report.missing[:5]}"
    assert report.images_indexed == MESSAGES
    assert not report.wrong_face_counts, report.wrong_face_counts[:5]
    for worker in report.workers:
        assert worker.returncode == 0
        assert worker.exit_reason == "idle"
        assert worker.images > 0, "one worker did all the work: the load was not shared"
        assert worker.samples > 0
        assert worker.peak_rss_mib < PEAK_RSS_LIMIT_MIB
    assert sum(worker.images for worker in report.workers) >= MESSAGES  # duplicates allowed, never fewer
