"""Dermoscopy images with diagnoses: the layouts users really have, validated in one place.

Every loader returns a ``LesionSet``: one row per image in ``frame`` (``image_id``,
``lesion_id``, ``dx``, ``label`` = position in ``CLASSES``, ``malignant``, and ``path`` to the
image file, or ``None`` when the images live in memory as for DermaMNIST), plus ``labels``
(int64) and ``read_images(size)`` that decodes them to uint8 ``(n, size, size, 3)``.

Layouts (``load_dataset(data_dir, layout="auto")`` recognises them):

- ``folder``: ``images/*.jpg`` + ``labels.csv`` with at least ``image_id`` and ``dx``
  (``lesion_id`` optional: without it every image is its own lesion). The shared copy in
  ``../shared/data/ham10000`` has this shape.
- ``ham10000``: the official release (Harvard Dataverse or Kaggle): ``HAM10000_images_part_1/``,
  ``HAM10000_images_part_2/`` and ``HAM10000_metadata.csv`` (any letter case; the Dataverse
  ``HAM10000_metadata.tab`` works too).
- ``isic2018``: ISIC 2018 Task 3: an image folder (``ISIC2018_Task3_Training_Input/``) and the
  ground-truth CSV with one-hot columns ``image, MEL, NV, BCC, AKIEC, BKL, DF, VASC``; the
  optional ``ISIC2018_Task3_Training_LesionGroupings.csv`` supplies ``lesion_id``.
- ``dermamnist``: MedMNIST's ``dermamnist*.npz`` (``{train,val,test}_images`` and ``_labels``).
  Its label order, per MedMNIST's own INFO table (0 actinic keratoses, 1 basal cell carcinoma,
  2 benign keratosis-like, 3 dermatofibroma, 4 melanoma, 5 melanocytic nevi, 6 vascular), is
  mapped by name in ``DERMAMNIST_LABELS``; it happens to equal ``CLASSES`` (some third-party
  copies swap mel and nv: the name table is the single place that says which is which).
  DermaMNIST has no lesion ids, so every image is its own lesion, and MedMNIST's split is kept in
  the column ``official_split``.

Colour decision: dermoscopy diagnosis leans on colour (blue-white veil, pigment network), so an
image must carry colour. RGB, RGBA, palette, CMYK and YCbCr images are converted to RGB;
grayscale (modes 1, L, LA, I, F, I;16) is rejected as "wrong mode" rather than silently
replicated into three equal channels that the model has never seen.

Problems (missing or unreadable images, grayscale images, labels outside the 7 classes,
duplicate image ids) raise one ``DataError`` listing the first offenders and their count.

Split (``split_indices``): validation 20 % of lesions, then calibration 10 % of the remaining
lesions (for temperature scaling and the operating threshold), the rest train; stratified by
``dx`` and grouped by ``lesion_id`` (``stratified_group_holdout``). On the shared
copy (5,984 images, one per lesion) with seed 0 the class counts are (akiec, bcc, bkl, df, mel,
nv, vasc) — train 131 190 419 43 354 3112 58 (4,307), calibration 15 21 47 5 39 346 6 (479),
validation 37 53 117 12 98 865 16 (1,198); ``mlcasebook derm data --split-json`` rewrites
``docs/results/derm_split.json`` with these counts.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.sources import Download, cache_dir, data_root, fetch

CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
CLASS_NAMES: dict[str, str] = {
    "akiec": "actinic keratosis / intraepithelial carcinoma (Bowen's disease)",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis (solar lentigo, seborrhoeic keratosis, lichen planus-like keratosis)",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus (mole)",
    "vasc": "vascular lesion (angioma, angiokeratoma, pyogenic granuloma, haemorrhage)",
}
MALIGNANT: tuple[str, ...] = ("akiec", "bcc", "mel")
MALIGNANT_MASK = np.array([name in MALIGNANT for name in CLASSES])
LAYOUTS = ("auto", "folder", "ham10000", "isic2018", "dermamnist")

# MedMNIST INFO["dermamnist"]["label"], by name: the mapping is explicit so a reordering upstream
# (or a copy with a different order) is one line to fix.
DERMAMNIST_LABELS: dict[int, str] = {0: "akiec", 1: "bcc", 2: "bkl", 3: "df", 4: "mel", 5: "nv", 6: "vasc"}
ISIC_ONE_HOT = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# Modes PIL can turn into RGB without inventing colour.
COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})
_SHOWN = 10


def class_counts(labels: np.ndarray) -> dict[str, int]:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(CLASSES))
    return {name: int(count) for name, count in zip(CLASSES, counts, strict=True)}


def offenders_error(what: str, offenders: list[str], hint: str) -> DataError:
    """One error naming the first offenders and how many there are in all."""
    shown = ", ".join(offenders[:_SHOWN])
    more = f" … and {len(offenders) - _SHOWN} more" if len(offenders) > _SHOWN else ""
    return DataError(f"{len(offenders)} {what}: {shown}{more}", hint=hint)


@dataclass
class LesionSet:
    """Images + diagnoses. ``frame`` has one row per image; ``images`` holds in-memory pixels
    (DermaMNIST) when the rows have no ``path``."""

    name: str
    frame: pd.DataFrame
    source: Path | None = None
    images: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy(dtype=np.int64)

    @property
    def is_malignant(self) -> np.ndarray:
        return self.frame["malignant"].to_numpy(dtype=bool)

    def subset(self, indices: np.ndarray) -> LesionSet:
        """The same set restricted to row positions ``indices`` (in that order)."""
        indices = np.asarray(indices, dtype=np.int64)
        frame = self.frame.iloc[indices].reset_index(drop=True)
        return LesionSet(self.name, frame, self.source, self.images)  # in-memory rows keep their memory_row

    def summary(self) -> dict[str, Any]:
        return {"dataset": self.name, "images": len(self), "lesions": int(self.frame["lesion_id"].nunique()),
                "malignant": int(self.is_malignant.sum()), "source": str(self.source) if self.source else None,
                **{f"n_{name}": count for name, count in class_counts(self.labels).items()}}

    def read_images(self, size: int = 224, indices: np.ndarray | None = None, progress: bool = True) -> np.ndarray:
        """Decode images to uint8 ``(n, size, size, 3)``, resized (squashed, not cropped, as the
        shared copy was made) when their size differs. Unreadable files → one ``DataError``."""
        from PIL import Image

        from ..core.progress import track

        rows = self.frame if indices is None else self.frame.iloc[np.asarray(indices, dtype=np.int64)]
        out = np.empty((len(rows), size, size, 3), dtype=np.uint8)
        if self.images is not None and "memory_row" in rows.columns:
            for position, row in enumerate(rows["memory_row"].to_numpy()):
                out[position] = resize_rgb(Image.fromarray(self.images[row]), size)
            return out
        failures: list[str] = []
        paths = rows["path"].tolist()
        for position, path in enumerate(track(paths, f"reading {len(paths)} images", disable=not progress)):
            try:
                out[position] = read_image(path, size)
            except DataError as exc:
                failures.append(exc.message)
        if failures:
            raise offenders_error("images could not be decoded", failures,
                                  hint="replace or remove these files (re-download or re-export them as JPEG/PNG)")
        return out


def read_image(path: Path | str, size: int = 224) -> np.ndarray:
    """One image as uint8 ``(size, size, 3)``; a ``DataError`` naming the file if it cannot be used."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise DataError(f"{path}: no such file", hint="check the path")
    try:
        with Image.open(path) as image:
            _check_mode(image.mode, path)
            if image.format == "JPEG":
                image.draft("RGB", (size, size))  # decode large JPEGs at a reduced scale: several times faster
            return resize_rgb(image, size)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = "not an image file" if isinstance(exc, UnidentifiedImageError) else f"unreadable ({exc})"
        raise DataError(f"{path}: {reason}", hint="pass a JPEG or PNG colour image") from exc


