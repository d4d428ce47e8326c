"""Word-level text handling for the translation case: tokenize, detokenize, language codes, scripts.

Japanese has no spaces between words, so it is cut with MeCab and the IPA dictionary that the
``ipadic`` wheel ships (the same segmenter as sacreBLEU's ``ja-mecab``, so what the models see
and what BLEU counts agree); European languages use the Moses tokenizer (sacremoses), the
tokenizer phrase-based SMT was built around. Case is kept: lowercasing is the data's business.
"""

from __future__ import annotations

import unicodedata
from functools import cache, lru_cache

from mlcasebook.core.errors import DataError

LANGUAGES: dict[str, str] = {"ja": "Japanese", "en": "English", "de": "German", "fr": "French", "cs": "Czech"}

# the script a language is normally written in, for the mixed-script warning
_EXPECTED_SCRIPT = {"ja": "japanese", "en": "latin", "de": "latin", "fr": "latin", "cs": "latin"}


def check_language(code: str) -> str:
    """Return the normalised code (``"JA"`` → ``"ja"``) or raise DataError naming the known codes."""
    normalised = str(code).strip().lower()
    if normalised not in LANGUAGES:
        known = ", ".join(f"{c} ({name})" for c, name in LANGUAGES.items())
        raise DataError(f"unknown language code {code!r}", hint=f"use one of: {known}")
    return normalised


@lru_cache(maxsize=1)
def _mecab():
    # created once: loading the dictionary takes ~50 ms, parsing a sentence ~20 µs
    import ipadic
    import MeCab

    return MeCab.Tagger(ipadic.MECAB_ARGS + " -Owakati")


@cache
def _moses_tokenizer(lang: str):
    from sacremoses import MosesTokenizer

    return MosesTokenizer(lang=lang)


@cache
def _moses_detokenizer(lang: str):
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang=lang)


def tokenize(text: str, lang: str) -> list[str]:
    """Split raw text into word tokens (no lowercasing). Whitespace-only text gives ``[]``."""
    lang = check_language(lang)
    text = text.strip()
    if not text:
        return []
    if lang == "ja":
        return _mecab().parse(text).split()
    # escape=False: keep & < > ' " as themselves instead of HTML entities like &apos;
    return _moses_tokenizer(lang).tokenize(text, escape=False)


def detokenize(tokens: list[str], lang: str) -> str:
    """Join word tokens back into text: Japanese without spaces (but "New York" keeps its space),
    others with Moses' rules."""
    lang = check_language(lang)
    if lang == "ja":
        # no spaces, except between two Latin/digit tokens ("New York"), as the corpus loader does
        out: list[str] = []
        for token in tokens:
            if out and token and _is_ascii_alnum(token[0]) and _is_ascii_alnum(out[-1][-1]):
                out.append(" ")
            out.append(token)
        return "".join(out)
    return _moses_detokenizer(lang).detokenize(list(tokens))


def _is_ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _script_of(char: str) -> str | None:
    """The script of one character: latin, japanese (kana + kanji), other; None for digits,
    punctuation and spaces, which every script shares."""
    category = unicodedata.category(char)
    if not category.startswith("L"):
        return None
    code = ord(char)
    if code < 0x250 or 0x1E00 <= code <= 0x1EFF or 0xFF21 <= code <= 0xFF5A:  # incl. full-width A-z
        return "latin"
    if (0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9F  # kana
            or 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF  # kanji
            or code == 0x3005):  # 々 iteration mark
        return "japanese"
    return "other"


def script_mix(text: str) -> dict[str, int]:
    """Count the letters of each script in ``text``: ``{"latin": n, "japanese": n, "other": n}``
    (Japanese = kana + kanji; digits, punctuation and spaces are not counted)."""
    counts = {"latin": 0, "japanese": 0, "other": 0}
    for char in text:
        script = _script_of(char)
        if script is not None:
            counts[script] += 1
    return counts


def script_warning(text: str, lang: str) -> str | None:
    """A one-line warning when ``text`` is mostly not in the script ``lang`` is written in, or
    mixes scripts; None when it looks right. Latin words inside Japanese (names, "CD") are
    normal, so Japanese text only warns when Latin letters dominate."""
    lang = check_language(lang)
    counts = script_mix(text)
    letters = sum(counts.values())
    if letters == 0:
        return None
    expected = _EXPECTED_SCRIPT[lang]
    share = counts[expected] / letters
    found = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
    if share < 0.5:
        return f"the text does not look like {LANGUAGES[lang]} (letters by script: {found})"
    if expected == "latin" and share < 1.0:
        return f"mixed scripts in {LANGUAGES[lang]} text (letters by script: {found}); non-Latin words are copied"
    return None
