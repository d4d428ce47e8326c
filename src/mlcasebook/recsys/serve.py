"""The recommender as a product: a live HTTP service over a trained model.

``create_app(model, items, store_path)`` returns a FastAPI app (OpenAPI docs at ``/docs``):

- ``GET  /users/{id}/recommendations?k=10`` top-k unseen items with title, score and reason;
- ``GET  /items/{id}/similar?k=10``          items most like one item;
- ``POST /users/{id}/ratings``               store a rating durably, then fold it into the model:
                                             the user's next recommendations reflect it at once;
- ``POST /users``                            cold start from a few liked items;
- ``GET  /health``                           model, catalogue and store sizes.

Errors are JSON ``{"detail": ..., "hint": ...}``: unknown user or item 404, a ``CasebookError``
400, an existing user id 409, a store that cannot write 503; FastAPI answers invalid bodies and
parameters with 422.

Concurrency: model work runs in the server's thread pool. One lock guards the model: a fold-in
replaces several arrays (``seen_``, id maps, per-user state), and a reader must never see half of
that. Reads take the same lock rather than a readers-writer lock because the GIL serialises the
Python part of scoring anyway and the model API does not promise that concurrent reads are safe. A
second lock makes writers one-at-a-time so the store and the model apply ratings in the same order.

Latency: a user's rendered recommendations are cached per ``k``. The entry is dropped when that user
rates something (inside the same lock hold as the fold-in, before the rating is acknowledged), so the
next request after a rating always reflects it; entries also expire after ``cache_ttl_s`` so changes
that are not the user's own (a model whose fold-in touches shared state, say) show within that time.
A cache hit is answered on the event loop without a thread hop, locking or JSON encoding.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import CasebookError
from .models.base import Recommender, UnknownIdError
from .store import RatingStore, StoreError

LIKED_RATING = 5.0  # cold start: an item picked as "liked" counts as a top rating
MAX_K = 100
_INT64 = {"ge": -(2**63), "le": 2**63 - 1}  # ids beyond int64 are invalid input (422), not a crash
MAX_TIMESTAMP = 2**40  # Unix seconds; far beyond any real date, well inside int64

Id = Annotated[int, Field(**_INT64)]
K = Annotated[int, Query(ge=1, le=MAX_K, description="how many items to return")]
UserIdPath = Annotated[int, PathParam(**_INT64, description="user id")]
ItemIdPath = Annotated[int, PathParam(**_INT64, description="item id")]


# ---- request and response bodies (they are the OpenAPI docs) -------------------------------
class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: Id
    rating: float = Field(ge=0.5, le=5.0, allow_inf_nan=False, description="0.5 to 5 stars")
    timestamp: int | None = Field(None, ge=0, le=MAX_TIMESTAMP, description="Unix seconds; default now")


class NewUserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    liked_item_ids: list[Id] = Field(min_length=1, max_length=1000, description="items the user likes")
    user_id: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = Field(
        None, description="id to use (0 or more); default: the next free id")


class ItemOut(BaseModel):
    item_id: int
    title: str
    year: int | None
    genres: list[str]


class ScoredItem(ItemOut):
    score: float
    reason: str


class RecommendationsOut(BaseModel):
    user_id: int
    model: str
    items: list[ScoredItem]


class SimilarOut(BaseModel):
    item: ItemOut
    items: list[ScoredItem]


class RatingAck(BaseModel):
    user_id: int
    item_id: int
    rating: float
    timestamp: int
    stored: bool


class NewUserOut(BaseModel):
    user_id: int
    liked_item_ids: list[int]
    recommendations: list[ScoredItem]


class CacheOut(BaseModel):
    enabled: bool
    users: int
    hits: int
    misses: int


class HealthOut(BaseModel):
    status: str
    model: str
    phase: int
    users: int
    items: int
    stored_users: int
    stored_ratings: int
    replayed_ratings: int
    realtime_updates: bool
    cache: CacheOut


class ErrorOut(BaseModel):
    detail: str
    hint: str | None = None


class ConflictError(CasebookError):
    """The request clashes with existing state (the API answers 409)."""


# ---- the service: model + store + catalogue, independent of HTTP ----------------------------
class RecommendationService:
    def __init__(self, model: Recommender, items: pd.DataFrame | None, store: RatingStore,
                 cache_ttl_s: float = 30.0, cache_users: int = 10_000):
        if not hasattr(model, "item_ids_"):
            raise CasebookError(f"{model.name} is not fitted", hint="fit or load the model before serving it")
        self.model = model
        self.store = store
        self.catalogue = _catalogue(items, model.item_ids_)
        self.folds_in = _overrides(model, "_fold_in")
        self.adds_users = self.folds_in and _overrides(model, "_add_user")
        self._model_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # user_id -> {k: (expires at, rendered JSON)}; read without the lock (a dict lookup is atomic
        # under the GIL), written and invalidated only under the model lock.
        self._cache: dict[int, dict[int, tuple[float, bytes]]] = {}
        self.cache_ttl_s, self.cache_users = cache_ttl_s, cache_users
        self.cache_hits = self.cache_misses = 0
        stored = store.counts()["ratings"]
        if stored and not self.folds_in:
            raise CasebookError(f"{model.name} cannot take the {stored} ratings stored in {store.path}",
                                hint="serve a model with real-time updates (fold-in), or start a new store")
        self.replayed = store.replay_into(model)

    # -- reads (the hot path: no pandas, no store access) --
    def cached_recommendations(self, user_id: int, k: int) -> bytes | None:
        entry = self._cache.get(user_id, {}).get(k)
        if entry is None or entry[0] < time.monotonic():
            return None
        self.cache_hits += 1
        return entry[1]

    def recommendations(self, user_id: int, k: int) -> bytes:
        """Rendered JSON of the user's top-k (a ``RecommendationsOut``), cached until the user rates."""
        with self._model_lock:
            recs = self.model.recommend(user_id, k)
            rendered = RecommendationsOut(user_id=user_id, model=self.model.name,
                                          items=[self._scored(r) for r in recs]).model_dump_json().encode()
            self.cache_misses += 1
            if self.cache_ttl_s > 0:
                # stored under the same lock hold as the computation, so a fold-in cannot slip in
                # between and leave a stale entry behind
                if user_id not in self._cache and len(self._cache) >= self.cache_users:
                    self._cache.pop(next(iter(self._cache)))  # oldest user first
                self._cache.setdefault(user_id, {})[k] = (time.monotonic() + self.cache_ttl_s, rendered)
        return rendered

    def similar(self, item_id: int, k: int) -> dict[str, Any]:
        with self._model_lock:
            recs = self.model.similar_items(item_id, k)
        return {"item": self.catalogue[item_id], "items": [self._scored(r) for r in recs]}

    def health(self) -> dict[str, Any]:
        counts = self.store.counts()
        with self._model_lock:
            users, items = len(self.model.user_ids_), len(self.model.item_ids_)
        return {"status": "ok", "model": self.model.name, "phase": self.model.phase, "users": users,
                "items": items, "stored_users": counts["users"], "stored_ratings": counts["ratings"],
                "replayed_ratings": self.replayed, "realtime_updates": self.folds_in,
                "cache": {"enabled": self.cache_ttl_s > 0, "users": len(self._cache), "hits": self.cache_hits,
                          "misses": self.cache_misses}}

    # -- writes: validate, then store and fold in within one store transaction --
    def rate(self, user_id: int, rating: RatingIn) -> dict[str, Any]:
        self._require(self.folds_in, "take new ratings")
        with self._write_lock:
            with self._model_lock:
                self.model._index(user_id)  # 404 before anything is written
                self.model.item_index(rating.item_id)
            stamps = None if rating.timestamp is None else np.array([rating.timestamp])
            stored = self.store.add_ratings(user_id, np.array([rating.item_id]), np.array([rating.rating]),
                                            stamps, before_commit=self._folder(user_id, [rating.item_id],
                                                                               [rating.rating]))
        return {"user_id": user_id, "item_id": rating.item_id, "rating": rating.rating,
                "timestamp": int(stored[0]), "stored": True}

    def create_user(self, body: NewUserIn, k: int) -> dict[str, Any]:
        self._require(self.adds_users, "add users")
        liked = list(dict.fromkeys(body.liked_item_ids))  # drop repeats, keep the order given
        with self._write_lock:
            with self._model_lock:
                for item_id in liked:
                    self.model.item_index(item_id)
                if body.user_id is None:
                    user_id = int(np.max(self.model.user_ids_, initial=0)) + 1
                else:
                    user_id = body.user_id
                    if self.model._user_pos.get_indexer([user_id])[0] >= 0:
                        raise ConflictError(f"user {user_id} already exists",
                                            hint="omit user_id to get a new one, or POST ratings to this user")
            ratings = [LIKED_RATING] * len(liked)
            self.store.add_ratings(user_id, np.array(liked), np.array(ratings), create_user=True,
                                   before_commit=self._folder(user_id, liked, ratings))
            with self._model_lock:
                recs = self.model.recommend(user_id, k)
        return {"user_id": user_id, "liked_item_ids": liked, "recommendations": [self._scored(r) for r in recs]}

    def _folder(self, user_id: int, item_ids: list[int], ratings: list[float]):
        def fold_in(timestamps: np.ndarray) -> None:
            with self._model_lock:
                self.model.fold_in(user_id, np.array(item_ids), np.array(ratings, dtype=np.float64), timestamps)
                self._cache.pop(user_id, None)
        return fold_in

    def _require(self, capable: bool, what: str) -> None:
        if not capable:
            raise CasebookError(f"the served model ({self.model.name}) cannot {what} in real time",
                                hint="serve a model that supports fold-in")

    def _scored(self, rec) -> dict[str, Any]:
        return self.catalogue[rec.item_id] | {"score": rec.score, "reason": rec.reason}


