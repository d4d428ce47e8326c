"""The translation ladder: phrase-based SMT → GNMT-style LSTM + attention → Transformer, same data.

For each direction, each generation is trained on the corpus's train split (minus a tuning set
carved from it with seed 0: the SMT feature weights are tuned on it, the neural models report
their held-out loss on it; nothing is chosen on the scored split), then translates the scored
split once, timed, and is scored with sacreBLEU (signature in the JSON; ``ja-mecab`` tokens for a
Japanese target, ``13a`` otherwise) and chrF:

- Multi30k en→de (and any other Multi30k pair): scored on test_2016_flickr (1,000 sentences);
- Tanaka ja→en / en→ja: scored on the 500-sentence dev set — the corpus's test set is not in the
  shared data. Tanaka English is lowercase in the corpus, hypotheses and references alike.

Neural models train for ``--minutes`` of wall clock each (their recipe: ``NMTConfig.for_arch``
defaults from the neural module, plus ``--nmt-option key=value`` overrides); SMT trains to the end.
The BLEU gain of each rung over SMT is printed; the chapter's "+60 %" (GNMT vs phrase-based) sits beside GNMT.
Each rung is tested against the one below by paired bootstrap resampling (sacreBLEU's, 1,000
resamples of the scored sentences): is the gain more than the test set's luck?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/translate_ladder.py --pairs en-de --minutes 120 \\
        --json docs/results/translate_ladder_en-de.json
    .venv/bin/python benchmarks/translate_ladder.py --quick     # smoke run: small slices, seconds of training

Models are kept in ``<cache>/translate/ladder/<pair>-<arch>`` (``--models-dir``): a rerun with the same
settings reuses a finished model; ``--retrain`` starts over. Results are written after every model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from common import console, print_table
from mlcasebook.core.report import write_json
from mlcasebook.core.sources import cache_dir
from mlcasebook.translate import evaluate as ev
from mlcasebook.translate.data import load_pair
from translate_common import (
    cached_hypotheses,
    code_version,
    command_line,
    machine,
    options_for,
    parse_options,
    score_model,
    scored_split,
    train_unless_done,
)

ARCHS = ("smt", "gnmt", "transformer")
SCORES = "ladder_scores.json"  # a model's scores on the scored split, reused while the model is unchanged


def run_model(pair: str, arch: str, args, test, all_nmt_options: dict) -> dict:
    nmt_options = options_for(arch, all_nmt_options)
    folder = args.models_dir / f"{pair}-{arch}"
    settings = {"pair": pair, "arch": arch, "max_sentences": args.max_sentences, "seed": args.seed,
                "minutes": None if arch == "smt" else args.minutes, "vocab_size": args.vocab_size,
                "tuning_size": args.tuning_size,
                "options": nmt_options if arch != "smt" else args.smt_options}
    neural = arch != "smt"
    train_unless_done(pair, arch, folder, settings, args, SCORES, budget_minutes=settings["minutes"],
                      nmt_options=dict(nmt_options) if neural else None,
                      smt_options=None if neural else dict(args.smt_options))
    return score_model(folder, test, folder / SCORES, f"{pair} {arch}")


def significance(pair: str, archs: list[str], args, test) -> list[dict]:
    """Paired bootstrap between neighbouring rungs, on the translations cached with their scores."""
    hypotheses = {arch: cached_hypotheses(args.models_dir / f"{pair}-{arch}" / SCORES, test) for arch in archs}
    steps = ev.ladder_significance({a: h for a, h in hypotheses.items() if h is not None}, test.target,
                                   test.tgt_lang)
    for step in steps:
        console.print(ev.significance_text(step), highlight=False)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", default=["en-de"], help="directions, e.g. en-de ja-en")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall clock per neural model")
    parser.add_argument("--max-sentences", type=int, default=None, help="first N training pairs (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="score the first N sentences only")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--nmt-option", action="append", default=[],
                        help="NMTConfig override key=value, or arch.key=value for one architecture")
    parser.add_argument("--smt-option", action="append", default=[],
                        help="PhraseBasedSMT option key=value (tune_* go to its tune(), e.g. tune_iterations=3)")
    parser.add_argument("--tuning-size", type=int, default=1000, help="pairs carved from train for tuning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: two runs share the 2 cores)")
    parser.add_argument("--models-dir", type=Path, default=cache_dir() / "translate" / "ladder")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--score-only", action="store_true",
                        help="only score models already trained with these settings; stop, saying which setting "
                             "differs, instead of training")
    parser.add_argument("--track", action="store_true", help="log to MLflow")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 pairs, 0.3 min, 100 sentences")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--note", default=None, help="a remark stored with the settings (how the run went)")
    args = parser.parse_args()
    if args.quick:
        args.max_sentences, args.minutes, args.limit, args.tuning_size = 2000, 0.3, 100, 100
        args.models_dir = args.models_dir.with_name("ladder-quick")
    torch.set_num_threads(args.threads)
    nmt_options = parse_options(args.nmt_option)
    args.smt_options = parse_options(args.smt_option)
    results: dict = {"settings": {
        "command": command_line("translate_ladder.py"), "pairs": args.pairs, "archs": args.archs,
        "minutes_per_neural_model": args.minutes,
        "max_sentences": args.max_sentences, "limit": args.limit, "seed": args.seed, "nmt_options": nmt_options,
        "vocab_size": args.vocab_size, "smt_options": args.smt_options,
        "tuning": f"{args.tuning_size} pairs carved from train (seed {args.seed}); dev/test never tuned on",
        "machine": machine(args.threads),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "code": code_version(), "note": args.note}, "pairs": {}}
    for pair in args.pairs:
        split = scored_split(pair)
        test = load_pair(pair, split, limit=args.limit)
        entry = results["pairs"].setdefault(pair, {"scored_on": f"{test.corpus} {split} ({len(test)} sentences)",
                                                   "notes": test.notes, "models": []})
        for arch in args.archs:
            entry["models"].append(run_model(pair, arch, args, test, nmt_options))
            entry["ladder"] = ev.ladder_frame(entry["models"]).to_dict(orient="records")
            entry["ladder_holds"] = ev.ladder_holds(entry["models"])
            entry["claim"] = ev.claim_row(entry["models"])
            if args.json:
                write_json(args.json, results)
        print_table(ev.ladder_frame(entry["models"]), f"{pair}: {entry['scored_on']}")
        entry["significance"] = significance(pair, args.archs, args, test)
        if args.json:
            write_json(args.json, results)
    if args.json:
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
