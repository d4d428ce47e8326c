"""Generation 1 of the translation case: phrase-based SMT trained, tuned and scored per direction.

For each pair (default: Tanaka ja→en and Multi30k en→de):

- data through ``translate.data.load_pair`` (raw text; Tanaka is rebuilt from its tokenized
  files), tokenized with ``translate.text.tokenize`` (MeCab + IPAdic for Japanese, Moses
  otherwise) — exactly what the product feeds the model;
- a tuning set carved from TRAIN (``data.tuning_split``, seed 0, ``--tune-size`` sentences) is
  held out of training and used only for the MERT-style weight tuning;
- the model (IBM 2 alignments both ways + grow-diag-final-and, phrases ≤ 5 words, top-10
  translations per source phrase, 4-gram modified Kneser–Ney LM, distortion limit 6, beam 50)
  is trained on the rest of train, tuned, then decodes the evaluation split once: Tanaka dev
  (500; its test set is not here), Multi30k test_2016_flickr (1,000);
- sacreBLEU BLEU (signature printed; ``ja-mecab`` for a Japanese target) and chrF on detokenized
  text, against the raw references (Tanaka English is lowercase in the corpus; Multi30k is cased,
  scored as is); training, tuning and decoding time; decoding speed; LM perplexity on the
  references.

    OMP_NUM_THREADS=1 flock /tmp/mlcasebook-translate.lock .venv/bin/python benchmarks/translate_smt.py
    .venv/bin/python benchmarks/translate_smt.py --pairs ja-en --train-limit 5000 --eval-limit 100 \
        --tune-size 100 --out /tmp/smt_smoke.json     # a smoke run, about a minute
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from common import console, print_table, save
from mlcasebook.translate.data import load_pair, tuning_split
from mlcasebook.translate.evaluate import score
from mlcasebook.translate.smt import PhraseBasedSMT
from mlcasebook.translate.text import detokenize, tokenize

EVAL_SPLIT = {"tanaka": "dev", "multi30k": "test"}


def run_pair(pair: str, args: argparse.Namespace) -> dict:
    train = load_pair(pair, "train", args.data_dir, limit=args.train_limit)
    rest, tune = tuning_split(train, size=args.tune_size)
    split = EVAL_SPLIT[train.corpus]
    evaluation = load_pair(pair, split, args.data_dir, limit=args.eval_limit)
    src, tgt = train.src_lang, train.tgt_lang

    def words(lines: list[str], lang: str) -> list[list[str]]:
        return [tokenize(line, lang) for line in lines]

    console.print(f"[bold]{pair}[/]: {len(rest):,} train / {len(tune):,} tuning (from train) / "
                  f"{len(evaluation):,} {split}")
    model = PhraseBasedSMT(max_phrase_len=args.max_phrase_len, lm_order=args.lm_order,
                           distortion_limit=args.distortion_limit, beam_size=args.beam_size)
    started = time.perf_counter()
    model.fit(words(rest.source, src), words(rest.target, tgt), progress=True)
    fit_s = time.perf_counter() - started

    started = time.perf_counter()
    model.tune(words(tune.source, src), words(tune.target, tgt), iterations=args.tune_iterations, progress=True)
    tune_s = time.perf_counter() - started
    if args.save_dir:
        model.save(Path(args.save_dir) / f"smt-{pair}.npz")

    eval_tokens = words(evaluation.source, src)
    started = time.perf_counter()
    outputs = model.translate_many(eval_tokens, progress=True)
    decode_s = time.perf_counter() - started
    hypotheses = [detokenize(o, tgt) for o in outputs]
    scores = score(hypotheses, evaluation.target, tgt)
    console.print(scores.bleu_detail)
    console.print(f"BLEU signature: {scores.bleu_signature}\nchrF signature: {scores.chrf_signature}")
    for source, hypothesis, reference in list(zip(evaluation.source, hypotheses, evaluation.target, strict=True))[:3]:
        console.print(f"  {source}\n    → {hypothesis}\n    ref {reference}")
    perplexity = model.lm_.perplexity(words(evaluation.target, tgt))
    history = model.tuning_history_
    return {"pair": pair, "corpus": train.corpus, "eval_split": split, "train_pairs": len(rest),
            "tune_pairs": len(tune), "eval_sentences": len(evaluation),
            "BLEU": round(scores.bleu, 2), "chrF": round(scores.chrf, 2),
            "tuning_bleu_first": round(history[0]["bleu_1best"], 2),
            "tuning_bleu_kept": round(max(r["bleu_1best"] for r in history), 2),
            "fit_s": round(fit_s, 1), "tune_s": round(tune_s, 1), "decode_s": round(decode_s, 1),
            "sentences_per_s": round(len(evaluation) / decode_s, 2),
            "phrase_pairs_kept": model.train_stats_["phrase_pairs_kept"],
            "lm_perplexity_on_refs": round(perplexity, 1),
            "bleu_signature": scores.bleu_signature, "chrf_signature": scores.chrf_signature,
            "bleu_detail": scores.bleu_detail, "weights": {k: round(v, 4) for k, v in model.weights.items()},
            "train_stats": {k: (round(v, 1) if isinstance(v, float) else v) for k, v in model.train_stats_.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["ja-en", "en-de"])
    parser.add_argument("--data-dir", default=None, help="corpus folder (default: $MLCASEBOOK_DATA or ../shared/data)")
    parser.add_argument("--train-limit", type=int, default=None, help="first N training pairs only (smoke runs)")
    parser.add_argument("--eval-limit", type=int, default=None, help="first N evaluation sentences only")
    parser.add_argument("--tune-size", type=int, default=500, help="tuning sentences carved from train")
    parser.add_argument("--tune-iterations", type=int, default=3, help="MERT decodes of the tuning set")
    parser.add_argument("--max-phrase-len", type=int, default=5)
    parser.add_argument("--lm-order", type=int, default=4)
    parser.add_argument("--distortion-limit", type=int, default=6)
    parser.add_argument("--beam-size", type=int, default=50)
    parser.add_argument("--save-dir", default=None, help="keep the trained models here (smt-<pair>.npz)")
    parser.add_argument("--note", default="1 thread of a shared 2-core box (other helpers' runs on the other core)",
                        help="machine conditions to record with the figures")
    parser.add_argument("--out", type=Path, default=Path("docs/results/translate_smt.json"))
    args = parser.parse_args()

    rows = [run_pair(pair, args) for pair in args.pairs]
    table = pd.DataFrame([{k: row[k] for k in ("pair", "eval_split", "train_pairs", "BLEU", "chrF",
                                               "tuning_bleu_kept", "fit_s", "tune_s", "sentences_per_s",
                                               "phrase_pairs_kept", "lm_perplexity_on_refs")} for row in rows])
    print_table(table, "Phrase-based SMT (generation 1)")
    command = ("OMP_NUM_THREADS=1 flock /tmp/mlcasebook-translate.lock .venv/bin/python benchmarks/translate_smt.py "
               + " ".join(f"--{k.replace('_', '-')} {v if not isinstance(v, list) else ' '.join(v)}"
                          for k, v in vars(args).items() if v is not None and k not in ("note", "out")))
    settings = {"command": command, "note": args.note, "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
                "load_average": list(os.getloadavg()), "seed": 0,
                "split": "tuning set = data.tuning_split(train, seed 0) held out of training; scored once on "
                         "Tanaka dev / Multi30k test_2016_flickr"}
    save(args.out, settings, {"smt": pd.DataFrame(rows)})


if __name__ == "__main__":
    main()
