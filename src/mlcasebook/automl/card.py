"""The model card: what data, what budget, what was tried, how good it is, what was dropped."""

from __future__ import annotations

import pandas as pd


def model_card(result) -> str:
    info = result.info
    lines = [f"# Model card: {result.task} of `{result.target}`", "",
             "Fitted by `mlcasebook automl` (Optuna search over preprocessing + models, cross-validated, "
             "greedy ensemble of out-of-fold predictions).", "",
             "## Data", "",
             f"- rows used for training: {info.get('rows')}, input columns: {info.get('columns')}"]
    kinds = pd.Series(info.get("kinds", {}), dtype=object)
    if not kinds.empty:
        lines.append("- column kinds: " + ", ".join(f"{n} {k}" for k, n in kinds.value_counts().items()))
    for column, reason in info.get("dropped", {}).items():
        lines.append(f"- dropped `{column}`: {reason}")
    for note in info.get("notes", []):
        lines.append(f"- note: {note}")
    if info.get("class_counts"):
        lines.append("- classes: " + ", ".join(f"{k}: {v}" for k, v in info["class_counts"].items()))
    lines += ["", "## Search", "",
              f"- budget: {info.get('budget_s'):g} s wall time, used {info.get('fit_s', float('nan')):.1f} s, "
              f"{info.get('n_jobs')} thread(s) per model, seed {info.get('seed')}",
              f"- trials: {info.get('trials')} ({info.get('trials_complete')} completed all "
              f"{info.get('n_folds')} folds; the rest were pruned, skipped for time or failed)",
              "", "## Scores", "",
              f"- metric: {result.metric}",
              f"- cross-validated {result.metric} of the final model: {result.cv_score:.4f} "
              f"(out-of-fold; the ensemble weights were chosen on the same folds, so this is slightly optimistic)",
              f"- best single trial, cross-validated: {info.get('best_single_cv', float('nan')):.4f}"]
    if "test_score" in info:
        lines.append(f"- holdout {result.metric}: {info['test_score']:.4f} on {info.get('test_rows')} rows "
                     f"of {info.get('test_source', 'a holdout file')} (never seen by the search)")
    else:
        lines.append("- holdout score: none given (pass --holdout FILE to measure one)")
    members = info.get("ensemble_members", {})
    board = result.leaderboard
    if members and not board.empty:
        lines += ["", "## Final model", "", "| trial | model | weight | cv score |", "|---|---|---|---|"]
        score_col = next(c for c in board.columns if c.startswith("cv_"))
        for trial, weight in sorted(members.items(), key=lambda kv: -kv[1]):
            row = board[board["trial"] == int(trial)].iloc[0]
            lines.append(f"| {trial} | {row['model']} | {weight:.3f} | {row[score_col]:.4f} |")
    lines += ["", "## Limits", "",
              "- Trained on the rows given; predictions for data from another population are not checked.",
              "- Categories unseen in training are encoded as 'unknown'; numbers outside the training range are "
              "extrapolated as the trees/linear models do.", ""]
    return "\n".join(lines)
