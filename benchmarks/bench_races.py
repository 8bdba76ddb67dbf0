"""Real processes racing on one index location, then a count of what is corrupt, lost, duplicated or
resurrected (``make bench-races``; a short version runs in ``make test``).

A workload, a nemesis and a checker, in the manner of Jepsen:

1. **Seed**: a few images through the worker's sink, one ingest, one vector sync, one identities run.
2. **Race** for ``--seconds``, each role its own process (``benchmarks/race_roles.py``):

   * ``workers``: landing files through the worker's own :class:`ParquetSink` (crops first), a quarter
     of the images under a second model version, one flush in five delivered twice;
   * ``maintenance``: ``face_table``'s task bodies in a loop: ingest, compact, sync the vectors, and
     every third round a vacuum with retention 0;
   * ``erasures``: forget a random indexed image, in turn in-process, by ``python -m faceidx.cli
     forget``, by the CLI SIGKILLed at a random step (``FACEIDX_FAULT_KILL_AT``) and by the CLI
     SIGKILLed after a random delay; a killed erasure is run again until it finishes;
   * ``identities``: ``face_identities``' incremental run in a loop;
   * ``search``: one long-lived ``VectorIndex`` searching both versions (a reader: no lease).

   Every process has ``FACEIDX_LEASE_TTL_SECONDS=3``: a killed holder's lease expires quickly.
3. **Settle**: one more ingest (it finishes any erasure left open) and one vector sync.
4. **Check** (``benchmarks/race_checks.py``): the table loads at its latest version and every data file
   of it exists; every vector version opens and searches; no written, not erased row lost; no face_id
   twice (table, vectors); no erased face in the table, a vector version, face_persons, a person's
   centroid or representative, or a crop; one verified receipt per erasure (by intent id), no open
   intent; no failed search. The exit status is 1 when an invariant is broken.

``--s3`` runs it on S3: a moto server in its own process (delta-rs and Lance hold the GIL while they
wait on S3).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PATHS = [str(REPO / p) for p in ("plugins", "worker", "dev")] + [str(REPO), str(REPO / "benchmarks")]
for _path in reversed(PATHS):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from race_checks import MUST_BE_ZERO, Checked, Manifest, check_index  # noqa: E402
from race_roles import MANIFEST, ROLES, V1, ImageWriter, RaceConfig, run_role  # noqa: E402

LEASE_TTL_SECONDS = "3"
SEED_IMAGES = 10
S3_BUCKET = "faceidx-race"


@dataclass
class RaceReport:
    seconds: float
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    checked: Checked = field(default_factory=Checked)
    exit_codes: dict[str, int | None] = field(default_factory=dict)

    @property
    def violations(self) -> dict[str, int]:
        broken = self.checked.violations()
        crashed = sum(1 for code in self.exit_codes.values() if code != 0)
        if crashed:
            broken["processes that crashed"] = crashed
        return broken

    def operation_rows(self) -> list[tuple[str, str, int]]:
        rows = []
        for role, result in self.roles.items():
            rows += [(role, name, count) for name, count in sorted(result.get("operations", {}).items())]
            rows += [
                (role, f"FAILED {name}", count) for name, count in sorted(result.get("failures", {}).items())
            ]
        return rows


def child_env(config_env: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **config_env}
    env["PYTHONPATH"] = os.pathsep.join([*PATHS, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def seed_index(config: RaceConfig) -> None:
    """A few images indexed, synced and clustered before the race starts."""
    from faceidx.maintenance.tasks import ingest_task, sync_vectors_task
    from faceidx.people.tasks import identities_task

    writer = ImageWriter(config, "seed")
    entries = writer.write(random.Random(config.seed - 1), SEED_IMAGES)
    with (Path(config.workdir) / MANIFEST).open("a") as out:
        out.writelines(json.dumps(entry) + "\n" for entry in entries)
    location = config.location()
    ingest_task(location, max_files=50)
    sync_vectors_task(location)
    identities_task(location, {"model_version": V1}, None)


def run_race(
    output_uri: str,
    workdir: Path,
    seconds: float,
    *,
    seed: int = 7,
    env: dict[str, str] | None = None,
    crops_uri: str = "",
) -> RaceReport:
    """Seed, race every role for ``seconds``, settle, check. ``env``: for every process (AWS)."""
    from faceidx.maintenance.tasks import ingest_task, sync_vectors_task

    workdir.mkdir(parents=True, exist_ok=True)
    shared = {
        **(env or {}),
        "FACEIDX_OUTPUT_URI": output_uri,
        "FACEIDX_LEASE_TTL_SECONDS": LEASE_TTL_SECONDS,
        "FACEIDX_ACTOR": "race",
        "LANCE_LOG": "error",
    }
    config = RaceConfig(
        output_uri=output_uri,
        workdir=str(workdir),
        seconds=seconds,
        seed=seed,
        crops_uri=crops_uri or f"{output_uri}/crops",
        env=shared,
    )
    config_path = workdir / "config.json"
    config.save(config_path)
    started = time.monotonic()
    seed_index(config)
    processes = {}
    with ExitStack() as stack:
        for role in ROLES:
            log = stack.enter_context((workdir / f"{role}.log").open("w"))
            processes[role] = subprocess.Popen(
                [sys.executable, __file__, "--role", role, "--config", str(config_path)],
                env=child_env(shared),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        report = RaceReport(seconds=seconds)
        for role, process in processes.items():
            try:
                report.exit_codes[role] = process.wait(timeout=seconds + 600)
            except subprocess.TimeoutExpired:
                process.kill()
                report.exit_codes[role] = None
    location = config.location()
    ingest_task(location, max_files=50)  # finishes any erasure still open
    sync_vectors_task(location)
    for role in ROLES:
        result = workdir / f"{role}.json"
        report.roles[role] = json.loads(result.read_text()) if result.exists() else {}
    erasures = report.roles.get("erasures", {}).get("extra", {}).get("erasures", [])
    report.checked = check_index(location, Manifest.read(workdir / MANIFEST), erasures)
    search = report.roles.get("search", {})
    report.checked.add("searches", search.get("operations", {}).get("searches", 0))
    report.checked.add("search failures", sum(search.get("failures", {}).values()))
    report.seconds = round(time.monotonic() - started, 1)
    return report


def print_report(report: RaceReport, where: str) -> None:
    from faceidx.common.tables import format_table

    print(
        format_table(
            ("process", "operation", "count"),
            report.operation_rows(),
            title=f"operations completed by each process ({where}, {report.seconds:.0f} s in all)",
        )
    )
    counts = report.checked.counts
    rows = [(name, counts.get(name, 0), "must be 0" if name in MUST_BE_ZERO else "") for name in counts]
    print(format_table(("after the race", "count", "invariant"), rows, title="what the index holds"))
    erasures = report.roles.get("erasures", {}).get("extra", {}).get("erasures", [])
    if erasures:
        print(
            format_table(
                ("image", "how", "killed", "runs", "intent", "state"),
                [
                    (e["key"], e["mode"], e["killed"] or "-", e["attempts"], e.get("intent"), e.get("state"))
                    for e in erasures
                ],
                title="erasures",
            )
        )
    for note in report.checked.notes:
        print(f"note: {note}")
    for role, result in report.roles.items():
        for error in result.get("errors", []):
            print(f"{role}: {error}")
    broken = report.violations
    print("invariants: " + ("all hold" if not broken else f"BROKEN {broken}"))


def _s3_race(args: argparse.Namespace, workdir: Path) -> RaceReport:
    import boto3

    from tests.support.moto_server import moto_server_process

    with moto_server_process() as moto:
        env = {
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        os.environ.update(env)  # this process seeds and checks through the same endpoint
        boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1").create_bucket(Bucket=S3_BUCKET)
        return run_race(f"s3://{S3_BUCKET}/index", workdir, args.seconds, seed=args.seed, env=env)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="how long the processes race (150)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--s3", action="store_true", help="on S3 (moto in its own process), not a folder")
    parser.add_argument("--workdir", help="keep the index and the logs here (default: a temporary folder)")
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role:
        return run_role(args.role, Path(args.config))
    with ExitStack() as stack:
        workdir = Path(args.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="races-")))
        if args.s3:
            report, where = _s3_race(args, workdir / "run"), "S3 on moto"
        else:
            report, where = (
                run_race(str(workdir / "index"), workdir / "run", args.seconds, seed=args.seed),
                "local folder",
            )
        print_report(report, where)
        return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
