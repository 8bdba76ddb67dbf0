"""``faceidx models``: list the model versions, make one current, drop one.

``calibrate [VERSION]`` computes (or ``--show`` prints) the version's similarity -> false-accept-rate
table that search and person assignment take their threshold from.
``list`` prints rows, faces, images and first/last indexed per version, ``*`` marking the current one.
``use VERSION`` and ``drop VERSION`` are explicit steps recorded in the registry's history; ``drop``
refuses the current version.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from faceidx.common.tables import format_table

if TYPE_CHECKING:
    from faceidx.store.registry import ModelRegistry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the model versions and which one is current")
    listing.add_argument("--json", action="store_true", help="print JSON")
    use = actions.add_parser("use", help="make VERSION the current one (search uses it)")
    use.add_argument("version")
    drop = actions.add_parser("drop", help="delete VERSION's rows and vectors (never the current one)")
    drop.add_argument("version")
    calibrate = actions.add_parser(
        "calibrate", help="compute VERSION's similarity -> false-accept-rate table (default: current)"
    )
    calibrate.add_argument("version", nargs="?")
    calibrate.add_argument("--show", action="store_true", help="print the stored table, compute nothing")
    for sub in (use, drop):
        sub.add_argument("--actor", help="who (default: $FACEIDX_ACTOR, else the login name)")


def run(args: argparse.Namespace) -> int:
    from faceidx.erasure.cli import actor_name
    from faceidx.store.location import IndexLocation
    from faceidx.store.registry import ModelRegistry

    registry = ModelRegistry(IndexLocation.from_env(args.output_uri, args.vectors_uri))
    if args.action == "list":
        print(versions_report(registry, as_json=args.json))
        return 0
    if args.action == "calibrate":
        return _calibrate(registry, args.version, show=args.show)
    from faceidx.store.lease import writer

    with writer(registry.location, f"faceidx models {args.action} {args.version}"):
        if args.action == "use":
            entry = registry.use(args.version, actor_name(args.actor))
            print(f"model version {entry['from'] or '(none chosen)'} -> {entry['to']} (by {entry['actor']})")
            return 0
        entry = registry.drop(args.version, actor_name(args.actor))
    print(f"dropped model version {entry['from']}: {entry['rows']} row(s) deleted, history purged")
    return 0


def _calibrate(registry: ModelRegistry, version: str | None, *, show: bool) -> int:
    from faceidx.store.calibration import TABLE_HEADERS

    version = version or registry.current()
    if show:
        calibration = registry.calibration(version)
        if calibration is None:
            raise LookupError(
                f"model version {version} has no calibration yet: `faceidx models calibrate {version}`"
            )
    else:
        if version not in registry.versions():
            raise registry._unknown(version, registry.versions())
        from faceidx.store.lease import writer

        with writer(registry.location, f"faceidx models calibrate {version}"):
            calibration = registry.calibrate(version)
    title = (
        f"calibration of {version}: {calibration.same_image_pairs} same-photo pair(s) from "
        f"{calibration.images} photo(s), {calibration.cross_person_pairs} pair(s) of far-apart persons "
        f"({calibration.computed_at[:19]})"
    )
    print(format_table(TABLE_HEADERS, calibration.table_rows(), title=title))
    return 0


def versions_report(registry: ModelRegistry, *, as_json: bool = False) -> str:
    """The table of versions (``*`` = current) and a line saying how the current one was chosen."""
    from faceidx.store.registry import STATS_HEADERS, ModelVersionError

    stats = registry.stats()
    try:
        note = f"current: {registry.resolve_current().describe()}"
    except ModelVersionError as error:
        note = f"current: none ({error})"
    if as_json:
        return json.dumps({"versions": [vars(s) for s in stats], "note": note}, indent=2, default=str)
    return format_table(STATS_HEADERS, [s.row() for s in stats], title="model versions") + "\n" + note
