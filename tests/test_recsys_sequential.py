"""Phase 3 of the recommender: the sequence-aware, context-aware model (SASRec-style).

Runs on a real subset of MovieLens-100k (users 1-200, films at least 5 of them rated; ~20k
timestamped ratings) through the conftest fixture, which skips with the reason when no local
copy exists. A small network (32-d, one block, 30 events, <= 4 epochs) keeps it to seconds.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mlcasebook.core.errors import CasebookError, DataError
from mlcasebook.recsys.evaluate import ranking_experiment, time_split
from mlcasebook.recsys.models.baselines import PopularityRecommender
from mlcasebook.recsys.models.registry import load_model
from mlcasebook.recsys.models.sequential import SequentialRecommender, event_context

SMALL = {"dim": 32, "layers": 1, "heads": 1, "max_len": 30, "max_epochs": 4, "patience": 2}
NEW_USER = 10**6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: on a busy 2-core box a second one mostly waits (and spins) for the first."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def subset(ml100k):
    ratings = ml100k.ratings[ml100k.ratings["user_id"] <= 200]
    counts = ratings["item_id"].value_counts()
    films = np.sort(counts.index[counts >= 5])
    small = ml100k.with_ratings(ratings[ratings["item_id"].isin(films)])
    small.items = ml100k.items.loc[films]
    return small


@pytest.fixture(scope="module")
def experiment(subset):
    train, test = time_split(subset, 0.2)
    fitted = {}
    table = ranking_experiment(train, test, {"popularity": PopularityRecommender,
                                             "sequential": lambda: SequentialRecommender(**SMALL)},
                               progress=False, fitted=fitted)
    return train, test, table.set_index("model"), fitted["sequential"]


def test_beats_popularity_on_a_time_holdout(experiment):
    _, _, table, model = experiment
    assert table.loc["sequential", "ndcg@10"] > 1.2 * table.loc["popularity", "ndcg@10"], table
    assert table.loc["sequential", "hr@10"] > table.loc["popularity", "hr@10"], table
    # early stopping watched a validation carved from training (epoch 0: before any training)
    scores = [row["val_ndcg@10"] for row in model.history_ if "val_ndcg@10" in row]
    assert 2 <= len(scores) <= SMALL["max_epochs"] + 1 and max(scores) > 0
    # then it learned the held-out (latest) events too, for as many epochs as validation chose
    best = int(np.argmax(scores))
    assert sum(row.get("refit", False) for row in model.history_) == best


def test_fold_in_changes_the_next_recommendations_and_hides_the_new_items(experiment):
    _, test, _, model = experiment
    model = _copy(model)
    user = int(test.ratings["user_id"].iloc[0])
    before = model.score_users(np.array([user]))[0]
    top = [r.item_id for r in model.recommend(user, k=10)]
    stamp = int(model.seq_times_[model.offsets_[model._index(user) + 1] - 1]) + 600
    model.fold_in(user, np.array(top[:3]), np.array([5.0, 5.0, 4.0]), np.array([stamp, stamp + 60, stamp + 120]))
    after = model.score_users(np.array([user]))[0]
    assert np.abs(after - before).max() > 1e-3  # the new events entered the sequence
    again = [r.item_id for r in model.recommend(user, k=10)]
    assert not set(top[:3]) & set(again) and again != top
    # a brand-new user gets a history, recommendations, and never their own items back
    model.fold_in(NEW_USER, np.array(top[:2]), np.array([4.0, 5.0]))
    fresh = [r.item_id for r in model.recommend(NEW_USER, k=10)]
    assert len(fresh) == 10 and not set(top[:2]) & set(fresh)


def test_time_of_day_and_weekday_change_the_scores(experiment):
    _, _, _, model = experiment
    users = model.user_ids_[:20]
    base = model.score_users(users)
    shifted = _copy(model)
    # +7 hours moves every event to another hour (and some to another day) but keeps every gap
    shifted.seq_times_ = model.seq_times_ + 7 * 3600
    moved = shifted.score_users(users)
    assert np.abs(moved - base).max() > 1e-3
    no_context = SequentialRecommender(**(SMALL | {"use_context": False}))
    assert not no_context.use_context  # the switch exists to measure what context adds


def test_context_buckets():
    stamps = np.array([0, 3600 * 25, 3600 * 25 + 1, 86_400 * 4])  # Thu 00:00, Fri 01:00, +1 s, Mon
    context = event_context(np.array([0.5, 3.0, 4.5, 5.0]), stamps, np.roll(stamps, 1),
                            np.array([True, False, False, False]))
    assert context["hour"].tolist() == [1, 2, 2, 1]
    assert context["weekday"].tolist() == [4, 5, 5, 1]  # 1 = Monday
    assert context["rating"].tolist() == [2, 7, 10, 11]
    assert context["gap"][0] == 1 and context["gap"][2] == 3 and context["gap"][1] > context["gap"][2]


def test_save_load_round_trip(experiment, tmp_path):
    _, _, _, model = experiment
    path = tmp_path / "sequential.pt"
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded, SequentialRecommender)
    users = model.user_ids_[:50]
    np.testing.assert_array_equal(loaded.score_users(users), model.score_users(users))
    assert [r.item_id for r in loaded.recommend(users[0])] == [r.item_id for r in model.recommend(users[0])]


def test_same_seed_same_scores_other_seed_other_scores(subset):
    data = subset.with_ratings(subset.ratings[subset.ratings["user_id"] <= 60])
    # bag terms over the 150 most rated films only: the path a 9k-film catalogue takes
    quick = SMALL | {"max_epochs": 1, "bag_items": 150}
    users = np.sort(data.ratings["user_id"].unique())[:10]
    first = SequentialRecommender(**quick, seed=3).fit(data).score_users(users)
    second = SequentialRecommender(**quick, seed=3).fit(data).score_users(users)
    other = SequentialRecommender(**quick, seed=4).fit(data).score_users(users)
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - other).max() > 1e-4
    assert first.shape == (10, len(subset.items)) and np.isfinite(first).all()


def test_bad_input_gets_a_clear_error(subset):
    data = subset.with_ratings(subset.ratings.drop(columns="timestamp").head(200))
    with pytest.raises(DataError, match="timestamp"):
        SequentialRecommender(**SMALL).fit(data)
    with pytest.raises(CasebookError, match="validation"):
        SequentialRecommender(**(SMALL | {"validation": "tail"})).fit(subset.with_ratings(subset.ratings.head(200)))


def _copy(model: SequentialRecommender) -> SequentialRecommender:
    """A shallow copy is independent here: fold-in replaces arrays rather than writing into them."""
    return copy.copy(model)
