"""The chapter's lesson at equal compute on 9x9: SL only vs SL + self-play vs AlphaGo Zero.

Three training runs under ``--root``, each brought to the same budget of CPU-hours, the compute
that made the expert games included (``--seconds-per-corpus-game``, measured: 2.4 CPU-hours for
833 GNU Go level-10 games):

    sl       SL on the first --sl-games corpus files, then self-play until the budget
    sl-only  SL on the first --sl-only-games files: the whole budget spent on expert data
    zero     self-play from a random network until the budget

``train`` runs two chains side by side, one core each (sl then sl-only; zero). It resumes: a run
trains until its own counted compute reaches the budget, so the stage can be stopped at any time
and run again in a later session. ``evaluate`` then plays every network at a fixed number of
simulations a move (so results do not depend on the machine's load): the sl generations and
sl-only against GNU Go level 1, the zero generations against the random player, zero's best
against level 1, and head-to-heads at equal compute. ``write_results.py`` turns the JSON files
into tables and the Elo-over-compute plot.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/go_lesson.py train
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/go_lesson.py evaluate
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# the loop's settings, the same for both self-play runs (docs/go.md, "The chapter's lesson")
SELF_PLAY = ["--games-per-iteration", "16", "--workers", "1", "--gate-games", "10", "--no-track"]
# sl fine-tunes a network whose supervised schedule decayed to zero: a lower rate, chosen up front
SL_LEARNING_RATE = "2e-4"


def run(command: list[str], log: Path) -> None:
    """One step of a chain, its output appended to ``log``; a failure stops the chain."""
    print("$", " ".join(command), flush=True)
    with log.open("a") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True,
                       env=os.environ | {"OMP_NUM_THREADS": "1"})


def state(run_dir: Path) -> dict:
    path = run_dir / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def spent_hours(run_dir: Path) -> float:
    return state(run_dir).get("cpu_seconds", 0.0) / 3600


def best_generation(run_dir: Path) -> Path:
    return run_dir / "generations" / f"gen{state(run_dir).get('generation', 0):04d}.ckpt"


def train_cli(run_dir: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "mlcasebook", "go", "train", "--run", str(run_dir), *SELF_PLAY, *options]


def pretrain(run_dir: Path, args, games: int, steps: int, *options: str) -> None:
    if state(run_dir).get("pretraining") is None:
        corpus_hours = games * args.seconds_per_corpus_game / 3600
        run(train_cli(run_dir, *options, "--pretrain-sgf", str(args.corpus), "--pretrain-games", str(games),
                      "--corpus-cpu-hours", f"{corpus_hours:.3f}", "--pretrain-steps", str(steps)),
            args.root / f"{run_dir.name}.log")


def self_play_to_budget(run_dir: Path, args, *options: str) -> None:
    # wall hours = CPU-hours here: one self-play worker on a core of its own; the trainer checks
    # the clock between iterations, so a run ends at most one iteration past the budget
    remaining = args.budget - spent_hours(run_dir)
    if remaining > 0.01:
        run(train_cli(run_dir, *options, "--hours", f"{remaining:.3f}"), args.root / f"{run_dir.name}.log")


def train(args) -> None:
    def sl_chain() -> None:
        pretrain(args.root / "sl", args, args.sl_games, args.sl_steps, "--learning-rate", SL_LEARNING_RATE)
        self_play_to_budget(args.root / "sl", args, "--learning-rate", SL_LEARNING_RATE)
        pretrain(args.root / "sl-only", args, args.sl_only_games, args.sl_only_steps)

    def zero_chain() -> None:
        self_play_to_budget(args.root / "zero", args)

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(sl_chain), pool.submit(zero_chain)]:
            future.result()
    for name in ("sl", "sl-only", "zero"):
        print(f"{name}: {spent_hours(args.root / name):.2f} CPU-hours, generation "
              f"{state(args.root / name).get('generation')}")


def evaluate(args) -> None:
    root, python = args.root, sys.executable
    budget = ["--playouts", str(args.playouts), "--games", str(args.games), "--modes", "mcts"]
    sl_models = sorted((root / "sl" / "generations").glob("gen*.ckpt"))[1:]  # gen0000: never trained
    sl_models.append(root / "sl-only" / "generations" / "gen0001.ckpt")
    strength = [python, "benchmarks/go_strength.py", *budget]
    ours = f",playouts={args.playouts}"
    match = [python, "-m", "mlcasebook", "go", "match", "--games", str(args.games)]
    note = f"the chapter's lesson at equal compute ({args.budget:g} CPU-hours a run, benchmarks/go_lesson.py)"
    jobs = {
        "sl": [*strength, "--models", ",".join(map(str, sl_models)), "--opponents", "gnugo:1",
               "--out", str(args.out_dir / "go_strength_lesson_sl.json"),
               "--note", f"AlphaGo's side of {note}: run sl (SL, then self-play) and run sl-only"],
        "zero": [*strength, "--run", str(root / "zero"), "--opponents", "random",
                 "--out", str(args.out_dir / "go_strength_lesson_zero.json"),
                 "--note", f"AlphaGo Zero's side of {note}: self-play from a random network"],
        # the best network by its generation file, so the table and the plot know its run and compute
        "zero-l1": [*strength, "--models", str(best_generation(root / "zero")), "--opponents", "gnugo:1",
                    "--out", str(args.out_dir / "go_strength_lesson_zero_l1.json"),
                    "--note", f"AlphaGo Zero's best network of {note}, against the SL runs' opponent"],
        "sl-vs-sl-only": [*match, f"ours:{root / 'sl' / 'best.ckpt'}{ours}",
                          f"ours:{root / 'sl-only' / 'best.ckpt'}{ours}",
                          "--json", str(args.out_dir / "go_match_lesson_sl_vs_sl_only.json"),
                          "--note", f"SL + self-play against SL only, {note}"],
        "sl-vs-zero": [*match, f"ours:{root / 'sl' / 'best.ckpt'}{ours}", f"ours:{root / 'zero' / 'best.ckpt'}{ours}",
                       "--json", str(args.out_dir / "go_match_lesson_sl_vs_zero.json"),
                       "--note", f"SL + self-play against AlphaGo Zero, {note}"],
    }
    unknown = set(args.jobs) - set(jobs)
    if unknown:
        raise SystemExit(f"unknown --jobs {sorted(unknown)}; choose from {sorted(jobs)}")
    with ThreadPoolExecutor(2) as pool:  # two matches at a time: one core each
        for future in [pool.submit(run, jobs[name], root / "evaluate.log") for name in args.jobs or jobs]:
            future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["train", "evaluate"])
    parser.add_argument("--root", type=Path, default=Path("~/.cache/mlcasebook/go/lesson").expanduser())
    parser.add_argument("--corpus", type=Path, default=Path("~/.cache/mlcasebook/go/gnugo10").expanduser(),
                        help="GNU Go level-10 games from `mlcasebook go corpus` (seeds 1, 2, ... in name order)")
    parser.add_argument("--budget", type=float, default=1.0, help="CPU-hours each run may spend")
    parser.add_argument("--seconds-per-corpus-game", type=float, default=10.4)
    parser.add_argument("--sl-games", type=int, default=143)
    parser.add_argument("--sl-steps", type=int, default=500)
    parser.add_argument("--sl-only-games", type=int, default=290)
    parser.add_argument("--sl-only-steps", type=int, default=650)
    parser.add_argument("--playouts", type=int, default=100, help="simulations a move in the evaluation")
    parser.add_argument("--games", type=int, default=10, help="games per evaluation match")
    parser.add_argument("--out-dir", type=Path, default=Path("docs/results"), help="where evaluation JSON goes")
    parser.add_argument("--jobs", type=lambda text: text.split(","), default=[],
                        help="evaluate only these (comma-separated: sl, zero, zero-l1, sl-vs-sl-only, sl-vs-zero), "
                             "e.g. the sl side while zero still trains")
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    if args.stage == "train":
        train(args)
    else:
        evaluate(args)


if __name__ == "__main__":
    main()
