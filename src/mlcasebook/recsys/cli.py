"""`mlcasebook recsys ...`: data, train, evaluate, recommend, similar, serve."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Case 1 — Netflix's recommender: rules → collaborative filtering → deep context-aware.",
                  no_args_is_help=True)
out = Console()

DATASET_HELP = ("'movielens-small' (embedded, default), 'ml-100k', or a ratings CSV "
                "(user_id,item_id,rating[,timestamp]).")
DATA_DIR_HELP = "Folder with a local copy of the data (default: $MLCASEBOOK_DATA, else ../shared/data)."
DEFAULT_LADDER = "popularity,rules,item-knn,als,ease,sequential"


class Protocol(StrEnum):
    time = "time"
    random = "random"
    cv = "cv"
    ncf = "ncf"


def _load(dataset: str, data_dir: Path | None, download: bool):
    from .data import load_dataset

    return load_dataset(dataset, data_dir=data_dir, download=download)


@app.command()
def data(
    dataset: str = typer.Option("movielens-small", help=DATASET_HELP),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    download: bool = typer.Option(False, help="Download ML-100k from GroupLens if no local copy is found."),
) -> None:
    """Load and validate a dataset and print its summary (sizes, density, metadata match rate)."""
    loaded = _load(dataset, data_dir, download)
    table = Table(title=f"dataset {loaded.name}")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in loaded.summary().items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)


@app.command()
def train(
    model: str = typer.Option("sequential", help="Model name (see `mlcasebook recsys models`)."),
    out_path: Path = typer.Option(Path("models/recsys.ckpt"), "--out", help="Where to write the checkpoint."),
    dataset: str = typer.Option("movielens-small", help=DATASET_HELP),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    download: bool = typer.Option(False, help="Download ML-100k if no local copy is found."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log params, metrics and the checkpoint to MLflow."),
) -> None:
    """Fit one model on all ratings of a dataset and save it (for `serve` and `recommend`)."""
    from ..core.tracking import tracked_run
    from .models.registry import model_class

    loaded = _load(dataset, data_dir, download)
    estimator = model_class(model)()
    with tracked_run("recsys", f"train-{model}", enabled=track) as run:
        run.params({"model": model, "dataset": loaded.name} | estimator.get_params())
        started = time.perf_counter()
        estimator.fit(loaded)
        fit_s = time.perf_counter() - started
        estimator.save(out_path)
        run.metrics({"fit_s": fit_s})
        run.artifact(out_path)
    out.print(f"trained {model} on {loaded.name} in {fit_s:.1f} s → {out_path}")


@app.command()
def models() -> None:
    """List the models by phase."""
    from .models.registry import MODELS, model_class

    table = Table(title="recommender models")
    for column in ("name", "phase", "predicts ratings", "class"):
        table.add_column(column)
    for name in MODELS:
        cls = model_class(name)
        table.add_row(name, str(cls.phase), "yes" if cls.predicts_ratings else "ranks only", cls.__name__)
    out.print(table)


@app.command()
def evaluate(
    protocol: Protocol = typer.Option(Protocol.time, help="time: last 20 % of each user's ratings held out; "
                                      "random: random 80/20; cv: 5-fold rating CV (RMSE/MAE); ncf: leave-last-out "
                                      "with 99 sampled negatives."),
    models_: str = typer.Option(DEFAULT_LADDER, "--models", help="Comma-separated model names."),
    dataset: str = typer.Option("movielens-small", help=DATASET_HELP),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    download: bool = typer.Option(False, help="Download ML-100k if no local copy is found."),
    k: int = typer.Option(10, min=1, help="Cut-off of the top-k metrics."),
    folds: int = typer.Option(5, min=2, help="Folds for --protocol cv."),
    seed: int = typer.Option(0, help="Seed of the split (and of the sampled negatives)."),
    json_path: Path = typer.Option(None, "--json", help="Also write the table and settings as JSON."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log the metrics to MLflow."),
) -> None:
    """Measure models on one protocol and print one table with timings."""
    from ..core.report import print_frame, write_json
    from ..core.tracking import tracked_run
    from . import evaluate as ev
    from .models.registry import model_class

    loaded = _load(dataset, data_dir, download)
    names = [n.strip() for n in models_.split(",") if n.strip()]
    factories = {name: model_class(name) for name in names}
    if protocol is Protocol.cv:
        table = ev.rating_cv(loaded, factories, n_folds=folds, seed=seed)
    elif protocol is Protocol.ncf:
        table = ev.ncf_experiment(loaded, factories, k=k, seed=seed)
    else:
        train_set, test_set = ev.time_split(loaded) if protocol is Protocol.time else ev.random_split(loaded, seed=seed)
        table = ev.ranking_experiment(train_set, test_set, factories, k=k)
    settings = {"dataset": loaded.name, "protocol": protocol.value, "k": k, "seed": seed, "folds": folds}
    print_frame(table, f"{loaded.name} · protocol {protocol.value}", out)
    with tracked_run("recsys", f"evaluate-{protocol.value}", enabled=track) as run:
        run.params(settings)
        for row in table.to_dict(orient="records"):
            run.metrics({f"{row['model']}.{key}": value for key, value in row.items() if key != "model"})
    if json_path:
        write_json(json_path, settings | {"results": table.to_dict(orient="records")})
        out.print(f"wrote {json_path}")


@app.command()
def recommend(
    user: int = typer.Argument(..., help="User id as in the data."),
    model_path: Path = typer.Option(Path("models/recsys.ckpt"), "--model", help="A checkpoint from `train`."),
    k: int = typer.Option(10, "--k", "-k", min=1, max=100, help="How many items."),
    dataset: str = typer.Option("movielens-small", help="Dataset the model was trained on (for titles)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
) -> None:
    """Top-k unseen items for a user, each with its reason."""
    model, items = _model_and_items(model_path, dataset, data_dir)
    _print_recommendations(model.recommend(user, k), items, f"top {k} for user {user} ({model.name})")


@app.command()
def similar(
    item: int = typer.Argument(..., help="Item id as in the data."),
    model_path: Path = typer.Option(Path("models/recsys.ckpt"), "--model", help="A checkpoint from `train`."),
    k: int = typer.Option(10, "--k", "-k", min=1, max=100, help="How many items."),
    dataset: str = typer.Option("movielens-small", help="Dataset the model was trained on (for titles)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
) -> None:
    """Items most similar to an item."""
    model, items = _model_and_items(model_path, dataset, data_dir)
    _print_recommendations(model.similar_items(item, k), items, f"items like {item} ({model.name})")


@app.command()
def serve(
    model_path: Path = typer.Option(Path("models/recsys.ckpt"), "--model", help="A checkpoint from `train`."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8000, help="TCP port."),
    store: Path = typer.Option(Path("models/ratings.sqlite"), help="SQLite file where new ratings are kept."),
    cache_ttl: float = typer.Option(30.0, help="Seconds a user's rendered list is reused (a new rating of theirs "
                                    "drops it at once); 0 switches the cache off."),
    dataset: str = typer.Option("movielens-small", help="Dataset the model was trained on (for titles)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
) -> None:
    """Start the recommendation API (FastAPI + uvicorn; OpenAPI docs at /docs)."""
    from .serve import run

    run(model_path, items=_load(dataset, data_dir, False).items, host=host, port=port, store_path=store,
        cache_ttl_s=cache_ttl)


def _model_and_items(model_path: Path, dataset: str, data_dir: Path | None):
    from .models.registry import load_model

    return load_model(model_path), _load(dataset, data_dir, False).items


def _print_recommendations(recommendations, items, title: str) -> None:
    table = Table(title=title)
    for column in ("item", "title", "score", "reason"):
        table.add_column(column)
    for rec in recommendations:
        name = items["title"].get(rec.item_id, "?") if items is not None else "?"
        table.add_row(str(rec.item_id), str(name), f"{rec.score:.3f}", rec.reason)
    out.print(table)
