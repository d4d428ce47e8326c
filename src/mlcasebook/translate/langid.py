"""Which language is a translation in? A character n-gram naive Bayes identifier.

A multilingual model asked for a direction it never trained on (zero-shot) often answers in the
wrong language: Arivazhagan et al. (2019) and Zhang et al. (2020) call it off-target translation,
and BLEU alone cannot tell it from a poor translation in the right language. This identifier is
trained on the corpora's own monolingual sides (no model download), the way langid.py and
Cavnar & Trenkle's profiles work: counts of character 1–3-grams inside space-padded words,
add-one smoothing, the most probable language wins.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from ..core.errors import DataError

ORDERS = (1, 2, 3)


def char_ngrams(text: str, orders: Sequence[int] = ORDERS) -> Counter:
    """Character n-grams of each lower-cased word padded with spaces (" the " → " t", "th", "he", "e ", …)."""
    grams: Counter = Counter()
    for word in text.lower().split():
        padded = f" {word} "
        for n in orders:
            grams.update(padded[i:i + n] for i in range(len(padded) - n + 1))
    return grams


class LanguageIdentifier:
    """Multinomial naive Bayes over character n-grams; ``fit({"en": [...], "de": [...]})`` then ``identify``."""

    def __init__(self, orders: Sequence[int] = ORDERS):
        self.orders = tuple(orders)
        self.log_probs: dict[str, dict[str, float]] = {}
        self.unseen: dict[str, float] = {}

    def fit(self, texts: Mapping[str, Iterable[str]]) -> LanguageIdentifier:
        counts = {}
        for lang, lines in texts.items():
            counts[lang] = Counter()
            for line in lines:
                counts[lang].update(char_ngrams(line, self.orders))
        empty = [lang for lang, c in counts.items() if not c]
        if len(counts) < 2 or empty:
            raise DataError("a language identifier needs text in at least two languages",
                            hint=f"no text for: {', '.join(empty)}" if empty else "pass two or more languages")
        vocabulary = set().union(*counts.values())
        for lang, c in counts.items():
            total = sum(c.values()) + len(vocabulary) + 1  # +1: one slot for n-grams no language had
            self.log_probs[lang] = {gram: math.log((n + 1) / total) for gram, n in c.items()}
            self.unseen[lang] = math.log(1 / total)
        return self

    def scores(self, text: str) -> dict[str, float]:
        """Log-likelihood of ``text`` under each language (equal priors)."""
        if not self.log_probs:
            raise RuntimeError("call fit() first")
        grams = char_ngrams(text, self.orders)
        return {lang: sum(n * table.get(gram, self.unseen[lang]) for gram, n in grams.items())
                for lang, table in self.log_probs.items()}

    def identify(self, text: str) -> str | None:
        """The most likely language, or None for blank text (nothing to judge)."""
        scores = self.scores(text)
        return max(scores, key=scores.get) if any(scores.values()) else None


def on_target_rate(hypotheses: Sequence[str], lang: str, identifier: LanguageIdentifier) -> dict:
    """Share of non-empty ``hypotheses`` identified as ``lang``, and which languages the rest were in."""
    found = Counter(identifier.identify(h) for h in hypotheses if h.strip())
    judged = sum(found.values())
    return {"on_target": found.get(lang, 0) / judged if judged else float("nan"),
            "languages": dict(found.most_common())}
