"""Move prediction on held-out expert games: AlphaGo's SL-policy figure (57 % top-1 on KGS moves).

Every network is scored on the same games: the corpus's held-out split (a hash of the file name,
as `mlcasebook go train --pretrain-holdout` uses), optionally only the files of some corpus seeds,
so that a network trained on an earlier, smaller corpus is not scored on games it saw. Reports
top-1 accuracy and cross-entropy over expert moves (random opening moves are not expert moves),
value MSE and how often the value's sign names the winner.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/go_move_prediction.py \\
        --corpus ~/.cache/mlcasebook/go/gnugo10 --seeds 3,4 \\
        --models src/mlcasebook/go/models/go9.ckpt,~/.cache/mlcasebook/go/alphago9-sl2/best.ckpt
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from common import print_table, save
from mlcasebook.go.corpus import is_held_out, read_sgf_examples
from mlcasebook.go.net import load_net
from mlcasebook.go.train import evaluate_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="folder of SGF games (from `go corpus`)")
    parser.add_argument("--models", required=True, help="comma-separated checkpoints")
    parser.add_argument("--holdout", type=float, default=0.05, help="the held-out fraction pretraining used")
    parser.add_argument("--seeds", default="", help="only files gnugoLEVEL_SEED_*.sgf of these corpus seeds")
    parser.add_argument("--out", type=Path, default=Path("docs/results/go_move_prediction.json"))
    args = parser.parse_args()
    seeds = set(filter(None, args.seeds.split(",")))
    files = [path for path in sorted(args.corpus.expanduser().glob("*.sgf")) if is_held_out(path, args.holdout)
             and (not seeds or path.name.split("_")[1] in seeds)]
    if not files:
        parser.error(f"no held-out games under {args.corpus} for seeds {sorted(seeds) or 'any'}")
    with tempfile.TemporaryDirectory() as folder:
        for path in files:
            shutil.copy(path, Path(folder) / path.name)
        examples = read_sgf_examples(Path(folder))[0]
    rows = []
    for model in args.models.split(","):
        path = Path(model).expanduser()
        rows.append({"model": model, **evaluate_examples(load_net(path)[0], examples)})
    table = pd.DataFrame(rows)
    print_table(table, f"{len(files)} held-out games, {int(examples.policy_weight.sum())} expert moves")
    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/go_move_prediction.py --corpus " \
              f"{args.corpus} --models {args.models}" + (f" --seeds {args.seeds}" if seeds else "")
    save(args.out, {"command": command, "games": len(files), "expert_moves": int(examples.policy_weight.sum()),
                    "holdout": args.holdout, "seeds": sorted(seeds), "threads": os.environ.get("OMP_NUM_THREADS")},
         {"models": table})


if __name__ == "__main__":
    main()
