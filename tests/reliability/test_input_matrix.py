"""The bad-input matrix: every case goes through ONE real worker process, in the same batches as good
images, and ends in its documented outcome while the worker keeps running.

The module fixture builds every input from the asset photos (truncated, zero bytes, text named .jpg,
a PNG header claiming 50,000 x 50,000 pixels, 16-bit, CMYK, alpha, EXIF-rotated, odd keys, missing
objects, foreign buckets, malformed bodies, test events, SNS and EventBridge envelopes, duplicate
deliveries, oversize objects), runs the worker once against moto and snapshots what moto holds. Each
row of ``MATRIX`` is then one test that compares the observed outcome with the documented one; the
same table is in the README's "Reliability" section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from tests.support import worker_images as gen
from tests.support.reliability_world import (
    QueuedMessage,
    ReliabilityWorld,
    create_world,
    rows_by_key,
    unaccounted_messages,
)
from tests.support.worker_harness import (
    TEST_EVENT_BODY,
    WorkerRun,
    eventbridge_body,
    run_worker,
    s3_event_body,
    s3_record,
    sns_wrap,
)

pytestmark = [pytest.mark.assets, pytest.mark.slow]

MAX_IMAGE_BYTES = 400_000  # two_people.jpg (487,722 bytes) is over it, every other photo under it
VISIBILITY = 3  # a malformed body comes back every 3 s ...
MAX_RECEIVES = 2  # ... and SQS moves it to the DLQ when it would be received a third time
OTHER_BUCKET = "faceidx-matrix-elsewhere"
ODD_KEY = "odd/with space/ünïcode + plus (1).jpg"
EVENTBRIDGE_KEY = "eventbridge/a+b c.jpg"  # EventBridge keys are not URL-encoded: '+' stays '+'


@dataclass
class Inputs:
    """What one case put in S3 and sent to SQS."""

    world: ReliabilityWorld
    photos: dict[str, bytes]
    keys: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)

    def image(self, name: str) -> bytes:
        return self.photos[name]

    def bgr(self, name: str) -> np.ndarray:
        import cv2

        pixels = cv2.imdecode(np.frombuffer(self.photos[name], np.uint8), cv2.IMREAD_COLOR)
        assert pixels is not None
        return pixels

    def put(self, key: str, data: bytes, bucket: str | None = None) -> dict[str, Any]:
        self.keys.append(key)
        return self.world.put(key, data, bucket)

    def send(self, body: str) -> None:
        self.message_ids.append(self.world.send(body))

    def upload(self, key: str, data: bytes, *, with_size: bool = True) -> None:
        meta = self.put(key, data)
        if not with_size:
            meta.pop("size")
        self.send(s3_event_body([s3_record(self.world.input_bucket, key, **meta)]))


@dataclass(frozen=True)
class Case:
    id: str
    input: str  # as the README's table names it
    documented: str  # the outcome issue 6 asks for
    observed: str  # what the worker does, as this test checks it
    build: Callable[[Inputs], None]


def _truncated(c: Inputs) -> None:
    c.upload("bad/truncated.jpg", gen.truncated(c.image("lfw_Rob_Lowe_0002.jpg"), 0.6))


def _zero(c: Inputs) -> None:
    c.upload("bad/empty.jpg", b"")


def _text(c: Inputs) -> None:
    c.upload("bad/notes.jpg", b"These are meeting notes, not a photo.\n" * 40)


def _bomb(c: Inputs) -> None:
    c.upload("bad/bomb.png", gen.png_claiming_size(50_000, 50_000))


def _png16(c: Inputs) -> None:
    c.upload("formats/rgb16.png", gen.rgb16_png(c.bgr("lfw_Rob_Lowe_0001.jpg")))


def _gray16(c: Inputs) -> None:
    c.upload("formats/gray16.png", gen.gray16_png(c.bgr("lfw_Rob_Lowe_0001.jpg")))


def _cmyk(c: Inputs) -> None:
    c.upload("formats/cmyk.jpg", gen.cmyk_jpeg(c.bgr("obama_small.jpg")))


def _alpha(c: Inputs) -> None:
    c.upload("formats/rgba.png", gen.rgba_png(c.bgr("lfw_Nathalie_Baye_0002.jpg")))


def _exif(orientation: int) -> Callable[[Inputs], None]:
    def build(c: Inputs) -> None:
        c.upload(
            f"exif/orientation-{orientation}.jpg", gen.exif_oriented_jpeg(c.bgr("image_T1.jpeg"), orientation)
        )

    return build


def _odd_key(c: Inputs) -> None:
    c.upload(ODD_KEY, c.image("obama_small.jpg"))


def _deleted(c: Inputs) -> None:
    c.upload("bad/deleted-before.jpg", c.image("rot_r0.jpg"))
    c.world.s3.delete_object(Bucket=c.world.input_bucket, Key="bad/deleted-before.jpg")


def _foreign_bucket(c: Inputs) -> None:
    meta = c.put("foreign/photo.jpg", c.image("rot_r0.jpg"), bucket=OTHER_BUCKET)
    c.send(s3_event_body([s3_record(OTHER_BUCKET, "foreign/photo.jpg", **meta)]))


def _malformed(c: Inputs) -> None:
    c.send('{"Records": [{"eventName": "ObjectCreated:Put", "s3": ')


def _wrong_shape(c: Inputs) -> None:
    c.send('{"hello": "this is JSON, but no S3, SNS or EventBridge event"}')


def _test_event(c: Inputs) -> None:
    c.send(TEST_EVENT_BODY)


def _test_event_sns(c: Inputs) -> None:
    c.send(sns_wrap(TEST_EVENT_BODY))


def _sns(c: Inputs) -> None:
    meta = c.put("sns/photo.jpg", c.image("lfw_Rob_Lowe_0002.jpg"))
    c.send(sns_wrap(s3_event_body([s3_record(c.world.input_bucket, "sns/photo.jpg", **meta)])))


def _eventbridge(c: Inputs) -> None:
    meta = c.put(EVENTBRIDGE_KEY, c.image("lfw_Nathalie_Baye_0002.jpg"))
    c.send(eventbridge_body(c.world.input_bucket, EVENTBRIDGE_KEY, **meta))


def _duplicate(c: Inputs) -> None:
    meta = c.put("dup/photo.jpg", c.image("obama_small.jpg"))
    body = s3_event_body([s3_record(c.world.input_bucket, "dup/photo.jpg", **meta)])
    c.send(body)
    c.send(body)


def _too_large(c: Inputs) -> None:
    c.upload("big/two_people.jpg", c.image("two_people.jpg"))


def _too_large_no_size(c: Inputs) -> None:
    c.upload("big/two_people-nosize.jpg", c.image("two_people.jpg"), with_size=False)


def _bad_and_good_in_one_message(c: Inputs) -> None:
    bad = c.put("mixed/corrupt.jpg", gen.truncated(c.image("obama_small.jpg"), 0.5))
    good = c.put("mixed/good.jpg", c.image("lfw_Rob_Lowe_0001.jpg"))
    c.send(
        s3_event_body(
            [
                s3_record(c.world.input_bucket, "mixed/corrupt.jpg", **bad),
                s3_record(c.world.input_bucket, "mixed/good.jpg", **good),
            ]
        )
    )


MATRIX = [
    Case("truncated", "Truncated JPEG", "error row", "error row `decode_error`", _truncated),
    Case("zero_bytes", "Zero-byte file", "error row", "error row `decode_error`", _zero),
    Case("text_as_jpg", "Text file named `.jpg`", "error row", "error row `decode_error`", _text),
    Case(
        "pixel_bomb",
        "PNG claiming 50,000 × 50,000 pixels",  # noqa: RUF001 - the issue's wording
        "refused before decoding",
        "error row `too_many_pixels` (50000x50000, from the header)",
        _bomb,
    ),
    Case("png16_rgb", "16-bit PNG (RGB)", "indexed", "indexed, 1 face", _png16),
    Case("png16_gray", "16-bit PNG (grayscale)", "indexed", "indexed, 1 face", _gray16),
    Case("cmyk", "CMYK JPEG", "indexed", "indexed, 1 face", _cmyk),
    Case("alpha", "Image with alpha (RGBA PNG)", "indexed", "indexed, 1 face", _alpha),
    Case(
        "exif_6",
        "EXIF-rotated JPEG (orientation 6)",
        "faces in the correct orientation",
        "indexed, 1 face, upright",
        _exif(6),
    ),
    Case(
        "exif_8",
        "EXIF-rotated JPEG (orientation 8)",
        "faces in the correct orientation",
        "indexed, 1 face, upright",
        _exif(8),
    ),
    Case(
        "exif_3",
        "EXIF-rotated JPEG (orientation 3)",
        "faces in the correct orientation",
        "indexed, 1 face, upright",
        _exif(3),
    ),
    Case("odd_key", "Key with spaces, `+` and non-ASCII characters", "indexed", "indexed, 1 face", _odd_key),
    Case("deleted", "Object deleted before processing", "error row", "error row `not_found`", _deleted),
    Case(
        "foreign_bucket",
        "Bucket outside `FACEIDX_ALLOWED_BUCKETS`",
        "error row",
        "error row `bucket_not_allowed`",
        _foreign_bucket,
    ),
    Case(
        "malformed_json",
        "Malformed JSON body",
        "left for the DLQ",
        f"not deleted; moved to the DLQ by SQS after {MAX_RECEIVES} receives",
        _malformed,
    ),
    Case(
        "not_an_event",
        "JSON that is no S3, SNS or EventBridge event",
        "left for the DLQ",
        f"not deleted; moved to the DLQ by SQS after {MAX_RECEIVES} receives",
        _wrong_shape,
    ),
    Case("test_event", "`s3:TestEvent`", "deleted", "deleted, no row", _test_event),
    Case("test_event_sns", "`s3:TestEvent` inside SNS", "deleted", "deleted, no row", _test_event_sns),
    Case("sns", "SNS-wrapped event", "indexed", "indexed, 1 face", _sns),
    Case(
        "eventbridge",
        "EventBridge event (key with `+` and a space)",
        "indexed",
        "indexed, 1 face",
        _eventbridge,
    ),
    Case(
        "duplicate",
        "Duplicate delivery of the same event",
        "see the dedup rule",
        "indexed, 1 face; written twice, one row after dedup",
        _duplicate,
    ),
    Case(
        "too_large",
        "Object larger than `FACEIDX_MAX_IMAGE_BYTES` (size in the event)",
        "error row",
        "error row `too_large`",
        _too_large,
    ),
    Case(
        "too_large_no_size",
        "Object larger than `FACEIDX_MAX_IMAGE_BYTES` (event without size: HeadObject)",
        "error row",
        "error row `too_large`",
        _too_large_no_size,
    ),
    Case(
        "bad_and_good",
        "One message: a corrupt image and a good one",
        "error row + indexed",
        "error row `decode_error`; indexed, 1 face",
        _bad_and_good_in_one_message,
    ),
]

# Good photos announced after every bad input: they must be indexed by the same worker process.
CONTROLS = ["lfw_Rob_Lowe_0001.jpg", "image_T1.jpeg", "no_face.png", "rot_r0.jpg"]


@dataclass
class MatrixRun:
    run: WorkerRun
    inputs: dict[str, Inputs]
    rows: list[dict[str, Any]]
    queued: dict[str, QueuedMessage]
    dead_lettered: dict[str, QueuedMessage]
    lost: list[str]
    counts: tuple[int, int]
    controls: list[str]
    observed: dict[str, str] = field(default_factory=dict)

    def rows_for(self, key: str) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["image_key"] == key]

    def fate(self, message_id: str) -> str:
        if message_id in self.dead_lettered:
            return f"dlq:{self.dead_lettered[message_id].receive_count}"
        if message_id in self.queued:
            return "queued"
        return "deleted"


def observe(result: MatrixRun, inputs: Inputs) -> str:
    """The outcome of one case, in the words of the table's "observed" column."""
    fates = {result.fate(message_id) for message_id in inputs.message_ids}
    if not inputs.keys:
        if fates == {"deleted"}:
            return "deleted, no row"
        if len(fates) == 1 and next(iter(fates)).startswith("dlq:"):
            receives = next(iter(fates)).split(":")[1]
            return f"not deleted; moved to the DLQ by SQS after {receives} receives"
        return f"message {sorted(fates)}"
    parts = []
    grouped = rows_by_key(result.rows)
    for key in inputs.keys:
        found = grouped.get(key, [])
        if not found:
            parts.append("no row")
            continue
        row = found[0]
        if row["status"] == "error":
            reason = row["error"].split(":", 1)[0]
            text = f"error row `{reason}`"
            if reason == "too_many_pixels":
                text += f" ({row['image_width']}x{row['image_height']}, from the header)"
            parts.append(text)
            continue
        faces = row["face_count"]
        text = f"indexed, {faces} face{'s' if faces != 1 else ''}"
        if key.startswith("exif/") and faces and all(_upright(r) for r in found):
            text += ", upright"
        raw = len(result.rows_for(key))
        if raw > len(found):
            text += f"; written {'twice' if raw == 2 * len(found) else f'{raw} rows'}, one row after dedup"
        parts.append(text)
    if fates != {"deleted"}:
        parts.append(f"message {sorted(fates)}")
    return "; ".join(parts)