def resize_rgb(image, size: int) -> np.ndarray:
    from PIL import Image

    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.array(image, dtype=np.uint8)  # a writable copy (torch refuses read-only buffers)


def _check_mode(mode: str, path: Path | str) -> None:
    if mode not in COLOUR_MODES:
        raise DataError(f"{path}: grayscale or non-colour image (mode {mode})",
                        hint="the classifier needs the colour dermoscopy image, not a grayscale copy")


# ---- loading -----------------------------------------------------------------------------


def default_data_dir() -> Path | None:
    root = data_root(None)
    return None if root is None else root / "ham10000"


def load_dataset(data_dir: Path | str | None = None, layout: str = "auto", check_images: bool = True) -> LesionSet:
    """Load a dermoscopy data set. ``data_dir``: a folder in one of the layouts (or its parent
    holding ``ham10000/``), or a DermaMNIST ``.npz``; default ``$MLCASEBOOK_DATA/ham10000`` or
    ``../shared/data/ham10000``. ``check_images`` opens every image header (mode, readability)."""
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout '{layout}'", hint=f"use one of {', '.join(LAYOUTS)}")
    folder = _resolve(data_dir)
    if folder.is_file():
        if folder.suffix != ".npz":
            raise DataError(f"{folder} is a file but not a DermaMNIST .npz",
                            hint="pass the data folder (images/ + labels.csv) or a dermamnist*.npz")
        return load_dermamnist(folder)
    if layout == "auto":
        layout = detect_layout(folder)
    loader = {"folder": load_folder, "ham10000": load_ham10000, "isic2018": load_isic2018,
              "dermamnist": load_dermamnist}[layout]
    return loader(folder, check_images=check_images) if layout != "dermamnist" else loader(folder)


