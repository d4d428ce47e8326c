"""Render docs/RESULTS.md from the benchmark JSON files in docs/results/.

    .venv/bin/python benchmarks/write_results.py

Every table names the command that produced it; re-run a benchmark, then this script.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mlcasebook.core.checkpoint import atomic_write_text
from mlcasebook.translate.evaluate import significance_text

RESULTS = Path("docs/results")
OUT = Path("docs/RESULTS.md")


def markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def stamp(result: dict) -> str:
    machine = result.get("machine", {})
    return f"Measured {machine.get('date', '?')} on a 2-core CPU machine, Python {machine.get('python', '?')}."


def rating_section(result: dict) -> list[str]:
    table = pd.DataFrame(result["rating_cv"])
    table = table[["model", "rmse", "rmse_std", "mae", "fit_s", "fit_cpu_s", "predict_s"]] \
        if "fit_cpu_s" in table else table[["model", "rmse", "rmse_std", "mae", "fit_s", "predict_s"]]
    settings = result["settings"]
    return [
        "## Recommender — rating prediction (Netflix Prize style)",
        "",
        f"MovieLens-100k, {settings['folds']}-fold CV (`core.splits.kfold_indices`, seed {settings['seed']}), "
        "the very same folds for every model; seconds per fold, one thread for every model. "
        "Peers: Surprise (BaselineOnly, SVD, SVD++, item KNNBaseline with pearson_baseline). "
        f"{stamp(result)}",
        "",
        "Command: `.venv/bin/python benchmarks/recsys_rating.py --json docs/results/recsys_rating.json`",
        "",
        markdown(table),
        "",
        "Published anchors (Surprise's own ML-100k 5-fold benchmark): SVD 0.934, SVD++ 0.919, KNNBaseline 0.931. "
        f"Target of this case: RMSE ≤ {settings.get('target_rmse', 0.9)} with a fit no slower than Surprise SVD++.",
        "",
    ]


def ranking_section(result: dict) -> list[str]:
    settings = result["settings"]
    titles = {"random_80_20": f"Random 80/20 split (seed {settings['seed']})",
              "time_split": "Per-user time split (last 20 % of each user's ratings)",
              "ncf": "NCF protocol (leave-last-out, 99 sampled negatives; every interaction is a positive)"}
    lines = [
        "## Recommender — top-N ranking and the phase ladder",
        "",
        f"{settings['dataset']}; full ranking of every item the user did not rate in training; relevant = held-out "
        f"rating ≥ {settings['relevant_min_rating']:g}; k = {settings['k']}. `phase`: 0 popularity floor, 1 rules, "
        f"2 collaborative filtering, 3 deep context-aware. Rows marked `peer:` are the open-source peers. "
        f"{stamp(result)}",
        "",
        "Command: `.venv/bin/python benchmarks/recsys_ranking.py --json docs/results/recsys_ranking.json`",
        "",
    ]
    for key, title in titles.items():
        if key in result:
            frame = pd.DataFrame(result[key])
            first = [c for c in ("model", "phase", "ndcg@10", "hr@10") if c in frame]
            lines += [f"### {title}", "", markdown(frame[first + [c for c in frame if c not in first]]), ""]
    return lines


def load_section(results: dict[str, dict]) -> list[str]:
    lines = ["## Recommender — the live API under load", "",
             "Open-loop load on loopback (requests are sent on schedule whatever the replies), one uvicorn "
             "worker, random known users, k = 10, 6,000 requests over 30 s, model trained on movielens-small "
             "(671 users, 9,066 films). `--cache-ttl 0` switches off the per-user cache of rendered lists; "
             "`--mixed` makes 5 % of requests POST a rating (stored durably, folded in). Target: p99 < 20 ms "
             "at 200 requests/s with zero errors.", ""]
    rows = []
    for command, result in results.items():
        for part in ("recommendations", "ratings"):
            row = result.get(part, {})
            if "p50_ms" in row:
                rows.append({"command": f"`{command}`", "requests": part, "model": result["model"],
                             "rate/s": result["settings"]["rate"], "p50 ms": row["p50_ms"], "p90 ms": row["p90_ms"],
                             "p99 ms": row["p99_ms"], "errors": row["requests"] - row["ok"]})
    lines += [markdown(pd.DataFrame(rows), digits=2), ""]
    return lines


def automl_sections(suite: dict | None, devtime: dict | None, projects: dict | None) -> list[str]:
    lines = ["## AutoML — our tool against FLAML at equal budget", ""]
    if suite:
        settings, summary = suite["settings"], suite["settings"]["summary"]
        table = pd.DataFrame(suite["per_dataset"])[["dataset", "metric", "mlcasebook", "flaml", "hgb_default"]]
        lines += [
            f"Fixed split: {settings['split']}; seeds {settings['seeds']}; budget {settings['budget_s']:g} s per fit; "
            f"resources: {settings['resources']}. Scores are the mean over seeds on the 25 % test part (ROC AUC and "
            f"higher is better; RMSE and log loss lower is better). {stamp(suite)}",
            "",
            f"Command: `{settings['command']}`",
            "",
            markdown(table),
            "",
            f"Wins over FLAML: **{summary['wins_vs_flaml']} of {summary['datasets']}** (goal ≥ 6); not worse than the "
            f"HistGradientBoosting floor on {summary['not_worse_than_hgb_floor']} of {summary['datasets']}; mean rank "
            + ", ".join(f"{k} {v:.3f}" for k, v in summary["mean_rank"].items())
            + f"; longest fit: ours {summary['mlcasebook_fit_max_s']:.1f} s, FLAML {summary['flaml_fit_max_s']:.1f} s.",
            "",
        ]
    if devtime:
        lines += ["### The chapter's \"90 % less development time\"", "",
                  f"Command: `{devtime['settings']['command']}` — a hand-built tuned scikit-learn pipeline against "
                  f"one `automl fit`, same data and split. {stamp(devtime)}", "",
                  markdown(pd.DataFrame(devtime["summary"])), ""]
    if projects:
        rows = []
        for name, result in projects["projects"].items():
            rows.append({"project": name, "figures": "; ".join(f"{k}: {v}" for k, v in result["headline"].items()),
                         "seconds": result["seconds"]})
        lines += ["### The course's beginner projects", "", f"Command: `{projects['command']}`", "",
                  markdown(pd.DataFrame(rows)), ""]
    return lines


def derm_section(derm: dict) -> list[str]:
    models = pd.DataFrame(derm["models"])
    wanted = [c for c in ("model", "arch", "balanced_accuracy", "balanced_accuracy_top_class", "accuracy",
                          "malignant_auc", "sensitivity", "specificity", "sensitivity_at_0.89_point",
                          "specificity_at_0.89_point", "macro_auc", "ece_after_temperature", "image_size", "precision",
                          "train_seconds", "epochs", "images_per_second_1_thread", "latency_ms_1_thread",
                          "context_weight") if c in models]
    return ["## Skin-lesion classification (HAM10000)", "",
            f"Data: {derm['data']}; split {derm['split']}; protocol: {derm['protocol']}. Machine: {derm['machine']}.",
            "", f"Command: `{derm['command']}`", "", markdown(models[wanted]), "",
            "The chapter's rows (Esteva et al. 2017, a different and larger data set):", "",
            markdown(pd.DataFrame(derm["chapter"])), "",
            "Targets of the case: " + ", ".join(f"{k} ≥ {v}" for k, v in derm["targets"].items()) + ".", ""]


def go_elo_plot(matches: list[dict]) -> Path | None:
    """Elo against each opponent over training compute, one line per run x mode x opponent (the
    chapter's lesson: SL, SL + self-play and Zero side by side; raw policy against policy + search).
    None until some run has two measured generations."""
    frame = pd.DataFrame(matches)
    if "cpu_hours" not in frame:
        return None
    frame = frame[frame["cpu_hours"].notna() & (frame["run"] != "")]
    # a run measured once (e.g. an SL-only network) is a lone point beside the curves
    groups = [(key, part.sort_values("cpu_hours")) for key, part in frame.groupby(["run", "mode", "opponent"])]
    if not any(len(part) >= 2 for _, part in groups):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = RESULTS / "go_elo_over_training.png"
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (run, mode, opponent), part in groups:
        # a 0 % or 100 % score has an infinite Elo: drawn at ±800, the interval says the rest
        elo = np.clip(part["elo"].to_numpy(float), -800, 800)
        low = np.clip(part["elo_95_low"].to_numpy(float), -800, 800)
        high = np.clip(part["elo_95_high"].to_numpy(float), -800, 800)
        ax.errorbar(part["cpu_hours"], elo, yerr=[elo - low, high - elo], marker="o", capsize=3,
                    label=f"{run}, {mode}, vs {opponent}")
    ax.axhline(0, color="#888", linewidth=0.8)
    ax.set_xlabel("training compute, CPU-hours")
    ax.set_ylabel("Elo difference to the opponent (95 % interval)")
    ax.set_title("9x9 strength over training")
    ax.legend(fontsize=7, loc="lower right")  # the top corners hold the strongest points
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def go_section(rules: dict | None, mcts: dict | None, baseline: dict | None, strengths: list[dict],
               move_prediction: dict | None = None, head_to_head: list[dict] | None = None) -> list[str]:
    lines = ["## Go — rules speed, search speed, strength", ""]
    if rules:
        lines += [f"Command: `{rules['settings']['command']}`. {rules['settings'].get('note', '')} {stamp(rules)}", "",
                  markdown(pd.DataFrame(rules["playouts"]), digits=1), "",
                  markdown(pd.DataFrame(rules["operations"]), digits=2), ""]
    if mcts:
        lines += [f"Command: `{mcts['settings']['command']}`. {stamp(mcts)}", "",
                  markdown(pd.DataFrame(mcts["searches"]), digits=1), "",
                  markdown(pd.DataFrame(mcts["forward"]), digits=1), ""]
    if baseline:
        low, high = baseline["win_rate_95"]
        lines += [f"Strength so far: `{baseline['command']}` — {baseline['first']} won {baseline['first_wins']} of "
                  f"{baseline['games']} against {baseline['second']} (95 % interval {low:.0%}–{high:.0%}). "
                  f"{baseline['note']}." + ("" if strengths else " No trained 9x9 network exists yet."), ""]
    if move_prediction:
        settings = move_prediction["settings"]
        lines += [f"Move prediction on {settings['games']} held-out GNU Go level-10 games ({settings['expert_moves']} "
                  "expert moves; AlphaGo's SL policy predicted 57 % of KGS experts' moves): "
                  f"`{settings['command']}`. {stamp(move_prediction)}", "",
                  markdown(pd.DataFrame(move_prediction["models"]), digits=3), ""]
    for match in head_to_head or []:  # `go match --json` files: our networks against each other
        low, high = match["win_rate_95"]
        lines += [f"{match['note']}: {match['first']} won {match['first_wins']} of {match['games']} against "
                  f"{match['second']} ({match['draws']} draws; 95 % interval {low:.0%}–{high:.0%}, "
                  f"{match['seconds_per_move'][match['first']]:.2f} s a move). Command: `{match['command']}`. "
                  f"Measured {match['date']}.", ""]
    for strength in strengths:  # one file per measured network or run, oldest first
        settings = strength["settings"]
        frame = pd.DataFrame(strength["matches"])
        draws = ["draws"] if "draws" in frame else []  # older files lack draws and distinct games
        distinct = ["distinct_games"] if "distinct_games" in frame else []
        # a run's generations: which run, which generation, the training compute behind each network
        # (only for a run's generations: a single network's own metadata may not count its corpus)
        training = ["run", "generation", "cpu_hours"] if "run" in frame and (frame["run"] != "").any() else []
        columns = [*training, "model", "mode", "opponent", "games", "wins", *draws, "win_rate", "ci95_low",
                   "ci95_high", "elo", "s/move", *distinct]
        budget = f"{settings['time_per_move']:g} s a move" if settings.get("playouts") is None else \
            f"{settings['playouts']} simulations a move"
        lines += [f"Trained networks against GNU Go ({settings['board']}x{settings['board']}, komi "
                  f"{settings['komi']:g}, area scoring; mcts = policy + search at {budget}). "
                  f"{settings.get('note', '').rstrip('.')}. "
                  f"Command: `{settings.get('command', '?')}`. {stamp(strength)}",
                  "", markdown(frame[columns], digits=2), ""]
    if strengths and (plot := go_elo_plot([m for strength in strengths for m in strength["matches"]])):
        lines += [f"![Elo over training compute](results/{plot.name})", ""]
    return lines


def rescoring_note(command: str, what: str) -> str:
    """Says when a translation command only re-scored models trained earlier."""
    if "--score-only" not in command:
        return ""
    return f" (a re-scoring of models trained earlier: the same command without `--score-only` trains {what})"


TRANSLATE_TARGETS = {"en-de": 38.0, "ja-en": 30.0}  # issue 6: Transformer BLEU, trained in ≤ 2 h on 2 cores


def translate_sections(ladders: list[dict], smt: dict | None, workers: dict | None,
                       multilingual: dict | None = None, decoding: list[dict] | None = None) -> list[str]:
    lines = ["## Translation — SMT → GNMT-style → Transformer", ""]
    if smt:
        rows = pd.DataFrame(smt["smt"])[["pair", "corpus", "eval_split", "BLEU", "chrF", "fit_s", "tune_s",
                                          "sentences_per_s"]]
        lines += [f"Phrase-based SMT alone. Command: `{smt['settings']['command']}`. {smt['settings']['split']}; "
                  f"{smt['settings']['note']}. BLEU signature `{smt['smt'][0]['bleu_signature']}`.", "",
                  markdown(rows, digits=2), ""]
    verdicts = []
    for ladder in ladders:
        settings = ladder["settings"]
        for pair, result in ladder["pairs"].items():
            lines += [f"Ladder {pair}, scored on {result['scored_on']} ({result['notes']}). "
                      f"Command: `{settings['command']}`{rescoring_note(settings['command'], 'them')}. "
                      f"{settings.get('note') or ''}", "",
                      markdown(pd.DataFrame(result["ladder"]), digits=2), ""]
            transformer = next((m for m in result["models"] if m["arch"] == "transformer"), None)
            if pair in TRANSLATE_TARGETS and transformer is not None:
                target, over = TRANSLATE_TARGETS[pair], transformer["train_s"] - 2 * 3600
                verdicts.append(f"{pair} Transformer {transformer['bleu']:.2f} BLEU (target ≥ {target:g}: "
                                f"{'met' if transformer['bleu'] >= target else 'not met'}), trained in "
                                f"{transformer['train_s']:,.0f} s (target ≤ 7,200 s: "
                                + ("met)" if over <= 0 else f"not met, {over:.0f} s over)"))
            archs = [m["arch"] for m in result["models"]]
            holds = result.get("ladder_holds")
            verdicts.append(f"{pair} ladder SMT < GNMT < Transformer: "
                            + ("not measured (the run has " + ", ".join(archs) + ")"
                               if not {"smt", "gnmt", "transformer"} <= set(archs)
                               else "holds" if holds else "does not hold")
                            + "".join(f"; {significance_text(step)}" for step in result.get("significance", [])))
    if verdicts:
        lines += ["The chapter's claim is GNMT +60 % BLEU over phrase-based SMT. Issue targets: "
                  + "; ".join(verdicts) + ".", ""]
    if multilingual:
        settings = multilingual["settings"]
        table = pd.DataFrame(multilingual["table"])[multilingual["table_columns"]]
        trained = table[table["kind"] == "trained"]
        deltas = [f"{column.removeprefix('Δ vs ')}: mean {trained[column].dropna().mean():+.2f} BLEU over "
                  f"{trained[column].notna().sum()} directions" for column in table if column.startswith("Δ vs")
                  and trained[column].notna().any()]
        first = multilingual["rows"][0]
        lines += [f"One multilingual Transformer ({len(multilingual['languages'])} languages: "
                  f"{', '.join(multilingual['languages'])}; {len(settings['pairs'])} trained directions; "
                  f"{first['train_s'] / 60:.1f} min of training, {first['steps']:,} steps) beside the bilingual "
                  "models of the ladder on the same sentences, and zero-shot directions asked directly and "
                  f"pivoted through English by the same model. Command: `{settings['command']}`"
                  f"{rescoring_note(settings['command'], 'the model')}. "
                  f"{settings.get('note') or ''} Measured {settings['date']}: {settings['machine']}.", "",
                  markdown(table, digits=2), ""]
        if bilingual_15min := load("translate_bilingual_15min"):
            lines += [f"The 15-minute bilingual Transformers (this model's recipe, one per direction: equal total "
                      f"compute): `{bilingual_15min['settings']['command']}`"
                      f"{rescoring_note(bilingual_15min['settings']['command'], 'them')}.", ""]
        lines += ["The chapter's claim is one model for 103 languages; GNMT's multilingual paper found a small "
                  "loss against bilingual models and usable zero-shot directions. Here: "
                  + ("multilingual minus bilingual Transformer, " + "; ".join(deltas) + "." if deltas
                     else "no direction has a bilingual Transformer to compare with."), ""]
    for grid in decoding or []:
        settings = grid["settings"]
        lines += [f"Decoding penalties of the {settings['pair']} {settings['arch']} on the tuning split "
                  f"({settings['tuning']}; dev/test not read). Command: `{settings['command']}`; "
                  f"{settings['machine']}, {settings['date']}.", "", markdown(pd.DataFrame(grid["rows"]), digits=2), ""]
    if workers:
        lines += [f"Training speed, threads against data-parallel processes (`--workers`). Command: "
                  f"`{workers['settings']['command']}`; {workers['settings']['machine']}, "
                  f"{workers['settings']['date']}.", "", markdown(pd.DataFrame(workers["rows"]), digits=3), ""]
    return lines


def highway_frontier_plot(frontier: dict, ppo: dict | None) -> Path:
    """Mean speed against collision rate: the expert's margins, the agents, and the issue's target box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = RESULTS / "drive_highway_frontier.png"
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((-0.5, 25), 2.5, 10, color="#d8f0d8", zorder=0))  # the target: left of 2 %, above 25
    ax.text(2.5, 25.1, "target: < 2 % at ≥ 25 m/s", color="#3a7d3a", fontsize=8)
    points = pd.DataFrame(frontier["frontier"])
    ax.plot(points["collision_rate"] * 100, points["mean_speed"], "o-", color="#444",
            label="expert, margins (train seeds)")
    for _, row in points.iterrows():
        ax.annotate(row["margin"], (row["collision_rate"] * 100, row["mean_speed"]), textcoords="offset points",
                    xytext=(5, -10), fontsize=7)
    for row in (ppo or {}).get("agents", []):
        ax.plot(row["collision_rate"] * 100, row["mean_speed"], "s", label=f"{row['agent']} (eval seeds)")
    ax.set_xlabel("collision rate, %")
    ax.set_ylabel("mean speed, m/s")
    ax.set_title("highway-fast: speed is bought with crashes")
    ax.set_xlim(-0.5, None)
    ax.set_ylim(None, max(26.0, float(points["mean_speed"].max()) + 0.5))
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def drive_sections(pilot: dict | None, detector: dict | None, ppo: dict | None,
                   frontier: dict | None = None) -> list[str]:
    lines = ["## Autopilot — detector, PilotNet behaviour cloning, PPO", ""]
    if pilot:
        rows = []
        for name in ("expert", "pilotnet"):
            if run := pilot.get(name):
                rows.append({"agent": name, "episodes": run["episodes"], "return mean": run.get("return_mean"),
                             "return sd": run.get("return_sd"), "laps finished": run["laps_finished"],
                             "departures/episode": run["departures_per_episode"]})
        lines += [f"CarRacing-v3 from pixels, evaluation seeds {pilot['seeds']['evaluation']} (training seeds "
                  f"{pilot['seeds']['training']}); {pilot['machine']['note']}. Commands: "
                  + "; ".join(f"`{pilot[k]['command']}`" for k in ("train", "expert", "pilotnet") if k in pilot)
                  + ".", "", markdown(pd.DataFrame(rows), digits=1), ""]
        if train := pilot.get("train"):
            history = train["history"]
            lines += [f"Training: {len(history) - 1} DAgger rounds after the first fit, {history[-1]['frames']} "
                      f"frames, {train['train_seconds_total'] / 60:.0f} min of training in all (1 thread)."
                      + (f" {train['note'][0].upper()}{train['note'][1:]}." if train.get("note") else ""), ""]
        if pilotnet := pilot.get("pilotnet"):
            reached = pilotnet["episodes"] >= 100 and pilotnet["return_mean"] >= 900
            lines += [f"Target (issue 7): PilotNet mean return ≥ 900 over 100 episodes — "
                      f"{'reached' if reached else 'not reached'} ({pilotnet['return_mean']:.1f} over "
                      f"{pilotnet['episodes']} episodes).", ""]
            if autonomy := pilotnet.get("autonomy_run"):
                lines += [f"PilotNet autonomy (1 − interventions × 6 s / elapsed) over {autonomy['episodes']} "
                          f"episodes: {autonomy['autonomy']:.1%} ({autonomy['interventions']} interventions in "
                          f"{autonomy['elapsed_s']:.0f} s).", ""]
    if detector:
        rows = pd.DataFrame(detector["detector"])[["model", "input_px", "map50", "map75", "train_frames",
                                                   "eval_frames", "train_s", "inference_fps"]]
        lines += [f"Vehicle detector on highway-env frames labelled from the simulator state. Command: "
                  f"`{detector['settings']['command']}`; eval seeds {detector['settings']['eval_seeds']}.", "",
                  markdown(rows, digits=3), ""]
    if frontier:
        columns = ["margin", "seeds", "episodes", "collision_rate", "mean_speed", "mean_abs_jerk"]
        lines += [f"How fast can a driver that sees the whole road go on highway-fast? The highway expert at five "
                  f"safety margins, on training seeds (the margins are chosen there), then the default margin on "
                  f"the evaluation seeds. Command: `{frontier['settings']['command']}`.", "",
                  markdown(pd.DataFrame(frontier["frontier"])[columns], digits=3), ""]
        if frontier.get("evaluation"):
            lines += [markdown(pd.DataFrame(frontier["evaluation"])[columns], digits=3), ""]
        plot = highway_frontier_plot(frontier, ppo)
        lines += [f"![speed against collision rate on highway-fast](results/{plot.name})", ""]
    if ppo:
        rows = pd.DataFrame(ppo["agents"])[["agent", "episodes", "collision_rate", "mean_speed", "mean_abs_jerk",
                                            "return_default", "return_ours", "timesteps"]]
        # PPO steps; the drivers that do not learn have none
        rows["timesteps"] = [f"{int(v)}" if isinstance(v, (int, float)) and v == v else "—" for v in rows["timesteps"]]
        met = [row["agent"] for row in ppo["agents"] if row.get("meets_target")]
        commands = ppo["settings"].get("commands") or [ppo["settings"]["command"]]
        lines += [f"PPO on highway-fast ({ppo['settings']['env']}). Commands, in order: "
                  + "; ".join(f"`{command}`" for command in commands)
                  + ". Target: collision rate < 2 % at ≥ 25 m/s over 100 episodes — "
                  + (f"met by {', '.join(met)}." if met else "met by no agent."), "",
                  markdown(rows, digits=3), ""]
    return lines


