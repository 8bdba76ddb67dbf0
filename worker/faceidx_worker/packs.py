"""Several model packs in one worker: ``FACEIDX_MODEL_DIR`` may hold packs as subdirectories.

* A folder with ``.onnx`` files in it is one pack (the layout before), named ``FACEIDX_MODEL_PACK``.
* A folder of pack folders: ``FACEIDX_MODEL_PACK`` picks the default (which may be left unset when
  there is only one); a message may ask for another with ``"model_pack": "<name>"`` in its body
  (``face_reindex`` stamps it). Such a pack is loaded on first use and kept loaded.
* An image that asks for a pack the folder does not hold gets an ``unknown_model_pack`` error row;
  the other images of the batch are not held up.

``FACEIDX_MODEL_VERSION`` names the default pack's version only; the others get their computed one.

A pack's files: ``*.onnx`` files like an insightface pack (``buffalo_l``). Each file is classified from
its ONNX inputs/outputs as insightface's router does (:func:`classify_onnx`): >= 5 outputs is a
detector; one square input of 112+ (multiple of 16, not the 192/96 landmark/attribute sizes) with one
output is a recognizer; anything else (landmarks, gender/age) is ignored. Exactly one of each
(:func:`find_pack_files`). A pack's version is a hash of its files (:func:`pack_version`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faceidx_worker.model import FaceModel

log = logging.getLogger(__name__)


class ModelPackError(ValueError):
    """FACEIDX_MODEL_DIR does not hold a usable detector + recognizer pair."""


class PackChoiceError(ValueError):
    """FACEIDX_MODEL_DIR / FACEIDX_MODEL_PACK do not name one pack."""


@dataclass(frozen=True)
class PackFiles:
    detector: Path
    recognizer: Path
    ignored: tuple[Path, ...]
    genderage: Path | None = None  # insightface's 96x96 age/gender model, when the pack has one


def _dims(value_info: Any) -> list[int | str]:
    dims: list[int | str] = []
    for dim in value_info.type.tensor_type.shape.dim:
        dims.append(int(dim.dim_value) if dim.dim_value > 0 else (dim.dim_param or "?"))
    return dims


def classify_onnx(path: Path) -> str:
    """``detection``, ``recognition`` or ``other``, from the graph's inputs and outputs only."""
    import onnx

    model = onnx.load_model(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    outputs = list(model.graph.output)
    if len(outputs) >= 5:
        return "detection"
    if len(inputs) != 1 or len(outputs) != 1:
        return "other"
    shape = _dims(inputs[0])
    if len(shape) != 4:
        return "other"
    height, width = shape[2], shape[3]
    if isinstance(height, int) and height == width and height >= 112 and height % 16 == 0:
        if height in (192, 96):  # insightface's landmark and attribute models
            return "other"
        return "recognition"
    return "other"


def find_pack_files(model_dir: Path) -> PackFiles:
    """The detector and recognizer in ``model_dir``. Raises :class:`ModelPackError` naming what is wrong."""
    files = sorted(model_dir.glob("*.onnx"))
    if not files:
        raise ModelPackError(f"{model_dir} holds no .onnx file")
    found: dict[str, list[Path]] = {"detection": [], "recognition": [], "other": []}
    for path in files:
        try:
            found[classify_onnx(path)].append(path)
        except Exception as exc:  # onnx raises DecodeError and friends: name the file and stop
            raise ModelPackError(f"{path} is not a readable ONNX model: {exc}") from exc
    for task in ("detection", "recognition"):
        if len(found[task]) != 1:
            names = ", ".join(p.name for p in found[task]) or "none"
            raise ModelPackError(f"{model_dir} must hold exactly one {task} model, found {names}")
    from faceidx_worker.genderage import is_genderage

    genderage = [path for path in found["other"] if is_genderage(path)]
    return PackFiles(
        found["detection"][0],
        found["recognition"][0],
        tuple(found["other"]),
        genderage[0] if len(genderage) == 1 else None,
    )


def pack_version(pack: str, model_dir: Path) -> str:
    """``<pack>-<first 12 hex of the sha256 over the folder's .onnx files, in name order>``."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).glob("*.onnx")):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"{pack}-{digest.hexdigest()[:12]}"


def discover_packs(model_dir: Path) -> dict[str, Path]:
    """The pack subfolders of ``model_dir`` (those holding ``.onnx`` files), by name."""
    return {
        sub.name: sub for sub in sorted(Path(model_dir).iterdir()) if sub.is_dir() and any(sub.glob("*.onnx"))
    }


def choose_default_pack(model_dir: Path, requested: str) -> tuple[str, Path]:
    """(name, folder) of the default pack. ``requested`` is FACEIDX_MODEL_PACK (by default the model
    folder's own name). Raises :class:`PackChoiceError` saying what to set."""
    model_dir = Path(model_dir)
    if any(model_dir.glob("*.onnx")):
        return requested, model_dir
    packs = discover_packs(model_dir)
    if requested in packs:
        return requested, packs[requested]
    if requested == model_dir.resolve().name and len(packs) == 1:
        [(name, folder)] = packs.items()
        return name, folder
    names = ", ".join(packs) or "none"
    raise PackChoiceError(
        f"{model_dir} holds no .onnx file and its pack folders are: {names}; set FACEIDX_MODEL_PACK to one "
        "of them (the default pack)"
    )


class ModelPacks:
    """The default pack, loaded at start, and the others of the folder, loaded on first use."""

    def __init__(
        self,
        default: FaceModel,
        model_dir: Path,
        make: Callable[[str, Path], FaceModel] | None = None,
    ) -> None:
        self.default = default
        self.model_dir = Path(model_dir)
        self.make = make
        self._loaded: dict[str, FaceModel] = {default.name: default}
        self._lock = threading.Lock()

    def get(self, name: str | None) -> FaceModel | None:
        """The pack ``name`` (``None``: the default), loading it once; ``None`` when the folder lacks it."""
        if name is None:
            return self.default
        with self._lock:
            model = self._loaded.get(name)
            if model is not None:
                return model
            if self.make is None:
                return None
            folder = discover_packs(self.model_dir).get(name) if self.model_dir.is_dir() else None
            if folder is None:
                return None
            log.info("a message asks for model pack %s: loading %s (kept loaded)", name, folder)
            model = self.make(name, folder)
            model.load()
            self._loaded[name] = model
            return model
