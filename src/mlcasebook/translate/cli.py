"""`mlcasebook translate ...`: train, evaluate and run translators (SMT, GNMT-style, Transformer).

``mlcasebook translate "text" --from ja --to en`` is short for ``mlcasebook translate text ...``:
a first argument that is not a command name goes to ``text`` (``TextByDefault``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class TextByDefault(TyperGroup):
    """Route ``translate "some text" ...`` / ``translate - ...`` / ``translate --file F ...`` to
    the ``text`` command, so the issue's one-liner works beside the sub-commands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h") and not ctx.resilient_parsing:
            args = ["text", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=TextByDefault, no_args_is_help=True,
                  help="Case 2 — Google Translate's three generations: phrase-based SMT → GNMT → Transformer. "
                  "`mlcasebook translate \"text\" --from ja --to en` translates with a trained model.")

DATA_DIR_HELP = ("Folder with tanaka-enja/ and multi30k/ (or one corpus folder itself). Default: $MLCASEBOOK_DATA, "
                 "../shared/data, then a copy fetched with `translate data --download`.")
MODEL_HELP = ("A model folder from `translate train --out` (default: the best model trained into the cache for "
              "--from/--to: Transformer, GNMT, SMT, multilingual).")


def _progress() -> bool:
    from ..core.progress import enabled

    return enabled()


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


@app.command()
def data(
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    download: str = typer.Option(None, help="Fetch a corpus first (online; pinned upstream commit, sha256-checked "
                                 "files): tanaka or multi30k. It lands in the cache."),
) -> None:
    """List the corpora, their language pairs and split sizes (and check the files)."""
    import pandas as pd

    from ..core.errors import DataError
    from ..core.report import print_frame
    from .data import CORPORA, download_corpus, find_corpus_dir, load_pair

    if download:
        out.print(f"downloaded to {download_corpus(download, progress=_progress())}")
    rows = []
    for corpus in CORPORA.values():
        try:
            folder = find_corpus_dir(corpus, data_dir)
        except DataError as exc:
            rows.append({"corpus": corpus.name, "languages": " ".join(corpus.languages), "folder": "missing",
                         **{split: "—" for split in ("train", "dev", "test")}})
            err.print(f"[yellow]{exc.message}[/]", highlight=False, soft_wrap=True)
            continue
        pair = "-".join(corpus.languages[:2])
        sizes = {split: str(len(load_pair(pair, split, folder))) if split in corpus.files else "not here"
                 for split in ("train", "dev", "test")}
        rows.append({"corpus": corpus.name, "languages": " ".join(corpus.languages), "folder": str(folder), **sizes})
    print_frame(pd.DataFrame(rows), "translation corpora (any two languages of a corpus form a pair)", out)


