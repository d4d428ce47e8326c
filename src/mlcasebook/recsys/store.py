"""The recommendation service's durable memory: users created through the API and every rating
posted to it, in one SQLite file.

The service acknowledges a rating only after it is committed here; on start-up everything stored
is replayed into the loaded model through ``Recommender.fold_in``, so a restart (or a crash) loses
nothing that a client was told had been saved.

Durability choice: WAL journal with ``synchronous=FULL``. In WAL mode ``NORMAL`` already survives a
killed *process* (the committed transaction is in the WAL file), but it only fsyncs the WAL at
checkpoints, so a power cut or kernel crash can roll back the last acknowledged ratings. ``FULL``
fsyncs the WAL on every commit, which makes an acknowledgement mean "on disk". The price is one
fsync per write (a millisecond or so on an SSD); ratings are a small share of the traffic and
recommendation reads never wait for it (they do not touch the store at all), so we pay it.

Thread safety: one connection shared by all threads, guarded by a lock. SQLite serialises writers
anyway, and one connection keeps the file handle count fixed however many worker threads the web
server runs.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import CasebookError

if TYPE_CHECKING:
    from .models.base import Recommender

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    user_id    INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL
);
-- One row per (user, item): a new rating of the same item replaces the old one, as in the
-- training tables (RatingData keeps one row per pair).
CREATE TABLE IF NOT EXISTS ratings (
    user_id   INTEGER NOT NULL,
    item_id   INTEGER NOT NULL,
    rating    REAL    NOT NULL CHECK (rating >= 0.5 AND rating <= 5.0),
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (user_id, item_id)
) WITHOUT ROWID;
"""


class StoreError(CasebookError):
    """The store could not persist a write (a server-side problem; the API answers 503)."""