def _resolve(data_dir: Path | str | None) -> Path:
    if data_dir is None:
        folder = default_data_dir()
        if folder is None or not folder.exists():
            raise DataError("no HAM10000 data found (looked in $MLCASEBOOK_DATA/ham10000 and ../shared/data/ham10000)",
                            hint="pass --data-dir with a folder of images/ + labels.csv, the official HAM10000 "
                                 "release, ISIC 2018 Task 3 or a dermamnist .npz (`mlcasebook derm data "
                                 "--download dermamnist` fetches the smallest)")
        return folder
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(f"data path does not exist: {path}", hint="pass an existing folder or .npz to --data-dir")
    if path.is_dir() and not _looks_like_data(path) and (path / "ham10000").is_dir():
        return path / "ham10000"  # the parent of the shared data (e.g. --data-dir ../shared/data)
    return path


def _looks_like_data(folder: Path) -> bool:
    try:
        detect_layout(folder)
        return True
    except DataError:
        return False


def detect_layout(folder: Path) -> str:
    names = {p.name.lower(): p for p in folder.iterdir()}
    if "labels.csv" in names:
        return "folder"
    if any(n.startswith("ham10000_metadata") for n in names):
        return "ham10000"
    if _isic_ground_truth(folder) is not None:
        return "isic2018"
    if any(n.startswith("dermamnist") and n.endswith(".npz") for n in names):
        return "dermamnist"
    raise DataError(f"{folder}: no known data layout (found {', '.join(sorted(names)[:8]) or 'an empty folder'})",
                    hint="expected images/ + labels.csv, HAM10000_metadata.csv + HAM10000_images_part_1/2, an "
                         "ISIC 2018 Task 3 ground-truth CSV with its image folder, or dermamnist*.npz")


def load_folder(folder: Path, check_images: bool = True) -> LesionSet:
    labels_csv = folder / "labels.csv"
    frame = _read_csv(labels_csv)
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    return _finish("folder", folder, frame, [image_dir], labels_csv, check_images)


def load_ham10000(folder: Path, check_images: bool = True) -> LesionSet:
    metadata = next(p for p in sorted(folder.iterdir()) if p.name.lower().startswith("ham10000_metadata"))
    frame = _read_csv(metadata, sep="\t" if metadata.suffix == ".tab" else ",")
    parts = [p for p in sorted(folder.iterdir()) if p.is_dir() and p.name.lower().startswith("ham10000_images")]
    if not parts:
        raise DataError(f"{folder}: HAM10000 metadata but no HAM10000_images_part_1/ or _part_2/ folder",
                        hint="unzip HAM10000_images_part_1.zip and HAM10000_images_part_2.zip into this folder")
    return _finish("ham10000", folder, frame, parts, metadata, check_images)


