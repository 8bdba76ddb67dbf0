"""Several model packs in one worker: ``FACEIDX_MODEL_DIR`` may hold packs as subdirectories.

* A folder with ``.onnx`` files in it is one pack (the layout before), named ``FACEIDX_MODEL_PACK``.
* A folder of pack folders: ``FACEIDX_MODEL_PACK`` picks the default (which may be left unset when
  there is only one); a message may ask for another with ``"model_pack": "<name>"`` in its body
  (``face_reindex`` stamps it). Such a pack is loaded on first use and kept loaded.
* An image that asks for a pack the folder does not hold gets an ``unknown_model_pack`` error row;
  the other images of the batch are not held up.

``FACEIDX_MODEL_VERSION`` names the default pack's version only; the others get their computed one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from faceidx_worker.model import FaceModel

log = logging.getLogger(__name__)


class PackChoiceError(ValueError):
    """FACEIDX_MODEL_DIR / FACEIDX_MODEL_PACK do not name one pack."""


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
