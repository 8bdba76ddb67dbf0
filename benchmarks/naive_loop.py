"""The loop a user writes with insightface, timed: GET, ``cv2.imdecode``, ``FaceAnalysis.get``, next image.

Run by ``bench_worker.py`` in its own process (as the worker is), against the same moto S3:

    python naive_loop.py ENDPOINT BUCKET PACK_DIR DET_THRESH OUT.json KEY [KEY ...]

``app.prepare(ctx_id=0, ...)`` is insightface's documented call; on a CPU-only ONNX Runtime it runs on
the CPU. (``ctx_id=-1`` would call ``set_providers`` on every session, rebuilding them; measured here
that costs about 8 % more CPU per image, which is why the old baseline ran slower than a plain loop.)
Writes the wall time of the loop (first GET to last result; model loading and one warm-up image
excluded, as the worker's start-up is) and every face's box and normalized embedding.
"""

from __future__ import annotations

import json
import sys
import time

import boto3
import cv2
import numpy as np
from insightface.app import FaceAnalysis


def main(argv: list[str]) -> int:
    endpoint, bucket, pack, det_thresh, out, *keys = argv
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    app = FaceAnalysis(name=pack, providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=0, det_thresh=float(det_thresh))  # insightface 2.1's default det size: 128 + 640

    def fetch(key: str) -> np.ndarray:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    app.get(fetch(keys[0]))  # warm-up, like the worker's own
    faces = {}
    cpu_started = time.process_time()
    started = time.perf_counter()
    for key in keys:
        found = app.get(fetch(key))
        faces[key] = [
            (face.bbox.tolist(), (face.embedding / np.linalg.norm(face.embedding)).tolist()) for face in found
        ]
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    with open(out, "w") as handle:
        json.dump({"seconds": seconds, "cpu_seconds": cpu_seconds, "faces": faces}, handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
