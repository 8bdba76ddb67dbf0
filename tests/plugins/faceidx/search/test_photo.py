"""Search by photo on real embeddings: the worker's model on ../shared/assets photos, a real small
vector index, the faceidx search command (table and JSON), and every refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceidx.cli import main as cli_main
from faceidx.search.photo import (
    PhotoEmbedder,
    PhotoSearchError,
    format_table,
    search_photo,
    unreadable_photo_message,
)
from faceidx.store.calibration import DEFAULT_THRESHOLD
from faceidx.store.location import IndexLocation
from faceidx.store.vectors import UnknownModelVersionError
from tests.plugins.faceidx.search.conftest import photo
from tests.support.worker_harness import make_model_pack

pytestmark = pytest.mark.assets


def test_the_same_person_in_another_photo_ranks_first(assets_dir, indexed, embedder):
    result = search_photo(indexed, photo(assets_dir, "lfw_Rob_Lowe_0002.jpg"), k=3, embedder=embedder)
    assert result.model_version == embedder.model_version
    assert len(result.faces) == 1
    first = result.faces[0].matches[0]
    assert first.image == "s3://photos/people/lfw_Rob_Lowe_0001.jpg"
    assert first.face_index == 0
    assert first.verdict == "same person"
    assert len(first.bbox) == 4
    assert first.person is None
    # without a calibration: the documented default threshold, and the strangers counted, not listed
    assert (result.threshold, result.far) == (DEFAULT_THRESHOLD, 1e-4)
    assert "no calibration yet" in (result.threshold_note or "")
    assert (len(result.faces[0].matches), result.faces[0].below_threshold) == (1, 2)
    everything = search_photo(
        indexed, photo(assets_dir, "lfw_Rob_Lowe_0002.jpg"), k=3, embedder=embedder, list_all=True
    )
    listed = everything.faces[0].matches
    assert first.similarity > 0.5 > listed[1].similarity
    assert [m.verdict for m in listed] == ["same person", "unknown", "unknown"]

    obama = search_photo(indexed, photo(assets_dir, "obama2.jpg"), k=1, embedder=embedder)
    assert obama.faces[0].matches[0].image == "s3://photos/people/obama.jpg"


def test_every_face_of_a_group_photo_is_searched_and_the_table_shows_them(assets_dir, indexed, embedder):
    result = search_photo(indexed, photo(assets_dir, "two_people.jpg"), k=2, embedder=embedder, list_all=True)
    assert len(result.faces) == 2
    firsts = {face.matches[0].image for face in result.faces}
    assert firsts == {"s3://photos/people/obama.jpg", "s3://photos/people/biden.jpg"}
    text = format_table(result)
    assert text.count("query face") == 2
    assert "rank  similarity  verdict      image" in text
    assert "threshold in force" in text
    assert "s3://photos/people/biden.jpg" in text


def test_quality_only_and_the_person_lookup(assets_dir, indexed, embedder):
    result = search_photo(
        indexed,
        photo(assets_dir, "lfw_Rob_Lowe_0002.jpg"),
        k=3,
        quality_only=True,
        embedder=embedder,
        list_all=True,
        person_lookup=lambda ids: {face_id: f"person of {face_id}" for face_id in ids},
    )
    images = [m.image for m in result.faces[0].matches]
    assert "s3://photos/people/lfw_Rob_Lowe_0001.jpg" not in images  # it failed the quality checks
    assert all(m.quality_passed for m in result.faces[0].matches)
    assert result.faces[0].matches[0].person == f"person of {result.faces[0].matches[0].face_id}"


def test_bad_input_is_refused_with_a_reason(assets_dir, indexed, embedder, tmp_path):
    with pytest.raises(PhotoSearchError, match="no face found"):
        search_photo(indexed, photo(assets_dir, "no_face.png"), embedder=embedder)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(PhotoSearchError, match="not a decodable image"):
        search_photo(indexed, str(broken), embedder=embedder)
    with pytest.raises(PhotoSearchError, match="no such file"):
        search_photo(indexed, str(tmp_path / "missing.jpg"), embedder=embedder)
    with pytest.raises(UnknownModelVersionError, match="'other-v9'"):
        search_photo(indexed, photo(assets_dir, "obama.jpg"), model_version="other-v9", embedder=embedder)


def test_a_pack_of_another_version_is_refused(assets_dir, indexed, pack, tmp_path):
    other = make_model_pack(tmp_path / "otherpack", assets_dir)  # same files, another pack name
    embedder = PhotoEmbedder.from_env({"FACEIDX_MODEL_DIR": str(other)})
    with pytest.raises(PhotoSearchError, match="not comparable"):
        search_photo(indexed, photo(assets_dir, "obama.jpg"), embedder=embedder)


def test_a_photo_on_s3(assets_dir, indexed, embedder, moto):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="queries")
    s3.put_object(
        Bucket="queries", Key="q/rob.jpg", Body=Path(photo(assets_dir, "lfw_Rob_Lowe_0002.jpg")).read_bytes()
    )
    location = IndexLocation(indexed.output_uri, region="us-east-1", endpoint_url=moto.url)
    result = search_photo(location, "s3://queries/q/rob.jpg", k=1, embedder=embedder)
    assert result.faces[0].matches[0].image == "s3://photos/people/lfw_Rob_Lowe_0001.jpg"
    with pytest.raises(PhotoSearchError, match=r"s3://queries/q/none\.jpg: not found"):
        search_photo(location, "s3://queries/q/none.jpg", embedder=embedder)


def test_the_command_prints_the_table_and_valid_json(assets_dir, indexed, pack, monkeypatch, capsys):
    monkeypatch.setenv("FACEIDX_MODEL_DIR", str(pack))
    monkeypatch.setenv("FACEIDX_OUTPUT_URI", indexed.output_uri)
    assert cli_main(["search", photo(assets_dir, "obama2.jpg"), "--k", "2"]) == 0
    text = capsys.readouterr().out
    assert "query face 0" in text
    assert "s3://photos/people/obama.jpg" in text

    assert cli_main(["search", photo(assets_dir, "obama2.jpg"), "--k", "2", "--json", "--all"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["k"] == 2
    assert document["faces"][0]["matches"][0]["image"] == "s3://photos/people/obama.jpg"
    assert len(document["faces"][0]["matches"]) == 2

    assert cli_main(["search", photo(assets_dir, "no_face.png")]) == 2
    assert "no face found" in capsys.readouterr().err
    assert cli_main(["search", photo(assets_dir, "obama.jpg"), "--model-version", "nope"]) == 2
    assert "'nope' is not in the vector index" in capsys.readouterr().err


def test_the_command_shows_each_matchs_person(assets_dir, indexed, pack, monkeypatch, capsys, tmp_path):
    """Once identities exist, every match names its person: the label, else the person id."""
    import shutil

    import pyarrow as pa

    from faceidx.store.persons import SCHEMAS, PeopleStore

    root = tmp_path / "index"
    shutil.copytree(indexed.output_uri, root)
    location = IndexLocation(str(root))
    version = PhotoEmbedder.from_env({"FACEIDX_MODEL_DIR": str(pack)}).model_version
    store = PeopleStore(location)
    store.upsert(
        "persons",
        pa.Table.from_pylist(
            [{"person_id": "p-obama", "model_version": version, "face_count": 1, "label": "Barack Obama"}],
            schema=SCHEMAS["persons"],
        ),
    )
    store.upsert(
        "face_persons",
        pa.Table.from_pylist(
            [
                {"face_id": "obama.jpg#0", "person_id": "p-obama", "model_version": version},
                {"face_id": "biden.jpg#0", "person_id": "p-biden", "model_version": version},
            ],
            schema=SCHEMAS["face_persons"],
        ),
    )
    monkeypatch.setenv("FACEIDX_MODEL_DIR", str(pack))
    monkeypatch.setenv("FACEIDX_OUTPUT_URI", str(root))
    assert cli_main(["search", photo(assets_dir, "obama2.jpg"), "--k", "6", "--json", "--all"]) == 0
    matches = json.loads(capsys.readouterr().out)["faces"][0]["matches"]
    person = {m["image"]: m["person"] for m in matches}
    assert person["s3://photos/people/obama.jpg"] == "Barack Obama"  # labelled
    assert person["s3://photos/people/biden.jpg"] == "p-biden"  # no label: the id
    assert person["s3://photos/people/image_T1.jpeg"] is None  # no person


def corrupt_photos(assets_dir: Path, folder: Path) -> list[Path]:
    """Garbage bytes, a JPEG cut short in its header, one cut short in its pixels, an empty file."""
    jpeg = Path(photo(assets_dir, "obama.jpg")).read_bytes()
    contents = {
        "garbage.jpg": b"not a jpeg at all",
        "header-cut.jpg": jpeg[:200],
        "pixels-cut.jpg": jpeg[: len(jpeg) // 3],
        "empty.jpg": b"",
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in contents]


def test_the_command_says_why_a_corrupt_photo_cannot_be_read(assets_dir, indexed, pack, tmp_path):
    """The real command in its own process: a clean reason and what to do, no repr, no traceback."""
    env = {**os.environ, "FACEIDX_MODEL_DIR": str(pack), "FACEIDX_OUTPUT_URI": indexed.output_uri}
    for broken in corrupt_photos(assets_dir, tmp_path):
        result = subprocess.run(
            [str(Path(sys.executable).with_name("faceidx")), "search", str(broken)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        message = result.stderr.strip().splitlines()[-1]
        assert message.startswith(f"faceidx search: cannot read {broken}: not a decodable image ("), message
        assert message.endswith("search again with a good copy"), message
        assert "Traceback" not in result.stderr
        assert "<" not in message, message  # no "<_io.BytesIO object at 0x...>"


@pytest.mark.parametrize(
    ("reason", "detail", "expected"),
    [
        (
            "decode_error",
            "not a readable image: cannot identify image file <_io.BytesIO object at 0x7f3545a61260>",
            "cannot read p.jpg: not a decodable image (cannot identify image file); check that",
        ),
        (
            "decode_error",
            "JPEG RGB data is corrupt: image file is truncated (10 bytes not processed)",
            "cannot read p.jpg: not a decodable image (JPEG RGB data is corrupt: image file is truncated "
            "(10 bytes not processed)); check",
        ),
        ("decode_error", "<object at 0xabc>", "cannot read p.jpg: not a decodable image; check that"),
        ("too_many_pixels", "1000000000 pixels", "cannot read p.jpg: too many pixels (1000000000 pixels); "),
        ("inference_error", "odd", "cannot read p.jpg: inference_error (odd); check the file"),
    ],
)
def test_the_unreadable_photo_message(reason, detail, expected):
    assert unreadable_photo_message("p.jpg", reason, detail).startswith(expected)


def test_a_query_is_decoded_as_the_worker_decodes_what_it_indexes(assets_dir, embedder, pack):
    """The same photo through the worker's loader (its default decode) and through search gives the same
    faces and embeddings: a query is never compared across two decodes."""
    import numpy as np

    from faceidx_worker.events import ImageRef
    from faceidx_worker.fetch import S3ImageLoader
    from faceidx_worker.indexer import index_images

    class _Body:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, *_: object) -> bytes:
            return self.data

        def close(self) -> None:
            pass

    data = (assets_dir / "images" / "t1.jpg").read_bytes()

    class _S3:
        def head_object(self, **_: object) -> dict:
            return {"ContentLength": len(data), "ETag": '"e"'}

        def get_object(self, **_: object) -> dict:
            return {"Body": _Body(data), "ETag": '"e"', "ContentLength": len(data)}

    loader = S3ImageLoader(
        _S3(),
        max_image_bytes=embedder.max_image_bytes,
        max_image_pixels=embedder.max_image_pixels,
        decode_min_side=embedder.decode_min_side,
    )
    worker_faces = (
        index_images(embedder.model, [loader.load(ImageRef(bucket="b", key="t1.jpg"))]).outcomes[0].faces
    )
    search_faces = embedder.faces(str(assets_dir / "images" / "t1.jpg"))
    assert embedder.decode_mode == "adaptive"
    assert len(search_faces) == len(worker_faces)
    for ours, theirs in zip(search_faces, worker_faces, strict=True):
        assert float(np.dot(ours.embedding, theirs.embedding)) > 0.9999
