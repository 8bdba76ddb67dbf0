"""``make demo``: faceidx end to end on an embedded local AWS, with the real DAGs and real workers.

1. starts a moto server on a free loopback port and points Airflow's ``aws_default`` connection at it
   (an endpoint URL in the connection's extra: the DAGs have no local code path);
2. creates what an account already has (the input and output buckets, a network, a Batch service
   role), then runs ``face_infra_bootstrap`` for real: queue, DLQ, S3 notification, IAM, Batch;
3. uploads photos under many keys; moto's own S3 notifications fill the queue;
4. runs ``face_indexing`` with ``airflow dags test``; a local stand-in for Batch compute
   (``faceidx_dev.local.batch_compute``) runs each submitted job, or array child, as a worker process;
5. prints what was indexed and one similarity query over the Parquet index.
6. after the people step, corrections (label, merge, split, move), a full re-cluster and a second
   pack (a new model version) re-clustered with ``carry_from``: prints the labels and corrections lost.

Environment: ``DEMO_IMAGES`` (default 240 photos), ``DEMO_SECONDARY_THRESHOLD`` (default 100, so the
default size runs both the primary job and a secondary array job), ``FACE_MODEL_DIR``,
``FACEIDX_ASSETS`` (default ../shared/assets). Everything it writes goes to ``demo-output/``
(``DEMO_OUTPUT``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "dev")]

from faceidx.common.tables import format_table  # noqa: E402
from faceidx_dev.local.batch_compute import LocalBatchCompute, LocalJobRun  # noqa: E402
from faceidx_dev.local.demo_inputs import resolve_model_pack, sample_photos, second_model_pack  # noqa: E402
from faceidx_dev.local.moto_server import aws_connection_uri_json, start_moto_server  # noqa: E402
from faceidx_dev.local.moto_setup import default_network, ensure_bucket, ensure_service_role  # noqa: E402
from faceidx_dev.local.product import WORKER_OVERRIDES  # noqa: E402

INPUT_BUCKET = "faceidx-demo-photos"
OUTPUT_BUCKET = "faceidx-demo-index"
OUTPUT_URI = f"s3://{OUTPUT_BUCKET}/v1/"
QUEUE_NAME = "faceidx-work"
WORK = Path(os.environ.get("DEMO_OUTPUT", REPO / "demo-output"))
START = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


def airflow_env(moto_url: str) -> dict[str, str]:
    home = WORK / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW_CONN_AWS_DEFAULT": aws_connection_uri_json(moto_url),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        # wait_primary/wait_secondary poll Batch every 30 s on AWS; local jobs take seconds
        "FACEIDX_BATCH_POLL_SECONDS": "5",
    }
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def airflow(env: dict[str, str], log_name: str, *args: str) -> Path:
    """Run an ``airflow`` CLI command; its output goes to demo-output/logs/<log_name>.log."""
    log_path = WORK / "logs" / f"{log_name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as out:
        code = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    if code != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-40:])
        raise SystemExit(f"`airflow {' '.join(args[:3])}` failed (exit {code}); see {log_path}\n{tail}")
    return log_path


JOB_TABLES = ("where it runs", "the Batch job's outcome", "what the job did")


def tables_from_log(log_path: Path, titles: tuple[str, ...]) -> str:
    """The tables our tasks logged, cut out of an ``airflow dags test`` log.

    A table starts at a log line containing one of ``titles`` (the start of its title: titles may go on
    with run-specific text) and runs until the next log line."""
    lines = log_path.read_text().splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        starts = [line.find(t) for t in titles if t in line]
        if not starts or not line.startswith(("20", "[")):  # a title is a log line; rows are not
            continue
        block = [line[min(starts) :].rstrip()]
        for row in lines[i + 1 :]:
            if not row.strip() or row.startswith("20") or row.startswith("["):
                break
            block.append(row.split(" [faceidx")[0].split(" [airflow")[0])
        out.append("\n".join(block))
    return "\n\n".join(out)


def faceidx_cli(env: dict[str, str], log_name: str, *args: str, check: bool = True) -> str:
    """Run the ``faceidx`` command as a user would; returns its output (also in demo-output/logs)."""
    done = subprocess.run(
        [sys.executable, "-m", "faceidx.cli", *args], env=env, capture_output=True, text=True, check=False
    )
    log_path = WORK / "logs" / f"{log_name}.log"
    log_path.write_text(done.stdout + done.stderr)
    if check and done.returncode != 0:
        raise SystemExit(f"`faceidx {' '.join(args)}` failed (exit {done.returncode}); see {log_path}")
    return done.stdout


def upload_photos(s3: Any, photos: list[Path], count: int) -> list[str]:
    keys = []
    for i in range(count):
        photo = photos[i % len(photos)]
        key = f"photos/copy {i // len(photos):03d}/{photo.name}"  # a space: keys arrive URL-encoded
        s3.upload_file(str(photo), INPUT_BUCKET, key)
        keys.append(key)
    return keys


def queue_depth(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


class Progress:
    """Prints worker events and, every few seconds, the queue depth and what was indexed so far."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs, self.queue_url = sqs, queue_url
        self.images = self.faces = self.errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def on_line(self, run: LocalJobRun, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict) or "_aws" in record:
            return
        event = record.get("event")
        if event == "batch":
            with self._lock:
                self.images += int(record.get("images", 0))
                self.faces += int(record.get("faces", 0))
                self.errors += int(record.get("errors", 0))
        elif event == "summary":
            say(
                f"worker {run.label} ({run.job_id[:8]}) exited: {record.get('images')} images, "
                f"{record.get('faces')} faces, {record.get('errors')} errors, "
                f"{record.get('images_per_s')} images/s, reason {record.get('exit_reason')}"
            )
        elif event in ("start", "started", "ready"):
            say(f"worker {run.label} ({run.job_id[:8]}) started")

    def _loop(self, compute: LocalBatchCompute) -> None:
        while not self._stop.wait(5):
            visible, in_flight = queue_depth(self.sqs, self.queue_url)
            with self._lock:
                done = (self.images, self.faces, self.errors)
            say(
                f"queue: {visible} waiting, {in_flight} in flight | workers running: {compute.busy} | "
                f"indexed: {done[0]} images, {done[1]} faces, {done[2]} errors"
            )

    def start(self, compute: LocalBatchCompute) -> None:
        threading.Thread(target=self._loop, args=(compute,), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def cli_env(env: dict[str, str], moto_url: str, model_dir: Path) -> dict[str, str]:
    """The environment of someone running ``faceidx`` against the demo's (moto) account."""
    return {
        **env,
        "FACEIDX_OUTPUT_URI": OUTPUT_URI,
        "FACEIDX_MODEL_DIR": str(model_dir),
        "FACEIDX_ACTOR": "demo",
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_REGION": "us-east-1",
    }


def friends_check(assets: Path, people: dict[str, list[tuple[float, str | None]]]) -> str:
    """Whether the six Friends faces of the two cast photos came out as six persons, one per actor."""
    truth = assets / "expected.json"
    expected = json.loads(truth.read_text())["images"] if truth.exists() else {}
    by_actor: dict[str, set[str | None]] = {}
    for photo in ("t1.jpg", "many_face.png"):
        ids = expected.get(photo, {}).get("ids")
        faces = sorted(people.get(photo, []))
        if not ids or len(faces) != len(ids):
            return f"Friends cast: {photo} has {len(faces)} faces in the index, expected {len(ids or [])}"
        for actor, (_x, person) in zip(ids, faces, strict=True):
            by_actor.setdefault(actor, set()).add(person)
    persons = {p for found in by_actor.values() for p in found}
    one_each = all(len(found) == 1 and None not in found for found in by_actor.values())
    verdict = "six persons, one per actor" if one_each and len(persons) == 6 else "NOT one person per actor"
    return f"Friends cast: {len(by_actor)} actors -> {len(persons - {None})} persons ({verdict})"


def index_report(env: dict[str, str], kind: str, *args: str) -> dict[str, Any]:
    """``faceidx_dev.demo_report`` in its own process (delta-rs must not share one with moto)."""
    done = subprocess.run(
        [sys.executable, "-m", "faceidx_dev.demo_report", kind, *args],
        env={**env, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO / "dev")])},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"reading the index ({kind}) failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def people_table(report: dict[str, Any]) -> str:
    rows = sorted(
        ((p["person"], p["label"], len(p["photos"]), ", ".join(p["photos"])[:70]) for p in report["persons"]),
        key=lambda row: (-int(row[2]), str(row[0])),
    )
    return format_table(
        ("person", "label", "photos", "which (copies of a photo count once)"),
        rows,
        title=f"People found ({len(rows)} persons, model version {report['model_version']})",
    )


