"""The crops option (``FACEIDX_CROPS_URI``): each face's aligned crop as a JPEG, written before its row.

``<FACEIDX_CROPS_URI>/<model_version>/<face_id>.jpg`` (S3 or a local folder); the row's ``crop_uri``
names it. The crop is the recognizer's input (112 x 112, aligned to the ArcFace template). A failed
write stops the worker like a failed Parquet write: no row, no delete, SQS re-delivers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from faceidx_worker.rows import ImageOutcome, face_id
from faceidx_worker.settings import OutputLocation
from faceidx_worker.sink import SinkError, write_durably

JPEG_QUALITY = 92


def crop_key(prefix: str, model_version: str, face: str) -> str:
    return "/".join(part for part in (prefix.strip("/"), model_version, f"{face}.jpg") if part)


class CropWriter:
    def __init__(self, location: OutputLocation, *, s3_client: Any = None) -> None:
        if location.is_s3 and s3_client is None:
            raise ValueError("an S3 crops location needs an s3 client")
        self.location = location
        self.s3 = s3_client

    def write(self, outcome: ImageOutcome, model_version: str) -> ImageOutcome:
        """Write every face's crop; the outcome with ``crop_uri`` set (and the pixels dropped)."""
        if not outcome.faces:
            return outcome
        import cv2

        faces = []
        for index, face in enumerate(outcome.faces):
            if face.crop is None:
                faces.append(face)
                continue
            ok, encoded = cv2.imencode(".jpg", face.crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise SinkError(
                    f"encoding the crop of s3://{outcome.bucket}/{outcome.key} face {index} failed"
                )
            name = face_id(outcome.bucket, outcome.key, outcome.etag, model_version, index)
            uri = self._put(crop_key(self.location.prefix, model_version, name), encoded.tobytes())
            faces.append(dataclasses.replace(face, crop=None, crop_uri=uri))
        return dataclasses.replace(outcome, faces=tuple(faces))

    def _put(self, key: str, payload: bytes) -> str:
        if self.location.is_s3:
            uri = f"s3://{self.location.bucket}/{key}"
            try:
                self.s3.put_object(
                    Bucket=self.location.bucket, Key=key, Body=payload, ContentType="image/jpeg"
                )
            except Exception as exc:  # botocore already retried
                raise SinkError(
                    f"writing the crop {uri} failed: {exc}. Check that the job role may s3:PutObject there "
                    "(FACEIDX_CROPS_URI); no message was deleted"
                ) from exc
            return uri
        assert self.location.local_dir is not None
        target = self.location.local_dir / key
        try:
            write_durably(target, payload)
        except OSError as exc:
            raise SinkError(f"writing the crop {target} failed: {exc}; no message was deleted") from exc
        return str(target)
