"""The multilingual Transformer: one model for every direction, beside the bilingual models, and zero-shot.

One Transformer is trained on all ``--pairs`` at once (default ja↔en and en↔de/fr/cs, as the GNMT
multilingual paper did: the same architecture, a ``<2xx>`` target-language token first in each
source, one joint SentencePiece vocabulary), for ``--minutes`` of wall clock: the price of one
bilingual model of the ladder. Then:

- every trained direction is scored on its scored split (Multi30k test_2016_flickr, Tanaka dev),
  beside the bilingual models of ``benchmarks/translate_ladder.py`` scored on the same sentences
  (read from their cached scores in ``--ladder-dir``; "—" where a direction has no ladder run);
- each ``--zero-shot`` direction (default de→fr and fr→de, never seen in training: Multi30k is
  aligned across its four languages, so it has references) is scored twice: asked directly, and
  pivoted through English by the same model (de→en→fr), the baseline zero-shot has to approach;
- every row says which share of its translations is in the target language (a character n-gram
  identifier fitted on the train splits, ``mlcasebook.translate.langid``): zero-shot's known
  failure is answering in the wrong language (off-target translation), which BLEU alone hides.

Nothing is chosen on a scored split: the tuning set is carved from train (seed 0), as in the ladder.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/translate_multilingual.py --minutes 120 \\
        --json docs/results/translate_multilingual.json
    .venv/bin/python benchmarks/translate_multilingual.py --quick    # smoke run: slices, seconds of training

The model is kept in ``<--models-dir>/multilingual`` (a rerun with the same settings reuses it and
its scores; an interrupted run resumes from its last checkpoint and its time adds up).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from common import console, print_table
from mlcasebook.core.report import write_json
from mlcasebook.core.sources import cache_dir
from mlcasebook.translate.data import load_pair
from mlcasebook.translate.langid import LanguageIdentifier, on_target_rate
from mlcasebook.translate.translator import MANIFEST, MULTILINGUAL_PAIRS
from translate_common import (
    cached_hypotheses,
    cached_row,
    code_version,
    command_line,
    machine,
    parse_options,
    score_model,
    scored_split,
    train_unless_done,
)
from translate_ladder import SCORES as LADDER_SCORES

BILINGUAL = ("smt", "gnmt", "transformer")


def train(args, options: dict) -> Path:
    folder = args.models_dir / "multilingual"
    settings = {"pairs": args.pairs, "arch": "multilingual", "max_sentences": args.max_sentences, "seed": args.seed,
                "minutes": args.minutes, "vocab_size": args.vocab_size, "tuning_size": args.tuning_size,
                "options": options}
    train_unless_done(",".join(args.pairs), "multilingual", folder, settings, args, "scores_*.json",
                      budget_minutes=args.minutes, nmt_options=dict(options))
    return folder


def budget(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def language_identifier(pairs: list[str], lines_per_language: int = 3000) -> LanguageIdentifier:
    """An identifier for the model's languages, fitted on the first lines of every train split that has
    them (never a scored split): English from both Tanaka and Multi30k, so neither corpus's style decides."""
    texts: dict[str, dict[str, None]] = {}  # an ordered set: Multi30k's English is the same in en-de/fr/cs
    for pair in pairs:
        data = load_pair(pair, "train", limit=lines_per_language)
        for lang, lines in ((data.src_lang, data.source), (data.tgt_lang, data.target)):
            texts.setdefault(lang, {}).update(dict.fromkeys(lines))
    return LanguageIdentifier().fit({lang: list(lines) for lang, lines in texts.items()})


