"""Strength against GNU Go: networks (or a run's promoted generations) x modes x opponents.

For each network: the raw policy (no search) and policy + MCTS at a fixed time per move, each
against each opponent, colours alternating, refereed and scored by our Tromp-Taylor rules.
Rows give the win rate with a Wilson 95 % interval and the Elo difference. With ``--run`` the
promoted generations of a training run are measured in order (the Elo-over-training curve).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/go_strength.py \\
        --models runs/go/alphago9/best.ckpt --opponents gnugo:1,gnugo:10 --games 20 --time-per-move 2

``--playouts N`` searches N simulations a move instead (training-curve points that do not depend on
the machine's load).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import pandas as pd

from common import print_table, save
from mlcasebook.go.match import run_match
from mlcasebook.go.net import load_net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="", help="comma-separated checkpoints")
    parser.add_argument("--run", type=Path, help="a training run folder: measure its generations/*.ckpt")
    parser.add_argument("--opponents", default="gnugo:1,gnugo:10")
    parser.add_argument("--modes", default="policy,mcts", help="policy and/or mcts")
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--time-per-move", type=float, default=2.0)
    parser.add_argument("--playouts", type=int, default=None,
                        help="search a fixed number of simulations a move instead of a time budget: results "
                             "do not depend on the machine's load, so they can run beside training")
    parser.add_argument("--board", type=int, default=9)
    parser.add_argument("--komi", type=float, default=7.0)
    parser.add_argument("--sgf-dir", type=Path, default=None)
    parser.add_argument("--parallel", type=int, default=1,
                        help="games at once (one per core; run with OMP_NUM_THREADS=1)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/go_strength.json"))
    parser.add_argument("--note", default="", help="what the networks are (training, CPU time), kept in the JSON")
    args = parser.parse_args()
    models = [Path(m) for m in args.models.split(",") if m]
    if args.run is not None:
        models += sorted((args.run / "generations").glob("gen*.ckpt"))
    if not models:
        parser.error("give --models or --run")
    rows = []
    for model in models:
        meta = load_net(model)[1]
        made_by = {"run": model.parent.parent.name if model.parent.name == "generations" else "",
                   "generation": meta.get("generation"),
                   # the training compute behind this network: the Elo-over-training curve's x axis
                   "cpu_hours": meta["cpu_seconds"] / 3600 if "cpu_seconds" in meta else float("nan")}
        for mode in args.modes.split(","):
            budget = f"time={args.time_per_move}" if args.playouts is None else f"playouts={args.playouts}"
            ours = f"ours:{model},policy" if mode == "policy" else f"ours:{model},{budget}"
            for opponent in args.opponents.split(","):
                sgf_dir = None if args.sgf_dir is None else args.sgf_dir / f"{model.stem}_{mode}_{opponent}"
                summary = run_match(ours, opponent, args.games, args.board, args.komi, sgf_dir,
                                    parallel=args.parallel)
                rows.append({"model": str(model), "mode": mode, "opponent": opponent, "games": summary.games,
                             "wins": summary.first_wins, "draws": summary.draws, "win_rate": summary.win_rate,
                             "ci95_low": summary.win_rate_95[0], "ci95_high": summary.win_rate_95[1],
                             "elo": summary.elo, "s/move": summary.seconds_per_move[summary.first],
                             "elo_95_low": summary.elo_95[0], "elo_95_high": summary.elo_95[1],
                             "forfeits": summary.forfeits, "score_disagreements": summary.disagreements,
                             "distinct_games": summary.distinct_games} | made_by)
                print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print_table(table, f"strength on {args.board}x{args.board}, komi {args.komi:g}")
    threads = os.environ.get("OMP_NUM_THREADS")
    command = (f"OMP_NUM_THREADS={threads} " if threads else "") + ".venv/bin/python benchmarks/go_strength.py " + \
        " ".join(shlex.quote(a) for a in sys.argv[1:])
    save(args.out, vars(args) | {"run": str(args.run), "sgf_dir": str(args.sgf_dir), "out": str(args.out),
                                 "command": command},
         {"matches": table})


if __name__ == "__main__":
    main()
