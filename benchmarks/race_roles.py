"""The processes of ``bench_races``: each runs one role against one index location until its deadline.

Every role is a real process (``python benchmarks/bench_races.py --role NAME --config FILE``) that uses
the project's own code exactly as a deployment does: the worker's :class:`ParquetSink` writes landing
files, ``face_table``'s task bodies ingest, compact, vacuum and sync, ``face_identities``' task body
clusters, ``forget`` and ``python -m faceidx.cli forget`` erase (some SIGKILLed, then run again), and a
long-lived :class:`VectorIndex` searches. Each role writes what it did to ``<workdir>/<role>.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BUCKET = "photos"
ETAG = "e1"
V1, DIM1 = "racepack-aaaaaaaaaaaa", 32  # every image; identities run on it
V2, DIM2 = "racepack2-bbbbbbbbbbbb", 24  # a quarter of the images, indexed again by a second pack
IDENTITIES = 12
SPREAD = 0.7  # noise norm around an identity: same-person cosine about 0.8
MANIFEST = "manifest.jsonl"  # one line per image the workers wrote (after its landing files)
MAINTENANCE_PAUSE_S = 2.0  # between rounds: the lease's waiters poll every 2 s, a busy loop starves them
# in turn; the kills first, so that even a short race kills one
ERASURE_MODES = ("cli-killed-at-step", "in-process", "cli-killed-by-timer", "cli")


@dataclass(frozen=True)
class RaceConfig:
    """What every process of one race shares (written as JSON beside the results)."""

    output_uri: str
    workdir: str
    seconds: float
    seed: int = 7
    crops_uri: str = ""
    env: dict[str, str] = field(default_factory=dict)  # for the CLI processes (AWS endpoint, TTL, paths)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> RaceConfig:
        return cls(**json.loads(path.read_text()))

    def location(self) -> Any:
        from faceidx.store.location import IndexLocation

        return IndexLocation.from_env(self.output_uri)


# -- the images the workers write ------------------------------------------------------------------------
def identity_vectors(version: str, dim: int) -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(version.encode()).digest()[:4], "big"))
    vectors = rng.standard_normal((IDENTITIES, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def face_vectors(rng: random.Random, version: str, dim: int, faces: int) -> list[list[float]]:
    """Faces of random identities with noise: the identities run finds persons among them."""
    base = identity_vectors(version, dim)
    noise = np.random.default_rng(rng.randrange(2**32)).standard_normal((faces, dim))
    noise *= SPREAD / np.linalg.norm(noise, axis=1, keepdims=True)
    vectors = base[[rng.randrange(IDENTITIES) for _ in range(faces)]] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [[float(x) for x in v] for v in vectors]


def landing_rows(
    key: str, version: str, vectors: list[list[float]], crops: list[str], at: datetime
) -> list[dict[str, Any]]:
    """One image's rows as the worker builds them: one per face, or one image-level row."""
    from faceidx_worker.rows import DIM_KEY, SCHEMA, face_id, image_id

    dim = DIM1 if version == V1 else DIM2
    base: dict[str, Any] = {name: None for name in SCHEMA.names}
    base.update(
        image_bucket=BUCKET,
        image_key=key,
        image_etag=ETAG,
        image_width=640,
        image_height=480,
        status="ok",
        face_count=len(vectors),
        model_pack=version.rsplit("-", 1)[0],
        model_version=version,
        indexed_at=at,
        job_id="race",
        image_id=image_id(BUCKET, key, ETAG),
    )
    base[DIM_KEY] = dim
    if not vectors:
        return [{**base, "face_id": face_id(BUCKET, key, ETAG, version, None)}]
    return [
        {
            **base,
            "face_index": index,
            "face_id": face_id(BUCKET, key, ETAG, version, index),
            "bbox": [10.0 * index, 10.0, 10.0 * index + 50, 60.0],
            "landmarks": [1.0] * 10,
            "det_score": 0.9,
            "embedding": vector,
            "bbox_width": 50.0,
            "bbox_height": 50.0,
            "sharpness": 120.0,
            "yaw": 0.0,
            "pitch": 0.0,
            "roll": 0.0,
            "embedding_norm": 21.0,
            "quality_passed": True,
            "quality_reasons": [],
            "crop_uri": crops[index] if crops else None,
        }
        for index, vector in enumerate(vectors)
    ]