def main() -> None:
    lines = ["# Results", "",
             "Every figure we claim, with the command, data, split and seed that produced it. This file is "
             "generated: `.venv/bin/python benchmarks/write_results.py` renders it from `docs/results/*.json`. "
             "Timings come from a shared 2-core machine: compare rows of one run, not across runs.", ""]
    if rating := load("recsys_rating"):
        lines += rating_section(rating)
    if ranking := load("recsys_ranking"):
        lines += ranking_section(ranking)
    load_runs = {cmd: result for cmd, name in (
        ("benchmarks/recsys_load.py", "recsys_load"),
        ("benchmarks/recsys_load.py --cache-ttl 0", "recsys_load_nocache"),
        ("benchmarks/recsys_load.py --mixed", "recsys_load_mixed"))
        if (result := load(name))}
    if load_runs:
        lines += load_section(load_runs)
    ladders = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("translate_ladder*.json"))]
    if ladders or load("translate_smt"):
        decoding = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("translate_decoding_*.json"))]
        lines += translate_sections(ladders, load("translate_smt"), load("translate_workers"),
                                    load("translate_multilingual"), decoding)
    if any(load(n) for n in ("drive_pilotnet", "drive_detector", "drive_ppo", "drive_highway_frontier")):
        lines += drive_sections(load("drive_pilotnet"), load("drive_detector"), load("drive_ppo"),
                                load("drive_highway_frontier"))
    if any(load(n) for n in ("automl_suite", "automl_devtime", "automl_projects")):
        lines += automl_sections(load("automl_suite"), load("automl_devtime"), load("automl_projects"))
    if derm := load("derm"):
        lines += derm_section(derm)
    strengths = sorted((json.loads(path.read_text()) for path in RESULTS.glob("go_strength*.json")),
                       key=lambda result: result["machine"]["date"])
    if strengths or any(load(n) for n in ("go_rules", "go_mcts", "go_baseline")):
        head_to_head = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("go_match_*.json"))]
        lines += go_section(load("go_rules"), load("go_mcts"), load("go_baseline"), strengths,
                            load("go_move_prediction"), head_to_head)
    notes = RESULTS / "notes.md"  # hand-written reading of the tables, kept beside the numbers
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    atomic_write_text(OUT, "\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
