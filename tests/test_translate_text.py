"""Tokenizer, detokenizer, language codes and script detection of the translation case."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from mlcasebook.core.errors import DataError
from mlcasebook.translate.text import LANGUAGES, check_language, detokenize, script_mix, script_warning, tokenize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _lines(path: Path, limit: int = 400) -> list[str]:
    if not path.is_file():
        pytest.skip(f"shared data not found: {path} (the CI box has ../shared/data)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for _, line in zip(range(limit), handle, strict=False)]


def test_languages_and_codes():
    assert set(LANGUAGES) == {"ja", "en", "de", "fr", "cs"}
    assert check_language(" JA ") == "ja"
    with pytest.raises(DataError) as info:
        check_language("xx")
    assert "xx" in info.value.message and "ja (Japanese)" in info.value.hint
    with pytest.raises(DataError):
        tokenize("hello", "klingon")


def test_tokenize_examples():
    assert tokenize("I can't tell who will arrive first.", "en") == ["I", "can", "'t", "tell", "who", "will",
                                                                    "arrive", "first", "."]
    assert tokenize("私はテニス部員です。", "ja") == ["私", "は", "テニス", "部員", "です", "。"]
    assert tokenize("   ", "de") == [] and detokenize([], "fr") == ""
    japanese = "私はNew Yorkが好きです。"
    assert tokenize(japanese, "ja")[2:4] == ["New", "York"] and detokenize(tokenize(japanese, "ja"), "ja") == japanese
    # no HTML escaping: & and quotes stay themselves
    assert "&" in tokenize("salt & pepper", "en") and "&amp;" not in tokenize("salt & pepper", "en")


@pytest.mark.parametrize("lang", ["en", "de", "fr", "cs"])
def test_round_trip_multi30k(lang):
    lines = _lines(DATA / "multi30k" / f"train.{lang}.gz")
    # the raw files hold a few double spaces and stray leading blanks: compare space-normalised
    normalised = [" ".join(line.split()) for line in lines]
    same = sum(detokenize(tokenize(line, lang), lang) == norm for line, norm in zip(lines, normalised, strict=False))
    assert same >= 0.98 * len(lines), f"{lang}: only {same}/{len(lines)} lines round-trip"


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_round_trip_tanaka(lang):
    # the Tanaka files are pre-tokenized; the product feeds raw text, which we rebuild first
    raw = [detokenize(line.split(), lang) for line in _lines(DATA / "tanaka-enja" / f"train.{lang}")]
    same = sum(detokenize(tokenize(text, lang), lang) == text for text in raw)
    assert same >= 0.99 * len(raw)
    if lang == "ja":
        assert " " not in raw[0] and all(len(tokenize(text, "ja")) > 1 for text in raw[:50])


def test_script_mix_and_warning():
    assert script_mix("私はCDを買った。") == {"latin": 2, "japanese": 6, "other": 0}
    assert script_mix("Привет, world 123") == {"latin": 5, "japanese": 0, "other": 6}
    assert script_warning("私はCDを買った。", "ja") is None  # Latin acronyms inside Japanese are normal
    assert script_warning("Hello there.", "en") is None
    assert "does not look like English" in script_warning("こんにちは", "en")
    assert "mixed scripts" in script_warning("I like 寿司 very much", "en")
    assert "does not look like Japanese" in script_warning("this is English", "ja")
    assert script_warning("123 !!", "de") is None
