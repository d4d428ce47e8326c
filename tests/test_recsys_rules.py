"""Phase 1 rules model on a small real subset of MovieLens latest-small (with OMDB credits)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from mlcasebook.core.errors import CasebookError
from mlcasebook.core.metrics import ranking_report
from mlcasebook.core.splits import per_group_time_split
from mlcasebook.recsys.data import RatingData
from mlcasebook.recsys.models.base import UnknownIdError
from mlcasebook.recsys.models.rules import RuleBasedRecommender

K = 10


@pytest.fixture(scope="module")
def split(movielens_small_subset):
    train_rows, test_rows = per_group_time_split(movielens_small_subset.ratings, "user_id", "timestamp", 0.2)
    return movielens_small_subset.with_ratings(train_rows), movielens_small_subset.with_ratings(test_rows)


@pytest.fixture(scope="module")
def fitted(split) -> RuleBasedRecommender:
    return RuleBasedRecommender().fit(split[0])


def holdout_report(scores: np.ndarray, model: RuleBasedRecommender, test: RatingData) -> dict:
    """HR/NDCG@10 over each user's unseen films; relevant = test rating >= 4."""
    relevant = test.ratings[test.ratings["rating"] >= 4].groupby("user_id")["item_id"].agg(set).to_dict()
    scores = scores.astype(np.float64, copy=True)
    scores[model.seen_.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    ranked = {int(u): model.item_ids_[top[row]].tolist() for row, u in enumerate(model.user_ids_)}
    return ranking_report(ranked, relevant, K, len(model.item_ids_))


def test_rules_beat_random_and_popularity_on_holdout(split, fitted):
    train, test = split
    rules = holdout_report(fitted.score_users(fitted.user_ids_), fitted, test)
    random = holdout_report(np.random.default_rng(0).random((len(fitted.user_ids_), len(fitted.item_ids_))),
                            fitted, test)
    popularity = RuleBasedRecommender(0.0, 0.0, 0.0, popularity_weight=1.0).fit(train)
    popular = holdout_report(popularity.score_users(popularity.user_ids_), popularity, test)
    content_only = RuleBasedRecommender(popularity_weight=0.0).fit(train)
    content = holdout_report(content_only.score_users(content_only.user_ids_), content_only, test)
    assert rules["users"] > 100
    assert rules["hr@10"] > 3 * random["hr@10"] and rules["ndcg@10"] > 3 * random["ndcg@10"]
    # the genre/director/actor rules carry signal by themselves, and add to popularity
    assert content["hr@10"] > 3 * random["hr@10"]
    assert rules["hr@10"] >= popular["hr@10"] and rules["ndcg@10"] >= popular["ndcg@10"]


def test_reasons_name_films_the_user_liked(split, fitted):
    train = split[0]
    named = total = 0
    for user in fitted.user_ids_[:20]:
        mine = train.ratings[train.ratings["user_id"] == user]
        liked = mine[(mine["rating"] >= 4) | (mine["rating"] >= mine["rating"].mean())]["item_id"]
        liked_titles = [f"{train.items.loc[i, 'title']} ({train.items.loc[i, 'year']})" for i in liked]
        for rec in fitted.recommend(user, 5):
            total += 1
            assert rec.reason and "score" not in rec.reason
            if re.search(r"same director as|, like |genres you rate highly \(like", rec.reason):
                assert any(title in rec.reason for title in liked_titles), (user, rec.reason)
                named += 1
    assert named >= 0.8 * total  # nearly every reason points at a real film from the user's own history


def test_director_and_actor_reasons(fitted, movielens_small_subset):
    items = movielens_small_subset.items
    pulp = 296
    recs = fitted.recommend_for_likes(item_ids=[pulp], k=20)
    tarantino = [r for r in recs if "Quentin Tarantino" in items.loc[r.item_id, "directors"]]
    assert tarantino, "a film by the same director should rank in the top 20"
    assert any("same director as Pulp Fiction (1994)" in r.reason for r in tarantino)
    assert pulp not in [r.item_id for r in recs]
    # an actor-driven reason names a shared actor and the liked film
    reasons = [r.reason for liked in (2571, 356, 1) for r in fitted.recommend_for_likes(item_ids=[liked], k=30)]
    stars = [r for r in reasons if r.startswith("stars ")]
    assert stars and all(re.match(r"stars .+, like .+ \(\d{4}\)$", r) for r in stars)


def test_save_load_round_trip_gives_identical_recommendations(fitted, tmp_path):
    path = tmp_path / "rules.ckpt"
    fitted.save(path)
    loaded = RuleBasedRecommender.load(path)
    assert loaded.get_params() == fitted.get_params()
    for user in fitted.user_ids_[:10]:
        assert loaded.recommend(user, K) == fitted.recommend(user, K)
    np.testing.assert_allclose(loaded.score_users(fitted.user_ids_[:50]), fitted.score_users(fitted.user_ids_[:50]))
    assert loaded.recommend_for_likes(genres=["Comedy"], k=5) == fitted.recommend_for_likes(genres=["Comedy"], k=5)


def test_cold_start_from_genres_and_titles(fitted, movielens_small_subset):
    items = movielens_small_subset.items
    horror = fitted.recommend_for_likes(genres=["horror"], k=K)  # case-insensitive
    assert len(horror) == K and all("Horror" in items.loc[r.item_id, "genres"] for r in horror)
    assert all("Horror" in r.reason for r in horror)
    both = fitted.recommend_for_likes(genres=["Animation", "Children"], k=K)
    assert sum({"Animation", "Children"} <= set(items.loc[r.item_id, "genres"]) for r in both) >= K // 2
    profile = fitted.profile_from_likes(item_ids=[296])
    assert profile.shape == (1, fitted.item_features_.shape[1]) and profile.nnz > 0
    with pytest.raises(CasebookError, match="unknown genre"):
        fitted.recommend_for_likes(genres=["Telenovela"])
    with pytest.raises(CasebookError, match="at least one"):
        fitted.recommend_for_likes()
    with pytest.raises(UnknownIdError):
        fitted.recommend_for_likes(item_ids=[-5])


def test_fold_in_recomputes_the_profile(split, tmp_path):
    model = RuleBasedRecommender().fit(split[0])
    items = split[0].items
    horror = [i for i in model.item_ids_ if "Horror" in items.loc[i, "genres"]][:5]
    model.fold_in(10_000_001, horror, np.full(len(horror), 5.0))  # a new user who loves horror
    recs = model.recommend(10_000_001, K)
    assert not {r.item_id for r in recs} & set(horror)
    assert sum("Horror" in items.loc[r.item_id, "genres"] for r in recs) >= K // 2
    # an existing user's new ratings change their own list, and survive save/load
    user = int(model.user_ids_[0])
    before = [r.item_id for r in model.recommend(user, K)]
    model.fold_in(user, horror, np.full(len(horror), 5.0))
    after = [r.item_id for r in model.recommend(user, K)]
    assert after != before and not set(after) & set(horror)
    model.save(tmp_path / "folded.ckpt")
    assert [r.item_id for r in RuleBasedRecommender.load(tmp_path / "folded.ckpt").recommend(user, K)] == after


def test_without_metadata_only_popularity_ranks(split):
    train = split[0]
    bare = pd.DataFrame({"title": train.items["title"], "year": train.items["year"]}, index=train.items.index)
    model = RuleBasedRecommender().fit(RatingData("bare", train.ratings, bare))
    recs = model.recommend(int(model.user_ids_[0]), 3)
    assert [r.reason for r in recs] == ["popular with other viewers"] * 3
    counts = train.ratings["item_id"].value_counts()
    assert counts[recs[0].item_id] >= counts[recs[-1].item_id]


def test_identity_and_bad_hyper_parameters(split):
    assert (RuleBasedRecommender.name, RuleBasedRecommender.phase, RuleBasedRecommender.predicts_ratings) == \
        ("rules", 1, False)
    with pytest.raises(CasebookError, match="does not predict ratings"):
        RuleBasedRecommender().fit(split[0]).predict(1, 1)
    with pytest.raises(CasebookError, match="actor_weight"):
        RuleBasedRecommender(actor_weight=-1).fit(split[0])
