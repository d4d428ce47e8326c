"""mlcasebook automl vs FLAML vs a default HistGradientBoosting floor on the 8 offline suite data sets.

Same data, same fixed 75/25 split (stratified for classification, seed 0), same wall-clock budget,
same resources: each AutoML tool gets ONE core (n_jobs=1, OMP_NUM_THREADS=1) and the two run as
two concurrent processes, so neither steals the other's core on a 2-core machine. Each tool runs
once per (data set, seed); the seed changes the tool's own randomness (CV folds, model seeds),
never the split. Scores on the 25 % test split, which neither tool sees:
ROC AUC (binary), log loss (multiclass), RMSE (regression).

    flock /tmp/mlcasebook-cpu.lock .venv/bin/python benchmarks/automl_suite.py            # full (~25 min)
    .venv/bin/python benchmarks/automl_suite.py --datasets titanic,credit-g --budget 15 --seeds 0 \\
        --out /tmp/automl_dry.json                                                       # dry run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
DEFAULT_OUT = ROOT / "docs" / "results" / "automl_suite.json"
TOOLS = ("mlcasebook", "flaml")


def _score(metric: str, y_true: pd.Series, pred, classes, positive) -> float:
    from sklearn.metrics import log_loss, roc_auc_score

    from mlcasebook.core.metrics import rmse

    if metric == "rmse":
        return rmse(y_true.to_numpy(dtype=float), np.asarray(pred, dtype=float))
    proba = np.asarray(pred, dtype=float)
    labels = [str(c) for c in classes]
    if metric == "roc_auc":
        column = labels.index(str(positive))
        return float(roc_auc_score(y_true.astype(str) == str(positive), proba[:, column]))
    return float(log_loss(y_true.astype(str), proba, labels=labels))


def _run_ours(train, test, task, budget, seed):
    from mlcasebook.automl.api import fit

    began = time.monotonic()
    result = fit(train, task.target, task=task.task, budget_s=budget, metric=task.metric, seed=seed, n_jobs=1,
                 progress=False)
    fit_s = time.monotonic() - began
    pred = result.predict_proba(test) if task.task == "classification" else result.predict(test)
    info = {"fit_s": round(fit_s, 2), "trials": result.info["trials"], "cv_score": result.cv_score,
            "ensemble": len(result.info["ensemble_members"])}
    return pred, None if result.classes_ is None else list(result.classes_), info


def _run_flaml(train, test, task, budget, seed):
    from flaml import AutoML

    automl = AutoML()
    X, y = train.drop(columns=task.target), train[task.target]
    if task.task == "classification":
        y = y.astype(str)
    began = time.monotonic()
    automl.fit(X, y, task=task.task, metric=task.metric, time_budget=budget, n_jobs=1, seed=seed, verbose=0)
    info = {"fit_s": round(time.monotonic() - began, 2), "best_estimator": automl.best_estimator}
    X_test = test.drop(columns=task.target)
    if task.task == "classification":
        return automl.predict_proba(X_test), list(automl.classes_), info
    return automl.predict(X_test), None, info


def _run_floor(train, test, task, seed):
    """Default HistGradientBoosting: categorical columns ordinal-encoded, native NaN handling."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    X = train.drop(columns=task.target)
    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    encode = make_column_transformer(
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan),
         categorical), remainder="passthrough")
    model_cls = HistGradientBoostingClassifier if task.task == "classification" else HistGradientBoostingRegressor
    model = make_pipeline(encode, model_cls(random_state=seed))
    to_str = (lambda frame: frame.astype({c: str for c in categorical})) if categorical else (lambda frame: frame)
    y = train[task.target].astype(str) if task.task == "classification" else train[task.target]
    model.fit(to_str(X), y)
    X_test = to_str(test.drop(columns=task.target))
    if task.task == "classification":
        return model.predict_proba(X_test), list(model.classes_), {}
    return model.predict(X_test), None, {}


def _warm_imports(tool: str) -> None:
    """Import the heavy libraries before the clock starts, so the first data set is not charged for them."""
    import lightgbm  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    if tool == "flaml":
        import flaml  # noqa: F401
    elif tool == "mlcasebook":
        import optuna  # noqa: F401

        import mlcasebook.automl.api  # noqa: F401


def run_tool(tool: str, datasets: list[str], seeds: list[int], budget: float, part: Path | None = None) -> list[dict]:
    from mlcasebook.automl.datasets import fixed_split, load_suite_dataset

    _warm_imports(tool)
    rows = []
    tasks = {name: load_suite_dataset(name) for name in datasets}
    splits = {name: fixed_split(task, seed=0) for name, task in tasks.items()}
    # seed-major: an interrupted run still covers every data set
    for seed in seeds:
        for name in datasets:
            task, (train, test) = tasks[name], splits[name]
            began = time.monotonic()
            try:
                if tool == "mlcasebook":
                    pred, classes, info = _run_ours(train, test, task, budget, seed)
                elif tool == "flaml":
                    pred, classes, info = _run_flaml(train, test, task, budget, seed)
                else:
                    pred, classes, info = _run_floor(train, test, task, seed)
                fit_predict_s = time.monotonic() - began
                score = _score(task.metric, test[task.target], pred, classes, task.positive)
                error = None
            except Exception as exc:  # a crash is a result too: recorded, not hidden
                fit_predict_s, score, info, error = time.monotonic() - began, float("nan"), {}, repr(exc)[:300]
            rows.append({"dataset": name, "tool": tool, "seed": seed, "metric": task.metric, "score": score,
                         "time_s": round(fit_predict_s, 2), "fit_s": info.get("fit_s"),
                         "budget_s": budget if tool in TOOLS else None,
                         "train_rows": len(train), "test_rows": len(test), "error": error,
                         "info": json.loads(json.dumps(info, default=str))})
            print(f"{tool:10s} {name:13s} seed {seed} {task.metric} {score:.4f} in {fit_predict_s:.1f} s",
                  flush=True)
            if part is not None:  # after every run, so an interrupted benchmark keeps what it measured
                part.write_text(json.dumps(rows))
    return rows