class ImageWriter:
    """Writes images as the GPU workers do: crops first, then the rows through the worker's sink."""

    def __init__(self, config: RaceConfig, name: str) -> None:
        from faceidx.common.uris import split_s3_uri
        from faceidx_worker.envvars import OutputLocation
        from faceidx_worker.sink import ParquetSink

        self.config = config
        self.name = name
        self.location = config.location()
        s3 = self.location.s3_client() if self.location.is_s3 else None
        parts = split_s3_uri(config.output_uri)
        output = (
            OutputLocation(parts[0], parts[1], None)
            if parts
            else OutputLocation(None, "", Path(config.output_uri))
        )
        self.sink = ParquetSink(output, s3_client=s3)
        self.s3 = s3
        self.count = 0
        self.written: list[list[dict[str, Any]]] = []  # each flush's rows, for re-deliveries

    def _crop(self, version: str, face: str) -> str:
        from faceidx_worker.crops import crop_key
        from faceidx_worker.sink import write_durably

        payload = b"\xff\xd8 a crop stands in here \xff\xd9"
        if self.s3 is not None:
            bucket, _, prefix = self.config.crops_uri.removeprefix("s3://").partition("/")
            key = crop_key(prefix, version, face)
            self.s3.put_object(Bucket=bucket, Key=key, Body=payload)
            return f"s3://{bucket}/{key}"
        target = Path(self.config.crops_uri) / version / f"{face}.jpg"
        write_durably(target, payload)
        return str(target)

    def write(self, rng: random.Random, images: int) -> list[dict[str, Any]]:
        """``images`` new images (a quarter under both versions); their manifest entries."""
        from faceidx_worker.rows import face_id

        at = datetime.now(UTC)
        entries = []
        rows: list[dict[str, Any]] = []
        for _ in range(images):
            key = f"race/{self.name}-{self.count:05d}.jpg"
            self.count += 1
            entry: dict[str, Any] = {"key": key, "faces": {}, "row_ids": [], "crops": []}
            versions = [(V1, DIM1)] + ([(V2, DIM2)] if rng.random() < 0.25 else [])
            faces = rng.choice((0, 1, 1, 2, 2, 3))
            for version, dim in versions:
                vectors = face_vectors(rng, version, dim, faces)
                ids = [face_id(BUCKET, key, ETAG, version, i) for i in range(faces)]
                crops = [self._crop(version, f) for f in ids]
                rows += landing_rows(key, version, vectors, crops, at)
                entry["faces"][version] = dict(zip(ids, vectors, strict=True))
                entry["row_ids"] += ids or [face_id(BUCKET, key, ETAG, version, None)]
                entry["crops"] += crops
            entries.append(entry)
        self.sink.add(rows, token=len(entries))
        self.sink.flush()
        self.written.append(rows)
        return entries

    def redeliver(self, rng: random.Random) -> None:
        """An earlier flush's rows written again (SQS delivers at least once): same face ids."""
        self.sink.add(rng.choice(self.written), token="again")
        self.sink.flush()


# -- the roles -------------------------------------------------------------------------------------------
@dataclass
class RoleResult:
    role: str
    operations: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def failed(self, what: str, error: BaseException) -> None:
        self.failures[f"{what}: {type(error).__name__}"] += 1
        if len(self.errors) < 10:
            self.errors.append(f"{what}: {type(error).__name__}: {str(error)[:400]}")