def bilingual_rows(ladder_dirs: list[Path], pair: str, test) -> dict[str, dict]:
    """The ladder's models for this direction that were scored on exactly these sentences, labelled by
    architecture and training time ("transformer 15 min"): a folder per ladder budget."""
    rows = {}
    for ladder_dir in ladder_dirs:
        for arch in BILINGUAL:
            if (row := cached_row(ladder_dir / f"{pair}-{arch}" / LADDER_SCORES, test)) is not None:
                rows[arch if arch == "smt" else f"{arch} {budget(row['train_s'])}"] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", default=list(MULTILINGUAL_PAIRS), help="trained directions")
    parser.add_argument("--zero-shot", nargs="*", default=["de-fr", "fr-de"],
                        help="untrained directions to score (both languages must be in the model)")
    parser.add_argument("--minutes", type=float, default=120.0, help="training wall clock")
    parser.add_argument("--max-sentences", type=int, default=None, help="first N training pairs per direction")
    parser.add_argument("--limit", type=int, default=None, help="score the first N sentences only")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--nmt-option", action="append", default=[], help="NMTConfig override key=value")
    parser.add_argument("--tuning-size", type=int, default=500, help="pairs carved from each direction's train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models-dir", type=Path, default=cache_dir() / "translate" / "ladder")
    parser.add_argument("--ladder-dir", type=Path, action="append", default=None,
                        help="where translate_ladder.py keeps its models (default: --models-dir); repeat it for "
                             "ladders run at other budgets (e.g. one of 15-minute models: equal total compute)")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--score-only", action="store_true",
                        help="only score models already trained with these settings; stop, saying which setting "
                             "differs, instead of training")
    parser.add_argument("--track", action="store_true", help="log to MLflow")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 pairs a direction, 0.3 min, 100 "
                                                             "sentences")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--note", default=None, help="a remark stored with the settings")
    args = parser.parse_args()
    if args.quick:
        args.max_sentences, args.minutes, args.limit, args.tuning_size = 1000, 0.3, 100, 50
        args.models_dir = args.models_dir.with_name("ladder-quick")
    ladder_dirs = args.ladder_dir or [args.models_dir]
    torch.set_num_threads(args.threads)
    options = parse_options(args.nmt_option)
    results: dict = {"settings": {
        "command": command_line("translate_multilingual.py"), "pairs": args.pairs, "zero_shot": args.zero_shot,
        "minutes": args.minutes, "max_sentences": args.max_sentences, "limit": args.limit, "seed": args.seed,
        "nmt_options": options, "vocab_size": args.vocab_size,
        "tuning": f"{args.tuning_size} pairs carved from each direction's train (seed {args.seed}); "
                  "dev/test never tuned on",
        "machine": machine(args.threads), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "code": code_version(),
        "note": args.note}, "rows": []}
    folder = train(args, options)
    languages = json.loads((folder / MANIFEST).read_text())["languages"]
    results["languages"] = languages
    identifier = language_identifier(args.pairs)
    for pair in args.pairs + args.zero_shot:
        src, tgt = pair.split("-")
        test = load_pair(pair, scored_split(pair), limit=args.limit)
        kinds = [("trained", None)] if pair in args.pairs else [
            ("zero-shot", None),
            ("pivot via en", lambda model, lines, s=src, t=tgt: model.translate_lines(
                model.translate_lines(lines, s, "en"), "en", t))]
        for kind, call in kinds:
            suffix = "" if kind != "pivot via en" else "_pivot"
            cache = folder / f"scores_{pair}{suffix}.json"
            row = score_model(folder, test, cache, f"{pair} multilingual ({kind})", translate=call)
            # off-target translation (answering in the wrong language) is zero-shot's known failure: say how often
            target_share = on_target_rate(cached_hypotheses(cache, test), tgt, identifier)
            bilingual = bilingual_rows(ladder_dirs, pair, test) if kind == "trained" else {}
            results["rows"].append(row | {
                "direction": pair, "kind": kind, "scored_on": f"{test.corpus} {test.split} ({len(test)} sentences)",
                "on_target": target_share["on_target"], "output_languages": target_share["languages"],
                "bilingual": {label: {"bleu": r["bleu"], "chrf": r["chrf"], "train_s": r["train_s"]}
                              for label, r in bilingual.items()}})
            if args.json:
                frame = table(results["rows"])
                write_json(args.json, results | {"table": frame.to_dict(orient="records"),
                                                 "table_columns": list(frame.columns)})
    print_table(table(results["rows"]), f"one multilingual Transformer, {len(languages)} languages "
                                        f"({', '.join(languages)})")
    if args.json:
        console.print(f"wrote {args.json}")


def table(rows: list[dict]) -> pd.DataFrame:
    """One line a direction: the multilingual model's BLEU beside each bilingual model's, and its
    difference to each bilingual Transformer."""
    labels = sorted({label for row in rows for label in row["bilingual"]},
                    key=lambda label: (BILINGUAL.index(label.split()[0]), label))
    out = []
    for row in rows:
        bilingual = row["bilingual"]
        line = {"direction": row["direction"], "kind": row["kind"], "scored on": row["scored_on"],
                "multilingual BLEU": row["bleu"], "chrF": row["chrf"], "in target language": row["on_target"]}
        line |= {f"{label} BLEU": bilingual.get(label, {}).get("bleu", float("nan")) for label in labels}
        line |= {f"Δ vs {label}": row["bleu"] - bilingual[label]["bleu"] if label in bilingual else float("nan")
                 for label in labels if label.startswith("transformer")}
        out.append(line | {"sentences/s": row["sentences_per_s"]})
    return pd.DataFrame(out)


if __name__ == "__main__":
    main()
