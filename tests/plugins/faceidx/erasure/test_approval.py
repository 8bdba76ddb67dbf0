"""face_forget's approval: the dry count shown before anyone approves (read only), who approved (from
the HITL task's result), and the approver in the receipt."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceidx.erasure.approval import approver_of
from faceidx.erasure.forget import ForgetTarget, ForgetTargetNotFound, forget
from faceidx.erasure.preview import preview
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.erasure.test_forget import BUCKET, V1, V2, receipts


def _files(location) -> list[str]:
    return sorted(str(p) for p in Path(location.output_uri).rglob("*") if p.is_file())


def test_preview_counts_what_forget_would_remove_and_writes_nothing(location, indexed):
    before = _files(location), FaceTable.open(location).version()
    found = preview(location, ForgetTarget("image", f"s3://{BUCKET}/a.jpg"))
    assert (_files(location), FaceTable.open(location).version()) == before, "a preview writes nothing"
    assert found.table_rows == {V1: 3, V2: 2}
    assert (found.rows, found.faces, found.crops) == (5, 5, 2)
    assert found.images == [f"s3://{BUCKET}/a.jpg"]

    receipt = forget(location, ForgetTarget("image", f"s3://{BUCKET}/a.jpg"), reason="r", actor="a")
    assert receipt.removed["table_rows"] == found.table_rows
    assert len(receipt.removed["face_ids"]) == found.faces
    assert len(receipt.removed["crops"]) == found.crops


def test_preview_body_names_the_target_the_counts_and_what_each_answer_does(location, indexed):
    body = preview(location, ForgetTarget("image", f"s3://{BUCKET}/a.jpg")).markdown()
    assert f"**Forget image `s3://{BUCKET}/a.jpg`**" in body
    assert f"| face table rows ({V1}) | 3 |" in body
    assert "| faces (and their vectors) | 5 |" in body
    assert "| face crops | 2 |" in body
    assert "**Reject**: nothing is deleted" in body


def test_preview_of_a_photo_without_faces_counts_its_row_and_no_face(location, indexed):
    from tests.plugins.faceidx.erasure.test_forget import image_rows, unit, write_landing

    write_landing(location, image_rows("empty.jpg", unit(9, 0)))
    FaceTable.open(location).ingest()
    found = preview(location, ForgetTarget("image", f"s3://{BUCKET}/empty.jpg"))
    assert (found.rows, found.faces, len(found.images)) == (1, 0, 1)


def test_preview_of_a_target_not_in_the_index_is_refused(location, indexed):
    with pytest.raises(ForgetTargetNotFound, match="is not in the index"):
        preview(location, ForgetTarget("image", f"s3://{BUCKET}/never.jpg"))


APPROVED = {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "ada"}}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, ""),  # no approval required: the approve task was skipped
        (APPROVED, "ada"),
        ({**APPROVED, "responded_by_user": {"id": "7", "name": ""}}, "7"),
    ],
    ids=["not required", "by name", "by id"],
)
def test_approver_of_an_approval(answer, expected):
    assert approver_of(answer) == expected


@pytest.mark.parametrize(
    "answer",
    [
        {**APPROVED, "chosen_options": ["Reject"]},
        {**APPROVED, "responded_by_user": None},  # the timeout answered, not a user
    ],
    ids=["rejected", "nobody"],
)
def test_an_answer_that_is_not_a_users_approval_deletes_nothing(answer):
    with pytest.raises(ValueError, match="nothing may be deleted"):
        approver_of(answer)


def test_the_receipt_names_the_approver(location, indexed):
    receipt = forget(
        location, ForgetTarget("image", f"s3://{BUCKET}/b.jpg"), reason="r", actor="erin", approver="ada"
    )
    (saved,) = receipts(location)
    assert (saved["actor"], saved["approver"]) == ("erin", "ada")
    assert ("approver", "ada") in receipt.summary_rows()