def workers(config: RaceConfig, result: RoleResult, deadline: float) -> None:
    """Landing files at a steady pace, now and then one delivered twice."""
    rng = random.Random(config.seed)
    writer = ImageWriter(config, "w")
    manifest = Path(config.workdir) / MANIFEST
    while time.monotonic() < deadline:
        entries = writer.write(rng, rng.randint(2, 4))
        with manifest.open("a") as out:
            out.writelines(json.dumps(entry) + "\n" for entry in entries)
        result.operations["landing files"] += 1
        result.operations["images"] += len(entries)
        if rng.random() < 0.2:
            writer.redeliver(rng)
            result.operations["re-deliveries"] += 1
        time.sleep(0.4)


def maintenance(config: RaceConfig, result: RoleResult, deadline: float) -> None:
    """face_table's tasks in a loop: ingest, compact, sync the vectors; vacuum (retention 0) now and then."""
    from faceidx.maintenance.tasks import compact_task, ingest_task, sync_vectors_task, vacuum_task

    location = config.location()
    rounds = 0
    while time.monotonic() < deadline:
        today = datetime.now(UTC).date().isoformat()
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("ingest", lambda: ingest_task(location, max_files=50)),
            ("compact", lambda day=today: compact_task(location, [day], target_file_mb=64)),
            ("sync vectors", lambda: sync_vectors_task(location)),
        ]
        if rounds % 3 == 2:
            steps.append(("vacuum", lambda: vacuum_task(location, retention_hours=0)))
        for name, step in steps:
            try:
                summary = step()
                result.operations[name] += 1
                if name == "ingest":
                    result.operations["erasures finished by ingest"] += summary.get("erasures_finished", 0)
                    result.operations["erased rows dropped"] += summary.get("erased_dropped", 0)
            except Exception as error:  # noqa: BLE001 - counted and reported, the race goes on
                result.failed(name, error)
        rounds += 1
        time.sleep(MAINTENANCE_PAUSE_S)


def identities(config: RaceConfig, result: RoleResult, deadline: float) -> None:
    """face_identities' incremental run in a loop."""
    from faceidx.people.tasks import identities_task

    location = config.location()
    while time.monotonic() < deadline:
        try:
            report = identities_task(location, {"model_version": V1}, None)
            result.operations["incremental runs"] += 1
            result.operations["faces seen"] += int(report.get("faces seen", 0))
            result.extra["persons"] = report.get("persons")
        except Exception as error:  # noqa: BLE001 - counted and reported, the race goes on
            result.failed("identities", error)
        time.sleep(0.5)


def search(config: RaceConfig, result: RoleResult, deadline: float) -> None:
    """One long-lived reader searching both versions in a loop; it never takes the lease."""
    from faceidx.store.vectors import VectorIndex

    rng = random.Random(config.seed + 3)
    index = VectorIndex(config.location())
    while time.monotonic() < deadline:
        version, dim = (V2, DIM2) if rng.random() < 0.3 else (V1, DIM1)
        query = np.asarray(face_vectors(rng, version, dim, 2), dtype=np.float32)
        try:
            found = index.search(query, model_version=version, k=5)
            result.operations["searches"] += 1
            result.operations["matches"] += sum(len(m) for m in found)
        except Exception as error:  # noqa: BLE001 - counted and reported, the race goes on
            result.failed(f"search {version}", error)
        time.sleep(0.05)


def _manifest_keys(workdir: Path) -> set[str]:
    path = workdir / MANIFEST
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        try:
            keys.add(json.loads(line)["key"])
        except (json.JSONDecodeError, KeyError):  # a line being appended
            continue
    return keys


def _indexed_keys(location: Any) -> set[str]:
    from faceidx.store.table import FaceTable

    table = FaceTable.open_if_exists(location)
    if table is None:
        return set()
    return set(table.read(columns=["image_key"])["image_key"].to_pylist())