def _isic_ground_truth(folder: Path) -> Path | None:
    candidates = sorted(folder.glob("*GroundTruth*.csv")) + sorted(folder.glob("*GroundTruth*/*GroundTruth*.csv"))
    for candidate in candidates:
        header = candidate.open(encoding="utf-8", errors="replace").readline().strip().split(",")
        if {c.strip().upper() for c in header} >= set(ISIC_ONE_HOT):
            return candidate
    return None


def load_isic2018(folder: Path, check_images: bool = True) -> LesionSet:
    truth = _isic_ground_truth(folder)
    if truth is None:
        raise DataError(f"{folder}: no ISIC 2018 Task 3 ground-truth CSV (columns image,{','.join(ISIC_ONE_HOT)})",
                        hint="unzip ISIC2018_Task3_Training_GroundTruth.zip into this folder")
    raw = _read_csv(truth)
    raw.columns = [c.strip().upper() if c.strip().upper() in ISIC_ONE_HOT else c.strip().lower() for c in raw.columns]
    if "image" not in raw.columns:
        raise DataError(f"{truth}, line 1 (header): no 'image' column", hint="the first column names the image id")
    one_hot = raw[list(ISIC_ONE_HOT)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(one_hot).all(axis=1) | (np.abs(one_hot.sum(axis=1) - 1.0) > 1e-6)
    if bad.any():
        rows = [f"line {i + 2} ({raw['image'].iloc[i]})" for i in np.flatnonzero(bad)]
        raise offenders_error(f"rows of {truth.name} are not one-hot", rows,
                              hint="each row needs exactly one 1.0 among MEL,NV,BCC,AKIEC,BKL,DF,VASC")
    frame = pd.DataFrame({"image_id": raw["image"].astype(str),
                          "dx": np.array([c.lower() for c in ISIC_ONE_HOT])[one_hot.argmax(axis=1)]})
    groupings = sorted(folder.glob("*LesionGroupings*.csv"))
    if groupings:
        groups = _read_csv(groupings[0]).rename(columns={"image": "image_id"})
        if {"image_id", "lesion_id"} <= set(groups.columns):
            frame = frame.merge(groups[["image_id", "lesion_id"]], on="image_id", how="left")
    image_dirs = [p for p in sorted(folder.iterdir()) if p.is_dir() and "input" in p.name.lower()] or [folder]
    return _finish("isic2018", folder, frame, image_dirs, truth, check_images)


def load_dermamnist(path: Path) -> LesionSet:
    if path.is_dir():
        found = sorted(path.glob("dermamnist*.npz"))
        if not found:
            raise DataError(f"{path}: no dermamnist*.npz", hint="`mlcasebook derm data --download dermamnist`")
        # the largest resolution present is the most useful one
        path = max(found, key=lambda p: p.stat().st_size)
    try:
        archive = np.load(path)
        parts = [(split, archive[f"{split}_images"], archive[f"{split}_labels"]) for split in ("train", "val", "test")
                 if f"{split}_images" in archive.files]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable DermaMNIST npz ({exc})", hint="download it again") from exc
    if not parts:
        raise DataError(f"{path}: no train_images/val_images/test_images arrays", hint="is this a MedMNIST npz?")
    images = np.concatenate([p[1] for p in parts])
    if images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"{path}: images have shape {images.shape[1:]}, expected (size, size, 3) colour",
                        hint="DermaMNIST colour images are (n, size, size, 3)")
    codes = np.concatenate([np.asarray(p[2]).reshape(-1) for p in parts]).astype(np.int64)
    unknown = sorted({int(c) for c in codes if int(c) not in DERMAMNIST_LABELS})
    if unknown:
        raise offenders_error("label codes outside DermaMNIST's 0..6", [str(c) for c in unknown],
                              hint="this is not a DermaMNIST file")
    split_names = np.concatenate([[p[0]] * len(p[1]) for p in parts])
    position = np.concatenate([np.arange(len(p[1])) for p in parts])
    ids = [f"{s}_{i:05d}" for s, i in zip(split_names, position, strict=True)]
    frame = pd.DataFrame({"image_id": ids, "lesion_id": ids, "dx": [DERMAMNIST_LABELS[c] for c in codes],
                          "official_split": split_names, "memory_row": np.arange(len(codes))})
    frame = _with_labels(frame, path)
    frame["path"] = None
    return LesionSet("dermamnist", frame, path, images.astype(np.uint8, copy=False))


