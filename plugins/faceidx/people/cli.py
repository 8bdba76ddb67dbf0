"""``faceidx people``: list and show persons, correct them (label, merge, split, move), re-cluster.

    faceidx people list [--labelled] [--json]
    faceidx people show PERSON_ID
    faceidx people label PERSON_ID NAME          # NAME "" clears the label
    faceidx people merge PERSON_ID OTHER_PERSON_ID
    faceidx people split PERSON_ID FACE_ID [FACE_ID ...]
    faceidx people move PERSON_ID FACE_ID [FACE_ID ...]   # PERSON_ID "-": back to the buffer
    faceidx people cluster [--incremental | --carry-from OLD_VERSION]

Every command takes ``--model-version`` (default: the current one). Corrections are appended to
person_events and applied at once; a full re-cluster replays them.
"""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Mapping, Sequence
from typing import Any

from faceidx.common.tables import format_pairs, format_table
from faceidx.store.location import IndexLocation

# The columns of `people list`: (persons column, table heading); --json uses the column names.
LIST_COLUMNS = (
    ("person_id", "person"),
    ("label", "label"),
    ("face_count", "faces"),
    ("representative_face_id", "representative face"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-version", help="model version (default: the current one)")
    actions = parser.add_subparsers(dest="people_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="persons: id, label, faces")
    listing.add_argument("--labelled", action="store_true", help="only persons with a label")
    listing.add_argument("--json", action="store_true", help="print the persons as JSON")
    show = actions.add_parser("show", help="one person's faces")
    show.add_argument("person_id")
    label = actions.add_parser("label", help="name a person")
    label.add_argument("person_id")
    label.add_argument("label")
    merge = actions.add_parser("merge", help="OTHER_PERSON_ID's faces join PERSON_ID")
    merge.add_argument("person_id")
    merge.add_argument("other_person_id")
    split = actions.add_parser("split", help="faces leave PERSON_ID for a new person")
    split.add_argument("person_id")
    split.add_argument("face_ids", nargs="+")
    move = actions.add_parser("move", help="faces join PERSON_ID ('-': back to the buffer)")
    move.add_argument("person_id")
    move.add_argument("face_ids", nargs="+")
    cluster = actions.add_parser("cluster", help="a full re-cluster now (corrections replayed)")
    cluster.add_argument("--incremental", action="store_true", help="only new faces and the buffer")
    cluster.add_argument(
        "--carry-from", metavar="VERSION", help="take ids and labels from this model version"
    )


def run(args: argparse.Namespace) -> int:
    from faceidx.people.tasks import model_version_of
    from faceidx.store.persons import PeopleStore, sql_string

    location = IndexLocation.from_env(args.output_uri, args.vectors_uri)
    version = model_version_of(location, args.model_version)
    store = PeopleStore(location)
    action = args.people_action
    if action == "list":
        persons = listed_persons(store.read("persons", version).to_pylist(), labelled=args.labelled)
        if args.json:
            print(json.dumps({"model_version": version, "persons": persons}, indent=2))
        else:
            table = [tuple(p[column] for column, _ in LIST_COLUMNS) for p in persons]
            headings = tuple(heading for _, heading in LIST_COLUMNS)
            print(format_table(headings, table, title=f"persons of {version}"))
        return 0
    if action == "show":
        faces = store.read("face_persons", version, filter=f"person_id = {sql_string(args.person_id)}")
        if faces.num_rows == 0:
            raise LookupError(f"person {args.person_id} has no faces in {version}: see `faceidx people list`")
        rows = sorted(faces.to_pylist(), key=lambda r: r["face_id"])
        table = [(r["face_id"], r["image_id"], r["method"], r["similarity"]) for r in rows]
        print(
            format_table(
                ("face", "image", "method", "similarity"), table, title=f"{args.person_id} ({version})"
            )
        )
        return 0
    from faceidx.store.lease import writer

    with writer(location, f"faceidx people {action} {version}"):
        return _write(args, location, version, action)


def _write(args: argparse.Namespace, location: IndexLocation, version: str, action: str) -> int:
    from faceidx.people.clustering import ClusterPolicy

    if action == "cluster":
        from faceidx.people.identities import run_incremental, run_recluster
        from faceidx.people.tasks import assignment_threshold
        from faceidx.store.registry import ModelRegistry

        calibration = ModelRegistry(location).calibrate(version)  # under the lease: refreshed
        choice = assignment_threshold(calibration, version, None)
        policy = ClusterPolicy(threshold=choice.threshold)
        if args.incremental:
            report = run_incremental(location, version, policy)
        else:
            report = run_recluster(location, version, policy, carry_from=args.carry_from)
        pairs = report.pairs() + choice.pairs()
        print(format_pairs(pairs, title=f"identities of {version}: {report.mode}"))
        return 0
    from faceidx.people.actions import correct

    person = None if getattr(args, "person_id", None) == "-" else args.person_id
    event = correct(
        location,
        version,
        action,
        person_id=person,
        other_person_id=getattr(args, "other_person_id", None),
        face_ids=getattr(args, "face_ids", None),
        label=getattr(args, "label", None),
        actor=f"cli:{getpass.getuser()}",
    )
    print(format_pairs([("event", event.event_id), ("kind", event.kind.value), ("model version", version)]))
    return 0


def listed_persons(rows: Sequence[Mapping[str, Any]], *, labelled: bool = False) -> list[dict[str, Any]]:
    """The rows of `people list`: most faces first, only LIST_COLUMNS; ``labelled``: only named ones."""
    chosen = [r for r in rows if r["label"] or not labelled]
    chosen.sort(key=lambda r: (-(r["face_count"] or 0), r["person_id"]))
    return [{column: r[column] for column, _ in LIST_COLUMNS} for r in chosen]
