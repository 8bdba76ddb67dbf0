"""Fetch an insightface model pack at image build time, verify its sha256, unpack its .onnx files.

Runs in the Dockerfile's ``models`` stage with the standard library only::

    python fetch_model_pack.py --url URL --sha256 HEX --dest /opt/models/buffalo_l [--keep a.onnx b.onnx]

Nothing is extracted unless the archive's sha256 matches. Folders inside the zip are flattened (packs
such as antelopev2 nest their files in a folder). ``--keep`` limits the pack to the files the worker
uses (the detector and the recognizer), which keeps the image small; every kept name must exist.
The worker never downloads weights at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

CHUNK = 1024 * 1024


def download(url: str, target: Path) -> str:
    """Stream ``url`` to ``target``; return its sha256."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "faceidx-image-build"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=300) as response, open(target, "wb") as out:  # noqa: S310
        while chunk := response.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def unpack(archive: Path, dest: Path, keep: list[str]) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(archive) as pack:
        for member in pack.infolist():
            name = PurePosixPath(member.filename).name
            if member.is_dir() or not name.endswith(".onnx") or (keep and name not in keep):
                continue
            with pack.open(member) as source, open(dest / name, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
            written.append(name)
    missing = sorted(set(keep) - set(written))
    if missing:
        raise SystemExit(f"the archive has no {', '.join(missing)}: fix MODEL_FILES for this pack")
    if not written:
        raise SystemExit("the archive holds no .onnx file")
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--sha256", required=True)
    parser.add_argument("--dest", required=True, type=Path)
    parser.add_argument("--keep", nargs="*", default=[])
    args = parser.parse_args(argv)
    expected = args.sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        print(f"--sha256 {args.sha256!r} is not a sha256 hex digest", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "pack.zip"
        actual = download(args.url, archive)
        if actual != expected:
            print(
                f"sha256 mismatch for {args.url}: got {actual}, pinned {expected}. Refusing to unpack: "
                "check MODEL_URL / MODEL_SHA256",
                file=sys.stderr,
            )
            return 1
        files = unpack(archive, args.dest, [name for name in args.keep if name])
    print(f"model pack verified ({expected}) and unpacked to {args.dest}: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