def _upright(row: dict[str, Any]) -> bool:
    """Both eyes above the nose, the nose above both mouth corners (insightface's 5-point order)."""
    points = np.asarray(row["landmarks"]).reshape(5, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    return bool(
        max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
        and left_eye[0] < right_eye[0]
        and mouth_left[0] < mouth_right[0]
    )


@pytest.fixture(scope="module")
def matrix(moto_session, small_pack, assets_dir) -> MatrixRun:
    moto_session.reset()
    world = create_world(
        moto_session, "matrix", visibility_timeout=VISIBILITY, max_receive_count=MAX_RECEIVES
    )
    world.s3.create_bucket(Bucket=OTHER_BUCKET)
    names = {
        *CONTROLS,
        "lfw_Rob_Lowe_0002.jpg",
        "lfw_Nathalie_Baye_0002.jpg",
        "obama_small.jpg",
        "two_people.jpg",
    }
    photos = {name: (assets_dir / "images" / name).read_bytes() for name in names}
    inputs = {}
    for case in MATRIX:
        inputs[case.id] = Inputs(world, photos)
        case.build(inputs[case.id])
    controls = []
    for number, name in enumerate(CONTROLS):
        key = f"controls/{number}-{name}"
        world.upload_and_announce(key, photos[name])
        controls.append(key)

    run = run_worker(
        world.env(
            small_pack,
            FACEIDX_ALLOWED_BUCKETS=world.input_bucket,
            FACEIDX_MAX_IMAGE_BYTES=MAX_IMAGE_BYTES,
            FACEIDX_VISIBILITY_TIMEOUT=VISIBILITY,
            FACEIDX_MAX_IDLE_SECONDS=3 * VISIBILITY,
            FACEIDX_RECEIVE_WAIT_SECONDS=1,
        ),
        timeout=180,
    )
    rows = world.rows()
    result = MatrixRun(
        run=run,
        inputs=inputs,
        rows=rows,
        queued={m.message_id: m for m in world.messages()},
        dead_lettered={m.message_id: m for m in world.messages(dlq=True)},
        lost=unaccounted_messages(world, rows),
        counts=world.counts(),
        controls=controls,
    )
    result.observed = {case.id: observe(result, inputs[case.id]) for case in MATRIX}
    print("\n" + markdown_table(result))  # the table in the README (Reliability)
    return result


def markdown_table(result: MatrixRun) -> str:
    lines = ["| Input | Expected outcome | Observed |", "| --- | --- | --- |"]
    lines += [f"| {c.input} | {c.documented} | {result.observed[c.id]} |" for c in MATRIX]
    return "\n".join(lines)


@pytest.mark.parametrize("case", MATRIX, ids=[case.id for case in MATRIX])
def test_bad_input_ends_in_its_documented_outcome(matrix, case):
    assert matrix.observed[case.id] == case.observed, matrix.run.describe()


def test_one_worker_survives_every_case_and_indexes_the_good_images(matrix):
    run = matrix.run
    assert run.returncode == 0, run.describe()
    assert run.summary["exit_reason"] == "idle"  # never crashed, never stopped early
    assert not any(line.get("event") == "NOT_JSON" for line in run.lines), run.describe()
    grouped = rows_by_key(matrix.rows)
    for key in matrix.controls:  # announced after every bad input, indexed by the same process
        assert grouped[key][0]["status"] == "ok", key
    assert not matrix.lost
    assert matrix.counts == (0, 0)  # everything deleted, except the two bodies SQS moved to the DLQ
    assert len(matrix.dead_lettered) == 2
    summary = run.summary
    assert summary["messages_malformed"] >= 2 * MAX_RECEIVES
    assert summary["messages_skipped"] == 2


def test_exif_rotated_faces_match_the_upright_photo(matrix, assets_dir):
    """Boxes and landmarks of the rotated uploads are in the upright picture's pixels: the same place as
    in the upright photo itself (indexed as a control)."""
    grouped = rows_by_key(matrix.rows)
    (upright,) = grouped["controls/1-image_T1.jpeg"]
    for orientation in (3, 6, 8):
        (row,) = grouped[f"exif/orientation-{orientation}.jpg"]
        assert (row["image_width"], row["image_height"]) == (upright["image_width"], upright["image_height"])
        assert np.allclose(row["bbox"], upright["bbox"], atol=6), (orientation, row["bbox"], upright["bbox"])
        assert np.allclose(row["landmarks"], upright["landmarks"], atol=6), orientation
        cosine = float(np.dot(row["embedding"], upright["embedding"]))
        assert cosine > 0.9, (orientation, cosine)


def test_keys_are_decoded_exactly_once(matrix):
    """S3 events URL-encode keys (space as '+'); EventBridge does not. Both land under the real key."""
    keys = {row["image_key"] for row in matrix.rows}
    assert ODD_KEY in keys
    assert EVENTBRIDGE_KEY in keys


def test_converted_formats_find_the_same_face_as_the_8_bit_original(matrix):
    grouped = rows_by_key(matrix.rows)
    (reference,) = grouped["controls/0-lfw_Rob_Lowe_0001.jpg"]
    for key in ("formats/rgb16.png", "formats/gray16.png"):
        (row,) = grouped[key]
        assert np.allclose(row["bbox"], reference["bbox"], atol=6), key


def test_duplicate_delivery_collapses_under_the_dedup_rule(matrix):
    raw = matrix.rows_for("dup/photo.jpg")
    assert len(raw) == 2
    assert {(r["image_bucket"], r["image_key"], r["image_etag"], r["face_index"]) for r in raw} == {
        (raw[0]["image_bucket"], "dup/photo.jpg", raw[0]["image_etag"], 0)
    }
    assert len(rows_by_key(raw)["dup/photo.jpg"]) == 1
