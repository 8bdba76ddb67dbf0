"""Carry what ``gpu_check.py`` needs to a lent GPU machine that has no network, 64 MiB per command.

The device has Python 3.12, numpy, OpenCV, onnx, pyarrow, scikit-image and a CPU-only onnxruntime,
but not onnxruntime-gpu (~260 MB), insightface or botocore, and not ``../shared``. So, here:

    python benchmarks/gpu_stage.py prepare [--ort 1.31.1] [--python 3.12] [--device-path]

downloads the wheels (``pip download --no-deps``, CUDA 13 onnxruntime-gpu for that Python), splits
onnxruntime-gpu into xz-compressed parts of at most 56 MiB (``bench-output/gpu-stage/part-NN.xz``;
with ``--device-path`` also nvImageCodec and CV-CUDA for CUDA 13, ``nvimgcodec-NN.xz`` and
``cvcuda-NN.xz``, so that ``gpu_check.py`` measures the pixels kept on the device),
puts the small wheels, the two pack models and the photos beside them (``bench-output/gpu-stage/base``,
git-ignored like the rest of ``bench-output``) with a manifest of sha256 sums, and prints the device
commands. There, one command per part while the machine stays warm (each carries one part; earlier
parts stay, since carried paths not named again are left in place):

    python3 benchmarks/gpu_stage.py receive   # carry bench-output/gpu-stage/part-00.xz, then -01, ...
    python3 benchmarks/gpu_stage.py install   # carry bench-output/gpu-stage/base: join, check, install
    PYTHONPATH=bench-output/gpu-stage/site python3 benchmarks/gpu_check.py \\
        --models bench-output/gpu-stage/base/models --images bench-output/gpu-stage/base/images

``receive`` checks every part present against the manifest and lists the missing ones; ``install``
joins the parts, checks the wheel's sha256 and installs every wheel with ``--no-deps`` into
``bench-output/gpu-stage/site`` (``import onnxruntime`` there is then the GPU build).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "bench-output" / "gpu-stage"
BASE = STAGE / "base"
PART_BYTES = 56 * 1024 * 1024  # compressed; the rest of the working tree fits in the 64 MiB beside it
SMALL_WHEELS = ("insightface==2.1", "botocore", "boto3", "s3transfer", "jmespath", "simplejpeg==1.9.0")
# the device pixel path (faceidx_worker.gpu_pixels), CUDA 13 like onnxruntime-gpu 1.27+: (prefix, spec)
DEVICE_PATH_WHEELS = (("nvimgcodec", "nvidia-nvimgcodec-cu13==0.9.0.20"), ("cvcuda", "cvcuda-cu13==0.19.0"))
PACK = ("det_500m.onnx", "mobilefacenet_128d_dynbatch.onnx")
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split(
    source: Path, folder: Path, part_bytes: int = PART_BYTES, prefix: str = "part"
) -> list[dict[str, str]]:
    """``source`` as xz parts of at most ``part_bytes`` compressed bytes each (raw chunks shrink or stay)."""
    parts = []
    with source.open("rb") as handle:
        index = 0
        while chunk := handle.read(part_bytes - 64 * 1024):  # xz adds a few bytes to incompressible data
            path = folder / f"{prefix}-{index:02d}.xz"
            path.write_bytes(lzma.compress(chunk, preset=1))
            assert path.stat().st_size <= part_bytes, path
            parts.append({"name": path.name, "sha256": sha256(path)})
            index += 1
    return parts


def join(folder: Path, parts: list[dict[str, str]], target: Path) -> None:
    with target.open("wb") as out:
        for part in parts:
            out.write(lzma.decompress((folder / part["name"]).read_bytes()))


def missing_parts(folder: Path, parts: list[dict[str, str]]) -> list[str]:
    return [
        p["name"]
        for p in parts
        if not (folder / p["name"]).is_file() or sha256(folder / p["name"]) != p["sha256"]
    ]


def _download(spec: str, dest: Path, python: str) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(dest),
    ]
    command += ["--python-version", python, "--implementation", "cp"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run([*command, spec], check=True)


def prepare(ort: str, python: str, assets: Path, device_path: bool = False) -> int:
    shutil.rmtree(STAGE, ignore_errors=True)
    (BASE / "wheels").mkdir(parents=True)
    downloads = STAGE / "download"
    downloads.mkdir()
    big = [("part", f"onnxruntime-gpu=={ort}")] + (list(DEVICE_PATH_WHEELS) if device_path else [])
    for spec in SMALL_WHEELS:
        _download(spec, BASE / "wheels", python)
    (BASE / "models").mkdir()
    for name in PACK:
        shutil.copyfile(assets / "models" / name, BASE / "models" / name)
    shutil.copytree(assets / "images", BASE / "images")
    wheels = []
    for prefix, spec in big:
        folder = downloads / prefix
        folder.mkdir()
        _download(spec, folder, python)
        (wheel,) = folder.glob("*.whl")
        parts = split(wheel, STAGE, prefix=prefix)
        wheels.append({"wheel": wheel.name, "wheel_sha256": sha256(wheel), "parts": parts})
    manifest = {"wheels": wheels}
    (BASE / "manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.copyfile(BASE / "manifest.json", STAGE / "manifest.json")
    shutil.rmtree(downloads)
    parts = [part for entry in wheels for part in entry["parts"]]
    print(f"{', '.join(e['wheel'] for e in wheels)}: {len(parts)} parts. On the device, one command each:")
    for part in parts:
        print(f"  carry bench-output/gpu-stage/{part['name']}: python3 benchmarks/gpu_stage.py receive")
    print(
        "  carry bench-output/gpu-stage/base: python3 benchmarks/gpu_stage.py install && "
        "PYTHONPATH=bench-output/gpu-stage/site python3 benchmarks/gpu_check.py "
        "--models bench-output/gpu-stage/base/models --images bench-output/gpu-stage/base/images"
    )
    return 0


def _manifest() -> dict[str, Any]:
    for place in (BASE / "manifest.json", STAGE / "manifest.json"):
        if place.is_file():
            return dict(json.loads(place.read_text()))
    raise SystemExit("no manifest: carry bench-output/gpu-stage/base (made by `gpu_stage.py prepare`)")


def big_wheels(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The split wheels of a manifest (one of an older ``prepare``: onnxruntime-gpu alone)."""
    if "wheels" in manifest:
        return list(manifest["wheels"])
    return [{key: manifest[key] for key in ("wheel", "wheel_sha256", "parts")}]