@dataclass(frozen=True)
class StoredRatings:
    """Column arrays of stored ratings, sorted by user then timestamp."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.user_ids)

    def by_user(self) -> Iterator[tuple[int, StoredRatings]]:
        """(user_id, that user's ratings) for each user, without a Python loop over rows."""
        if not len(self):
            return
        starts = np.flatnonzero(np.r_[True, self.user_ids[1:] != self.user_ids[:-1]])
        ends = np.r_[starts[1:], len(self)]
        for start, end in zip(starts, ends, strict=True):
            part = slice(start, end)
            yield int(self.user_ids[start]), StoredRatings(self.user_ids[part], self.item_ids[part],
                                                           self.ratings[part], self.timestamps[part])


class RatingStore:
    """Durable store of API users and ratings. Use as a context manager or call ``close()``."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly
            # the block we write (Python's implicit transactions would hide when we commit).
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                         timeout=30.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise CasebookError(f"cannot open the rating store {self.path}: {exc}",
                                hint="pass another --store path, or move the damaged file away") from exc
        self._lock = threading.Lock()

    def _check_version(self) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise CasebookError(f"{self.path} has store schema {row[0]}, this version reads {SCHEMA_VERSION}",
                                hint="use a new --store path")

    # ---- writes: each call is one committed transaction ------------------------------------
    def add_ratings(self, user_id: int, item_ids: np.ndarray, ratings: np.ndarray,
                    timestamps: np.ndarray | None = None, *, create_user: bool = False,
                    before_commit: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
        """Commit ratings of one user (replacing earlier ratings of the same items) and return the
        timestamps stored (now, where none were given). Returns only once the commit is on disk.

        With ``create_user`` the user row is written in the same transaction, so a cold-start user
        never exists without its first ratings. ``before_commit(timestamps)`` runs inside the
        transaction (the service folds the ratings into the model there): if it raises, nothing
        is stored, so the store never holds a rating the model refused, which would otherwise
        fail every later start-up replay."""
        item_ids = np.asarray(item_ids, dtype=np.int64).reshape(-1)
        ratings = np.asarray(ratings, dtype=np.float64).reshape(-1)
        now = int(time.time())
        stamps = (np.full(len(item_ids), now, dtype=np.int64) if timestamps is None
                  else np.asarray(timestamps, dtype=np.int64).reshape(-1))
        if not (len(item_ids) == len(ratings) == len(stamps)):
            raise CasebookError("item_ids, ratings and timestamps must have the same length")
        rows = list(zip([int(user_id)] * len(item_ids), item_ids.tolist(), ratings.tolist(), stamps.tolist(),
                        strict=True))
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                if create_user:
                    self._conn.execute("INSERT INTO users (user_id, created_at) VALUES (?, ?)",
                                       (int(user_id), now))
                self._conn.executemany(
                    "INSERT INTO ratings (user_id, item_id, rating, timestamp) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (user_id, item_id) DO UPDATE SET rating = excluded.rating, "
                    "timestamp = excluded.timestamp", rows)
                if before_commit is not None:
                    before_commit(stamps)
                self._conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._conn.execute("ROLLBACK")
                raise CasebookError(f"cannot store ratings of user {user_id}: {exc}",
                                    hint="user ids are unique and ratings lie in 0.5..5") from exc
            except sqlite3.Error as exc:  # disk full, I/O error, file locked by another process
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"could not write to the rating store {self.path}: {exc}",
                                 hint="check free disk space and that no other process holds the file") from exc
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        return stamps

    # ---- reads -------------------------------------------------------------------------------
    def ratings(self) -> StoredRatings:
        with self._lock:
            rows = self._conn.execute(
                "SELECT user_id, item_id, rating, timestamp FROM ratings ORDER BY user_id, timestamp, item_id"
            ).fetchall()
        return _columns(rows)

    def user_ratings(self, user_id: int) -> StoredRatings:
        with self._lock:
            rows = self._conn.execute(
                "SELECT user_id, item_id, rating, timestamp FROM ratings WHERE user_id = ? "
                "ORDER BY timestamp, item_id", (int(user_id),)).fetchall()
        return _columns(rows)

    def user_ids(self) -> np.ndarray:
        """Users created through the API (not the model's training users)."""
        with self._lock:
            rows = self._conn.execute("SELECT user_id FROM users ORDER BY user_id").fetchall()
        return np.array([row[0] for row in rows], dtype=np.int64)

    def max_user_id(self) -> int | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT MAX(id) FROM (SELECT MAX(user_id) AS id FROM users "
                "UNION ALL SELECT MAX(user_id) FROM ratings)").fetchone()
        return None if row[0] is None else int(row[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            users = self._conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]
            ratings = self._conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0]
        return {"users": int(users), "ratings": int(ratings)}

    # ---- start-up ----------------------------------------------------------------------------
    def replay_into(self, model: Recommender) -> int:
        """Fold every stored rating into ``model`` (one ``fold_in`` per user, oldest first) and
        return how many were replayed. Fails loudly if the store names items the model does not
        know: those ratings were acknowledged, so silently dropping them would lose data."""
        stored = self.ratings()
        known = model._item_pos.get_indexer(stored.item_ids) >= 0
        if not known.all():
            missing = np.unique(stored.item_ids[~known])
            raise CasebookError(
                f"the rating store {self.path} holds {int((~known).sum())} ratings of items this model "
                f"does not know (e.g. {missing[:5].tolist()})",
                hint="serve the model whose catalogue the store was written with, or start a new --store")
        for user_id, part in stored.by_user():
            model.fold_in(user_id, part.item_ids, part.ratings, part.timestamps)
        return len(stored)

    # ---- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RatingStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _columns(rows: list[tuple]) -> StoredRatings:
    # Column-wise (not through one float array) so 64-bit ids and timestamps stay exact.
    users, items, ratings, stamps = zip(*rows, strict=True) if rows else ((), (), (), ())
    return StoredRatings(np.array(users, dtype=np.int64), np.array(items, dtype=np.int64),
                         np.array(ratings, dtype=np.float64), np.array(stamps, dtype=np.int64))
