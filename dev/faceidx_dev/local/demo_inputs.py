"""Where ``make demo`` gets its model pack and its photos.

Model pack, first found wins:

1. ``FACE_MODEL_DIR`` when set;
2. the small pack in ``../shared/assets/models`` (SCRFD ``det_500m.onnx`` + the 128-d
   ``mobilefacenet_128d_dynbatch.onnx``), linked into a folder laid out like an insightface pack;
3. insightface's ``buffalo_sc`` (SCRFD-500M + MobileFaceNet w600k), downloaded once into
   ``~/.cache/faceidx/models`` and checked member by member against pinned sha256 values.

Photos: ``../shared/assets/images`` when present, else photos that ship inside installed packages
(insightface's ``t1.jpg``, scikit-image's ``astronaut.png``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

BUFFALO_SC_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_sc.zip"
# The members' sha256, as pinned by other public projects for the same files.
BUFFALO_SC_SHA256 = {
    "det_500m.onnx": "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a",
    "w600k_mbf.onnx": "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
}
SMALL_PACK = ("det_500m.onnx", "mobilefacenet_128d_dynbatch.onnx")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DemoInputError(RuntimeError):
    """No model pack or no photos could be found; the message lists what was tried."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def link_model_pack(models_dir: Path, target: Path, files: Iterable[str] = SMALL_PACK) -> Path:
    """An insightface-style pack folder (``target``) of symlinks to ``files`` in ``models_dir``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in files:
        link = target / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to((models_dir / name).resolve())
    return target


def download_buffalo_sc(cache: Path) -> Path:
    pack = cache / "buffalo_sc"
    if all((pack / n).exists() and sha256_of(pack / n) == h for n, h in BUFFALO_SC_SHA256.items()):
        return pack
    log.warning(
        "downloading insightface buffalo_sc (about 15 MB, once) from %s into %s", BUFFALO_SC_URL, pack
    )
    pack.mkdir(parents=True, exist_ok=True)
    archive = cache / "buffalo_sc.zip"
    urllib.request.urlretrieve(BUFFALO_SC_URL, archive)
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.namelist():
            name = Path(member).name
            if name in BUFFALO_SC_SHA256:
                (pack / name).write_bytes(bundle.read(member))
    archive.unlink()
    for name, expected in BUFFALO_SC_SHA256.items():
        got = sha256_of(pack / name) if (pack / name).exists() else "missing"
        if got != expected:
            raise DemoInputError(f"buffalo_sc member {name}: sha256 {got} != pinned {expected}; not used")
    return pack


def resolve_model_pack(assets: Path, work_dir: Path, cache: Path | None = None) -> tuple[Path, str]:
    """(pack folder, how it was found)."""
    explicit = os.environ.get("FACE_MODEL_DIR")
    if explicit:
        if not Path(explicit).is_dir():
            raise DemoInputError(f"FACE_MODEL_DIR={explicit} is not a folder")
        return Path(explicit), "FACE_MODEL_DIR"
    models = assets / "models"
    if all((models / name).exists() for name in SMALL_PACK):
        return link_model_pack(models, work_dir / "models" / "faceidx_small"), f"small pack from {models}"
    try:
        return download_buffalo_sc(
            cache or Path.home() / ".cache" / "faceidx" / "models"
        ), "buffalo_sc download"
    except OSError as err:
        raise DemoInputError(
            f"no model pack: FACE_MODEL_DIR is unset, {models} lacks {', '.join(SMALL_PACK)}, and "
            f"downloading buffalo_sc failed ({err}). Set FACE_MODEL_DIR to an insightface pack folder."
        ) from err


def sample_photos(assets: Path) -> tuple[list[Path], str]:
    images = assets / "images"
    if images.is_dir():
        found = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if found:
            return found, str(images)
    packaged: list[Path] = []
    try:
        import insightface

        packaged.append(Path(insightface.__file__).parent / "data" / "images" / "t1.jpg")
    except ImportError:
        pass
    try:
        import skimage

        packaged.append(Path(skimage.__file__).parent / "data" / "astronaut.png")
    except ImportError:
        pass
    packaged = [p for p in packaged if p.exists()]
    if not packaged:
        raise DemoInputError(
            f"no photos: {images} is absent and neither insightface nor scikit-image ships any"
        )
    return packaged, "photos shipped inside installed packages"


def second_model_pack(pack: Path, target: Path, note: str = "faceidx second pack") -> Path:
    """A pack folder beside ``pack`` that is a new model version of the same models.

    The detector is linked; the recognizer (the largest ``.onnx``) is re-serialised with onnx and a
    ``metadata_props`` entry, so it computes the same embeddings but hashes differently: the pack's
    ``model_version`` (name + hash of its ``.onnx`` files) is a new one. Built at run time into
    ``target`` (a work folder); nothing of it belongs in the repository.
    """
    import onnx

    target.mkdir(parents=True, exist_ok=True)
    files = sorted(pack.glob("*.onnx"))
    if not files:
        raise DemoInputError(f"{pack} holds no .onnx file: not a model pack")
    changed = max(files, key=lambda path: path.resolve().stat().st_size)
    for path in files:
        out = target / path.name
        if out.is_symlink() or out.exists():
            out.unlink()
        if path == changed:
            model = onnx.load(str(path.resolve()))
            entry = model.metadata_props.add()
            entry.key, entry.value = "faceidx_note", note
            onnx.save(model, str(out))
        else:
            out.symlink_to(path.resolve())
    return target
