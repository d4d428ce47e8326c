"""Derm data: every layout on folders made here from real HAM10000 images, broken folders, the split."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mlcasebook.core.errors import DataError
from mlcasebook.derm.data import (
    CLASSES,
    MALIGNANT,
    LesionSet,
    load_dataset,
    read_image,
    split_indices,
    stratified_group_holdout,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000"


@pytest.fixture(scope="module")
def shared_labels() -> pd.DataFrame:
    if not (SHARED / "labels.csv").is_file():
        pytest.skip(f"shared HAM10000 copy not found at {SHARED}")
    return pd.read_csv(SHARED / "labels.csv")


@pytest.fixture(scope="module")
def sample(shared_labels) -> pd.DataFrame:
    """Two real images of every class (14 rows)."""
    return shared_labels.groupby("dx", sort=True).head(2).reset_index(drop=True)


def make_folder(root: Path, rows: pd.DataFrame, columns=("image_id", "lesion_id", "dx")) -> Path:
    (root / "images").mkdir(parents=True)
    for image_id in rows["image_id"]:
        shutil.copy(SHARED / "images" / f"{image_id}.jpg", root / "images")
    rows[list(columns)].to_csv(root / "labels.csv", index=False)
    return root


def test_folder_layout_loads_labels_and_pixels(tmp_path, sample):
    loaded = load_dataset(make_folder(tmp_path, sample))
    assert len(loaded) == 14 and loaded.name == "folder"
    assert [CLASSES[k] for k in loaded.labels] == sample["dx"].tolist()
    assert loaded.is_malignant.tolist() == sample["dx"].isin(MALIGNANT).tolist()
    pixels = loaded.read_images(size=64, progress=False)
    assert pixels.shape == (14, 64, 64, 3) and pixels.dtype == np.uint8
    full = loaded.read_images(size=224, indices=np.array([3]), progress=False)[0]
    original = np.asarray(Image.open(SHARED / "images" / f"{sample['image_id'][3]}.jpg").convert("RGB"))
    np.testing.assert_array_equal(full, original)  # same size: pixels pass through untouched


def test_lesion_id_is_optional_and_parent_folder_is_found(tmp_path, sample):
    make_folder(tmp_path / "ham10000", sample, columns=("image_id", "dx"))
    loaded = load_dataset(tmp_path)  # the parent of ham10000/, like --data-dir ../shared/data
    assert loaded.frame["lesion_id"].tolist() == loaded.frame["image_id"].tolist()


def test_broken_folder_lists_every_offender_in_one_error(tmp_path, sample):
    folder = make_folder(tmp_path, sample)
    for image_id in sample["image_id"][:12]:
        (folder / "images" / f"{image_id}.jpg").unlink()
    with pytest.raises(DataError) as error:
        load_dataset(folder)
    message = str(error.value)
    assert message.startswith("12 images listed in the table are missing")
    assert sample["image_id"][0] in message and sample["image_id"][9] in message
    assert sample["image_id"][10] not in message and "and 2 more" in message


def test_unknown_diagnoses_grayscale_and_corrupt_images_are_named(tmp_path, sample):
    folder = make_folder(tmp_path, sample)
    table = pd.read_csv(folder / "labels.csv")
    table.loc[[1, 4], "dx"] = ["melanoma", ""]
    table.to_csv(folder / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"2 rows of labels.csv have a diagnosis outside") as error:
        load_dataset(folder)
    assert "'melanoma'" in str(error.value) and sample["image_id"][4] in str(error.value)

    table["dx"] = sample["dx"]
    table.to_csv(folder / "labels.csv", index=False)
    gray, corrupt = (folder / "images" / f"{sample['image_id'][i]}.jpg" for i in (0, 5))
    Image.open(gray).convert("L").save(gray)
    corrupt.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="2 images are unreadable or not colour") as error:
        load_dataset(folder)
    assert "grayscale, mode L" in str(error.value) and "not a readable image" in str(error.value)

    # without the header check the decoder still reports the file instead of crashing
    loaded = load_dataset(folder, check_images=False)
    with pytest.raises(DataError, match="could not be decoded") as error:
        loaded.read_images(32, indices=np.array([0, 5, 6]), progress=False)
    assert gray.name in str(error.value) and corrupt.name in str(error.value)


def test_truncated_jpeg_is_a_clear_error(tmp_path, sample):
    source = SHARED / "images" / f"{sample['image_id'][0]}.jpg"
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(source.read_bytes()[:2000])
    with pytest.raises(DataError, match="cut.jpg: unreadable"):
        read_image(truncated)


def test_missing_column_and_unknown_layout(tmp_path, sample):
    folder = make_folder(tmp_path / "a", sample, columns=("image_id", "lesion_id"))
    with pytest.raises(DataError, match="missing column 'dx'"):
        load_dataset(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no known data layout"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DataError, match="unknown layout"):
        load_dataset(folder, layout="kaggle")


def test_official_ham10000_layout(tmp_path, sample):
    for part, rows in (("HAM10000_images_part_1", sample[:7]), ("HAM10000_images_part_2", sample[7:])):
        (tmp_path / part).mkdir()
        for image_id in rows["image_id"]:
            shutil.copy(SHARED / "images" / f"{image_id}.jpg", tmp_path / part)
    sample.drop(columns=["malignant", "melanoma"]).to_csv(tmp_path / "HAM10000_metadata.csv", index=False)
    loaded = load_dataset(tmp_path)
    assert loaded.name == "ham10000" and len(loaded) == 14
    assert loaded.frame["dx"].tolist() == sample["dx"].tolist()
    assert {Path(p).parent.name for p in loaded.frame["path"]} == {"HAM10000_images_part_1", "HAM10000_images_part_2"}


def test_isic2018_one_hot_layout_with_lesion_groupings(tmp_path, sample):
    inputs = tmp_path / "ISIC2018_Task3_Training_Input"
    inputs.mkdir()
    for image_id in sample["image_id"]:
        shutil.copy(SHARED / "images" / f"{image_id}.jpg", inputs)
    truth = pd.DataFrame({"image": sample["image_id"]})
    for column in ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"):
        truth[column] = (sample["dx"].str.upper() == column).astype(float)
    (tmp_path / "ISIC2018_Task3_Training_GroundTruth").mkdir()
    truth.to_csv(tmp_path / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv",
                 index=False)
    sample[["image_id", "lesion_id"]].rename(columns={"image_id": "image"}).to_csv(
        tmp_path / "ISIC2018_Task3_Training_LesionGroupings.csv", index=False)
    loaded = load_dataset(tmp_path)
    assert loaded.name == "isic2018"
    assert loaded.frame["dx"].tolist() == sample["dx"].tolist()
    assert loaded.frame["lesion_id"].tolist() == sample["lesion_id"].tolist()

    truth.loc[2, "NV"] = 1.0  # two ones in a row
    truth.to_csv(tmp_path / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv",
                 index=False)
    with pytest.raises(DataError, match="not one-hot") as error:
        load_dataset(tmp_path)
    assert "line 4" in str(error.value)


def test_dermamnist_npz_maps_labels_by_name(tmp_path):
    rng = np.random.default_rng(0)
    # MedMNIST codes: 4 = melanoma, 5 = melanocytic nevi (some copies swap them; we must not)
    codes = {"train": [4, 5, 5, 0], "val": [1, 6], "test": [2, 3, 4]}
    arrays = {}
    for split, labels in codes.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (len(labels), 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.array(labels, dtype=np.uint8).reshape(-1, 1)
    np.savez(tmp_path / "dermamnist.npz", **arrays)
    loaded = load_dataset(tmp_path)
    assert loaded.frame["dx"].tolist() == ["mel", "nv", "nv", "akiec", "bcc", "vasc", "bkl", "df", "mel"]
    assert loaded.frame["official_split"].tolist() == ["train"] * 4 + ["val"] * 2 + ["test"] * 3
    pixels = loaded.read_images(28, progress=False)
    np.testing.assert_array_equal(pixels[5], arrays["val_images"][1])
    assert loaded.subset(np.array([6])).read_images(56, progress=False).shape == (1, 56, 56, 3)

    arrays["test_labels"][0, 0] = 9
    np.savez(tmp_path / "dermamnist.npz", **arrays)
    with pytest.raises(DataError, match="outside DermaMNIST's 0..6"):
        load_dataset(tmp_path / "dermamnist.npz")


def lesion_set_from(labels: np.ndarray, lesions: np.ndarray) -> LesionSet:
    frame = pd.DataFrame({"image_id": [f"img{i}" for i in range(len(labels))], "lesion_id": lesions,
                          "dx": np.array(CLASSES)[labels], "label": labels,
                          "malignant": np.isin(np.array(CLASSES)[labels], MALIGNANT)})
    return LesionSet("synthetic", frame)


def test_split_is_grouped_stratified_and_deterministic(shared_labels):
    labels = shared_labels["dx"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    # real class mix, but lesions of 1-4 images (the official HAM10000 has repeat images per lesion)
    rng = np.random.default_rng(1)
    order = np.argsort(labels, kind="stable")
    lesion_of_sorted = np.cumsum(rng.random(len(labels)) < 0.45)
    lesion_of_sorted += labels[order] * len(labels)  # a lesion never spans two diagnoses
    lesions = np.empty(len(labels), dtype=np.int64)
    lesions[order] = lesion_of_sorted
    lesion_set = lesion_set_from(labels, lesions)
    splits = split_indices(lesion_set, seed=0)
    everything = np.concatenate(list(splits.values()))
    assert len(everything) == len(labels) == len(np.unique(everything))
    owners = [set(lesions[rows]) for rows in splits.values()]
    assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1:])
    total = np.bincount(labels, minlength=7)
    validation = np.bincount(labels[splits["validation"]], minlength=7)
    calibration = np.bincount(labels[splits["calibration"]], minlength=7)
    # whole lesions are taken until the class's share is reached: off by less than one lesion
    largest = np.unique(lesions, return_counts=True)[1].max()
    assert largest >= 3
    assert np.all(np.abs(validation - 0.2 * total) < largest)
    assert np.all(np.abs(calibration - 0.1 * (total - validation)) < largest)
    again = split_indices(lesion_set, seed=0)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)
    assert not np.array_equal(splits["validation"], split_indices(lesion_set, seed=1)["validation"])


def test_holdout_with_single_image_lesions_is_exact():
    labels = np.repeat(np.arange(7), [10, 20, 30, 5, 40, 100, 7])
    held = stratified_group_holdout(labels, np.arange(len(labels)), 0.2, np.random.default_rng(0))
    assert np.bincount(labels[held], minlength=7).tolist() == [2, 4, 6, 1, 8, 20, 1]


def test_shared_copy_matches_its_readme(shared_labels):
    loaded = load_dataset(SHARED)
    counts = dict(zip(CLASSES, np.bincount(loaded.labels, minlength=7).tolist(), strict=True))
    assert counts == {"nv": 4323, "bkl": 583, "mel": 491, "bcc": 264, "akiec": 183, "vasc": 80, "df": 60}
    assert int(loaded.is_malignant.sum()) == 938
    splits = split_indices(loaded, seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"train": 4307, "calibration": 479, "validation": 1198}


def test_downloads_verify_and_unpack(tmp_path, sample, monkeypatch):
    """The online path, served from file:// URLs: checksum for DermaMNIST, content checks and
    nested zips for the Dataverse bundle, a corrupt archive refused."""
    import hashlib
    import zipfile

    from mlcasebook.derm import data as derm_data
    from mlcasebook.derm.data import ArchiveDownload, Download, download_dataset

    rng = np.random.default_rng(0)
    served = tmp_path / "served"
    served.mkdir()
    np.savez(served / "dermamnist.npz", train_images=rng.integers(0, 256, (3, 28, 28, 3), dtype=np.uint8),
             train_labels=np.array([[0], [4], [5]], dtype=np.uint8))
    digest = hashlib.md5((served / "dermamnist.npz").read_bytes()).hexdigest()
    monkeypatch.setitem(derm_data.SOURCES, "dermamnist", (
        Download((served / "dermamnist.npz").as_uri(), f"md5:{digest}", "dermamnist.npz"),))
    npz = download_dataset("dermamnist", tmp_path / "cache1", progress=False)
    assert load_dataset(npz).frame["dx"].tolist() == ["akiec", "mel", "nv"]

    part = served / "HAM10000_images_part_1.zip"
    with zipfile.ZipFile(part, "w") as archive:  # flat, as the Dataverse parts are
        for image_id in sample["image_id"]:
            archive.write(SHARED / "images" / f"{image_id}.jpg", f"{image_id}.jpg")
    bundle = served / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.write(part, part.name)
        archive.writestr("HAM10000_metadata.csv", sample[["lesion_id", "image_id", "dx"]].to_csv(index=False))
    monkeypatch.setitem(derm_data.SOURCES, "ham10000", (
        ArchiveDownload(bundle.as_uri(), "none:", "HAM10000_dataverse.zip", min_members=2),))
    folder = download_dataset("ham10000", tmp_path / "cache2", progress=False)
    loaded = load_dataset(folder)
    assert loaded.name == "ham10000" and len(loaded) == 14

    broken = served / "broken.zip"
    broken.write_bytes(bundle.read_bytes()[:500])
    monkeypatch.setitem(derm_data.SOURCES, "ham10000", (
        ArchiveDownload(broken.as_uri(), "none:", "HAM10000_dataverse.zip", min_members=2),))
    with pytest.raises(DataError, match="checksum mismatch"):
        download_dataset("ham10000", tmp_path / "cache3", progress=False)
