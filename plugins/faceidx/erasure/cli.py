"""``faceidx forget``: erase an image's, a face's or a person's faces from the whole index.

Exactly one of ``--image s3://bucket/key`` (every ETag of it), ``--face FACE_ID`` or
``--person PERSON_ID``. Prints the receipt (``--json``: the receipt document itself). A target that is
not in the index exits non-zero and changes nothing.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from faceidx.common.tables import format_pairs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--image", metavar="S3_URI", help="s3://bucket/key: every version (ETag) of the image")
    which.add_argument("--face", metavar="FACE_ID", help="one face, by its face_id")
    which.add_argument("--person", metavar="PERSON_ID", help="every face of a person (needs identities)")
    parser.add_argument("--reason", default="", help="why (kept in the receipt), e.g. a request number")
    parser.add_argument("--actor", help="who asks (default: $FACEIDX_ACTOR, else the login name)")
    parser.add_argument("--json", action="store_true", help="print the receipt as JSON")


def actor_name(given: str | None = None) -> str:
    return given or os.environ.get("FACEIDX_ACTOR") or getpass.getuser()


def target_of(args: argparse.Namespace) -> tuple[str, str]:
    for kind in ("image", "face", "person"):
        value = getattr(args, kind, None)
        if value:
            return kind, value
    raise ValueError("give one of --image, --face or --person")


def run(args: argparse.Namespace) -> int:
    from faceidx.erasure.forget import ForgetTarget, ForgetVerificationError, forget
    from faceidx.store.location import IndexLocation

    location = IndexLocation.from_env(args.output_uri, args.vectors_uri)
    kind, value = target_of(args)
    try:
        receipt = forget(
            location, ForgetTarget(kind, value), reason=args.reason or "", actor=actor_name(args.actor)
        )
    except ForgetVerificationError as error:
        print(f"faceidx forget: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(receipt.to_dict(), indent=2, sort_keys=True))
    else:
        print(format_pairs(receipt.summary_rows(), title=f"forgot {kind} {value}"))
    return 0