@app.command()
def train(
    pair: str = typer.Option(None, help="Direction, e.g. ja-en, en-ja, en-de, de-en, en-fr, en-cs. For "
                             "--arch multilingual a comma list (default: ja-en,en-ja,en-de,de-en,en-fr,fr-en,"
                             "en-cs,cs-en)."),
    arch: str = typer.Option("transformer", help="smt (phrase-based, minutes), gnmt (bi-LSTM + attention), "
                             "transformer, or multilingual (one Transformer with <2xx> target tokens)."),
    out_path: Path = typer.Option(None, "--out", help="Model folder (default: the cache, where `translate text` "
                                  "looks: <cache>/translate/models/<pair>-<arch>)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    budget_minutes: float = typer.Option(None, min=0.1, help="Stop neural training after this many minutes "
                                         "(SMT ignores it)."),
    max_sentences: int = typer.Option(None, min=20, help="Train on the first N training pairs only (quick runs)."),
    vocab_size: int = typer.Option(8000, min=100, help="Subword vocabulary size (neural models, joint)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue an interrupted neural run from its "
                                "last checkpoint in the same --out folder (SMT always trains from the start)."),
    seed: int = typer.Option(0, help="Seed of the tuning split and of training."),
    threads: int = typer.Option(None, min=1, help="CPU threads for torch (default: torch's)."),
    workers: int = typer.Option(1, min=1, help="Neural models: processes that share every batch (data "
                                "parallel; the threads are split between them). On 2 cores a small "
                                "Transformer trains 12 % faster with --workers 2 than with 2 threads."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log parameters and metrics to MLflow."),
) -> None:
    """Train a translator on the train split (a tuning set carved from it chooses SMT weights and
    stops neural training; dev and test stay untouched). Then measure it with `translate evaluate`."""
    from .translator import default_model_dir, parse_pairs, train_translator

    directions = parse_pairs(pair or ("" if arch == "multilingual" else "ja-en"), arch)
    pairs = ",".join(f"{a}-{b}" for a, b in directions)
    target = out_path or default_model_dir("multi" if arch == "multilingual" else pairs, arch)
    if threads:
        import torch

        torch.set_num_threads(threads)
    trained = train_translator(pairs, arch, target, data_dir=data_dir, budget_minutes=budget_minutes,
                               max_sentences=max_sentences, resume=resume, track=track, progress=_progress(),
                               seed=seed, vocab_size=vocab_size, on_log=lambda m: err.print(m, highlight=False),
                               nmt_options={"workers": workers} if workers > 1 and arch != "smt" else None)
    src, tgt = directions[0]
    split = "dev" if "ja" in (src, tgt) else "test"
    out.print(f"model → {trained.path} ({trained.train_s:.0f} s)\nmeasure it: mlcasebook translate evaluate "
              f"--model {trained.path} --pair {src}-{tgt} --split {split}")


@app.command()
def evaluate(
    model_path: Path = typer.Option(None, "--model", help=MODEL_HELP),
    src_file: Path = typer.Option(None, "--src", help="Source sentences, one a line (UTF-8)."),
    ref_file: Path = typer.Option(None, "--ref", help="Reference translations, one a line, aligned with --src."),
    src_lang: str = typer.Option(None, "--src-lang", help="Source language code (ja, en, de, fr, cs)."),
    tgt_lang: str = typer.Option(None, "--tgt-lang", help="Target language code."),
    pair: str = typer.Option(None, help="Instead of files: a corpus pair such as en-de (with --split)."),
    split: str = typer.Option("test", help="With --pair: dev (Tanaka dev / Multi30k val) or test (Multi30k "
                              "test_2016_flickr)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    limit: int = typer.Option(None, min=1, help="Score the first N sentences only."),
    json_path: Path = typer.Option(None, "--json", help="Write the scores, signature and speed as JSON."),
    hypotheses: Path = typer.Option(None, help="Also write the translations, one a line."),
) -> None:
    """Score a model with sacreBLEU (BLEU with its signature; ja-mecab for Japanese targets) and chrF
    on any pair of aligned files, or on a corpus split; also decoding speed (sentences/s)."""
    from ..core.checkpoint import atomic_write_text
    from ..core.errors import DataError
    from ..core.report import write_json
    from . import evaluate as ev
    from .data import load_pair, read_aligned
    from .text import check_language
    from .translator import Translator

    if pair:
        corpus = load_pair(pair, split, data_dir, limit=limit)
        sources, references, src, tgt = corpus.source, corpus.target, corpus.src_lang, corpus.tgt_lang
        where = f"{corpus.corpus} {split} ({corpus.location})"
    elif src_file and ref_file:
        if not (src_lang and tgt_lang):
            raise DataError("--src-lang and --tgt-lang are needed with --src/--ref", hint="e.g. --src-lang ja "
                            "--tgt-lang en")
        for path in (src_file, ref_file):
            if not path.is_file():
                raise DataError(f"{path} does not exist", hint="pass a UTF-8 text file, one sentence a line")
        sources, references = read_aligned(src_file, ref_file)
        sources, references = sources[:limit], references[:limit]
        src, tgt = check_language(src_lang), check_language(tgt_lang)
        where = f"{src_file} → {ref_file}"
    else:
        raise DataError("nothing to score", hint="pass --src FILE --ref FILE --src-lang xx --tgt-lang yy, or "
                        "--pair en-de --split test")
    translator = Translator.load(model_path, src, tgt)
    hyps, seconds, speed = ev.timed(lambda lines: translator.translate_lines(lines, src, tgt), sources)
    _warn(translator.last_warnings[:10])
    scores = ev.score(hyps, references, tgt)
    out.print(f"{translator.describe()} on {where}: {len(sources)} sentences")
    out.print(f"BLEU {scores.bleu:.2f}  chrF {scores.chrf:.2f}  ({speed:.1f} sentences/s)", highlight=False)
    out.print(f"[dim]{scores.bleu_detail}\n{scores.bleu_signature}\n{scores.chrf_signature}[/]", highlight=False)
    if hypotheses:
        atomic_write_text(hypotheses, "".join(f"{h}\n" for h in hyps))
    if json_path:
        write_json(json_path, scores.to_dict() | {
            "model": str(translator.path), "arch": translator.arch, "src_lang": src, "tgt_lang": tgt, "data": where,
            "decode_seconds": seconds, "sentences_per_s": speed, "warnings": len(translator.last_warnings)})
        out.print(f"wrote {json_path}")


@app.command()
def text(
    words: list[str] = typer.Argument(None, help="Text to translate (several arguments are one sentence); '-' "
                                      "reads stdin, one sentence a line."),
    src_lang: str = typer.Option(..., "--from", help="Source language code: ja, en, de, fr, cs."),
    tgt_lang: str = typer.Option(..., "--to", help="Target language code."),
    model_path: Path = typer.Option(None, "--model", help=MODEL_HELP),
    file: Path = typer.Option(None, "--file", help="Translate a file, one sentence a line (order kept, empty lines "
                              "stay empty)."),
    out_file: Path = typer.Option(None, "--out", help="Write the translations here instead of stdout."),
) -> None:
    """Translate text, a file (--file) or stdin ('-'). Warnings (split or truncated long lines,
    mixed scripts, zero-shot directions) go to stderr."""
    from ..core.checkpoint import atomic_write_text
    from ..core.errors import DataError
    from .data import read_lines
    from .text import check_language
    from .translator import Translator

    src, tgt = check_language(src_lang), check_language(tgt_lang)  # before the model is looked up
    if file and words:
        raise DataError("give either text or --file, not both", hint="e.g. --file input.txt")
    if file:
        if not file.is_file():
            raise DataError(f"{file} does not exist", hint="pass a UTF-8 text file, one sentence a line")
        lines = read_lines(file)
    elif words == ["-"]:
        lines = sys.stdin.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
    elif words:
        lines = [" ".join(words)]
    else:
        raise DataError("nothing to translate", hint='pass text ("..."), --file FILE, or - for stdin')
    translator = Translator.load(model_path, src, tgt)
    translations = translator.translate_lines(lines, src, tgt)
    _warn(translator.last_warnings)
    rendered = "".join(f"{line}\n" for line in translations)
    if out_file:
        atomic_write_text(out_file, rendered)
        err.print(f"wrote {len(translations)} lines to {out_file}")
    else:
        sys.stdout.write(rendered)
        sys.stdout.flush()


@app.command()
def serve(
    model_path: Path = typer.Option(..., "--model", help="A model folder from `translate train --out`."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (local only by default)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port."),
) -> None:
    """HTTP service: POST /translate {"text" | "lines", "from", "to"} → translations + warnings
    (OpenAPI docs at /docs)."""
    from .serve import run

    run(model_path, host=host, port=port)