def survival_table(kept: dict[str, Any]) -> str:
    return format_table(
        ("step", "labels and corrections"),
        [
            (f"{kept['corrections']} corrections on {kept['old']} (label, merge, split, move)", "made"),
            (f"full re-cluster of {kept['old']}", kept["rerun"]),
            (
                f"{kept['new']} (second pack, {kept['images']} photos), re-clustered with carry_from",
                kept["switch"],
            ),
        ],
        title=f"People survive reruns and model switches ({kept['seconds']} s)",
    )


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    count = int(os.environ.get("DEMO_IMAGES", "240"))
    threshold = int(os.environ.get("DEMO_SECONDARY_THRESHOLD", "100"))
    assets = Path(os.environ.get("FACEIDX_ASSETS", REPO.parent / "shared" / "assets"))
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()

    model_dir, model_source = resolve_model_pack(assets, WORK)
    photos, photo_source = sample_photos(assets)
    say(f"model pack {model_dir.name} ({model_source}); {len(photos)} photos ({photo_source})")

    moto = start_moto_server(load_managed_policies=True)
    say(f"embedded AWS (moto) listening on {moto.url}; aws_default points at it")
    env = airflow_env(moto.url)
    airflow(env, "db-migrate", "db", "migrate")
    say("Airflow metadata database ready (sqlite in demo-output/airflow)")

    s3, sqs = moto.client("s3"), moto.client("sqs")
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
        ensure_bucket(s3, bucket)
    service_role = ensure_service_role(moto.client("iam"))
    subnets, groups = default_network(moto.client("ec2"))
    bootstrap_conf = {
        "input_bucket": INPUT_BUCKET,
        "output_uri": OUTPUT_URI,
        "subnets": subnets,
        "security_group_ids": groups,
        "worker_image": "faceidx-worker:local",
        "queue_name": QUEUE_NAME,
        "service_role_arn": service_role,
        "dry_run": False,
    }
    say("running face_infra_bootstrap (dry_run off) against moto ...")
    log = airflow(
        env,
        "face_infra_bootstrap",
        "dags",
        "test",
        "face_infra_bootstrap",
        "--conf",
        json.dumps(bootstrap_conf),
    )
    summary = tables_from_log(log, ("face_infra_bootstrap summary",))
    print(summary or f"(bootstrap summary in {log})", flush=True)
    queue_url = sqs.get_queue_url(QueueName=QUEUE_NAME)["QueueUrl"]

    say(f"uploading {count} photos to s3://{INPUT_BUCKET}/photos/ ...")
    keys = upload_photos(s3, photos, count)
    deadline = time.monotonic() + 60
    while queue_depth(sqs, queue_url)[0] < count and time.monotonic() < deadline:
        time.sleep(0.5)
    visible, _ = queue_depth(sqs, queue_url)
    say(f"S3 notifications queued {visible} messages ({count} images + the s3:TestEvent)")

    overrides = {"FACEIDX_MODEL_DIR": str(model_dir), **WORKER_OVERRIDES}
    say(
        "local Batch compute overrides (logged, not hidden): "
        + ", ".join(f"{k}={v}" for k, v in overrides.items())
    )
    progress = Progress(sqs, queue_url)
    compute = LocalBatchCompute(
        moto.url, REPO / "worker", overrides, max_parallel=4, on_line=progress.on_line
    )
    conf = {"secondary_threshold": threshold, "sensor_timeout_seconds": 60}
    say(f"running face_indexing with {json.dumps(conf)} (queue URL from the Variable the bootstrap set) ...")
    compute.install()  # until the end: face_table, face_vectors and face_identities submit jobs too
    progress.start(compute)
    log = airflow(env, "face_indexing", "dags", "test", "face_indexing", "--conf", json.dumps(conf))
    compute.wait_idle(timeout=600)
    progress.stop()
    print(
        tables_from_log(
            log,
            (
                "face_indexing scaling decision",
                "Workers (one row per plain job or array child; read from CloudWatch Logs)",
                "face_indexing run summary",
            ),
        ),
        flush=True,
    )

    workers = list(compute.runs)
    say("running face_table: landing files -> the Delta face table; compaction and vacuum as Batch jobs ...")
    log = airflow(env, "face_table", "dags", "test", "face_table")
    print(tables_from_log(log, ("ingest into", *JOB_TABLES, "face table ")), flush=True)
    say(
        "running face_vectors (on AWS: started by face_table's Asset event): the vector sync, a Batch job ..."
    )
    log = airflow(env, "face_vectors", "dags", "test", "face_vectors")
    print(tables_from_log(log, JOB_TABLES), flush=True)

    user_env = cli_env(env, moto.url, model_dir)
    stats = index_report(user_env, "stats")
    visible, in_flight = queue_depth(sqs, queue_url)
    jobs = [(r.label, r.job_id, r.exit_code, round(r.stopped - r.started, 1)) for r in workers]
    print(
        format_table(
            ("item", "value"),
            [
                ("images uploaded", len(keys)),
                ("images indexed (ok)", stats["ok_images"]),
                ("error rows", stats["errors"]),
                ("images missing from the index", len(set(keys) - set(stats["images"]))),
                ("faces found", stats["faces"]),
                ("face table rows (each image, ETag and face once)", stats["rows"]),
                ("queue left (waiting / in flight)", f"{visible} / {in_flight}"),
                ("worker processes (Batch jobs and array children)", len(jobs)),
                ("face table", f"{stats['files']} Parquet files under {OUTPUT_URI}table/faces/"),
                ("wall time", f"{time.monotonic() - START:.0f} s"),
            ],
            title="faceidx demo: result",
        ),
        flush=True,
    )
    print(
        format_table(("worker", "job id", "exit code", "seconds"), jobs, title="Worker processes"), flush=True
    )

    say("running face_identities: people from the faces that pass the quality gate ...")
    log = airflow(env, "face_identities", "dags", "test", "face_identities")
    print(tables_from_log(log, ("identities of", *JOB_TABLES)), flush=True)
    maintenance = [r for r in compute.runs if r.label == "maintenance"]
    print(
        format_table(
            ("job", "job id", "exit code", "seconds"),
            [(r.job_name, r.job_id, r.exit_code, round(r.stopped - r.started, 1)) for r in maintenance],
            title="Index steps run as Batch jobs on the maintenance queue (python -m faceidx.jobs)",
        ),
        flush=True,
    )
    people = index_report(user_env, "people")
    print(people_table(people), flush=True)
    print(
        friends_check(assets, {k: [tuple(f) for f in v] for k, v in people["per_photo"].items()}), flush=True
    )

    probe = next((p for p in photos if p.name == "obama.jpg"), photos[0])
    say(f"$ faceidx search {probe.name} --k 5   (search by photo: the worker's model, the vector index)")
    print(faceidx_cli(user_env, "search", "search", str(probe), "--k", "5"), flush=True)

    forgotten = next((k for k in keys if k.endswith(f"/{probe.name}")), keys[0])
    say(f"$ faceidx forget --image 's3://{INPUT_BUCKET}/{forgotten}'   (erasure, with a receipt)")
    print(
        faceidx_cli(
            user_env, "forget", "forget", "--image", f"s3://{INPUT_BUCKET}/{forgotten}", "--reason", "demo"
        ),
        flush=True,
    )
    after = faceidx_cli(user_env, "search-after-forget", "search", str(probe), "--k", "20", "--json")
    gone = f"s3://{INPUT_BUCKET}/{forgotten}"
    hits = sum(m["image"] == gone for face in json.loads(after)["faces"] for m in face["matches"])
    print(f"search after forget: {hits} matches from {gone}", flush=True)

    say("people across reruns and a model switch: label, merge, split, move; a full re-cluster; a new pack")
    second = second_model_pack(model_dir, WORK / "models" / "second" / model_dir.name)
    kept = index_report(user_env, "survival", people["model_version"], str(second), str(assets))
    print(survival_table(kept), flush=True)
    print(f"people after re-cluster and model switch: {kept['switch']}", flush=True)
    if kept["lost"]:
        print(f"LOST: {', '.join(kept['what_was_lost'])}", flush=True)
    print(f"Logs: {WORK / 'logs'} (Airflow task logs of every DAG run, and the faceidx commands)", flush=True)
    compute.uninstall()
    moto.stop()
    missing = len(set(keys) - set(stats["images"]))
    return 0 if missing == 0 and kept["lost"] == 0 and all(r.exit_code == 0 for r in compute.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
