"""One translator facade over every saved model (SMT, GNMT, Transformer, multilingual), and the
code that trains a model folder it can load.

A model folder holds ``translator.json`` (what the model is: architecture, directions, decoding
settings, training record), the engine's own file (``smt.model`` from ``PhraseBasedSMT.save`` or
the checkpoint ``train_nmt`` writes) and, for the neural models, ``subword.model``.

``Translator.translate_lines(lines, src_lang, tgt_lang)`` is the product's contract:

- one output line per input line, in order; empty (or blank) lines stay empty;
- unknown language codes, or a direction the model was not trained for → ``DataError``
  (a multilingual model accepts any two of its languages; an untrained pair is zero-shot and
  says so in a warning);
- a line whose letters are mostly not in the source language's script, or mixes scripts
  → a warning (the line is still translated);
- a line longer than the model takes (``max_source_tokens``, counted in the model's own units:
  words for SMT, subwords for the neural models) is split at sentence ends and the pieces are
  translated one by one; a single sentence still too long is truncated, and a warning says so.

Warnings are returned by ``translate_report`` and kept in ``last_warnings`` after
``translate_lines``; the CLI prints them on stderr, the HTTP service returns them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.checkpoint import atomic_write_text
from ..core.errors import DataError
from ..core.sources import cache_dir
from .text import LANGUAGES, check_language, detokenize, script_warning, tokenize

ARCHS = ("smt", "gnmt", "transformer", "multilingual")
NEURAL = ("gnmt", "transformer", "multilingual")
MANIFEST = "translator.json"
SMT_FILE = "smt.model"
SMT_MAX_TOKENS = 80  # phrase-based decoding cost grows with length; the corpora's sentences are ≤ ~40 words
NMT_BATCH = 32
# sentence ends: after . ! ? followed by a space (European text), or after Japanese 。！？ directly
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


# ---- where models live --------------------------------------------------------------------------
def models_dir() -> Path:
    return cache_dir() / "translate" / "models"


def default_model_dir(pair: str, arch: str) -> Path:
    return models_dir() / f"{pair}-{arch}"


def find_default_model(src_lang: str, tgt_lang: str) -> Path:
    """The best model the user trained into the cache for this direction: Transformer, then GNMT,
    then SMT, then any multilingual model that covers both languages."""
    for arch in ("transformer", "gnmt", "smt"):
        folder = default_model_dir(f"{src_lang}-{tgt_lang}", arch)
        if (folder / MANIFEST).is_file():
            return folder
    if models_dir().is_dir():
        for folder in sorted(models_dir().iterdir()):
            manifest = _read_manifest(folder) if (folder / MANIFEST).is_file() else None
            if manifest and manifest["arch"] == "multilingual" and {src_lang, tgt_lang} <= set(manifest["languages"]):
                return folder
    raise DataError(f"no trained {src_lang}→{tgt_lang} model in {models_dir()}",
                    hint=f"train one first: `mlcasebook translate train --pair {src_lang}-{tgt_lang} --arch smt` "
                         "(minutes) or `--arch transformer`, or pass --model PATH")


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise DataError(f"{folder} is not a translation model (no {MANIFEST})",
                        hint="pass a folder written by `mlcasebook translate train --out FOLDER`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is unreadable ({exc})", hint="retrain the model") from exc
    if manifest.get("arch") not in ARCHS:
        raise DataError(f"{path} names an unknown architecture {manifest.get('arch')!r}", hint="retrain the model")
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    return atomic_write_text(Path(folder) / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


# ---- engines: segments in, segments out ---------------------------------------------------------
class _SMTEngine:
    unit = "words"

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        from .smt import PhraseBasedSMT

        self.model = PhraseBasedSMT.load(folder / manifest.get("model_file", SMT_FILE))
        self.max_tokens = int(manifest.get("max_source_tokens", SMT_MAX_TOKENS))

    def units(self, text: str, src: str, tgt: str) -> list:
        return tokenize(text, src)

    def truncate(self, text: str, src: str, tgt: str) -> str:
        return detokenize(self.units(text, src, tgt)[: self.max_tokens], src)

    def translate(self, segments: list[str], src: str, tgt: str) -> list[str]:
        outputs = self.model.translate_many([tokenize(s, src) for s in segments])
        return [detokenize(list(words), tgt) for words in outputs]


class _NMTEngine:
    unit = "subwords"

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        from .nmt_train import load_nmt
        from .subword import Subwords

        self.model, self.config, self.vocab = load_nmt(folder / manifest["model_file"])
        self.subwords = Subwords.load(folder)
        self.multilingual = manifest["arch"] == "multilingual"
        self.max_tokens = int(manifest["max_source_tokens"])
        decoding = manifest.get("decoding", {})
        self.beam_size = int(decoding.get("beam_size", 4))
        self.alpha = float(decoding.get("alpha", 0.6))
        self.beta = float(decoding.get("beta", 0.0))

    def units(self, text: str, src: str, tgt: str) -> list[int]:
        return self.subwords.encode(text, target_lang=tgt if self.multilingual else None)

    def truncate(self, text: str, src: str, tgt: str) -> str:
        ids = self.subwords.encode(text)[: self.max_tokens - int(self.multilingual)]
        return self.subwords.decode(ids)

    def translate(self, segments: list[str], src: str, tgt: str) -> list[str]:
        from .nmt_train import translate_ids

        # translate_ids sorts by length and batches itself
        ids = translate_ids(self.model, [self.units(s, src, tgt) for s in segments], beam_size=self.beam_size,
                            alpha=self.alpha, beta=self.beta, batch_sentences=NMT_BATCH)
        return [self.subwords.decode(out) for out in ids]


# ---- the facade -----------------------------------------------------------------------------------
@dataclass
class Translator:
    arch: str
    directions: list[tuple[str, str]]
    languages: list[str]
    engine: Any
    path: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    last_warnings: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | str | None = None, src_lang: str | None = None, tgt_lang: str | None = None
             ) -> Translator:
        """Load a model folder; without ``path``, the default model for ``src_lang``→``tgt_lang``."""
        if path is None:
            if not (src_lang and tgt_lang):
                raise DataError("no model given", hint="pass --model PATH, or --from and --to to use a trained default")
            folder = find_default_model(check_language(src_lang), check_language(tgt_lang))
        else:
            folder = Path(path).expanduser()
            if folder.is_file():  # a file inside a model folder: the folder is what we load
                folder = folder.parent
            if not folder.exists():
                raise DataError(f"model {folder} does not exist",
                                hint="train one with `mlcasebook translate train --pair ja-en --arch smt --out "
                                     f"{folder}`")
        manifest = _read_manifest(folder)
        engine = _SMTEngine(folder, manifest) if manifest["arch"] == "smt" else _NMTEngine(folder, manifest)
        return cls(manifest["arch"], [tuple(d) for d in manifest["directions"]], list(manifest["languages"]), engine,
                   folder, manifest)

    @property
    def max_source_tokens(self) -> int:
        return self.engine.max_tokens

    def describe(self) -> str:
        pairs = ", ".join(f"{a}→{b}" for a, b in self.directions)
        return f"{self.arch} ({pairs}) from {self.path}"

    def check_direction(self, src_lang: str, tgt_lang: str) -> tuple[str, list[str]]:
        src, tgt = check_language(src_lang), check_language(tgt_lang)
        if src == tgt:
            raise DataError(f"--from and --to are both {src}", hint="pick two different languages")
        if (src, tgt) in self.directions:
            return src, []
        if self.arch == "multilingual" and src in self.languages and tgt in self.languages:
            return src, [f"{src}→{tgt} was never trained: zero-shot translation through the shared model "
                         "(expect low quality)"]
        trained = ", ".join(f"{a}-{b}" for a, b in self.directions)
        raise DataError(f"this {self.arch} model translates {trained}, not {src}-{tgt}",
                        hint=f"train one: `mlcasebook translate train --pair {src}-{tgt} --arch smt`, or pass a "
                             "model trained for that direction")

    def translate_lines(self, lines: Sequence[str], src_lang: str, tgt_lang: str) -> list[str]:
        outputs, self.last_warnings = self.translate_report(lines, src_lang, tgt_lang)
        return outputs

    def translate_report(self, lines: Sequence[str], src_lang: str, tgt_lang: str) -> tuple[list[str], list[str]]:
        """(one translation per line, warnings)."""
        src, warnings = self.check_direction(src_lang, tgt_lang)
        tgt = check_language(tgt_lang)
        segments: list[str] = []
        owners: list[int] = []            # the input line each segment belongs to
        for number, raw in enumerate(lines, 1):
            line = self._prepare(raw)
            if not line:
                continue
            if mix := script_warning(line, src):
                warnings.append(f"line {number}: {mix}")
            pieces = self._fit(line, src, tgt, number, warnings)
            segments += pieces
            owners += [number - 1] * len(pieces)
        translated = self.engine.translate(segments, src, tgt) if segments else []
        outputs: list[list[str]] = [[] for _ in lines]
        for owner, text in zip(owners, translated, strict=True):
            outputs[owner].append(text)
        joiner = "" if tgt == "ja" else " "
        return [joiner.join(parts) for parts in outputs], warnings

    def _prepare(self, raw: str) -> str:
        # one sentence a line: an embedded line break or tab is just space here
        line = " ".join(str(raw).split())
        # a model trained on a lowercased corpus (Tanaka English) never saw capitals
        return line.lower() if self.manifest.get("lowercase_source") else line

    def _fit(self, line: str, src: str, tgt: str, number: int, warnings: list[str]) -> list[str]:
        """The line as pieces the model accepts: whole, split at sentence ends, or truncated."""
        limit = self.engine.max_tokens
        length = len(self.engine.units(line, src, tgt))
        if length <= limit:
            return [line]
        pieces = [p for p in (s.strip() for s in _SENTENCE_END.split(line)) if p]
        unit = self.engine.unit
        if len(pieces) > 1:
            warnings.append(f"line {number}: {length} {unit} is over the model's {limit}: split into {len(pieces)} "
                            "sentences, translated one by one")
        out = []
        for piece in pieces:
            if len(self.engine.units(piece, src, tgt)) > limit:
                warnings.append(f"line {number}: a sentence of {len(self.engine.units(piece, src, tgt))} {unit} "
                                f"was truncated to the model's {limit} {unit}; the rest is not translated")
                piece = self.engine.truncate(piece, src, tgt)
            out.append(piece)
        return out


# ---- training a model folder ------------------------------------------------------------------
MULTILINGUAL_PAIRS = ("ja-en", "en-ja", "en-de", "de-en", "en-fr", "fr-en", "en-cs", "cs-en")


@dataclass
class TrainedModel:
    path: Path
    arch: str
    train_s: float
    record: dict[str, Any]


def parse_pairs(pair: str, arch: str) -> list[tuple[str, str]]:
    """``--pair`` as directions: one pair, or for multilingual a comma list (default: ja↔en, en↔de/fr/cs)."""
    from .data import parse_pair

    if arch not in ARCHS:
        raise DataError(f"unknown architecture '{arch}'", hint=f"choose one of: {', '.join(ARCHS)}")
    items = [p for p in (pair or "").split(",") if p.strip()]
    if arch == "multilingual":
        items = items or list(MULTILINGUAL_PAIRS)
    elif len(items) != 1:
        raise DataError(f"--arch {arch} trains one direction, got '{pair}'",
                        hint="pass one pair such as ja-en, or use --arch multilingual for several")
    return [parse_pair(p) for p in items]


def train_translator(pair: str, arch: str, out_dir: Path | str, *, data_dir: Path | str | None = None,
                     budget_minutes: float | None = None, max_sentences: int | None = None, resume: bool = True,
                     track: bool = True, progress: bool = True, seed: int = 0, vocab_size: int = 8000,
                     tuning_size: int | None = None, nmt_options: dict[str, Any] | None = None,
                     smt_options: dict[str, Any] | None = None,
                     on_log: Callable[[str], None] | None = None) -> TrainedModel:
    """Train ``arch`` on the train split of ``pair`` (minus the tuning set carved from it) into
    ``out_dir``. The tuning set sets the SMT feature weights, and is the neural models' held-out
    set (dev loss at every checkpoint); dev and test are never read. Logged to MLflow."""
    from .data import TUNING_SIZE, load_pair, tuning_split

    directions = parse_pairs(pair, arch)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    log = on_log or (lambda message: None)
    started = time.perf_counter()
    parts = [tuning_split(load_pair((src, tgt), "train", data_dir, limit=max_sentences),
                          size=tuning_size or TUNING_SIZE, seed=seed) for src, tgt in directions]
    languages = sorted({lang for d in directions for lang in d}, key=list(LANGUAGES).index)
    settings = {"arch": arch, "pairs": ",".join(f"{a}-{b}" for a, b in directions),
                "train_sentences": sum(len(r) for r, _ in parts), "tuning_sentences": sum(len(t) for _, t in parts),
                "max_sentences": max_sentences, "budget_minutes": budget_minutes, "seed": seed}
    log(f"training {arch} on {settings['train_sentences']:,} sentence pairs ({settings['pairs']}), tuning on "
        f"{settings['tuning_sentences']:,} carved from train")
    manifest: dict[str, Any] = {
        "arch": arch, "directions": [list(d) for d in directions], "languages": languages,
        "lowercase_source": _english_source_was_lowercase(parts),
        "data": [r.describe() | {"tuning": len(t)} for r, t in parts], "settings": settings}
    if arch == "smt":
        record = _train_smt(parts[0], out, progress, smt_options or {}, settings, track, log)
    else:
        record = _train_nmt(arch, parts, out, budget_minutes, resume, progress, seed, vocab_size,
                            nmt_options or {}, track, log)
    # a neural run reports its own total (it may have been resumed); SMT is this call's time
    train_s = record.pop("train_seconds", None) or time.perf_counter() - started
    manifest |= record | {"train_seconds": train_s, "trained_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_manifest(out, manifest)
    return TrainedModel(out, arch, train_s, manifest)


def _english_source_was_lowercase(parts) -> bool:
    """Lowercase user input only for a model whose English sources were all lowercase (Tanaka's);
    a multilingual model that also read cased English (Multi30k) keeps the user's case."""
    corpora = {rest.corpus for rest, _ in parts if rest.src_lang == "en"}
    return corpora == {"tanaka"}


def _train_smt(part, out: Path, progress: bool, options: dict[str, Any], settings: dict[str, Any], track: bool,
               log) -> dict[str, Any]:
    from ..core.tracking import tracked_run
    from .smt import PhraseBasedSMT

    rest, tune = part
    lower = rest.corpus == "tanaka" and rest.src_lang == "en"
    tune_options = {k.removeprefix("tune_"): options.pop(k) for k in list(options) if k.startswith("tune_")}

    def words(lines: list[str], lang: str, is_source: bool) -> list[list[str]]:
        return [tokenize(line.lower() if lower and is_source else line, lang) for line in lines]

    with tracked_run("translate", f"smt-{settings['pairs']}", enabled=track) as tracker:
        tracker.params(settings | options)
        model = PhraseBasedSMT(**options).fit(words(rest.source, rest.src_lang, True),
                                              words(rest.target, rest.tgt_lang, False), progress=progress)
        log(f"tuning the feature weights on {len(tune):,} tuning sentences")
        model.tune(words(tune.source, rest.src_lang, True), words(tune.target, rest.tgt_lang, False),
                   progress=progress, **tune_options)
        model.save(out / SMT_FILE)
        stats = dict(getattr(model, "train_stats_", {}))
        history = getattr(model, "tuning_history_", [])
        # the tuning set's best real 1-best BLEU over the MERT rounds (the weights kept)
        tuning_bleu = max((r["bleu_1best"] for r in history if "bleu_1best" in r), default=None)
        tracker.metrics({k: v for k, v in stats.items() if isinstance(v, int | float)}
                        | ({} if tuning_bleu is None else {"tuning_bleu": tuning_bleu}))
    return {"model_file": SMT_FILE, "max_source_tokens": SMT_MAX_TOKENS, "steps": None,
            "smt": {"train_stats": stats, "tuning": history, "tuning_bleu": tuning_bleu, "weights": model.weights}}


def _train_nmt(arch: str, parts, out: Path, budget_minutes, resume: bool, progress: bool, seed: int,
               vocab_size: int, options: dict[str, Any], track: bool, log) -> dict[str, Any]:
    from ..core.checkpoint import load_checkpoint
    from .nmt_train import NMTConfig, train_nmt
    from .subword import FILE_NAME, Subwords

    multilingual = arch == "multilingual"
    vocab_time = out / "subword_seconds.json"  # the vocabulary's training time counts in the budget
    if resume and (out / FILE_NAME).is_file():
        subwords = Subwords.load(out)  # a resumed checkpoint's ids only mean something with its own vocabulary
        vocab_seconds = json.loads(vocab_time.read_text())["seconds"] if vocab_time.is_file() else 0.0
    else:
        text = [line for rest, _ in parts for line in (*rest.source, *rest.target)]
        log(f"training a joint SentencePiece vocabulary (≤ {vocab_size} pieces) on {len(text):,} lines")
        started = time.perf_counter()
        subwords = Subwords.train(text, vocab_size=vocab_size, seed=seed)
        subwords.save(out)
        vocab_seconds = time.perf_counter() - started
        atomic_write_text(vocab_time, json.dumps({"seconds": vocab_seconds}))

    def encode(data) -> list[tuple[list[int], list[int]]]:
        tag = data.tgt_lang if multilingual else None
        return [(subwords.encode(s, target_lang=tag), subwords.encode(t))
                for s, t in zip(data.source, data.target, strict=True)]

    train_pairs = [pair for rest, _ in parts for pair in encode(rest)]
    tuning_pairs = [pair for _, tune in parts for pair in encode(tune)]
    config = NMTConfig.for_arch("transformer" if multilingual else arch, seed=seed, **options,
                                **({} if budget_minutes is None else
                                   {"time_budget_s": max(60.0 * budget_minutes - vocab_seconds, 1.0)}))
    log(f"training {arch} ({config.enc_layers}+{config.dec_layers} layers, d={config.d_model}) on "
        f"{len(train_pairs):,} pairs, {subwords.size} subwords"
        + (f", {budget_minutes:g} min budget" if budget_minutes else ""))
    checkpoint = Path(train_nmt(config, train_pairs, tuning_pairs, subwords.vocab_info(), out, progress=progress,
                                track=track, resume=resume))
    info = load_checkpoint(checkpoint)[1].get("info", {})
    return {"model_file": checkpoint.name, "max_source_tokens": config.max_len - 1,  # train_nmt appends EOS
            "subwords": subwords.size, "steps": info.get("steps"), "nmt_train_seconds": info.get("train_seconds"),
            "vocabulary_seconds": vocab_seconds,
            # summed over resumed sessions: the vocabulary plus every session's training loop
            "train_seconds": vocab_seconds + float(info.get("train_seconds") or 0.0),
            "config": {k: getattr(config, k) for k in ("d_model", "enc_layers", "dec_layers", "max_len")},
            "decoding": {"beam_size": 4, "alpha": 0.6, "beta": 0.0}}