def _read_csv(path: Path, sep: str = ",") -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the table ({exc})", hint="it must be a comma-separated file") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _with_labels(frame: pd.DataFrame, source: Path) -> pd.DataFrame:
    dx = frame["dx"].astype(str).str.strip().str.lower()
    known = dx.isin(CLASSES).to_numpy()
    if not known.all():
        bad = [f"{frame['image_id'].iloc[i]} ({dx.iloc[i] or 'empty'!r})" for i in np.flatnonzero(~known)]
        raise offenders_error(f"rows of {source.name} have a diagnosis outside the 7 classes", bad,
                              hint=f"dx must be one of {', '.join(CLASSES)}")
    frame = frame.assign(dx=dx)
    frame["label"] = dx.map({name: i for i, name in enumerate(CLASSES)}).astype(np.int64)
    frame["malignant"] = dx.isin(MALIGNANT)
    return frame


def _finish(name: str, folder: Path, raw: pd.DataFrame, image_dirs: list[Path], table: Path,
            check_images: bool) -> LesionSet:
    missing_columns = [c for c in ("image_id", "dx") if c not in raw.columns]
    if missing_columns:
        raise DataError(f"{table}, line 1 (header): missing column {', '.join(map(repr, missing_columns))}; "
                        f"found {', '.join(map(repr, raw.columns))}",
                        hint="the table needs at least image_id and dx (lesion_id is optional)")
    if raw.empty:
        raise DataError(f"{table}: no rows", hint="add one line per image: image_id,dx[,lesion_id]")
    frame = raw.copy()
    frame["image_id"] = frame["image_id"].astype(str).str.strip()
    duplicated = frame["image_id"].duplicated()
    if duplicated.any():
        raise offenders_error(f"image ids appear twice in {table.name}", frame["image_id"][duplicated].tolist(),
                              hint="each image may have one row only")
    if "lesion_id" not in frame.columns:
        frame["lesion_id"] = frame["image_id"]
    lesion = frame["lesion_id"].astype(str).str.strip().replace({"nan": "", "None": ""})
    frame["lesion_id"] = lesion.where(lesion != "", frame["image_id"])  # no lesion id: the image is its own lesion
    frame = _with_labels(frame, table)
    frame["path"] = _find_images(frame["image_id"].tolist(), image_dirs)
    if check_images:
        _check_images(frame["path"].tolist())
    ordered = ["image_id", "lesion_id", "dx", "label", "malignant", "path"]
    frame = frame[ordered + [c for c in frame.columns if c not in ordered]].reset_index(drop=True)
    return LesionSet(name, frame, folder)


def _find_images(image_ids: list[str], image_dirs: list[Path]) -> list[str]:
    """Each id's file (``<id>.jpg`` or another image suffix, or the id itself as a file name)."""
    by_stem: dict[str, str] = {}
    for directory in image_dirs:
        with os.scandir(directory) as entries:
            for entry in entries:
                stem, suffix = os.path.splitext(entry.name)
                if suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
                    by_stem.setdefault(stem, entry.path)
                    by_stem.setdefault(entry.name, entry.path)
    paths = [by_stem.get(image_id) for image_id in image_ids]
    missing = [image_id for image_id, path in zip(image_ids, paths, strict=True) if path is None]
    if missing:
        where = ", ".join(str(d) for d in image_dirs)
        raise offenders_error(f"images listed in the table are missing from {where}", missing,
                              hint="copy the missing files (<image_id>.jpg) or remove their rows from the table")
    return paths  # type: ignore[return-value]


