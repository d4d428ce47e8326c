"""Bayesian MF (Gibbs sampling) on a small real subset of ML-100k and on data drawn from the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcasebook.core.errors import CasebookError
from mlcasebook.core.metrics import rmse
from mlcasebook.core.splits import random_holdout
from mlcasebook.recsys.data import RatingData
from mlcasebook.recsys.models.baselines import BiasBaseline, PopularityRecommender
from mlcasebook.recsys.models.bayesian import BayesianMF, item_side_features, user_side_features

# short chains keep the file fast; the benchmark runs the defaults
FAST = {"rank": 8, "burn_in": 20, "n_samples": 30, "thin": 1}


@pytest.fixture(scope="module")
def split(ml100k):
    """Users 1..300 of ML-100k (about 30k ratings, with user attributes and genres), 80/20."""
    ratings = ml100k.ratings[ml100k.ratings["user_id"] <= 300].reset_index(drop=True)
    subset = RatingData("ml-100k-subset", ratings, ml100k.items, ml100k.users, dict(ml100k.notes))
    train_rows, test_rows = random_holdout(len(ratings), 0.2, seed=0)
    return subset.with_ratings(train_rows), subset.ratings.iloc[test_rows]


@pytest.fixture(scope="module")
def fitted(split) -> BayesianMF:
    return BayesianMF(**FAST, seed=0).fit(split[0])


def test_beats_bias_baseline_and_item_mean_on_holdout(split, fitted):
    train, test = split
    users, items, truth = test["user_id"].to_numpy(), test["item_id"].to_numpy(), test["rating"].to_numpy()
    ours = rmse(truth, fitted.predict_many(users, items))
    baseline = rmse(truth, BiasBaseline().fit(train).predict_many(users, items))
    item_mean = rmse(truth, PopularityRecommender().fit(train).predict_many(users, items))
    assert ours < baseline - 0.01, (ours, baseline)
    assert ours < item_mean - 0.03, (ours, item_mean)


def test_predictions_are_finite_clipped_and_cover_unknown_ids(fitted):
    users = np.array([*fitted.user_ids_[:50], 10**9])
    items = np.array([*fitted.item_ids_[:50], -5])
    predicted = fitted.predict_many(users, items)
    assert np.isfinite(predicted).all()
    assert predicted.min() >= 1.0 and predicted.max() <= 5.0
    scores = fitted.score_users(fitted.user_ids_[:3])
    assert scores.shape == (3, len(fitted.item_ids_))
    assert scores.min() >= 1.0 and scores.max() <= 5.0
    # ranking scores are the same posterior-mean ratings that predict() returns
    pairs = fitted.predict_many(np.repeat(fitted.user_ids_[:3], 5), np.tile(fitted.item_ids_[:5], 3))
    np.testing.assert_allclose(scores[:, :5].ravel(), pairs, rtol=1e-5)


def test_same_seed_same_predictions(split):
    train, test = split
    users, items = test["user_id"].to_numpy()[:500], test["item_id"].to_numpy()[:500]
    quick = FAST | {"n_samples": 3, "burn_in": 2}
    first = BayesianMF(**quick, seed=3).fit(train).predict_many(users, items)
    again = BayesianMF(**quick, seed=3).fit(train).predict_many(users, items)
    other = BayesianMF(**quick, seed=4).fit(train).predict_many(users, items)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_save_load_round_trip(fitted, tmp_path):
    path = tmp_path / "bayesian.pt"
    fitted.save(path)
    loaded = BayesianMF.load(path)
    users, items = fitted.user_ids_[:40], fitted.item_ids_[-40:]
    np.testing.assert_array_equal(loaded.predict_many(users, items), fitted.predict_many(users, items))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.recommend(int(users[0]), k=5) == fitted.recommend(int(users[0]), k=5)


def test_fold_in_moves_predictions_towards_new_ratings(split):
    model = BayesianMF(**FAST, seed=1).fit(split[0])
    counts = np.diff(model.history_.indptr)
    row = int(np.argmin(counts))  # the lightest user: a few new ratings are real news
    user = int(model.user_ids_[row])
    unseen = model.item_ids_[np.asarray(model.seen_[row].todense()).ravel() == 0]
    before = model.predict_many(np.full(len(unseen), user), unseen)
    order = np.argsort(before)
    # surprise the model both ways: love films it expected to be dull, then hate ones it expected to please
    # (away from the clipped ends of the scale, where a real move could not show)
    inside = order[(before[order] > 1.5) & (before[order] < 4.5)]
    low, high = inside[:3], inside[-3:]
    loved, hated = unseen[low], unseen[high]
    model.fold_in(user, loved, np.full(3, 5.0))
    after_loved = model.predict_many(np.full(3, user), loved)
    assert (after_loved > before[low] + 0.2).all(), (before[low], after_loved)
    before_hated = model.predict_many(np.full(3, user), hated)
    model.fold_in(user, hated, np.full(3, 1.0))
    after_hated = model.predict_many(np.full(3, user), hated)
    assert (after_hated < before_hated - 0.2).all(), (before_hated, after_hated)
    assert {int(i) for i in loved} & {r.item_id for r in model.recommend(user, k=50)} == set()

    # a newcomer: starts at the prior, then follows their ratings
    newcomer = 10**6
    model.fold_in(newcomer, loved, np.array([5.0, 5.0, 5.0]))
    assert newcomer in model.user_ids_
    assert (model.predict_many(np.full(3, newcomer), loved) > model.predict_many(np.full(3, -1), loved)).all()
    assert len(model.recommend(newcomer, k=5)) == 5


def test_recovers_a_low_rank_matrix_and_the_noise_level():
    """Data drawn from the model itself: the posterior mean should reach the noise floor."""
    rng = np.random.default_rng(0)
    n_users, n_items, rank, noise = 300, 200, 3, 0.3
    truth = (3.0 + rng.normal(0, 0.3, (n_users, 1)) + rng.normal(0, 0.3, (1, n_items))
             + rng.normal(0, 0.6, (n_users, rank)) @ rng.normal(0, 0.6, (rank, n_items)))
    observed = rng.random((n_users, n_items)) < 0.3
    users, items = np.nonzero(observed)
    ratings = pd.DataFrame({"user_id": users, "item_id": items,
                            "rating": truth[users, items] + rng.normal(0, noise, len(users)),
                            "timestamp": np.zeros(len(users), dtype=np.int64)})
    data = RatingData("synthetic", ratings, pd.DataFrame(index=pd.Index(np.arange(n_items), name="item_id")))
    # clipping would bias the check: widen the scale through the data's own range
    model = BayesianMF(rank=3, burn_in=20, n_samples=20, thin=1, implicit=False, side_features=False).fit(data)
    hidden_u, hidden_i = np.nonzero(~observed)
    error = rmse(truth[hidden_u, hidden_i], model.predict_many(hidden_u, hidden_i))
    assert error < 0.2, error  # far below the noise (0.3) and the spread of the truth (~0.8)
    assert 0.25 < 1 / np.sqrt(model.alpha_samples_.mean()) < 0.35


def test_side_features_one_hot_what_they_can(ml100k):
    users = user_side_features(ml100k.users, ml100k.users.index.to_numpy())
    # 5 age bands + 2 genders + 21 occupations; zip codes (hundreds of levels) are left out
    assert users.shape == (len(ml100k.users), 5 + 2 + 21)
    np.testing.assert_array_equal(users.sum(axis=1).A.ravel(), 3)
    items = item_side_features(ml100k.items, np.array([1, 2, 99999]))  # an unknown item: an empty row
    assert items[2].nnz == 0 and items[0].nnz >= 2
    assert user_side_features(None, np.arange(4)).shape == (4, 0)


@pytest.mark.parametrize("bad", [{"rank": 0}, {"n_samples": 2.5}, {"thin": -1}, {"burn_in": -3},
                                 {"link_precision": 0.0}])
def test_bad_hyper_parameters_get_a_clear_error(split, bad):
    with pytest.raises(CasebookError, match="bayesian-mf"):
        BayesianMF(**(FAST | bad)).fit(split[0])
