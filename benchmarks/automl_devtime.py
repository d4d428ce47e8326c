"""The chapter's "AutoML cuts development time by 90 %", measured as honestly as a machine can.

Development time is a person's time, which no script can time. What a script can measure are
its two machine-side proxies, on the same data and the same fixed split (stratified 75/25):

* lines of user code: the hand-built tuned scikit-learn pipeline a learner writes after the
  course's first months (``handbuilt_tuned``: ColumnTransformer with imputation and one-hot
  encoding, HistGradientBoosting, a 30-draw randomized search over 4 hyper-parameters with
  5-fold CV) against the AutoML call (``automl_one_call``). Both functions below *are* the user
  code; their lines are counted from this file (no blanks, comments or docstrings; imports
  count, as the user writes them too).
* machine wall time to a tuned model, each with every core of this machine.

The saving counts only where the AutoML's test score is at least equal: "equal" means the mean
paired difference over seeds is better, or worse by less than one standard error of that mean.
Every tool and seed scores the same held-out 25 % once.

    flock /tmp/mlcasebook-cpu.lock .venv/bin/python benchmarks/automl_devtime.py \\
        --json docs/results/automl_devtime.json
    .venv/bin/python benchmarks/automl_devtime.py --quick   # smoke run, about a minute
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import console, print_table, save
from mlcasebook.automl.datasets import TabularTask, fixed_split, load_suite_dataset

DATASETS = ("titanic", "ames")
SEEDS = (0, 1, 2)
BUDGET_S = 60


# ---- the user code being compared (counted line by line) ------------------------------------------

def handbuilt_tuned(train, target, task, seed, n_jobs):
    from scipy.stats import loguniform, randint
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import RandomizedSearchCV
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = train.drop(columns=target), train[target]
    preprocess = ColumnTransformer([
        ("numbers", SimpleImputer(strategy="median"), make_column_selector(dtype_include="number")),
        ("categories", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                     OneHotEncoder(handle_unknown="ignore", min_frequency=5, sparse_output=False)),
         make_column_selector(dtype_exclude="number")),
    ])
    if task == "classification":
        model, scoring = HistGradientBoostingClassifier(random_state=seed), "roc_auc"
    else:
        model, scoring = HistGradientBoostingRegressor(random_state=seed), "neg_root_mean_squared_error"
    pipeline = Pipeline([("preprocess", preprocess), ("model", model)])
    space = {"model__learning_rate": loguniform(0.02, 0.3), "model__max_leaf_nodes": randint(8, 64),
             "model__min_samples_leaf": randint(5, 60), "model__l2_regularization": loguniform(1e-4, 10.0)}
    search = RandomizedSearchCV(pipeline, space, n_iter=30, cv=5, scoring=scoring, random_state=seed, n_jobs=n_jobs)
    return search.fit(X, y)


def automl_one_call(train, target, task, seed, budget_s):
    from mlcasebook.automl.api import fit
    return fit(train, target, task=task, budget_s=budget_s, seed=seed, progress=False)


def user_lines(function) -> int:
    """Lines a user types for ``function``'s body: no blank lines, comments or docstring."""
    source = textwrap.dedent(inspect.getsource(function))
    body = ast.parse(source).body[0].body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    lines = source.splitlines()[body[0].lineno - 1: body[-1].end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


# ---- measuring ---------------------------------------------------------------------------------------

def test_score(model, data: TabularTask, test: pd.DataFrame) -> float:
    """ROC AUC of the positive class, or RMSE, on the held-out rows."""
    from sklearn.metrics import roc_auc_score

    X = test.drop(columns=data.target)
    if data.task == "classification":
        proba = model.predict_proba(X)
        classes = [str(c) for c in (model.classes_ if hasattr(model, "classes_") else proba.columns)]
        proba = np.asarray(proba)[:, classes.index(str(data.positive))]
        return float(roc_auc_score(test[data.target] == data.positive, proba))
    residual = test[data.target].to_numpy(dtype=float) - np.asarray(model.predict(X), dtype=float)
    return float(np.sqrt(np.mean(residual ** 2)))


def run(datasets, seeds, budget_s: float, quick: bool) -> pd.DataFrame:
    n_jobs = os.cpu_count() or 1
    rows = []
    for name in datasets:
        data = load_suite_dataset(name)
        for seed in seeds:
            train, test = fixed_split(data, seed=seed)
            for tool in ("hand-built tuned", "automl fit"):
                started = time.perf_counter()
                if tool == "automl fit":
                    model = automl_one_call(train, data.target, data.task, seed, budget_s)
                else:
                    model = handbuilt_tuned(train, data.target, data.task, seed, n_jobs)
                wall = time.perf_counter() - started
                score = test_score(model, data, test)
                rows.append({"dataset": name, "metric": data.metric, "seed": seed, "tool": tool,
                             "wall_s": round(wall, 1), "test_score": score})
                console.print(f"{name} seed {seed} {tool}: {data.metric} {score:.4f} in {wall:.1f} s")
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame, hand_lines: int, automl_lines: int) -> pd.DataFrame:
    """One row per data set: mean scores and times, the paired score difference with its
    standard error, the verdict, and the savings that count only at equal score."""
    rows = []
    for name, group in runs.groupby("dataset", sort=False):
        wide = group.pivot(index="seed", columns="tool", values="test_score")
        walls = group.groupby("tool")["wall_s"].mean()
        greater_is_better = group["metric"].iloc[0] == "roc_auc"
        sign = 1.0 if greater_is_better else -1.0
        gain = sign * (wide["automl fit"] - wide["hand-built tuned"])   # > 0: AutoML better
        se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else float("nan")
        mean_gain = float(gain.mean())
        if mean_gain >= 0:
            verdict = "better"
        elif not np.isnan(se) and -mean_gain < se:
            verdict = "equal (within 1 s.e.)"
        else:
            verdict = "worse"
        holds = verdict != "worse"
        rows.append({
            "dataset": name, "metric": group["metric"].iloc[0], "seeds": len(wide),
            "hand-built score": float(wide["hand-built tuned"].mean()),
            "automl score": float(wide["automl fit"].mean()),
            "automl gain": mean_gain, "gain s.e.": se, "verdict": verdict,
            "hand-built s": float(walls["hand-built tuned"]), "automl s": float(walls["automl fit"]),
            "hand-built lines": hand_lines, "automl lines": automl_lines,
            "lines saved %": 100 * (1 - automl_lines / hand_lines) if holds else float("nan"),
            "wall time saved %": 100 * (1 - walls["automl fit"] / walls["hand-built tuned"]) if holds else float("nan"),
        })
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="AutoML wall-clock budget per fit (s)")
    parser.add_argument("--quick", action="store_true", help="titanic, one seed, 10 s budget")
    parser.add_argument("--json", type=Path, help="write the results here (e.g. docs/results/automl_devtime.json)")
    args = parser.parse_args()
    if args.quick:
        args.datasets, args.seeds, args.budget = ["titanic"], [0], 10.0
    hand_lines, automl_lines = user_lines(handbuilt_tuned), user_lines(automl_one_call)
    console.print(f"user code: hand-built tuned pipeline {hand_lines} lines, automl {automl_lines} lines")
    runs = run(args.datasets, args.seeds, args.budget, args.quick)
    summary = summarise(runs, hand_lines, automl_lines)
    print_table(runs, "Every run (same fixed 75/25 split per seed)")
    print_table(summary, "Development-time proxies at equal test score")
    for row in summary.to_dict(orient="records"):
        scores = f"{row['metric']} {row['automl score']:.4f} vs hand-built {row['hand-built score']:.4f}"
        if row["verdict"] == "worse":
            console.print(f"{row['dataset']}: AutoML worse ({scores}): the saving does not count here")
        else:
            console.print(f"{row['dataset']}: AutoML {row['verdict']} ({scores}); lines saved "
                          f"{row['lines saved %']:.0f} %, machine time saved {row['wall time saved %']:.0f} %")
    if args.json:
        command = ("flock /tmp/mlcasebook-cpu.lock .venv/bin/python benchmarks/automl_devtime.py "
                   + ("--quick " if args.quick else "")
                   + f"--datasets {' '.join(args.datasets)} --seeds {' '.join(map(str, args.seeds))} "
                   + f"--budget {args.budget:g} --json {args.json}")
        settings = {"command": command, "code_version": _git_commit(),
                    "split": "fixed_split: stratified 75/25 (classification), seed = run seed",
                    "budget_s": args.budget, "n_jobs": os.cpu_count(),
                    "hand_built": "ColumnTransformer(median impute | most-frequent impute + one-hot) -> "
                                  "HistGradientBoosting, RandomizedSearchCV 30 draws x 5-fold CV over learning_rate, "
                                  "max_leaf_nodes, min_samples_leaf, l2_regularization",
                    "lines": {"hand_built_tuned": hand_lines, "automl_one_call": automl_lines},
                    "equal_score_rule": "mean paired gain over seeds >= 0, or worse by less than one standard error",
                    "note": "development time is a person's time; lines of user code and machine wall time are its "
                            "measurable proxies. Shared 2-core machine; heavy runs serialised by a lock."}
        save(args.json, settings, {"runs": runs, "summary": summary})


def _git_commit() -> str:
    """The commit the AutoML code came from, so a figure can be traced to the tool that made it."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
