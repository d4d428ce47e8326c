"""How fast the neural translators train on this machine's cores: threads in one process against
data-parallel processes (``--workers``, core.data_parallel).

Trains the same model for a fixed number of steps on real Multi30k en→de batches, once per
setting, and reports target tokens per second of training (from ``train_nmt``'s own log).

    .venv/bin/python benchmarks/translate_workers.py --json docs/results/translate_workers.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from mlcasebook.core.checkpoint import load_checkpoint
from mlcasebook.core.report import write_json
from mlcasebook.translate.data import load_pair, tuning_split
from mlcasebook.translate.nmt_train import NMTConfig, train_nmt
from mlcasebook.translate.subword import Subwords

SETTINGS = [(1, 1), (2, 1), (2, 2)]  # (threads in all, processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="en-de")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--option", action="append", default=[], help="NMTConfig override key=value (JSON value)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    options = {"d_model": 128, "ff_dim": 256, "enc_layers": 4, "dec_layers": 4, "dropout": 0.3, "lr": 3e-3,
               "warmup": 800, "batch_tokens": 2048}  # the en-de Transformer of docs/results/translate_ladder_en-de
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    rest, tune = tuning_split(load_pair(args.pair, "train"), 500, 0)
    subwords = Subwords.train([*rest.source, *rest.target], vocab_size=8000, seed=0)
    train = [(subwords.encode(s), subwords.encode(t)) for s, t in zip(rest.source, rest.target, strict=True)]
    dev = [(subwords.encode(s), subwords.encode(t)) for s, t in zip(tune.source, tune.target, strict=True)]
    rows = []
    for threads, workers in SETTINGS:
        torch.set_num_threads(threads)
        config = NMTConfig.for_arch("transformer", **options, max_steps=args.steps, eval_every=10**6,
                                    workers=workers)
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            path = train_nmt(config, train, dev, subwords.vocab_info(), folder, progress=False, track=False)
            seconds = time.perf_counter() - started
            last = load_checkpoint(path)[1]["info"]["history"][-1]
        rows.append({"threads": threads, "workers": workers, "steps": args.steps,
                     "target_tokens_per_s": last["target_tokens_per_s"], "seconds_per_step": last["seconds_per_step"],
                     "wall_s": seconds})
        print(rows[-1], flush=True)
    base = rows[0]["target_tokens_per_s"]
    for row in rows:
        row["speedup_vs_1_thread"] = row["target_tokens_per_s"] / base
    result = {"rows": rows, "settings": {
        "command": f".venv/bin/python benchmarks/translate_workers.py {' '.join(sys.argv[1:])}", "pair": args.pair,
        "options": options, "machine": f"{platform.machine()}, python {platform.python_version()}, "
                                      f"torch {torch.__version__}, nothing else running",
        "date": time.strftime("%Y-%m-%d %H:%M:%S")}}
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
