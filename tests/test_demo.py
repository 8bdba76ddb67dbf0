"""``make demo`` end to end, at a small size: the real DAGs, moto, and real worker processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_indexes_every_image_through_both_queues(tmp_path, assets_dir):
    env = {
        **os.environ,
        "DEMO_IMAGES": "30",
        "DEMO_SECONDARY_THRESHOLD": "10",  # 30 images: a primary job and a secondary array of 3
        "DEMO_OUTPUT": str(tmp_path / "demo"),
        "FACEIDX_ASSETS": str(assets_dir),
    }
    env.pop("AIRFLOW_HOME", None)
    env.pop("AIRFLOW_CONN_AWS_DEFAULT", None)
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    assert re.search(r"images indexed \(ok\)\s+30\b", out), out[-3000:]
    assert re.search(r"images missing from the index\s+0\b", out)
    assert "decision: secondary            array job of 3" in out
    assert "decision: primary              plain job" in out
    assert re.search(r"worker processes \(Batch jobs and array children\)\s+4\b", out)
    # the index layer: the table, a search, people, an erasure
    assert re.search(r"face table rows \(each image, ETag and face once\)\s+\d+", out)
    assert "query face 0 of" in out
    assert "similarity" in out
    assert "Friends cast: 6 actors -> 6 persons (six persons, one per actor)" in out, out[-4000:]
    assert "search after forget: 0 matches from" in out
    assert "People survive reruns and model switches" in out
    assert re.search(
        r"people after re-cluster and model switch: labels (\d+) -> \1 \(0 lost\), "
        r"corrections [1-9]\d* replayed \(0 lost\)",
        out,
    ), out[-3000:]
    assert list((tmp_path / "demo" / "logs").glob("forget.log"))