def _check_images(paths: list[str]) -> None:
    """Open each header (cheap: no pixel decoding) to catch non-images and grayscale files."""
    from PIL import Image, UnidentifiedImageError

    problems: list[str] = []
    for path in paths:
        try:
            with Image.open(path) as image:
                if image.mode not in COLOUR_MODES:
                    problems.append(f"{path} (grayscale, mode {image.mode})")
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            problems.append(f"{path} (not a readable image)")
    if problems:
        raise offenders_error("images are unreadable or not colour", problems,
                              hint="replace these files with the colour JPEG/PNG originals, or remove their rows")


# ---- splits ------------------------------------------------------------------------------


def split_indices(lesion_set: LesionSet, seed: int = 0, validation_fraction: float = 0.2,
                  calibration_fraction: float = 0.1) -> dict[str, np.ndarray]:
    """Row positions for "train", "calibration" and "validation": stratified by dx, grouped by
    lesion_id (no lesion in two parts), deterministic for a seed. Calibration is carved from
    what validation leaves, so the reported validation figures are never tuned on."""
    labels = lesion_set.labels
    groups = lesion_set.frame["lesion_id"].to_numpy()
    rng = np.random.default_rng(seed)
    everything = np.arange(len(labels))
    held = stratified_group_holdout(labels, groups, validation_fraction, rng)
    validation, rest = everything[held], everything[~held]
    held = stratified_group_holdout(labels[rest], groups[rest], calibration_fraction, rng)
    return {"train": rest[~held], "calibration": rest[held], "validation": validation}