def receive() -> int:
    parts = [part for entry in big_wheels(_manifest()) for part in entry["parts"]]
    missing = missing_parts(STAGE, parts)
    print(
        f"{len(parts) - len(missing)} of {len(parts)} parts here"
        + (f"; missing {missing}" if missing else "")
    )
    return 0


def install() -> int:
    entries = big_wheels(_manifest())
    missing = missing_parts(STAGE, [part for entry in entries for part in entry["parts"]])
    if missing:
        print(f"cannot install: parts {missing} are not here (carry each with `gpu_stage.py receive`)")
        return 1
    joined = []
    for entry in entries:
        wheel = STAGE / str(entry["wheel"])
        join(STAGE, list(entry["parts"]), wheel)
        if sha256(wheel) != entry["wheel_sha256"]:
            print(f"{wheel.name}: sha256 differs from the manifest; carry the parts again")
            return 1
        joined.append(wheel)
    site = STAGE / "site"
    wheels = [*map(str, joined), *map(str, sorted((BASE / "wheels").glob("*.whl")))]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--upgrade",
            "--target",
            str(site),
            *wheels,
        ],
        check=True,
    )
    for wheel in joined:
        wheel.unlink()
    print(f"installed {len(wheels)} wheels into {site}: PYTHONPATH={site.relative_to(REPO)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="here: download, split, stage")
    prep.add_argument("--ort", default="1.31.1", help="onnxruntime-gpu version (1.27+ are CUDA 13 builds)")
    prep.add_argument("--python", default="3.12", help="the device's Python")
    prep.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    prep.add_argument(
        "--device-path",
        action="store_true",
        help="also nvImageCodec and CV-CUDA (CUDA 13): gpu_check then measures the pixels kept on the GPU",
    )
    commands.add_parser("receive", help="on the device: check the parts carried so far")
    commands.add_parser(
        "install", help="on the device: join, check, install into bench-output/gpu-stage/site"
    )
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.ort, args.python, args.assets, args.device_path)
    return receive() if args.command == "receive" else install()


if __name__ == "__main__":
    raise SystemExit(main())
