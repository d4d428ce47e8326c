"""Short GNMT recipe probes: train one variant from scratch for a few minutes and print the tuning
split's NLL history (500 pairs carved from train with seed 0; dev and test are never read), so
variants can be compared at equal training time. The table in docs/translate.md came from pairs of

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/translate_gnmt_probe.py --name bridge --minutes 13 \\
        --options '{"batch_tokens": 2048, "eval_every": 125, "average_last": 1, "warmup": 200,
                    "lr_schedule": "constant", "dropout": 0.2, "input_feeding": false, "attention": "dot",
                    "lr": 0.003, "pass_hidden_state": true}'

run two at a time (one thread each) on the 2-core box.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mlcasebook.core.checkpoint import load_checkpoint
from mlcasebook.translate.translator import train_translator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the variant's folder name under --out")
    parser.add_argument("--minutes", type=float, default=13.0)
    parser.add_argument("--pair", default="en-de")
    parser.add_argument("--options", default="{}", help="NMTConfig overrides as JSON")
    parser.add_argument("--out", type=Path, default=Path("/tmp/gnmt-probes"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = args.out / args.name
    record = train_translator(args.pair, "gnmt", folder, budget_minutes=args.minutes, tuning_size=500, track=False,
                              progress=False, nmt_options=json.loads(args.options), resume=False).record
    history = load_checkpoint(sorted(folder.glob("checkpoint_*.pt"))[-1])[1]["run"]["history"]
    for row in history:
        print(f"step {row['step']:5d}  {row['train_seconds']:7.0f} s  tuning NLL {row['dev_nll']:.3f}")
    print(f"{args.name}: {record['steps']} steps in {record['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
