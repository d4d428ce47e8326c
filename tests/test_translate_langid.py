"""The language identifier that measures off-target translation: fitted on one split of the real
corpora, it must name the language of another split's sentences, and count a mixed output right."""

from __future__ import annotations

import pytest

from mlcasebook.core.errors import DataError
from mlcasebook.translate import data as td
from mlcasebook.translate.langid import LanguageIdentifier, char_ngrams, on_target_rate
from test_translate_data import needs


def test_char_ngrams_pad_each_word():
    grams = char_ngrams("The cat", orders=(2,))
    assert grams == {" t": 1, "th": 1, "he": 1, "e ": 1, " c": 1, "ca": 1, "at": 1, "t ": 1}


@pytest.fixture(scope="module")
def identifier():
    root = needs("multi30k")
    texts = {}
    for pair in ("en-de", "en-fr", "en-cs"):
        train = td.load_pair(pair, "train", root, limit=1000)
        texts.setdefault("en", train.source)
        texts[train.tgt_lang] = train.target
    return LanguageIdentifier().fit(texts)


def test_identifies_held_out_sentences(identifier):
    root = needs("multi30k")
    for pair in ("en-de", "en-fr", "en-cs"):
        test = td.load_pair(pair, "test", root, limit=300)
        assert on_target_rate(test.target, test.tgt_lang, identifier)["on_target"] >= 0.97, pair
        assert on_target_rate(test.source, "en", identifier)["on_target"] >= 0.97, pair


def test_off_target_outputs_are_counted(identifier):
    outputs = ["Ein Mann fährt Fahrrad auf der Straße.", "A man rides a bicycle on the street.",
               "Un homme fait du vélo dans la rue.", "", "   "]
    share = on_target_rate(outputs, "de", identifier)
    assert share["on_target"] == pytest.approx(1 / 3)  # blank lines are not judged
    assert share["languages"] == {"de": 1, "en": 1, "fr": 1}


def test_needs_two_languages_with_text():
    with pytest.raises(DataError, match="at least two languages"):
        LanguageIdentifier().fit({"en": ["a dog"]})
    with pytest.raises(DataError, match="no text for: de"):
        LanguageIdentifier().fit({"en": ["a dog"], "de": []})
