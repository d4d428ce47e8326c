"""Subwords: one SentencePiece model trained offline on the training text of both sides.

One *joint* vocabulary serves source and target, so a Transformer can share its embeddings (and
the multilingual model needs nothing else). Ids are fixed: ``<pad>`` 0, ``<unk>`` 1, ``<s>`` 2,
``</s>`` 3, then the target-language tokens ``<2en>``, ``<2de>``, ``<2fr>``, ``<2cs>``, ``<2ja>``
(user-defined symbols: never split, so a multilingual source starts with exactly one of them).
SentencePiece works on raw text, Japanese included (no word segmenter needed): it treats the
unsegmented string as one run of characters and learns pieces inside it. Text is NFKC-normalised
first (SentencePiece's default ``nmt_nfkc``: full-width ``５`` becomes ``5``), so decoding returns
the normalised text.

The model is stored as ``subword.model`` next to the translation model (``save``/``load``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..core.checkpoint import atomic_write_bytes
from ..core.errors import DataError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
TARGET_TOKENS = ("<2en>", "<2de>", "<2fr>", "<2cs>", "<2ja>")
FILE_NAME = "subword.model"
MODEL_TYPES = ("unigram", "bpe")


def target_token(lang: str) -> str:
    return f"<2{lang}>"


class Subwords:
    """Encode raw text to ids and back with a trained SentencePiece model."""

    def __init__(self, model_bytes: bytes):
        import sentencepiece as spm

        self.model_bytes = model_bytes
        self.processor = spm.SentencePieceProcessor(model_proto=model_bytes)

    # -- training --
    @classmethod
    def train(cls, sentences: Iterable[str], vocab_size: int = 8000, model_type: str = "unigram",
              character_coverage: float = 0.9995, max_sentences: int = 300_000, seed: int = 0) -> Subwords:
        """Train on ``sentences`` (source and target text together for a joint vocabulary).
        ``vocab_size`` is an upper bound: a small corpus gets the largest vocabulary it supports."""
        import sentencepiece as spm

        if model_type not in MODEL_TYPES:
            raise DataError(f"unknown subword model '{model_type}'", hint=f"use one of {', '.join(MODEL_TYPES)}")
        lines = [s for s in sentences if s.strip()]
        if not lines:
            raise DataError("no text to train the subword model on", hint="check the training data")
        buffer = io.BytesIO()
        spm.set_random_generator_seed(seed)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=buffer, vocab_size=vocab_size, model_type=model_type,
                character_coverage=character_coverage, pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                user_defined_symbols=list(TARGET_TOKENS),
                # characters never seen in training (a rare kanji, an emoji) become UTF-8 bytes, not <unk>
                byte_fallback=True,
                # a small corpus cannot fill a large vocabulary: take what it supports instead of failing
                hard_vocab_limit=False, input_sentence_size=max_sentences, shuffle_input_sentence=True,
                num_threads=1, minloglevel=2)
        except RuntimeError as exc:  # SentencePiece reports bad settings as RuntimeError
            raise DataError(f"the subword model cannot be trained: {str(exc).split('] ')[-1]}",
                            hint="raise the vocabulary size (--vocab-size) or train on more text") from exc
        return cls(buffer.getvalue())

    # -- persistence --
    def save(self, folder: Path | str) -> Path:
        return atomic_write_bytes(Path(folder) / FILE_NAME, self.model_bytes)

    @classmethod
    def load(cls, folder: Path | str) -> Subwords:
        path = Path(folder)
        path = path / FILE_NAME if path.is_dir() else path
        if not path.is_file():
            raise DataError(f"subword model {path} is missing", hint="the model folder is incomplete: retrain it")
        try:
            return cls(path.read_bytes())
        except RuntimeError as exc:
            raise DataError(f"{path} is not a SentencePiece model ({exc})", hint="retrain the model") from exc

    # -- use --
    @property
    def size(self) -> int:
        return self.processor.get_piece_size()

    def vocab_info(self) -> dict[str, int]:
        """What the neural trainers need to size embeddings and stop decoding."""
        return {"size": self.size, "pad_id": PAD_ID, "bos_id": BOS_ID, "eos_id": EOS_ID, "unk_id": UNK_ID}

    @property
    def target_token_ids(self) -> set[int]:
        return {self.token_id(token) for token in TARGET_TOKENS}

    def token_id(self, piece: str) -> int:
        return self.processor.piece_to_id(piece)

    def encode(self, text: str, target_lang: str | None = None) -> list[int]:
        """Ids of ``text`` (no bos/eos); with ``target_lang`` the ``<2xx>`` token comes first."""
        ids = self.processor.encode(text, out_type=int)
        return [self.token_id(target_token(target_lang)), *ids] if target_lang else ids

    def encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        return self.processor.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[int]) -> str:
        specials = {PAD_ID, BOS_ID, EOS_ID, *self.target_token_ids}
        return self.processor.decode([int(i) for i in ids if int(i) not in specials])

    def pieces(self, text: str) -> list[str]:
        return self.processor.encode(text, out_type=str)
