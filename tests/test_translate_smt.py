"""Generation 1 of the translation case: IBM alignment, Kneser–Ney LM, phrase extraction, decoder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import sacrebleu

from mlcasebook.core.errors import CasebookError, DataError
from mlcasebook.translate.align import align_corpus, grow_diag_final_and, train_ibm
from mlcasebook.translate.lm import KneserNeyLM
from mlcasebook.translate.smt import (
    FEATURES,
    TABLE_FEATURES,
    PhraseBasedSMT,
    _bleu_of,
    _coordinate_ascent,
    _pooled,
    extract_phrase_spans,
)

TANAKA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tanaka-enja"

TOY_SOURCE = ["das haus", "das buch", "ein buch", "ein haus", "das kleine haus", "das haus ist klein",
              "das buch ist klein", "ein buch ist gut"]
TOY_TARGET = ["the house", "the book", "a book", "a house", "the small house", "the house is small",
              "the book is small", "a book is good"]
TOY_LINKS = [[(i, i) for i in range(len(s.split()))] for s in TOY_SOURCE]


def _split(lines):
    return [line.split() for line in lines]


@pytest.fixture(scope="module")
def tanaka():
    if not (TANAKA / "train.ja").is_file():
        pytest.skip(f"Tanaka corpus not found at {TANAKA} (the CI box has ../shared/data)")
    with open(TANAKA / "train.ja", encoding="utf-8") as ja, open(TANAKA / "train.en", encoding="utf-8") as en:
        pairs = [(j.split(), e.split()) for _, j, e in zip(range(400), ja, en, strict=False)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


# ---------------------------------------------------------------------- alignment
@pytest.mark.parametrize("model", [1, 2])
def test_ibm_em_converges_to_the_known_alignment(model):
    fitted = train_ibm(_split(TOY_SOURCE), _split(TOY_TARGET), model=model, model1_iterations=15,
                       model2_iterations=5)
    assert fitted.viterbi == TOY_LINKS
    assert fitted.prob("house", "haus") > 0.9 and fitted.prob("the", "das") > 0.9
    assert fitted.prob("house", "buch") < 0.05
    # EM never lowers the likelihood
    assert np.all(np.diff(fitted.log_likelihood) > -1e-9) and fitted.log_likelihood[-1] > fitted.log_likelihood[0]


def test_ibm_model1_learns_from_cooccurrence_not_position():
    # reordered pairs: only co-occurrence statistics can tell which word is which
    source = _split(["a b", "b c", "c a", "a d", "d b"])
    target = _split(["B A", "C B", "A C", "D A", "B D"])
    fitted = train_ibm(source, target, model=1, model1_iterations=30)
    # every pair is swapped: target word 0 is source word 1 and vice versa
    assert fitted.viterbi == [[(1, 0), (0, 1)]] * 5


def test_symmetrisation_and_corpus_alignment():
    forward = [(0, 0), (1, 1), (2, 1)]
    backward = [(0, 0), (1, 1), (3, 2)]
    # intersection {(0,0),(1,1)}; (2,1) is a union neighbour that aligns the new source word 2;
    # (3,2) is added by grow (diagonal neighbour of (2,1))
    assert grow_diag_final_and(forward, backward) == [(0, 0), (1, 1), (2, 1), (3, 2)]
    assert grow_diag_final_and([(0, 1)], [(1, 0)]) == [(0, 1), (1, 0)]  # final-and: both words unaligned
    assert align_corpus(_split(TOY_SOURCE), _split(TOY_TARGET)) == TOY_LINKS
    with pytest.raises(DataError):
        train_ibm([["a"]], [["b"], ["c"]])


# ---------------------------------------------------------------------- language model
@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_kneser_ney_sums_to_one(order, tanaka):
    lm = KneserNeyLM(order).fit(tanaka[1][:300])
    words = [w for w in lm.words_ if w != "<s>"]
    for context in [(), ("<s>",), ("i",), ("<s>", "i"), ("i", "'m", "in"), ("the", "tennis", "club", "."),
                    ("never", "seen", "words"), ("<s>", "<s>", "<s>", "<s>")]:
        total = sum(math.exp(lm.logprob(w, context)) for w in words)
        assert total == pytest.approx(1.0, abs=1e-9), context
    assert lm.logprob("<s>", ("i",)) == float("-inf")
    assert lm.logprob("zzz-unknown", ("i",)) == lm.logprob("<unk>", ("i",)) < lm.logprob("'m", ("i",))


def test_kneser_ney_orders_and_persistence(tanaka):
    train, held_out = tanaka[1][:350], tanaka[1][350:]
    perplexities = [KneserNeyLM(order).fit(train).perplexity(held_out) for order in (2, 3)]
    assert 5 < perplexities[1] < perplexities[0] < 300  # a trigram beats a bigram on held-out text
    lm = KneserNeyLM(3).fit(train)
    for order in (1, 2, 3):  # D1 <= 1, D2 <= 2, D3+ <= 3 keep the model normalised
        assert all(0.0 < d <= count for count, d in enumerate(lm.discounts_[order], start=1))
    # the decoder's path (ids, minimal states) gives the same numbers as the string API
    sentence = held_out[0]
    by_words = sum(lm.logprob(w, ["<s>"] + sentence[:i]) for i, w in enumerate(sentence + ["</s>"]))
    assert lm.sentence_logprob(sentence) == pytest.approx(by_words)
    restored = KneserNeyLM.from_arrays(lm.to_arrays())
    assert [restored.sentence_logprob(s) for s in held_out] == [lm.sentence_logprob(s) for s in held_out]
    with pytest.raises(DataError):
        KneserNeyLM(3).fit([[]])


def test_kneser_ney_keeps_back_off_mass_when_discount_estimates_leave_their_range():
    # trigram counts-of-counts n1=2, n2=2, n3=10 put Chen & Goodman's D2 below zero; clipped to 0
    # it left the context "c d" (seen only twice, only before </s>) no mass for any other word
    corpus = [["a", "b"]] + [["c", "d"]] * 2 + [[w, w + "2"] for w in "efghi"] * 3
    lm = KneserNeyLM(3).fit(corpus)
    assert lm.discounts_[3] == [0.5, 1.0, 1.5]  # KenLM's --discount_fallback values
    assert math.isfinite(lm.logprob("a", ("c", "d")))
    total = sum(math.exp(lm.logprob(w, ("c", "d"))) for w in lm.words_ if w != "<s>")
    assert total == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------------- phrase extraction
def test_phrase_extraction_koehn_example():
    source = "michael geht davon aus , dass er im haus bleibt".split()
    target = "michael assumes that he will stay in the house".split()
    links = [(0, 0), (1, 1), (2, 1), (3, 1), (5, 2), (6, 3), (9, 4), (9, 5), (7, 6), (7, 7), (8, 8)]
    pairs = {(" ".join(source[a:b]), " ".join(target[c:d]))
             for a, b, c, d in extract_phrase_spans(len(source), len(target), links, max_len=10)}
    for expected in [("michael", "michael"), ("geht davon aus", "assumes"), ("geht davon aus ,", "assumes"),
                     (", dass", "that"), ("dass", "that"), ("im haus", "in the house"), ("bleibt", "will stay"),
                     ("er im haus bleibt", "he will stay in the house")]:
        assert expected in pairs
    for inconsistent in [("geht", "assumes"), ("im", "in"), ("haus", "the house"), (",", "that")]:
        assert inconsistent not in pairs
    short = extract_phrase_spans(len(source), len(target), links, max_len=2)
    assert all(b - a <= 2 and d - c <= 2 for a, b, c, d in short)


def test_phrase_table_scores_on_the_toy_corpus():
    model = PhraseBasedSMT(max_phrase_len=3, lm_order=2).fit(_split(TOY_SOURCE), _split(TOY_TARGET), progress=False)
    words = sorted(model.source_vocab_, key=model.source_vocab_.get)
    table: dict[tuple[str, ...], dict[tuple[str, ...], np.ndarray]] = {}
    for src, tgt, feats in zip(model.table_source_, model.table_target_, model.table_features_, strict=True):
        table.setdefault(tuple(words[i] for i in src), {})[tuple(model.target_words_[t] for t in tgt)] = feats
    for source_phrase, translations in table.items():  # φ(e|f) is a distribution per source phrase
        assert sum(math.exp(f[0]) for f in translations.values()) == pytest.approx(1.0), source_phrase
    house = table[("haus",)][("house",)]
    assert house[0] == pytest.approx(0.0) and house[1] == pytest.approx(0.0)  # φ = 1 both ways
    assert house[2] == pytest.approx(0.0) and house[4:].tolist() == [1.0, 1.0]  # lex = 1, one phrase, one word
    assert ("the", "house") in table[("das", "haus")] and model.translate(["ein", "kleine", "buch"])[0] == "a"
    with pytest.raises(DataError):
        PhraseBasedSMT().fit([[]], [[]])
    with pytest.raises(ValueError):
        PhraseBasedSMT(weights={"no_such_feature": 1.0})


# ---------------------------------------------------------------------- decoder
def _hand_model(distortion_limit: int) -> PhraseBasedSMT:
    lm = KneserNeyLM(3).fit(_split(["x z v", "y w v", "z x u", "x w v", "y z u", "x y", "u v w"]))
    def f(*values):
        return list(values) + [1.0]
    entries = [(["a"], ["x"], f(-0.2, -0.5, -0.3, -0.4, 1.0)), (["a"], ["y"], f(-1.0, -0.3, -0.8, -0.2, 1.0)),
               (["b"], ["z"], f(-0.3, -0.2, -0.5, -0.6, 1.0)), (["b", "c"], ["w", "v"], f(-0.7, -0.9, -1.1, -0.9, 2.0)),
               (["c"], ["v"], f(-0.6, -0.4, -0.2, -0.7, 1.0)), (["c"], ["u"], f(-0.4, -1.2, -0.6, -0.3, 1.0)),
               (["a", "b"], ["y", "z"], f(-0.5, -0.5, -0.9, -1.0, 2.0)), (["d"], ["w"], f(-0.1, -0.1, -0.1, -0.1, 1.0))]
    # put the one-line feature builder's word count where it belongs (column 6 = target length)
    entries = [(src, tgt, feats[:4] + [1.0, float(len(tgt))]) for src, tgt, feats in entries]
    return PhraseBasedSMT.from_phrase_table(entries, lm, beam_size=10_000, beam_threshold=1e9,
                                            distortion_limit=distortion_limit,
                                            weights={"distortion": 0.4, "word_count": 0.3})


def _brute_force(model: PhraseBasedSMT, source: list[str], distortion_limit: int):
    """Every segmentation x ordering x choice of translations, scored with the model's features."""
    weights = np.array([model.weights[f] for f in TABLE_FEATURES])
    table = {}
    for src, tgt, feats in zip(model.table_source_, model.table_target_, model.table_features_, strict=False):
        words = tuple(sorted(model.source_vocab_, key=model.source_vocab_.get)[i] for i in src)
        table.setdefault(words, []).append(([model.target_words_[t] for t in tgt], float(feats @ weights)))
    best = (-math.inf, None)

    def search(covered: frozenset, last_end: int, output: list[str], score: float, jumps: int):
        nonlocal best
        if len(covered) == len(source):
            total = (score + model.weights["lm"] * model.lm_.sentence_logprob(output)
                     - model.weights["distortion"] * jumps)
            best = max(best, (total, output), key=lambda item: item[0])
            return
        for start in range(len(source)):
            for end in range(start + 1, len(source) + 1):
                if any(p in covered for p in range(start, end)) or tuple(source[start:end]) not in table:
                    continue
                if distortion_limit >= 0 and abs(start - last_end) > distortion_limit:
                    continue
                for target, table_score in table[tuple(source[start:end])]:
                    search(covered | set(range(start, end)), end, output + target, score + table_score,
                           jumps + abs(start - last_end))

    search(frozenset(), 0, [], 0.0, 0)
    return best