def _overrides(model: Recommender, method: str) -> bool:
    return getattr(type(model), method) is not getattr(Recommender, method)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _catalogue(items: pd.DataFrame | None, item_ids: np.ndarray) -> dict[int, dict[str, Any]]:
    """Item id -> display fields, built once so a request never touches pandas."""
    frame = pd.DataFrame(index=pd.Index(item_ids, name="item_id")) if items is None else items
    frame = frame.reindex(pd.Index(item_ids, name="item_id"))
    titles = frame["title"] if "title" in frame else pd.Series(pd.NA, index=frame.index)
    years = frame["year"] if "year" in frame else pd.Series(pd.NA, index=frame.index)
    genres = frame["genres"] if "genres" in frame else pd.Series(None, index=frame.index, dtype=object)
    return {int(item_id): {"item_id": int(item_id),
                           "title": str(title) if isinstance(title, str) else f"item {item_id}",
                           "year": None if pd.isna(year) else int(year),
                           "genres": list(genre) if isinstance(genre, list | tuple | np.ndarray) else []}
            for item_id, title, year, genre in zip(frame.index, titles, years, genres, strict=True)}


# ---- HTTP ------------------------------------------------------------------------------------
_ERRORS = {404: {"model": ErrorOut, "description": "unknown user or item"},
           400: {"model": ErrorOut, "description": "request the model cannot serve"}}


