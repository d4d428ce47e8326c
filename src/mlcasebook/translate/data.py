"""Parallel corpora for the translation case: raw, aligned sentence lists for a pair and a split.

Two corpora, each usable in both directions:

- **Tanaka** (``tanaka-enja/``, odashi/small_parallel_enja): 50,000 train / 500 dev Japanese–English
  pairs of 4–16 words. The files come tokenized (Japanese by KyTea, English by the Stanford
  tokenizer, lowercased). The loader returns *raw* text so that every model and sacreBLEU see
  what a user would type: Japanese tokens are joined without spaces (a space is kept only between
  two Latin/digit tokens, e.g. ``New York``), English is detokenized with sacremoses after the
  Stanford ``''`` quotes become ``"``. English stays **lowercased** — the corpus never had case, so
  ja→en output is lowercase and its BLEU is measured against lowercase references. The corpus's
  500-pair test set is not in the shared data: Tanaka figures here are on ``dev``.
- **Multi30k** (``multi30k/``, multi30k/dataset task1/raw): 29,000 train / 1,014 val / 1,000
  test_2016_flickr image captions in en, de, fr and cs, raw and cased, aligned across all four
  languages (so de→fr has data too: the multilingual zero-shot direction). ``.gz`` files or plain
  text files of the same names both work.

Splits: ``train``, ``dev`` (Tanaka dev, Multi30k val) and ``test`` (Multi30k test_2016_flickr).
``tuning_split`` carves a fixed-seed part of *train* for SMT feature weights and neural early
stopping, so dev and test are never used to choose anything.

Where the files come from (first that exists): ``data_dir`` (the corpus folder itself or a folder
holding ``tanaka-enja/`` / ``multi30k/``), ``$MLCASEBOOK_DATA``, ``../shared/data``, then a copy
``download_corpus`` fetched into the cache (online users: pinned raw GitHub URLs + sha256).
Missing folders or files, line counts that do not match and unknown pairs raise ``DataError``.

Checksums: the sha256 values below are those of the shared copies. For Multi30k en/de they equal
the values another public project pinned for the same upstream commit (a3d2e0d), so those files
are byte-for-byte upstream; fr/cs and Tanaka could not be checked against upstream offline.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from ..core.sources import Download, cache_dir, data_root, fetch
from .text import detokenize

SPLITS = ("train", "dev", "test")
TUNING_SIZE = 1000  # sentences carved from train for tuning (SMT weights, early stopping)
TUNING_SEED = 0

_TANAKA_COMMIT = "312408a11c5fbcbc09443bebb18121f7efdcd61e"
_MULTI30K_COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
_TANAKA_URL = f"https://raw.githubusercontent.com/odashi/small_parallel_enja/{_TANAKA_COMMIT}/"
_MULTI30K_URL = f"https://raw.githubusercontent.com/multi30k/dataset/{_MULTI30K_COMMIT}/data/task1/raw/"


@dataclass(frozen=True)
class Corpus:
    name: str
    folder: str                          # folder name under the data root and the cache
    languages: tuple[str, ...]
    files: dict[str, str]                # split -> file stem ("<stem>.<lang>[.gz]")
    sizes: dict[str, int]                # split -> expected line count (a check, not a requirement)
    checksums: dict[str, str] = field(default_factory=dict)   # file name -> sha256
    url: str = ""
    pretokenized: bool = False
    note: str = ""

    def downloads(self) -> list[Download]:
        return [Download(self.url + name, f"sha256:{digest}", name) for name, digest in self.checksums.items()]


TANAKA = Corpus(
    name="tanaka", folder="tanaka-enja", languages=("ja", "en"),
    files={"train": "train", "dev": "dev"}, sizes={"train": 50_000, "dev": 500},
    checksums={"train.ja": "fc81a1434349ec98a449d7ae9cd2530057f689637684ecfed3501ea6a8a07ecc",
               "train.en": "148b05dcd28638fe20ee84f2b1127001c80982be352007dda241fb759adadc76",
               "dev.ja": "cd534f56b8639dc130f86a365e5ec0aa70042000bdd740a622fbbf8b6be4acca",
               "dev.en": "04a2673449770657fd5e3b963cb856be3130923212b6db8ac7eaeef18f06c041"},
    url=_TANAKA_URL, pretokenized=True,
    note="Tanaka corpus (small_parallel_enja); English lowercased by the corpus; test split not included")

MULTI30K = Corpus(
    name="multi30k", folder="multi30k", languages=("en", "de", "fr", "cs"),
    files={"train": "train", "dev": "val", "test": "test_2016_flickr"},
    sizes={"train": 29_000, "dev": 1_014, "test": 1_000},
    checksums={
        "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
        "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
        "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
        "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
        "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
        "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
        "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
        "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
        "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
        "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
        "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
        "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1"},
    url=_MULTI30K_URL, note="Multi30k task 1 (Flickr30k captions), raw and cased")

CORPORA: dict[str, Corpus] = {c.name: c for c in (TANAKA, MULTI30K)}
LANGUAGE_NAMES = {"ja": "Japanese", "en": "English", "de": "German", "fr": "French", "cs": "Czech"}


@dataclass
class ParallelData:
    """Aligned raw sentences: ``source[i]`` translates to ``target[i]``."""

    corpus: str
    src_lang: str
    tgt_lang: str
    split: str
    source: list[str]
    target: list[str]
    location: Path | None = None
    notes: str = ""

    def __len__(self) -> int:
        return len(self.source)

    @property
    def pair(self) -> str:
        return f"{self.src_lang}-{self.tgt_lang}"

    def subset(self, indices, split: str | None = None) -> ParallelData:
        rows = np.asarray(indices, dtype=np.int64)
        return ParallelData(self.corpus, self.src_lang, self.tgt_lang, split or self.split,
                            [self.source[i] for i in rows], [self.target[i] for i in rows], self.location, self.notes)

    def head(self, n: int) -> ParallelData:
        return self.subset(np.arange(min(n, len(self))))

    def describe(self) -> dict:
        return {"corpus": self.corpus, "pair": self.pair, "split": self.split, "sentences": len(self),
                "location": str(self.location) if self.location else None, "notes": self.notes}


# ---- pairs -------------------------------------------------------------------------------------
def parse_pair(pair: str) -> tuple[str, str]:
    """``"ja-en"`` → ``("ja", "en")``; unknown codes or pairs no corpus covers → ``DataError``."""
    parts = pair.strip().lower().replace("_", "-").split("-")
    if len(parts) != 2 or not all(parts):
        raise DataError(f"'{pair}' is not a language pair", hint="write it as source-target, e.g. ja-en or en-de")
    src, tgt = parts
    for code in (src, tgt):
        if code not in LANGUAGE_NAMES:
            raise DataError(f"unknown language code '{code}' in '{pair}'",
                            hint=f"the corpora here cover {', '.join(LANGUAGE_NAMES)}")
    if src == tgt:
        raise DataError(f"'{pair}' translates a language into itself", hint="pick two different languages")
    corpus_for(src, tgt)
    return src, tgt


def corpus_for(src: str, tgt: str) -> Corpus:
    for corpus in CORPORA.values():
        if src in corpus.languages and tgt in corpus.languages:
            return corpus
    raise DataError(f"no corpus here has {src}–{tgt} sentence pairs",
                    hint="Tanaka covers ja-en/en-ja; Multi30k covers any two of en, de, fr, cs")


def supported_pairs() -> list[str]:
    return [f"{a}-{b}" for c in CORPORA.values() for a in c.languages for b in c.languages if a != b]


# ---- files -------------------------------------------------------------------------------------
def find_corpus_dir(corpus: Corpus, data_dir: Path | str | None = None) -> Path:
    """The folder holding ``corpus``'s files: ``data_dir`` (the corpus folder or its parent),
    $MLCASEBOOK_DATA / ../shared/data, else a downloaded copy in the cache."""
    root = data_root(data_dir)
    candidates = []
    if root is not None:
        candidates += [root, root / corpus.folder] if data_dir else [root / corpus.folder]
    candidates.append(cache_dir() / "translate" / corpus.folder)
    stems = [f"{stem}.{lang}" for stem in corpus.files.values() for lang in corpus.languages]
    for folder in candidates:
        if any(_corpus_file(folder, stem) is not None for stem in stems):
            return folder
    where = ", ".join(str(c) for c in candidates)
    raise DataError(f"the {corpus.name} corpus was not found (looked in {where})",
                    hint=f"pass --data-dir with the folder holding {corpus.folder}/, or fetch it once online with "
                         f"`mlcasebook translate data --download {corpus.name}`")


def _corpus_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file (gzipped or not), line breaks stripped, nothing else touched."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", newline="\n") as handle:
                text = handle.read()
        else:
            text = path.read_text(encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} ({exc})", hint="re-download the file or fix its encoding (UTF-8)") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start a new one
    return [line.rstrip("\r") for line in lines]


def read_aligned(src_path: Path, tgt_path: Path) -> tuple[list[str], list[str]]:
    source, target = read_lines(src_path), read_lines(tgt_path)
    if len(source) != len(target):
        raise DataError(f"{src_path} has {len(source)} lines but {tgt_path} has {len(target)}: the files are not "
                        "aligned", hint="both sides must have one sentence per line, in the same order")
    return source, target


# ---- Tanaka detokenization ---------------------------------------------------------------------
def detokenize_english(tokenized: str) -> str:
    """Stanford-tokenized English → raw text. The corpus writes both quotes as ``''`` (some ``````):
    they become ``"`` so Moses pairs them."""
    return detokenize(tokenized.replace("``", '"').replace("''", '"').split(), "en")