@pytest.mark.parametrize("distortion_limit", [0, 3])
def test_decoder_finds_the_best_hypothesis(distortion_limit):
    model = _hand_model(distortion_limit)
    for source in (["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a", "d"], ["a", "d", "b", "c"]):
        best_score, best_output = _brute_force(model, source, distortion_limit)
        assert model.translate(source) == best_output
        # the feature vector of the best hypothesis reproduces its score (what tuning relies on)
        words, features = model.n_best(source, 5)[0]
        assert words == best_output
        assert float(features @ np.array([model.weights[f] for f in FEATURES])) == pytest.approx(best_score)


def test_decoder_passes_unknown_words_through():
    model = _hand_model(3)
    output = model.translate(["a", "Tokyo", "b"])
    assert "Tokyo" in output and len(output) >= 3
    assert model.translate([]) == []


# ---------------------------------------------------------------------- tuning
def test_coordinate_ascent_finds_weights_that_pick_the_references():
    references = _split(["the cat sat on the mat", "a dog ran in the park", "it is a sunny day today"])
    pools = []
    rng = np.random.default_rng(0)
    for reference in references:
        # feature 0 prefers a bad output, feature 1 the reference: only a positive weight on 1 wins
        pool = {tuple(reference): np.array([0.0, 1.0]), ("bad", "output"): np.array([1.0, 0.0]),
                tuple(reference[:2]): np.array([0.5, 0.2])}
        for _ in range(3):
            pool[tuple(rng.permutation(reference))] = rng.uniform(-1, 0, 2)
        pools.append(pool)
    features, stats, offsets = _pooled(pools, references)
    start = np.array([1.0, 0.1])
    assert _bleu_of(start, features, stats, offsets) < 20
    point, value = _coordinate_ascent(start, features, stats, offsets)
    assert value == pytest.approx(100.0) and _bleu_of(point, features, stats, offsets) == pytest.approx(100.0)


