"""GNMT's decoding penalties on the tuning split: length penalty α and coverage penalty β.

A finished neural model translates the tuning split (the pairs carved from train with seed 0 that
the model never trained on; dev and test are not read) once per (α, β) and is scored with
sacreBLEU and chrF, to choose the decoding settings the way GNMT did — on held-out data, not on
the scored split.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/translate_decoding.py \\
        --model ~/.cache/mlcasebook/translate/ladder/en-de-gnmt --pair en-de --tuning-size 500 \\
        --grid 0.6,0 0.6,0.2 1.0,0.2 0.2,0.2 1.0,0 0.6,0.4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from common import console, print_table
from mlcasebook.core.report import write_json
from mlcasebook.translate import evaluate as ev
from mlcasebook.translate.data import load_pair, parse_pair, tuning_split
from mlcasebook.translate.translator import Translator
from translate_common import code_version, command_line, machine


def penalties(text: str) -> tuple[float, float]:
    try:
        alpha, beta = (float(x) for x in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not ALPHA,BETA (e.g. 0.6,0.2)") from error
    return alpha, beta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained GNMT or Transformer folder")
    parser.add_argument("--pair", required=True, help="the direction it translates, e.g. en-de")
    parser.add_argument("--grid", type=penalties, nargs="+", default=[(0.6, 0.0), (0.6, 0.2), (1.0, 0.0)],
                        help="ALPHA,BETA settings to try")
    parser.add_argument("--tuning-size", type=int, default=500, help="as the model was trained with")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    src_lang, tgt_lang = parse_pair(args.pair)
    _, tune = tuning_split(load_pair(args.pair, "train"), args.tuning_size, args.seed)
    translator = Translator.load(args.model)
    rows = []
    for alpha, beta in args.grid:
        translator.engine.alpha, translator.engine.beta = alpha, beta
        started = time.perf_counter()
        hypotheses = translator.translate_lines(tune.source, src_lang, tgt_lang)
        scores = ev.score(hypotheses, tune.target, tgt_lang)
        rows.append({"alpha": alpha, "beta": beta, "BLEU": scores.bleu, "chrF": scores.chrf,
                     "seconds": time.perf_counter() - started})
        console.print(f"α {alpha:g} β {beta:g}: tuning BLEU {scores.bleu:.2f} chrF {scores.chrf:.2f}", highlight=False)
    print_table(pd.DataFrame(rows), f"{args.pair} {translator.arch}: {len(tune)} tuning pairs")
    if args.json:
        write_json(args.json, {"settings": {"command": command_line("translate_decoding.py"), "model": str(args.model),
                                            "arch": translator.arch, "pair": args.pair,
                                            "tuning": f"{len(tune)} pairs carved from train (seed {args.seed})",
                                            "machine": machine(1), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                                            "code": code_version()}, "rows": rows})


if __name__ == "__main__":
    main()