def _untokenize(lines: list[str], lang: str) -> list[str]:
    # Japanese: tokens joined without spaces, except between two Latin/digit tokens ("New York")
    if lang == "ja":
        return [detokenize(line.split(), "ja") for line in lines]
    return [detokenize_english(line) for line in lines]


# ---- loading -----------------------------------------------------------------------------------
def load_pair(pair: str | tuple[str, str], split: str = "train", data_dir: Path | str | None = None,
              limit: int | None = None) -> ParallelData:
    """Raw aligned sentences of ``pair`` (e.g. ``"ja-en"``) for ``split`` (train, dev, test)."""
    src, tgt = parse_pair(pair) if isinstance(pair, str) else parse_pair("-".join(pair))
    corpus = corpus_for(src, tgt)
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'", hint=f"use one of {', '.join(SPLITS)}")
    if split not in corpus.files:
        raise DataError(f"the {corpus.name} corpus has no '{split}' split here",
                        hint=f"use {' or '.join(corpus.files)}" + (" (the Tanaka test set is measured separately)"
                                                                    if corpus is TANAKA else ""))
    folder = find_corpus_dir(corpus, data_dir)
    paths = []
    for lang in (src, tgt):
        name = f"{corpus.files[split]}.{lang}"
        path = _corpus_file(folder, name)
        if path is None:
            raise DataError(f"{folder} has no {name} (or {name}.gz)",
                            hint="the folder is incomplete: copy or download the missing file")
        paths.append(path)
    source, target = read_aligned(*paths)
    if limit is not None:
        source, target = source[:limit], target[:limit]
    if corpus.pretokenized:
        source, target = _untokenize(source, src), _untokenize(target, tgt)
    return ParallelData(corpus.name, src, tgt, split, source, target, folder, corpus.note)


def tuning_split(train: ParallelData, size: int = TUNING_SIZE, seed: int = TUNING_SEED
                 ) -> tuple[ParallelData, ParallelData]:
    """(rest of train, tuning set): ``size`` sentences drawn from train with a fixed seed. The tuning
    set picks SMT feature weights and stops neural training; dev and test stay untouched."""
    if len(train) < 2:
        raise DataError(f"{len(train)} training sentences cannot be split", hint="use more training data")
    size = min(size, max(1, len(train) // 10))
    order = np.random.default_rng(seed).permutation(len(train))
    return train.subset(np.sort(order[size:]), "train"), train.subset(np.sort(order[:size]), "tuning")


def download_corpus(name: str, target_dir: Path | None = None, progress: bool = True) -> Path:
    """Fetch every file of a corpus (pinned upstream commit, sha256-checked) into the cache."""
    if name not in CORPORA:
        raise DataError(f"unknown corpus '{name}'", hint=f"choose one of: {', '.join(CORPORA)}")
    corpus = CORPORA[name]
    folder = target_dir or cache_dir() / "translate" / corpus.folder
    for download in corpus.downloads():
        fetch(download, folder, progress=progress)
    return folder
