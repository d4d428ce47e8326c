"""The model card: what data, what budget, what was tried, how good it is, what was dropped."""

from __future__ import annotations

import html

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


def model_card_html(result) -> str:
    """The same card as one self-contained HTML page, with the leaderboard and the search trace plot."""
    from ..core.report import Report

    report = Report(f"Model card: {result.task} of {result.target}", case="automl")
    for line in model_card(result).splitlines()[1:]:
        if line.startswith("## "):
            report.heading(line[3:])
        elif line.startswith("- "):
            report.html(f"<p>• {html.escape(line[2:].replace('`', ''))}</p>")
        elif line and not line.startswith("|"):
            report.text(line)
    board = result.leaderboard
    if not board.empty:
        report.heading("Leaderboard")
        report.table(board.drop(columns=["params"]).head(30), "best 30 trials (all in leaderboard.csv)")
        report.figure(search_trace_figure(board, result.metric), "cross-validated score of every completed trial")
    return report.render()


def search_trace_figure(board: pd.DataFrame, metric: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score = f"cv_{metric}"
    done = board[board["status"] == "complete"].sort_values("trial")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for family, rows in done.groupby("model"):
        ax.scatter(rows["trial"], rows[score], label=family, s=18)
    ax.set_xlabel("trial (portfolio first, then TPE)")
    ax.set_ylabel(f"CV {metric}")
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    return fig
