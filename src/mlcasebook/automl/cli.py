"""`mlcasebook automl ...`: fit, predict, explain, leaderboard, and the course's projects."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="AutoML for tabular data, and the course's beginner projects.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

DATA_HELP = "A CSV or Parquet file (one row per example, a header row)."
MODEL_DIR_HELP = "The folder `automl fit --out` wrote."


class Task(StrEnum):
    auto = "auto"
    classification = "classification"
    regression = "regression"


def read_table(path: Path):
    """CSV/Parquet → DataFrame, or a one-line DataError naming the file."""
    import pandas as pd

    from ..core.errors import DataError

    if not path.is_file():
        raise DataError(f"{path} not found", hint="give the path of a CSV or Parquet file")
    parquet = path.suffix.lower() in (".parquet", ".pq")
    try:
        return pd.read_parquet(path) if parquet else pd.read_csv(path, low_memory=False)
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        reason = (str(exc).splitlines() or [""])[0][:160]
        raise DataError(f"{path}: cannot read it as {'Parquet' if parquet else 'CSV'} ({type(exc).__name__}: {reason})",
                        hint="check the file format and the header row") from exc


@app.command()
def fit(
    data: Path = typer.Argument(..., help=DATA_HELP),
    target: str = typer.Option(..., "--target", "-t", help="The column to predict."),
    task: Task = typer.Option(Task.auto, help="auto: classification for text/boolean/few-integer targets."),
    budget: float = typer.Option(60.0, help="Wall-clock seconds for the whole search (kept within 10 %)."),
    metric: str = typer.Option(None, help="roc_auc, log_loss, accuracy, balanced_accuracy, f1_macro, rmse, mae, "
                                          "r2 (default: ROC AUC binary, log loss multiclass, RMSE regression)."),
    out_dir: Path = typer.Option(Path("automl-model"), "--out", help="Folder for model, leaderboard, model card."),
    holdout: Path = typer.Option(None, help="A labelled CSV/Parquet never used in the search: its score goes "
                                            "into the model card."),
    seed: int = typer.Option(0, help="Seed of the CV folds, the models and the search."),
    n_jobs: int = typer.Option(None, help="Threads per model (default: all cores)."),
    storage: str = typer.Option(None, help="Optuna RDB URL to share one study between workers, e.g. "
                                           "sqlite:///automl.db (see docs/automl.md)."),
    study: str = typer.Option(None, help="Study name in --storage (default: a fresh one)."),
) -> None:
    """Search preprocessing + models within --budget seconds; save the best pipeline (skops), leaderboard and
    model card into --out."""
    from ..core.progress import enabled
    from . import api

    frame = read_table(data)
    holdout_frame = read_table(holdout) if holdout else None
    result = api.fit(frame, target, task=task.value, budget_s=budget, metric=metric, seed=seed, n_jobs=n_jobs,
                     progress=enabled(), storage=storage, study_name=study)
    if holdout_frame is not None:
        result.info |= {"test_score": result.score(holdout_frame), "test_rows": len(holdout_frame),
                        "test_source": str(holdout)}
    result.save(out_dir)
    _print_board(result.leaderboard, 10)
    line = (f"{result.task}, {result.info['trials']} trials in {result.info['fit_s']:.1f} s: "
            f"CV {result.metric} {result.cv_score:.4f}")
    if "test_score" in result.info:
        line += f", holdout {result.info['test_score']:.4f}"
    for column, reason in result.info["dropped"].items():
        err.print(f"dropped column {column!r}: {reason}", highlight=False)
    for note in result.info["notes"]:
        err.print(f"note: {note}", highlight=False)
    out.print(f"{line} → {out_dir}", highlight=False)


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help=MODEL_DIR_HELP),
    data: Path = typer.Argument(..., help=DATA_HELP),
    out_path: Path = typer.Option(Path("predictions.csv"), "--out", help="CSV with one row per input row."),
) -> None:
    """Predict every row: one probability column per class (named by the class) + `prediction`,
    or `prediction` for regression."""
    from ..core.checkpoint import atomic_write_text
    from . import api

    result = api.load(model_dir)
    predictions = result.predictions(read_table(data))
    atomic_write_text(out_path, predictions.to_csv(index=False))
    out.print(f"{len(predictions)} predictions → {out_path}", highlight=False)


@app.command()
def explain(
    model_dir: Path = typer.Argument(..., help=MODEL_DIR_HELP),
    data: Path = typer.Argument(..., help=DATA_HELP + " It must contain the target column."),
    repeats: int = typer.Option(5, help="Shuffles per column."),
    out_path: Path = typer.Option(None, "--out", help="CSV of importances (default: DIR/importances.csv); "
                                                     "the bar chart goes next to it as .png."),
) -> None:
    """Permutation importance of every input column: how much the metric drops when it is shuffled."""
    from . import api

    result = api.load(model_dir)
    frame = read_table(data)
    importances = api.explain(result, frame, n_repeats=repeats)
    out_path = out_path or model_dir / "importances.csv"
    from ..core.checkpoint import atomic_write_text

    atomic_write_text(out_path, importances.to_csv(index=False))
    figure = importance_figure(importances, result.metric)
    figure.savefig(out_path.with_suffix(".png"), dpi=110, bbox_inches="tight")
    from ..core.report import print_frame

    print_frame(importances.head(15), f"permutation importance (drop in {result.metric})", out)
    out.print(f"→ {out_path}, {out_path.with_suffix('.png')}", highlight=False)


def importance_figure(importances, metric: str, top: int = 15):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = importances.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(shown) + 1))
    ax.barh(shown["column"].astype(str), shown["importance"], xerr=shown["std"], color="#c44")
    ax.set_xlabel(f"drop in {metric} when the column is shuffled")
    ax.set_title("permutation importance")
    fig.tight_layout()
    return fig


@app.command()
def leaderboard(
    model_dir: Path = typer.Argument(..., help=MODEL_DIR_HELP),
    top: int = typer.Option(20, help="Rows to show."),
) -> None:
    """Every trial of the search, best first, with its cross-validated score and ensemble weight."""
    import pandas as pd

    from ..core.errors import DataError

    path = model_dir / "leaderboard.csv"
    if not path.is_file():
        raise DataError(f"{path} not found: {model_dir} is not a saved AutoML model",
                        hint="point at the --out folder of `mlcasebook automl fit`")
    _print_board(pd.read_csv(path), top)


def _print_board(board, top: int) -> None:
    from ..core.report import print_frame

    shown = board.drop(columns=[c for c in ("params", "note") if c in board.columns]).head(top)
    print_frame(shown.astype({c: str for c in ("trial",) if c in shown.columns}), "leaderboard", out)


@app.command()
def project(
    name: str = typer.Argument(..., help="titanic, houses or segmentation."),
    out_dir: Path = typer.Option(Path("report/automl"), "--out", help="Folder for the report page and models."),
    budget: float = typer.Option(60.0, help="Seconds per AutoML search."),
    seed: int = typer.Option(0, help="Seed of the split and the search."),
) -> None:
    """Run one of the course's beginner projects on real data and write its report page."""
    from ..core.progress import enabled
    from .projects import run_project

    page = run_project(name, out_dir, budget_s=budget, seed=seed, progress=enabled())
    out.print(f"report: {page}", highlight=False)