def _forget_cli(
    config: RaceConfig, uri: str, kill_at: str | None = None, kill_after: float | None = None
) -> tuple[int, str]:
    env = {**os.environ, **config.env}
    env.pop("FACEIDX_FAULT_KILL_AT", None)
    if kill_at:
        env["FACEIDX_FAULT_KILL_AT"] = kill_at
    command = [sys.executable, "-m", "faceidx.cli", "forget", "--image", uri, "--reason", "race", "--json"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
    out, err = process.communicate(timeout=600)
    return process.returncode, out if process.returncode == 0 else err[-1500:]


def _intent_state(location: Any, uri: str) -> tuple[str | None, str | None]:
    from faceidx.store.intents import ErasureIntents

    intent = ErasureIntents(location).latest_for("image", uri)
    return (None, None) if intent is None else (intent.id, intent.state)


def erasures(config: RaceConfig, result: RoleResult, deadline: float) -> None:
    """Forget random indexed images, in turn in-process, by the CLI, and by the CLI SIGKILLed (at a step
    of the erasure, or after a random delay) and then run again until it finishes."""
    from faceidx.erasure.forget import STEPS, ForgetTarget, forget

    rng = random.Random(config.seed + 1)
    location = config.location()
    workdir = Path(config.workdir)
    done: list[dict[str, Any]] = []
    result.extra["erasures"] = done
    turn = 0
    while time.monotonic() < deadline:
        try:
            indexed = _indexed_keys(location)
        except Exception as error:  # noqa: BLE001 - counted and reported, the race goes on
            result.failed("read the indexed images", error)
            time.sleep(0.5)
            continue
        candidates = sorted((_manifest_keys(workdir) & indexed) - {d["key"] for d in done})
        if not candidates:
            time.sleep(0.5)
            continue
        key = rng.choice(candidates)
        uri = f"s3://{BUCKET}/{key}"
        mode = ERASURE_MODES[turn % len(ERASURE_MODES)]
        turn += 1
        record: dict[str, Any] = {"key": key, "mode": mode, "attempts": 0, "killed": None, "finished": False}
        done.append(record)  # before it starts: a crash of this process still shows the erasure
        finished = False
        if mode == "in-process":
            record["attempts"] += 1
            try:
                forget(location, ForgetTarget("image", uri), reason="race", actor="race")
                finished = True
            except Exception as error:  # noqa: BLE001 - counted and reported, the race goes on
                result.failed("forget in-process", error)
        else:
            kill_at = rng.choice(STEPS) if mode == "cli-killed-at-step" else None
            kill_after = rng.uniform(2.0, 5.0) if mode == "cli-killed-by-timer" else None
            record["attempts"] += 1
            rc, output = _forget_cli(config, uri, kill_at, kill_after)
            if rc == -signal.SIGKILL:
                record["killed"] = kill_at or f"after {kill_after:.1f} s"
                result.operations["erasures killed"] += 1
            elif rc == 0:
                finished = True
            else:
                result.failed("forget cli", RuntimeError(output))
        while not finished and record["attempts"] < 4:  # run again until it finishes
            record["attempts"] += 1
            rc, output = _forget_cli(config, uri)
            finished = rc == 0 or _intent_state(location, uri)[1] == "finished"
            if rc != 0 and not finished:
                result.failed("forget rerun", RuntimeError(output))
        record["intent"], record["state"] = _intent_state(location, uri)
        record["finished"] = finished
        result.operations[f"erasures ({mode})"] += 1


ROLES: dict[str, Callable[[RaceConfig, RoleResult, float], None]] = {
    "workers": workers,
    "maintenance": maintenance,
    "erasures": erasures,
    "identities": identities,
    "search": search,
}


def run_role(role: str, config_path: Path) -> int:
    """The body of one race process: run the role until the deadline, then write its result."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format=f"{role} %(levelname)s %(message)s")
    config = RaceConfig.load(config_path)
    result = RoleResult(role)
    started = time.monotonic()
    try:
        ROLES[role](config, result, started + config.seconds)
    except Exception as error:  # noqa: BLE001 - counted and reported, the race goes on
        result.failed("role", error)
        traceback.print_exc()
    result.seconds = round(time.monotonic() - started, 1)
    out = Path(config.workdir) / f"{role}.json"
    document = {
        "role": role,
        "operations": dict(result.operations),
        "failures": dict(result.failures),
        "errors": result.errors,
        "seconds": result.seconds,
        "extra": result.extra,
    }
    out.write_text(json.dumps(document, indent=2, default=str))
    return 0