def summarise(rows: list[dict], budget: float) -> tuple[pd.DataFrame, dict]:
    frame = pd.DataFrame(rows)
    mean = frame.groupby(["dataset", "tool", "metric"], sort=False).agg(
        score=("score", "mean"), score_std=("score", "std"), time_s=("time_s", "mean"),
        time_max_s=("time_s", "max")).reset_index()
    wide = mean.pivot(index=["dataset", "metric"], columns="tool", values="score").reset_index()
    lower_better = wide["metric"].isin(["rmse", "log_loss"])
    tools = [t for t in ("mlcasebook", "flaml", "hgb_default") if t in wide.columns]
    signed = wide[tools].where(~lower_better, -wide[tools])
    ranks = signed.rank(axis=1, ascending=False)
    wins = (signed["mlcasebook"] > signed["flaml"]) if {"mlcasebook", "flaml"} <= set(tools) else None
    above_floor = (signed["mlcasebook"] >= signed["hgb_default"]) if "hgb_default" in tools else None
    ours_times = frame.loc[frame["tool"] == "mlcasebook", "fit_s"].astype(float)
    summary = {"datasets": len(wide), "mean_rank": {t: float(ranks[t].mean()) for t in tools},
               "wins_vs_flaml": None if wins is None else int(wins.sum()),
               "not_worse_than_hgb_floor": None if above_floor is None else int(above_floor.sum()),
               "budget_s": budget, "mlcasebook_fit_max_s": float(ours_times.max()) if len(ours_times) else None,
               "mlcasebook_budget_respected_10pct": bool((ours_times <= 1.1 * budget).all()),
               "flaml_fit_max_s": float(frame.loc[frame["tool"] == "flaml", "fit_s"].astype(float).max())}
    table = wide.assign(**{f"rank_{t}": ranks[t] for t in tools})
    if wins is not None:
        table["mlcasebook_beats_flaml"] = wins
    return table, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=None, help="comma-separated subset of the suite (default: all 8)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=float, default=60.0, help="wall-clock seconds per fit, both tools")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", choices=(*TOOLS, "hgb_default"), help=argparse.SUPPRESS)
    parser.add_argument("--part", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from mlcasebook.automl.datasets import SUITE

    datasets = args.datasets.split(",") if args.datasets else list(SUITE)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.worker:
        rows = run_tool(args.worker, datasets, seeds, args.budget, args.part)
        args.part.write_text(json.dumps(rows))
        return

    began = time.monotonic()
    # per-run results land here as they come (kept if the run is interrupted)
    parts = Path(tempfile.gettempdir()) / "mlcasebook-automl-suite"
    parts.mkdir(exist_ok=True)
    # the two AutoML tools side by side, one core each, then the cheap floor
    procs = {}
    for tool in TOOLS:
        part = parts / f"{tool}.json"
        cmd = [sys.executable, __file__, "--worker", tool, "--part", str(part), "--budget", str(args.budget),
               "--seeds", args.seeds, "--datasets", ",".join(datasets)]
        procs[tool] = (subprocess.Popen(cmd, env=os.environ | {"OMP_NUM_THREADS": "1",
                                                               "MLCASEBOOK_NO_PROGRESS": "1"}), part)
    rows = []
    for tool, (proc, part) in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"{tool} worker failed with exit code {proc.returncode}")
        rows += json.loads(part.read_text())
    rows += run_tool("hgb_default", datasets, seeds, args.budget)
    table, summary = summarise(rows, args.budget)

    from common import print_table, save

    print_table(table, f"automl suite: test-split scores, mean over seeds {args.seeds}, budget {args.budget:g} s")
    print(json.dumps(summary, indent=2))
    settings = {"command": "flock /tmp/mlcasebook-cpu.lock .venv/bin/python benchmarks/automl_suite.py "
                           + " ".join(sys.argv[1:]),
                "split": "fixed 75/25 train/test, stratified by class for classification, seed 0 "
                         "(mlcasebook.automl.datasets.fixed_split); tools tune on the 75 % only",
                "seeds": seeds, "budget_s": args.budget, "datasets": datasets,
                "resources": "each AutoML tool: 1 core (n_jobs=1, OMP_NUM_THREADS=1); mlcasebook and FLAML run "
                             "as two concurrent processes on a 2-core machine; the HGB floor runs after them",
                "metrics": "ROC AUC (binary, higher is better), log loss (multiclass), RMSE (regression; lower is "
                           "better)",
                "time_s": "wall time of fit + predict on the test split per run; fit_s: the fit alone (the budget "
                          "applies to it)",
                "wall_s_total": round(time.monotonic() - began, 1), "summary": summary}
    save(args.out, settings, {"per_dataset": table, "runs": pd.DataFrame(rows)})


if __name__ == "__main__":
    main()