# ---------------------------------------------------------------------- real data
def test_fit_translate_tune_save_load(tanaka, tmp_path):
    source, target = tanaka
    model = PhraseBasedSMT(max_phrase_len=7, lm_order=3, beam_size=20).fit(source[:350], target[:350], progress=False)
    assert model.train_stats_["phrase_pairs_kept"] > 1000
    outputs = model.translate_many(source[:30], progress=False)
    # training sentences come back close to their references (the phrase table saw them)
    bleu = sacrebleu.corpus_bleu([" ".join(o) for o in outputs], [[" ".join(t) for t in target[:30]]],
                                 tokenize="none").score
    assert bleu > 40, bleu
    weights = model.tune(source[350:390], target[350:390], iterations=2, n_best=20, restarts=2, progress=False)
    first, second = model.tuning_history_
    # at the starting weights the pooled lists reproduce the decoder's 1-best; ascent only climbs
    assert first["pooled_bleu_after"] >= first["bleu_1best"] and first["pool_size"] > 2 * 40
    assert weights == max(model.tuning_history_, key=lambda r: r["bleu_1best"])["weights"] == model.weights
    assert all(weights[f] >= 0 for f in FEATURES if f not in ("phrase_count", "word_count"))
    path = model.save(tmp_path / "smt.npz")
    restored = PhraseBasedSMT.load(path)
    assert restored.weights == model.weights
    assert restored.translate_many(source[:15], progress=False) == model.translate_many(source[:15], progress=False)
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(CasebookError):
        PhraseBasedSMT.load(tmp_path / "bad.npz")
    with pytest.raises(CasebookError):
        PhraseBasedSMT.load(tmp_path / "missing.npz")
    with pytest.raises(CasebookError):
        PhraseBasedSMT().translate(["a"])
