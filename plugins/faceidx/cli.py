"""The ``faceidx`` command: search, export, forget, model versions, table maintenance, people.

Each subcommand lives in its feature's module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``; this module only dispatches, importing a feature when its command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("faceidx.search.cli", "find the faces of a photo in the index"),
    "export": ("faceidx.search.export", "list every image and face of a person (the right of access)"),
    "forget": ("faceidx.erasure.cli", "erase an image's, a face's or a person's faces everywhere"),
    "models": ("faceidx.models.cli", "list model versions, switch the current one, drop one"),
    "table": ("faceidx.maintenance.cli", "ingest landing files, compact, show the face table"),
    "people": ("faceidx.people.cli", "identities: cluster, list, label, merge, split, move"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceidx", description=__doc__.splitlines()[0])
    parser.add_argument("--output-uri", help="the index's output URI (default: $FACEIDX_OUTPUT_URI)")
    parser.add_argument("--vectors-uri", help="the vector index's URI (default: <output>/vectors)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, summary) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # stdout carries the result (a table, or JSON a script parses); warnings and logs go to stderr
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True
    )
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except (ValueError, LookupError, FileNotFoundError) as error:
        print(f"faceidx {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
