"""Customer segmentation: RFM features computed by hand on a tiny purchase log, the number of
segments recovered on planted clusters (k-means by silhouette, Gaussian mixture by BIC), names
from the RFM grid, and the real CDNOW file when Lifetimes ships it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from mlcasebook.automl.segment import (
    RFM,
    SEGMENT_ACTIONS,
    load_cdnow_purchases,
    rfm_features,
    segment_customers,
    segment_figure,
    segment_profiles,
)
from mlcasebook.core.errors import DataError


def _planted(n_clusters: int, per_cluster: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs in 3-D with unit spread, centred on the axes at +-10 (at least 14 apart)."""
    rng = np.random.default_rng(seed)
    centres = 10 * np.vstack([np.eye(3), -np.eye(3)])[:n_clusters]
    truth = np.repeat(np.arange(n_clusters), per_cluster)
    return centres[truth] + rng.normal(size=(len(truth), 3)), truth


def _fake_rfm(n_rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"recency": rng.integers(1, 500, n_rows), "frequency": rng.integers(1, 20, n_rows),
                         "monetary": rng.gamma(2.0, 50.0, n_rows)}, index=[f"c{i}" for i in range(n_rows)])


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
@pytest.mark.parametrize("n_clusters", [3, 5])
def test_segmentation_finds_the_planted_number_of_clusters(method, n_clusters):
    features, truth = _planted(n_clusters, seed=n_clusters)
    rfm = _fake_rfm(len(features))  # profiles only; clustering runs on the planted features
    result = segment_customers(rfm, method, k_range=range(2, 9), seed=0, features=features)
    assert result.k == n_clusters
    assert adjusted_rand_score(truth, result.labels) > 0.95
    assert len(result.selection) == 7 and len(result.profiles) == n_clusters


def test_rfm_features_by_hand():
    purchases = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b"],
        "date": pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-10", "2020-01-05"]),
        "dollars": [10.0, 5.0, 20.0, 7.5],
    })
    rfm = rfm_features(purchases)  # snapshot = 2020-01-11
    assert rfm.loc["a"].tolist() == [1, 2, 35.0]      # last bought the day before; 2 order days
    assert rfm.loc["b"].tolist() == [6, 1, 7.5]
    with pytest.raises(DataError, match="lack the columns"):
        rfm_features(purchases.drop(columns="dollars"))


def test_profiles_shares_and_names():
    rfm = pd.DataFrame({"recency": [5, 10, 20, 400, 450, 500, 480, 300],
                        "frequency": [12, 15, 9, 1, 1, 1, 1, 3],
                        "monetary": [500.0, 800.0, 300.0, 10.0, 20.0, 15.0, 5.0, 60.0]})
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    profile = segment_profiles(rfm, labels)
    assert profile["share_of_revenue"].sum() == pytest.approx(1.0)
    assert profile["share_of_customers"].sum() == pytest.approx(1.0)
    by_id = profile.set_index("segment_id")
    assert by_id.loc[0, "segment"] == "champions"   # recent, many orders
    assert by_id.loc[1, "segment"] == "lost"        # one order, long ago
    assert by_id.loc[0, "share_of_revenue"] == pytest.approx(1600 / 1710)
    assert profile["segment"].iloc[0] == "champions"  # sorted by revenue
    assert all(action in SEGMENT_ACTIONS.values() for action in profile["action"])


def test_same_name_is_told_apart_by_spend():
    rfm = pd.DataFrame({"recency": [500, 490, 495, 505], "frequency": [1, 1, 1, 1],
                        "monetary": [10.0, 12.0, 200.0, 220.0]})
    profile = segment_profiles(rfm, np.array([0, 0, 1, 1]))
    assert set(profile["segment"]) == {"lost (higher spend)", "lost (lower spend)"}


def test_too_few_customers_and_unknown_method_are_clear_errors():
    rfm = _fake_rfm(3)
    with pytest.raises(DataError, match="cannot segment"):
        segment_customers(rfm, "kmeans", k_range=range(3, 9))
    with pytest.raises(DataError, match="unknown segmentation method"):
        segment_customers(_fake_rfm(50), "dbscan")


def test_cdnow_rfm_and_a_figure(tmp_path):
    try:
        purchases = load_cdnow_purchases()
    except DataError as exc:
        pytest.skip(f"CDNOW not available: {exc}")
    rfm = rfm_features(purchases)
    assert len(purchases) == 69_659 and len(rfm) == 23_570
    assert rfm["frequency"].min() == 1 and (rfm["recency"] >= 1).all()
    sample = rfm.sample(2000, random_state=0)
    result = segment_customers(sample, "kmeans", k_range=range(3, 5), seed=0, sample_size=1000)
    assert set(result.profiles.columns) >= {"segment", "customers", "share_of_revenue", *["orders", "spend"]}
    assert result.profiles["customers"].sum() == len(sample)
    segment_figure(sample, result).savefig(tmp_path / "segments.png")
    assert (tmp_path / "segments.png").stat().st_size > 10_000
    assert list(RFM) == ["recency", "frequency", "monetary"]


def test_bad_purchase_file_is_a_data_error(tmp_path):
    bad = tmp_path / "purchases.txt"
    bad.write_text("id date cds dollars\n1 notadate 1 2.0\n")
    with pytest.raises(DataError, match="could not read"):
        load_cdnow_purchases(bad)
