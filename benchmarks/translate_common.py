"""What the translation benchmarks share: options from the command line, when a trained model can be
reused, and scoring a model folder on a direction's scored split once (the scores and translations
are cached beside the model and reused while the model and the set are unchanged)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from common import console
from mlcasebook.core.report import write_json
from mlcasebook.translate import evaluate as ev
from mlcasebook.translate.data import ParallelData, corpus_for, parse_pair
from mlcasebook.translate.translator import MANIFEST, Translator, train_translator, write_manifest


def scored_split(pair: str) -> str:
    """Multi30k is scored on test_2016_flickr; Tanaka on dev (its test set is not in the shared data)."""
    return "test" if "test" in corpus_for(*parse_pair(pair)).files else "dev"


def parse_options(items: list[str]) -> dict:
    """``key=value`` → {key: value}; values that read as JSON (numbers, true/false, lists) are parsed."""
    options = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def options_for(arch: str, options: dict) -> dict:
    """Options for one architecture: ``warmup`` applies to all, ``transformer.warmup`` to one."""
    plain = {k: v for k, v in options.items() if "." not in k}
    return plain | {k.split(".", 1)[1]: v for k, v in options.items() if k.startswith(f"{arch}.")}


def code_version() -> str:
    """The commit the scoring code runs at (and whether the tree had local changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src/mlcasebook/translate"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + local changes in src/mlcasebook/translate" if dirty else "")


def command_line(script: str) -> str:
    """The command as it was run, with the thread setting it ran under."""
    threads = os.environ.get("OMP_NUM_THREADS")
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    return f"{prefix}.venv/bin/python benchmarks/{script} {' '.join(sys.argv[1:])}"


def machine(threads: int) -> str:
    return (f"{threads} torch thread(s) of a shared 2-core CPU box, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
            f"{platform.processor() or platform.machine()}, python {platform.python_version()}, "
            f"torch {torch.__version__}")


def trained_settings(folder: Path) -> dict | None:
    """The benchmark settings the finished model in ``folder`` was trained with (None: no finished model)."""
    path = folder / MANIFEST
    return json.loads(path.read_text()).get("benchmark_settings") if path.is_file() else None


def reusable(folder: Path, settings: dict) -> bool:
    """A finished model trained with exactly these benchmark settings."""
    return trained_settings(folder) == settings


def settings_difference(wanted: dict, trained: dict | None) -> str:
    """Which settings keep a finished model from being reused, said the way a user fixes it."""
    if trained is None:
        return "no finished model there"
    keys = sorted(set(wanted) | set(trained))
    return "; ".join(f"{key}: asked {wanted.get(key)!r}, trained {trained.get(key)!r}"
                     for key in keys if wanted.get(key) != trained.get(key))


def train_unless_done(pair: str, arch: str, folder: Path, settings: dict, args, scores_glob: str,
                      **options) -> None:
    """Train ``arch`` into ``folder`` unless it already holds a model trained with exactly these
    benchmark ``settings`` (``--retrain`` forces it); a new model drops its folder's stale scores.
    ``args`` gives the common knobs (max_sentences, seed, vocab_size, tuning_size, retrain, track)."""
    if not args.retrain and reusable(folder, settings):
        return
    if getattr(args, "score_only", False):  # re-scoring must never start a two-hour training by accident
        why = settings_difference(settings, trained_settings(folder))
        raise SystemExit(f"--score-only: {folder} cannot be reused ({why}). "
                         "Pass the options it was trained with, or drop --score-only to train it.")
    trained = train_translator(pair, arch, folder, max_sentences=args.max_sentences, seed=args.seed,
                               vocab_size=args.vocab_size, tuning_size=args.tuning_size, resume=not args.retrain,
                               track=args.track, progress=sys.stderr.isatty(),
                               on_log=lambda m: console.print(f"[dim]{m}[/]"), **options)
    write_manifest(folder, trained.record | {"benchmark_settings": settings})
    for stale in folder.glob(scores_glob):
        stale.unlink()


def _cached(cache: Path, test: ParallelData) -> dict | None:
    """A model's cached scores for ``test`` (same split, same sentence count, translations kept), if any."""
    if not cache.is_file():
        return None
    cached = json.loads(cache.read_text())
    fits = cached.get("scored") == {"split": test.split, "sentences": len(test)} and "hypotheses" in cached
    return cached if fits else None


def cached_row(cache: Path, test: ParallelData) -> dict | None:
    """The row a model's cached scores hold for ``test``, if any."""
    return cached["row"] if (cached := _cached(cache, test)) else None


def cached_hypotheses(cache: Path, test: ParallelData) -> list[str] | None:
    """The model's translations of ``test`` kept with its scores (for paired significance tests)."""
    return cached["hypotheses"] if (cached := _cached(cache, test)) else None


def score_model(folder: Path, test: ParallelData, cache: Path, label: str,
                translate: Callable[[Translator, list[str]], list[str]] | None = None) -> dict:
    """Translate ``test`` once with the model in ``folder`` (timed), score it with sacreBLEU and chrF,
    and cache the row in ``cache``. ``translate`` replaces the plain source→target call (a pivot)."""
    if (row := cached_row(cache, test)) is not None:  # already scored on this set: don't decode again
        console.print(f"{label}: reusing the scores in {cache}")
        return row
    translator = Translator.load(folder)
    manifest = translator.manifest
    src, tgt = test.src_lang, test.tgt_lang
    call = translate or (lambda model, lines: model.translate_lines(lines, src, tgt))
    hyps, seconds, speed = ev.timed(lambda lines: call(translator, lines), test.source)
    scores = ev.score(hyps, test.target, tgt)
    console.print(f"{label}: BLEU {scores.bleu:.2f} chrF {scores.chrf:.2f} ({speed:.1f} sentences/s, "
                  f"trained {manifest['train_seconds']:.0f} s)", highlight=False)
    row = {"arch": manifest["arch"], "bleu": scores.bleu, "chrf": scores.chrf,
           "bleu_signature": scores.bleu_signature, "chrf_signature": scores.chrf_signature,
           "bleu_detail": scores.bleu_detail, "train_s": manifest["train_seconds"],
           "trained_at": manifest.get("trained_at"), "scored_at": time.strftime("%Y-%m-%d %H:%M:%S"),
           "code": code_version(), "steps": manifest.get("steps"),
           "nmt_train_seconds": manifest.get("nmt_train_seconds"), "config": manifest.get("config"),
           "decode_seconds": seconds, "sentences_per_s": speed,
           "train_sentences": manifest["settings"]["train_sentences"],
           "tuning_sentences": manifest["settings"]["tuning_sentences"],
           "smt": manifest.get("smt", {}).get("train_stats"),
           "examples": [{"source": s, "reference": r, "hypothesis": h}
                        for s, r, h in zip(test.source[:3], test.target[:3], hyps[:3], strict=True)]}
    write_json(cache, {"scored": {"split": test.split, "sentences": len(test)}, "row": row, "hypotheses": hyps})
    return row
