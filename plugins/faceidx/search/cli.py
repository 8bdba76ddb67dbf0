"""``faceidx search PHOTO``: the faces of a photo and, for each, its most similar indexed faces.

PHOTO is a local file or an ``s3://bucket/key`` URI. The model pack is ``FACEIDX_MODEL_DIR`` (the one
the index was built with); ``--model-version`` picks the version searched (default: the current one).
Prints the threshold in force, then one table per face of the photo (``--json``: the result
document). Each match is "same person" at the version's calibrated threshold for ``--far`` (default
1e-4), or at ``--min-similarity``; matches below it are counted, listed only with ``--all``.
``--persons`` ranks persons instead of faces. An unreadable photo, a photo without a face or an
unknown version exits 2 and changes nothing.
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
    threshold = parser.add_mutually_exclusive_group()
    threshold.add_argument(
        "--far",
        type=float,
        help="the false-accept rate a 'same person' is held to (default 1e-4): the version's calibrated "
        "threshold for it",
    )
    threshold.add_argument(
        "--min-similarity", type=float, help="a cosine similarity to use as the threshold instead"
    )
    parser.add_argument(
        "--all", dest="list_all", action="store_true", help="list the matches below the threshold too"
    )
    parser.add_argument(
        "--persons", action="store_true", help="rank persons (best face or centroid) for each face"
    )


def run(args: argparse.Namespace) -> int:
    from faceidx.search.photo import format_table, search_photo
    from faceidx.store.location import IndexLocation

    location = IndexLocation.from_env(args.output_uri, args.vectors_uri)
    if args.persons:
        from faceidx.search.persons import format_persons, search_persons

        found = search_persons(
            location,
            args.photo,
            k=args.k,
            model_version=args.model_version,
            far=args.far,
            min_similarity=args.min_similarity,
            list_all=args.list_all,
        )
        print(found.to_json() if args.json else format_persons(found))
        return 0
    from faceidx.store.persons import person_lookup

    result = search_photo(
        location,
        args.photo,
        k=args.k,
        model_version=args.model_version,
        quality_only=args.quality_only,
        person_lookup=person_lookup(location),  # each match's person (label, else id) once people exist
        far=args.far,
        min_similarity=args.min_similarity,
        list_all=args.list_all,
    )
    print(result.to_json() if args.json else format_table(result))
    return 0
