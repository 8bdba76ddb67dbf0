"""The GPU device check, run on the CPU: end to end, saying clearly that CUDA was not used; the staging."""

from __future__ import annotations

import json
import os

import pytest

from tests.support.benchmarks import load_benchmark
from tests.support.worker_harness import make_model_pack


@pytest.mark.assets
def test_the_check_runs_end_to_end_on_the_cpu_and_says_cuda_was_not_used(assets_dir, tmp_path, capsys):
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("a GPU machine: this test is about the CPU fallback")
    check = load_benchmark("gpu_check")
    small_pack = make_model_pack(tmp_path / "pack-in", assets_dir)
    assert (
        check.main(
            [
                "--models",
                str(small_pack),
                "--images",
                str(assets_dir / "images"),
                "--out",
                str(tmp_path),
                "--quick",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "CUDA NOT USED" in out.splitlines()[0]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["cuda_used"] is False
    assert report["session_providers"]["detector"] == ["CPUExecutionProvider"]
    assert report["throughput"]["detector"]["640x640 batch 16"] > 0  # the exported detector batches
    assert report["worker"]["images"] == 8
    assert report["worker"]["messages_deleted"] == 8
    assert report["fraction_of_bound"] > 0
    assert report["fp16"]["measured"] is False
    paths = report["decode_paths"]
    assert paths["cpu_full"]["images"] == paths["adaptive"]["images"] == 8
    assert paths["adaptive"]["faces"] == paths["cpu_full_face_scale"]["faces"] > 0
    assert paths["adaptive"]["drift"]["count_changes"] == 0
    assert paths["gpu_decode"] == {"available": False, "why": "nvImageCodec is not available"}
    assert paths["device"]["available"] is False
    assert "no GPU" in paths["device"]["why"]
    assert "decode path device: not measured (no GPU on this machine)" in out
    assert report["worker_adaptive"]["images"] == 8
    assert report["worker_adaptive"]["messages_deleted"] == 8


def test_parts_fit_a_command_and_join_back(tmp_path):
    stage = load_benchmark("gpu_stage")
    source = tmp_path / "wheel.whl"
    source.write_bytes(os.urandom(300_000))  # incompressible, like a wheel
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = stage.split(source, folder, part_bytes=128 * 1024)
    assert len(parts) == 5
    assert all((folder / p["name"]).stat().st_size <= 128 * 1024 for p in parts)
    (folder / parts[2]["name"]).unlink()
    assert stage.missing_parts(folder, parts) == [parts[2]["name"]]
    parts_again = stage.split(source, folder, part_bytes=128 * 1024)
    assert stage.missing_parts(folder, parts_again) == []
    stage.join(folder, parts_again, tmp_path / "joined.whl")
    assert (tmp_path / "joined.whl").read_bytes() == source.read_bytes()


def test_several_split_wheels_keep_their_own_parts_and_an_older_manifest_still_reads(tmp_path):
    stage = load_benchmark("gpu_stage")
    folder = tmp_path / "parts"
    folder.mkdir()
    entries = []
    for prefix in ("part", "cvcuda"):
        source = tmp_path / f"{prefix}.whl"
        source.write_bytes(os.urandom(200_000))
        parts = stage.split(source, folder, part_bytes=128 * 1024, prefix=prefix)
        assert all(p["name"].startswith(f"{prefix}-") for p in parts)
        entries.append({"wheel": source.name, "wheel_sha256": stage.sha256(source), "parts": parts})
    assert stage.big_wheels({"wheels": entries}) == entries
    assert stage.big_wheels(entries[0]) == [entries[0]]  # the one-wheel manifest of an older prepare
    names = [p["name"] for entry in entries for p in entry["parts"]]
    assert len(set(names)) == len(names) == 8  # 200 kB of noise in parts of 128 KiB less 64 KiB: 4 each
    assert "simplejpeg==1.9.0" in stage.SMALL_WHEELS
