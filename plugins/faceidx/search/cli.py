"""``faceidx search PHOTO``: the faces of a photo and, for each, its most similar indexed faces.

PHOTO is a local file or an ``s3://bucket/key`` URI. The model pack is ``FACEIDX_MODEL_DIR`` (the one
the index was built with); ``--model-version`` picks the version searched (default: the current one).
Prints one table per face of the photo (``--json``: the result document). An unreadable photo, a photo
without a face or an unknown version exits 2 and changes nothing.
"""

from __future__ import annotations

import argparse

from faceidx.search.photo import DEFAULT_K, MAX_K


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", metavar="PHOTO", help="a local photo or s3://bucket/key")
    parser.add_argument(
        "--k", type=int, default=DEFAULT_K, help=f"matches per face (1-{MAX_K}, default {DEFAULT_K})"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--model-version", help="the model version to search (default: the current one)")
    parser.add_argument(
        "--quality-only", action="store_true", help="match only faces that passed the quality checks"
    )


def run(args: argparse.Namespace) -> int:
    from faceidx.search.photo import format_table, search_photo
    from faceidx.store.location import IndexLocation

    location = IndexLocation.from_env(args.output_uri, args.vectors_uri)
    from faceidx.store.persons import person_lookup

    result = search_photo(
        location,
        args.photo,
        k=args.k,
        model_version=args.model_version,
        quality_only=args.quality_only,
        person_lookup=person_lookup(location),  # each match's person (label, else id) once people exist
    )
    print(result.to_json() if args.json else format_table(result))
    return 0