def stratified_group_holdout(labels: np.ndarray, groups: np.ndarray, fraction: float,
                             rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of held-out rows: whole groups, about ``fraction`` of each class's rows.

    Each group (lesion) is assigned its most frequent class; within each class the groups are
    shuffled and taken in turn while fewer than ``round(fraction * rows of the class)`` rows are
    held. Written by hand (vectorised) because scikit-learn's StratifiedGroupKFold loops over
    groups in Python: 10 s for 6k lesions against milliseconds here; with one image per lesion
    it holds out exactly ``round(fraction * n)`` of every class.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    _, group_of_row = np.unique(groups, return_inverse=True)
    n_groups = int(group_of_row.max()) + 1
    size = np.bincount(group_of_row, minlength=n_groups)
    per_class = np.zeros((n_groups, len(CLASSES)), dtype=np.int64)
    np.add.at(per_class, (group_of_row, labels), 1)
    group_class = per_class.argmax(axis=1)
    order = rng.permutation(n_groups)
    order = order[np.argsort(group_class[order], kind="stable")]  # shuffled groups, class by class
    ordered_class, ordered_size = group_class[order], size[order]
    rows_before = np.cumsum(ordered_size) - ordered_size
    block_start = np.searchsorted(ordered_class, ordered_class, side="left")
    rows_before_in_class = rows_before - rows_before[block_start]
    target = np.round(fraction * np.bincount(group_class, weights=size, minlength=len(CLASSES)))
    held_group = np.zeros(n_groups, dtype=bool)
    held_group[order[rows_before_in_class < target[ordered_class]]] = True
    return held_group[group_of_row]


def split_record(lesion_set: LesionSet, splits: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """What the split was, for docs/results/derm_split.json."""
    return {"dataset": lesion_set.name, "source": str(lesion_set.source), "seed": seed,
            "method": "stratified_group_holdout: validation = 20 % of each class's images in whole lesions; "
                      "calibration = 10 % of the rest, the same way; train = the remainder (one numpy Generator "
                      "seeded with seed, used twice)",
            "images": len(lesion_set), "lesions": int(lesion_set.frame["lesion_id"].nunique()),
            "parts": {part: {"images": len(rows), "malignant": int(lesion_set.is_malignant[rows].sum()),
                             "class_counts": class_counts(lesion_set.labels[rows])}
                      for part, rows in splits.items()}}


# ---- downloads for online users (never called by default) ---------------------------------


@dataclass(frozen=True)
class ArchiveDownload(Download):
    """A zip whose publisher states no checksum (ISIC, the Dataverse bundle): verified instead by
    opening it as a zip and counting its image/table members."""

    min_members: int = 1

    def verify(self, path: Path) -> bool:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return False
        return sum(n.lower().endswith(IMAGE_SUFFIXES + (".csv", ".zip", ".tab")) for n in names) >= self.min_members


@dataclass(frozen=True)
class TableDownload(Download):
    """A CSV with no stated checksum: verified by its header naming the columns we need."""

    columns: tuple[str, ...] = ()

    def verify(self, path: Path) -> bool:
        try:
            header = path.open(encoding="utf-8").readline().strip().split(",")
        except (OSError, UnicodeDecodeError):
            return False
        return set(self.columns) <= {c.strip() for c in header}


_ZENODO = "https://zenodo.org/records/10519652/files/"
_ISIC = "https://isic-challenge-data.s3.amazonaws.com/2018/"
_NO_CHECKSUM = "none:"  # the publisher states none; the subclasses' verify() checks the content
SOURCES: dict[str, tuple[Download, ...]] = {
    # MedMNIST v3 (Zenodo record 10519652), MD5s as MedMNIST's INFO table states them
    "dermamnist": (Download(_ZENODO + "dermamnist.npz?download=1", "md5:0744692d530f8e62ec473284d019b0c7",
                            "dermamnist.npz"),),
    "dermamnist-64": (Download(_ZENODO + "dermamnist_64.npz?download=1", "md5:b70a2f5635c6199aeaa28c31d7202e1f",
                               "dermamnist_64.npz"),),
    "dermamnist-128": (Download(_ZENODO + "dermamnist_128.npz?download=1", "md5:2defd784463fa5243564e855ed717de1",
                                "dermamnist_128.npz"),),
    "dermamnist-224": (Download(_ZENODO + "dermamnist_224.npz?download=1", "md5:8974907d8e169bef5f5b96bc506ae45d",
                                "dermamnist_224.npz"),),
    # ISIC 2018 Task 3 training set = HAM10000 (10,015 images, ~2.6 GB) + one-hot ground truth + lesion ids
    "isic2018": (ArchiveDownload(_ISIC + "ISIC2018_Task3_Training_Input.zip", _NO_CHECKSUM,
                                 "ISIC2018_Task3_Training_Input.zip", min_members=10015),
                 ArchiveDownload(_ISIC + "ISIC2018_Task3_Training_GroundTruth.zip", _NO_CHECKSUM,
                                 "ISIC2018_Task3_Training_GroundTruth.zip", min_members=1),
                 TableDownload(_ISIC + "ISIC2018_Task3_Training_LesionGroupings.csv", _NO_CHECKSUM,
                               "ISIC2018_Task3_Training_LesionGroupings.csv", columns=("image", "lesion_id"))),
    # the Harvard Dataverse release (doi:10.7910/DVN/DBW86T) as one bundle of all its files
    "ham10000": (ArchiveDownload("https://dataverse.harvard.edu/api/access/dataset/:persistentId/"
                                 "?persistentId=doi:10.7910/DVN/DBW86T", _NO_CHECKSUM, "HAM10000_dataverse.zip",
                                 min_members=3),),
}


def download_dataset(source: str, target_dir: Path | None = None, progress: bool = True) -> Path:
    """Fetch (resuming) and unpack a public source into ``target_dir`` (default: the cache's
    ``derm/<source>``); returns the .npz or folder to pass to ``load_dataset``."""
    if source not in SOURCES:
        raise DataError(f"unknown source '{source}'", hint=f"use one of {', '.join(SOURCES)}")
    folder = target_dir or cache_dir() / "derm" / source
    fetched = [fetch(download, folder, progress) for download in SOURCES[source]]
    if source.startswith("dermamnist"):
        return fetched[0]
    for archive in fetched:
        if archive.suffix == ".zip":
            _unzip_all(archive, folder)
    return folder


def _unzip_all(archive: Path, folder: Path) -> None:
    """Unpack a zip and the zips inside it (the Dataverse bundle nests the two image parts)."""
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(folder)
        nested = [folder / n for n in bundle.namelist() if n.lower().endswith(".zip")]
    for inner in nested:
        with zipfile.ZipFile(inner) as part:
            flat = not any("/" in n for n in part.namelist())
            part.extractall(folder / inner.stem if flat else folder)  # flat parts get their own folder
