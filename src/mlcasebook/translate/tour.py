"""The translation case's quick mode for `mlcasebook tour`: SMT and a tiny Transformer, en→de.

Both generations are trained on the same slice of Multi30k en→de train (the tuning set that sets
the SMT feature weights and stops the Transformer is carved from that slice), then translate the
same first sentences of test_2016_flickr, scored with sacreBLEU and chrF. The Transformer gets a
fixed wall-clock budget of about a minute and a half: it is a demonstration of the pipeline, not
of the architecture's ceiling — the ladder with real budgets is ``benchmarks/translate_ladder.py``
and its figures are in docs/RESULTS.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..core.cases import CaseOutcome, CaseSkipped, CaseSpec
from ..core.errors import DataError
from ..core.report import Report
from . import evaluate as ev
from .data import load_pair
from .translator import Translator, train_translator

PAIR = "en-de"
SEED = 0
# (quick, smoke): training pairs, test sentences, Transformer minutes
TRAIN_SENTENCES = (10_000, 400)
TEST_SENTENCES = (200, 20)
TRANSFORMER_MINUTES = (1.25, 0.05)
# SMT weight tuning re-decodes the tuning set every round: a short MERT keeps quick mode quick
TUNING_SENTENCES = (150, 20)
SMT_TUNING = ({"tune_iterations": 2, "tune_n_best": 30}, {"tune_iterations": 1, "tune_n_best": 10})
# small and fast steps: in ~90 s on one loaded core, many small batches teach more than a few big ones
TINY_TRANSFORMER = {"d_model": 128, "heads": 4, "ff_dim": 256, "enc_layers": 2, "dec_layers": 2, "dropout": 0.1,
                    "batch_tokens": 1024, "warmup": 100, "lr": 2e-3, "eval_every": 100}
VOCAB = (4000, 1000)


def run_quick(out_dir: Path, smoke: bool = False) -> CaseOutcome:
    size = 1 if smoke else 0
    try:
        test = load_pair(PAIR, "test", limit=TEST_SENTENCES[size])
        load_pair(PAIR, "train", limit=1)
    except DataError as exc:
        raise CaseSkipped(f"Multi30k not found ({exc.message})") from exc
    started = time.perf_counter()
    models = Path(out_dir) / "translate-models"
    rows, samples = [], {}
    for arch in ("smt", "transformer"):
        trained = train_translator(
            PAIR, arch, models / arch, max_sentences=TRAIN_SENTENCES[size], resume=False, track=False,
            progress=False, seed=SEED, vocab_size=VOCAB[size], tuning_size=TUNING_SENTENCES[size],
            smt_options=dict(SMT_TUNING[size]) if arch == "smt" else None,
            budget_minutes=TRANSFORMER_MINUTES[size] if arch != "smt" else None,
            nmt_options=dict(TINY_TRANSFORMER) if arch != "smt" else None)
        translator = Translator.load(trained.path)
        hyps, seconds, speed = ev.timed(lambda lines, t=translator: t.translate_lines(lines, "en", "de"), test.source)
        scores = ev.score(hyps, test.target, "de")
        rows.append({"arch": arch, "bleu": scores.bleu, "chrf": scores.chrf, "train_s": trained.train_s,
                     "sentences_per_s": speed, "steps": trained.record.get("steps"),
                     "signature": scores.bleu_signature})
        samples[arch] = hyps[:3]
    seconds = time.perf_counter() - started

    report = Report(SPEC.title, case="translate")
    train_n = TRAIN_SENTENCES[size]
    layers = f"{TINY_TRANSFORMER['enc_layers']}+{TINY_TRANSFORMER['dec_layers']}"
    report.text(f"Quick mode: phrase-based SMT and a tiny Transformer ({layers} layers, "
                f"d={TINY_TRANSFORMER['d_model']}, {TRANSFORMER_MINUTES[size]:g} min of training) on the first "
                f"{train_n:,} pairs of Multi30k en→de train (a tuning set carved from them sets the SMT weights and "
                f"stops the Transformer), scored on the first {len(test)} sentences of test_2016_flickr with "
                f"sacreBLEU ({rows[0]['signature']}). Ran in {seconds:.0f} s on this machine. The ladder with "
                "real budgets (SMT → GNMT → Transformer) is benchmarks/translate_ladder.py.", note=True)
    if smoke:
        report.text("Smoke run: a few hundred sentences and seconds of training; the numbers mean nothing.", note=True)
    report.table(ev.ladder_frame(rows), "BLEU and chrF on test_2016_flickr (first sentences), en→de", digits=2)
    report.claims_table(ev.claim_row(rows))
    report.table(pd.DataFrame({"source": test.source[:3], "reference": test.target[:3],
                               **{ev.ARCH_NAMES[a]: s for a, s in samples.items()}}), "Examples", digits=2)
    page = "translate.html"
    report.write(Path(out_dir) / page)
    by_arch = {row["arch"]: row for row in rows}
    return CaseOutcome(
        page=page,
        headline={"SMT BLEU": f"{by_arch['smt']['bleu']:.1f}",
                  "Transformer BLEU": f"{by_arch['transformer']['bleu']:.1f}", "test sentences": str(len(test))},
        numbers={"pair": PAIR, "train_sentences": train_n, "test_sentences": len(test), "rows": rows,
                 "seconds": seconds})


SPEC = CaseSpec(name="translate", title="Case 2 — machine translation: phrase-based SMT → Transformer (Multi30k en→de)",
                quick_budget_s=180, run_quick=run_quick)