def create_app(model: Recommender, items: pd.DataFrame | None, store_path: Path | str, *,
               cache_ttl_s: float = 30.0, cache_users: int = 10_000) -> FastAPI:
    """A FastAPI app serving ``model``; ratings stored at ``store_path`` are replayed into it first
    (the model object is updated in place). ``cache_ttl_s=0`` turns the recommendation cache off."""
    store = RatingStore(store_path)
    try:
        service = RecommendationService(model, items, store, cache_ttl_s=cache_ttl_s, cache_users=cache_users)
    except BaseException:
        store.close()
        raise

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        store.close()

    app = FastAPI(title="mlcasebook recommender",
                  description=f"Live recommendations from the **{model.name}** model (phase {model.phase}); "
                              "ratings are stored durably and taken into account at once.",
                  version="1", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, and a body such as `NaN` then fails to render
        # as JSON (a 500); render non-finite numbers as text instead.
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(UnknownIdError)
    async def unknown_id(_request: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=404)

    @app.exception_handler(CasebookError)
    async def casebook_error(_request: Request, exc: CasebookError) -> JSONResponse:
        status = 409 if isinstance(exc, ConflictError) else 503 if isinstance(exc, StoreError) else 400
        return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=status)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/users/{user_id}/recommendations", response_model=RecommendationsOut, responses=_ERRORS,
             summary="Top-k unseen items for a user")
    async def recommendations(user_id: UserIdPath, k: K = 10) -> Response:
        rendered = service.cached_recommendations(user_id, k)
        if rendered is None:
            rendered = await run_in_threadpool(service.recommendations, user_id, k)
        return Response(rendered, media_type="application/json")

    @app.get("/items/{item_id}/similar", response_model=SimilarOut, responses=_ERRORS,
             summary="Items most like an item")
    def similar(item_id: ItemIdPath, k: K = 10) -> dict[str, Any]:
        return service.similar(item_id, k)

    @app.post("/users/{user_id}/ratings", response_model=RatingAck, status_code=201,
              responses=_ERRORS | {503: {"model": ErrorOut, "description": "store cannot write"}},
              summary="Store a rating and update the user's recommendations at once")
    def rate(user_id: UserIdPath, rating: RatingIn) -> dict[str, Any]:
        return service.rate(user_id, rating)

    @app.post("/users", response_model=NewUserOut, status_code=201,
              responses=_ERRORS | {409: {"model": ErrorOut, "description": "user id taken"}},
              summary="Cold start: a new user from a few liked items")
    def create_user(body: NewUserIn, k: K = 10) -> dict[str, Any]:
        return service.create_user(body, k)

    @app.get("/health", response_model=HealthOut, summary="Model and store status")
    def health() -> dict[str, Any]:
        return service.health()

    return app


def run(model_path: Path | str, model_classes: Mapping[str, type[Recommender]] | None = None, *,
        items: pd.DataFrame | None = None, host: str = "127.0.0.1", port: int = 8000,
        store_path: Path | str | None = None, log_level: str = "info", cache_ttl_s: float = 30.0) -> None:
    """Serve a saved model with uvicorn (one worker: the model lives in this process's memory).
    The store defaults to ``<model file>.ratings.sqlite`` next to the model."""
    import uvicorn

    from .models.registry import load_model

    model = load_model(model_path, model_classes)
    store_path = Path(store_path) if store_path is not None else Path(f"{model_path}.ratings.sqlite")
    app = create_app(model, items, store_path, cache_ttl_s=cache_ttl_s)
    # No access log: one log line per request costs more than computing a recommendation.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, workers=1)
