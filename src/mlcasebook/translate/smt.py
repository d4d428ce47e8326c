"""Generation 1: phrase-based statistical MT (Koehn, Och & Marcu 2003; Moses-style features).

Pipeline of ``PhraseBasedSMT.fit``: IBM Model 2 alignments in both directions, symmetrised
with grow-diag-final-and (``align.py``) → every phrase pair consistent with the alignment, up
to ``max_phrase_len`` words (Koehn's extraction) → a phrase table with φ(e|f), φ(f|e), the
lexical weights lex(e|f), lex(f|e), a phrase count and a word count, pruned to the
``max_translations`` best translations of each source phrase → a Kneser–Ney n-gram LM of the
target side (``lm.py``).

``translate`` runs a stack decoder: hypotheses grouped by the number of source words covered,
extended by any contiguous uncovered span within the distortion limit, scored log-linearly
(the features above + distortion + LM), recombined when their future is identical (same
coverage, same last position, same LM state), pruned by histogram (``beam_size``) and by a
score threshold against a future-cost estimate. ``tune`` sets the feature weights by
maximising BLEU on n-best lists (MERT's outer loop with coordinate ascent inside).

Unknown source words (never seen in training) are passed through: copied to the output
unchanged — names and numbers survive, untranslated words show. A known source word that was
always unaligned (e.g. a particle) may be dropped instead.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlcasebook.core.checkpoint import atomic_write_bytes
from mlcasebook.core.errors import CasebookError, DataError
from mlcasebook.core.progress import track

from .align import Alignment, align_corpus
from .lm import KneserNeyLM

# phrase-table features (one column each), then the two the decoder adds
TABLE_FEATURES = ("phi_e_given_f", "phi_f_given_e", "lex_e_given_f", "lex_f_given_e", "phrase_count", "word_count")
FEATURES = TABLE_FEATURES + ("distortion", "lm")
DEFAULT_WEIGHTS = {"phi_e_given_f": 0.2, "phi_f_given_e": 0.2, "lex_e_given_f": 0.2, "lex_f_given_e": 0.2,
                   "phrase_count": 0.0, "word_count": 0.5, "distortion": 0.1, "lm": 0.5}
_FORMAT = "mlcasebook-smt-1"
_NULL = -1  # source/target index of the NULL word in lexical tables


def extract_phrase_spans(n_source: int, n_target: int, alignment: Alignment,
                         max_len: int) -> list[tuple[int, int, int, int]]:
    """All phrase pairs consistent with ``alignment`` (Koehn's algorithm), as end-exclusive spans
    ``(source_start, source_end, target_start, target_end)`` of at most ``max_len`` words a side.

    Consistent = no word inside the pair is aligned to a word outside it, and at least one link
    inside; unaligned source words at the edges extend the pair (each extension is a pair)."""
    src_min, src_max = [n_target] * n_source, [-1] * n_source  # target range each source word links to
    tgt_links: list[list[int]] = [[] for _ in range(n_target)]
    for s, t in alignment:
        src_min[s], src_max[s] = min(src_min[s], t), max(src_max[s], t)
        tgt_links[t].append(s)
    aligned_src = [m >= 0 for m in src_max]
    spans = []
    for t_start in range(n_target):
        f_lo, f_hi = n_source, -1
        for t_end in range(t_start, min(t_start + max_len, n_target)):
            for s in tgt_links[t_end]:
                f_lo, f_hi = min(f_lo, s), max(f_hi, s)
            if f_hi < 0:
                continue
            if f_hi - f_lo >= max_len:
                break  # the source span only grows with t_end
            if any(aligned_src[s] and (src_min[s] < t_start or src_max[s] > t_end) for s in range(f_lo, f_hi + 1)):
                continue
            s_start = f_lo
            while True:
                s_end = f_hi
                while True:
                    spans.append((s_start, s_end + 1, t_start, t_end + 1))
                    s_end += 1
                    if s_end >= n_source or aligned_src[s_end] or s_end - s_start >= max_len:
                        break
                s_start -= 1
                if s_start < 0 or aligned_src[s_start] or f_hi - s_start >= max_len:
                    break
    return spans


def _lexical_weight(src: tuple[int, ...], tgt: tuple[int, ...], links: tuple[tuple[int, int], ...],
                    table: dict[tuple[int, int], float]) -> float:
    """lex(tgt | src, links) = Π over target words of the mean w(e|f) over the source words it
    links to, or w(e|NULL) when it links to none."""
    linked: list[list[int]] = [[] for _ in tgt]
    for s, t in links:
        linked[t].append(s)
    value = 1.0
    for t, sources in enumerate(linked):
        if sources:
            value *= sum(table.get((src[s], tgt[t]), 1e-7) for s in sources) / len(sources)
        else:
            value *= table.get((_NULL, tgt[t]), 1e-7)
    return value


@dataclass(eq=False, slots=True)  # identity hash: hypotheses are graph nodes
class _Hypothesis:
    score: float
    estimate: float  # score + future cost of what is still uncovered
    coverage: int  # bit i set = source word i translated
    end: int  # end (exclusive) of the last source span translated
    lm_state: tuple[int, ...]
    parent: _Hypothesis | None
    target: tuple[int, ...]
    option_row: int  # phrase-table row used (-1: pass-through / drop)
    distortion: float
    lm: float


class PhraseBasedSMT:
    """Phrase-based statistical MT: IBM alignments + phrase table + Kneser–Ney LM + stack decoder.

    Parameters: ``max_phrase_len`` words a side of a phrase pair; ``lm_order`` of the target LM;
    ``distortion_limit`` the longest jump over source words (-1: none); ``beam_size`` hypotheses
    kept per stack; ``beam_threshold`` drop hypotheses whose estimate is this much (log) below
    the stack's best; ``max_translations`` translations kept per source phrase;
    ``alignment_model`` IBM 1 or 2; ``weights`` feature weights (see ``FEATURES``).

    Input and output are word tokens (``text.tokenize``); unknown source words are copied
    through to the output unchanged."""

    def __init__(self, max_phrase_len: int = 5, lm_order: int = 4, distortion_limit: int = 6, beam_size: int = 50,
                 beam_threshold: float = 3.0, max_translations: int = 10, alignment_model: int = 2,
                 alignment_iterations: int = 5, weights: dict[str, float] | None = None):
        self.max_phrase_len = max_phrase_len
        self.lm_order = lm_order
        self.distortion_limit = distortion_limit
        self.beam_size = beam_size
        self.beam_threshold = beam_threshold
        self.max_translations = max_translations
        self.alignment_model = alignment_model
        self.alignment_iterations = alignment_iterations
        self.weights = dict(DEFAULT_WEIGHTS) | dict(weights or {})
        unknown = set(self.weights) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown feature weights {sorted(unknown)}; features are {FEATURES}")

    # ------------------------------------------------------------------ training
    def fit(self, src_sentences: list[list[str]], tgt_sentences: list[list[str]], progress: bool = True,
            lm_sentences: list[list[str]] | None = None) -> PhraseBasedSMT:
        """Learn alignments, the phrase table and the LM (on ``lm_sentences`` if given, else the
        target side). Sentences are lists of word tokens."""
        if len(src_sentences) != len(tgt_sentences):
            raise DataError(f"{len(src_sentences)} source but {len(tgt_sentences)} target sentences",
                            hint="the two sides of a parallel corpus need the same number of lines")
        pairs = [(list(s), list(t)) for s, t in zip(src_sentences, tgt_sentences, strict=False) if s and t]
        if not pairs:
            raise DataError("no non-empty sentence pairs to train on", hint="check the training files")
        timings = {}
        started = time.perf_counter()
        source, target = [p[0] for p in pairs], [p[1] for p in pairs]
        alignments = align_corpus(source, target, model=self.alignment_model,
                                  model1_iterations=self.alignment_iterations,
                                  model2_iterations=self.alignment_iterations)
        timings["align_s"] = time.perf_counter() - started

        started = time.perf_counter()
        self.source_vocab_ = {w: i for i, w in enumerate(sorted({w for s in source for w in s}))}
        self.target_words_ = sorted({w for t in target for w in t})
        self.target_vocab_ = {w: i for i, w in enumerate(self.target_words_)}
        source_ids = [tuple(self.source_vocab_[w] for w in s) for s in source]
        target_ids = [tuple(self.target_vocab_[w] for w in t) for t in target]
        lex_e_given_f, lex_f_given_e = self._word_tables(source_ids, target_ids, alignments)

        pair_counts: Counter = Counter()
        pair_links: dict[tuple, tuple] = {}
        for src, tgt, links in track(list(zip(source_ids, target_ids, alignments, strict=False)), "extracting phrases",
                                     disable=not progress):
            for s0, s1, t0, t1 in extract_phrase_spans(len(src), len(tgt), links, self.max_phrase_len):
                key = (src[s0:s1], tgt[t0:t1])
                pair_counts[key] += 1
                if key not in pair_links:  # lexical weights use the first alignment seen
                    pair_links[key] = tuple((s - s0, t - t0) for s, t in links if s0 <= s < s1 and t0 <= t < t1)
        self._build_table(pair_counts, pair_links, lex_e_given_f, lex_f_given_e)
        timings["phrases_s"] = time.perf_counter() - started

        started = time.perf_counter()
        self.lm_ = KneserNeyLM(self.lm_order).fit(lm_sentences if lm_sentences is not None else target)
        timings["lm_s"] = time.perf_counter() - started
        self.train_stats_ = {"sentence_pairs": len(pairs), "phrase_pairs_extracted": len(pair_counts),
                             "phrase_pairs_kept": int(self.table_features_.shape[0])} | timings
        self._prepare_decoder()
        return self

    @classmethod
    def from_phrase_table(cls, entries: list[tuple[list[str], list[str], list[float]]], lm: KneserNeyLM,
                          **params) -> PhraseBasedSMT:
        """A model from a hand-made phrase table — ``(source words, target words, the six
        TABLE_FEATURES values)`` per entry — and a trained LM (for teaching and tests)."""
        model = cls(**params)
        model.source_vocab_ = {w: i for i, w in enumerate(sorted({w for src, _, _ in entries for w in src}))}
        model.target_words_ = sorted({w for _, tgt, _ in entries for w in tgt})
        model.target_vocab_ = {w: i for i, w in enumerate(model.target_words_)}
        rows = sorted(((tuple(model.source_vocab_[w] for w in src), tuple(model.target_vocab_[w] for w in tgt),
                        tuple(float(v) for v in features)) for src, tgt, features in entries))
        model.table_source_ = [r[0] for r in rows]
        model.table_target_ = [r[1] for r in rows]
        model.table_features_ = np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, len(TABLE_FEATURES))
        model.lm_ = lm
        model._prepare_decoder()
        return model

    def _word_tables(self, source_ids, target_ids, alignments):
        """w(e|f) and w(f|e) from the symmetrised links; unaligned words count against NULL."""
        joint: Counter = Counter()
        for src, tgt, links in zip(source_ids, target_ids, alignments, strict=False):
            linked_src, linked_tgt = {s for s, _ in links}, {t for _, t in links}
            joint.update((src[s], tgt[t]) for s, t in links)
            joint.update((src[s], _NULL) for s in range(len(src)) if s not in linked_src)
            joint.update((_NULL, tgt[t]) for t in range(len(tgt)) if t not in linked_tgt)
        per_source, per_target = Counter(), Counter()
        for (f, e), count in joint.items():
            per_source[f] += count
            per_target[e] += count
        e_given_f = {(f, e): count / per_source[f] for (f, e), count in joint.items()}
        f_given_e = {(e, f): count / per_target[e] for (f, e), count in joint.items()}  # keyed (given, predicted)
        return e_given_f, f_given_e

    def _build_table(self, pair_counts: Counter, pair_links: dict, lex_e_given_f: dict, lex_f_given_e: dict) -> None:
        source_totals, target_totals = Counter(), Counter()
        for (src, tgt), count in pair_counts.items():
            source_totals[src] += count
            target_totals[tgt] += count
        by_source: dict[tuple, list] = defaultdict(list)
        for (src, tgt), count in pair_counts.items():
            by_source[src].append((count, tgt))
        rows_src, rows_tgt, rows = [], [], []
        for src, candidates in by_source.items():
            # prune by φ(e|f) (the count, for a fixed source phrase); ties by length then ids
            candidates.sort(key=lambda item: (-item[0], len(item[1]), item[1]))
            for count, tgt in candidates[:self.max_translations]:
                links = pair_links[(src, tgt)]
                flipped = tuple((t, s) for s, t in links)
                rows_src.append(src)
                rows_tgt.append(tgt)
                rows.append((math.log(count / source_totals[src]), math.log(count / target_totals[tgt]),
                             math.log(_lexical_weight(src, tgt, links, lex_e_given_f)),
                             math.log(_lexical_weight(tgt, src, flipped, lex_f_given_e)),
                             1.0, float(len(tgt))))
        order = sorted(range(len(rows)), key=lambda r: rows_src[r])
        self.table_source_ = [rows_src[r] for r in order]
        self.table_target_ = [rows_tgt[r] for r in order]
        self.table_features_ = np.array([rows[r] for r in order], dtype=np.float64).reshape(-1, len(TABLE_FEATURES))

    def _prepare_decoder(self) -> None:
        """Index the table by source phrase (rows of one phrase are contiguous) and map target
        ids to LM ids."""
        self._options: dict[tuple[int, ...], tuple[int, int]] = {}
        for row, src in enumerate(self.table_source_):
            start, _ = self._options.get(src, (row, row))
            self._options[src] = (start, row + 1)
        self._lm_ids = np.array([self.lm_.word_id(w) for w in self.target_words_], dtype=np.int64)
        self._table_lm_ = [tuple(int(self._lm_ids[t]) for t in target) for target in self.table_target_]
        self._scored_for: tuple | None = None

    def _row_scores(self) -> np.ndarray:
        key = tuple(self.weights[f] for f in FEATURES)
        if self._scored_for != key:
            self._option_scores = self.table_features_ @ np.array([self.weights[f] for f in TABLE_FEATURES])
            self._scored_for = key
        return self._option_scores

    # ------------------------------------------------------------------ decoding
    def _check_fitted(self) -> None:
        if not hasattr(self, "lm_"):
            raise CasebookError("the SMT model is not trained", hint="call fit() or load() first")

    def _decode(self, tokens: list[str], n_best: int = 0):
        """Stack decoding; returns the best hypothesis and, if ``n_best``, the final stack."""
        weights = self.weights
        w_lm, w_dist = weights["lm"], weights["distortion"]
        scores = self._row_scores()
        lm = self.lm_
        n = len(tokens)
        ids = [self.source_vocab_.get(w, -1) for w in tokens]

        # translation options per span: (target ids, their LM ids, weighted table score, row)
        lm_of_target = self._lm_ids
        options: dict[tuple[int, int], list[tuple[tuple[int, ...], tuple[int, ...], float, int]]] = {}
        for start in range(n):
            for end in range(start + 1, min(start + self.max_phrase_len, n) + 1):
                if ids[end - 1] < 0:
                    break
                rows = self._options.get(tuple(ids[start:end]))
                if rows is not None:
                    options[(start, end)] = [(self.table_target_[r], self._table_lm_[r], float(scores[r]), r)
                                             for r in range(*rows)]
            if (start, start + 1) not in options:
                # unknown word: copy it (target id -1-start marks "source word at start"; the LM
                # sees <unk> unless the word also exists on the target side); known but never
                # translated alone (always unaligned): it may also be dropped
                same = self.target_vocab_.get(tokens[start])
                copy = ((-1 - start,), (int(lm_of_target[same]) if same is not None else 0,),
                        weights["word_count"] + weights["phrase_count"], -1)
                drop = ((), (), weights["phrase_count"], -1)
                options[(start, start + 1)] = [copy] if ids[start] < 0 else [drop, copy]

        for candidates in options.values():  # best first, for the early break below
            candidates.sort(key=lambda option: -option[2])

        def lm_score(state: tuple[int, ...], words: tuple[int, ...]) -> tuple[float, tuple[int, ...]]:
            total = 0.0
            for word in words:
                value, state = lm.advance(state, word)
                total += value
            return total, state

        # future cost: best option of each span with a context-free LM estimate, then the best
        # split of every span into covered-by-phrases pieces
        best_span = np.full((n + 1, n + 1), -np.inf)
        for (start, end), candidates in options.items():
            best_span[start, end] = max(score + w_lm * lm_score((), words)[0] for _, words, score, _ in candidates)
        for length in range(2, n + 1):
            for start in range(0, n - length + 1):
                end = start + length
                for middle in range(start + 1, end):
                    split = best_span[start, middle] + best_span[middle, end]
                    best_span[start, end] = max(best_span[start, end], split)
        future_cache: dict[int, float] = {}

        def future(coverage: int) -> float:
            value = future_cache.get(coverage)
            if value is None:
                value, start = 0.0, None
                for position in range(n + 1):
                    covered = position == n or coverage >> position & 1
                    if not covered and start is None:
                        start = position
                    elif covered and start is not None:
                        value += best_span[start, position]
                        start = None
                future_cache[coverage] = value
            return value

        full = (1 << n) - 1
        limit = self.distortion_limit if self.distortion_limit >= 0 else n
        empty = _Hypothesis(0.0, future(0), 0, 0, lm.start_state, None, (), -1, 0.0, 0.0)
        stacks: list[dict[tuple, _Hypothesis]] = [dict() for _ in range(n + 1)]
        stacks[0][(0, 0, empty.lm_state)] = empty
        spans = sorted(options)
        lm_cache: dict[tuple, tuple[float, tuple[int, ...]]] = {}
        eos = 2  # the LM's </s> id
        best_estimate = [-math.inf] * (n + 1)  # per stack, for threshold pruning on the fly
        keep_all = n_best > 0
        threshold = self.beam_threshold
        for covered_count in range(n):
            stack = self._prune(stacks[covered_count])
            for hyp in stack:
                first_gap = next(p for p in range(n) if not hyp.coverage >> p & 1)
                for start, end in spans:
                    mask = ((1 << (end - start)) - 1) << start
                    if hyp.coverage & mask:
                        continue
                    jump = abs(start - hyp.end)
                    if jump > limit:
                        continue
                    coverage = hyp.coverage | mask
                    if coverage != full:
                        gap = first_gap if first_gap < start else end
                        while gap < n and coverage >> gap & 1:
                            gap += 1
                        if gap < end and end - gap > limit:
                            continue  # could never jump back to the gap
                    rest = future(coverage)
                    target_count = covered_count + end - start
                    stack_for = stacks[target_count]
                    base = hyp.score - w_dist * jump
                    floor = best_estimate[target_count] - threshold - rest - base
                    for target, words, table_score, row in options[(start, end)]:
                        if table_score < floor and w_lm >= 0:
                            break  # LM log-probs are <= 0: no later (worse) option can pass either
                        key = (hyp.lm_state, words)
                        hit = lm_cache.get(key)
                        if hit is None:
                            hit = lm_cache[key] = lm_score(hyp.lm_state, words)
                        lm_value, state = hit
                        if coverage == full:
                            end_value, state = lm.advance(state, eos)
                            lm_value += end_value
                        score = base + table_score + w_lm * lm_value
                        estimate = score + rest
                        if estimate < best_estimate[target_count] - threshold:
                            continue
                        # an n-best list needs the final stack unrecombined: every finished
                        # hypothesis ends in the same LM state after </s>
                        recombine = (coverage, end, state) if not (keep_all and coverage == full) else (hyp, target)
                        old = stack_for.get(recombine)
                        if old is not None and old.score >= score:
                            continue
                        if estimate > best_estimate[target_count]:
                            best_estimate[target_count] = estimate
                        stack_for[recombine] = _Hypothesis(score, estimate, coverage, end, state, hyp, target, row,
                                                           hyp.distortion + jump, hyp.lm + lm_value)
        final = sorted(stacks[n].values(), key=lambda h: -h.score)
        if not final:  # cannot happen with a distortion limit >= 0 and single-word options, but be safe
            raise CasebookError("the decoder found no translation", hint="raise distortion_limit")
        return final[0], final[: max(n_best, 1)]

    def _prune(self, stack: dict[tuple, _Hypothesis]) -> list[_Hypothesis]:
        hyps = sorted(stack.values(), key=lambda h: -h.estimate)[: self.beam_size]
        if hyps:
            floor = hyps[0].estimate - self.beam_threshold
            hyps = [h for h in hyps if h.estimate >= floor]
        return hyps

    def _words(self, hyp: _Hypothesis, tokens: list[str]) -> list[str]:
        pieces = []
        while hyp is not None and hyp.parent is not None:
            pieces.append([self.target_words_[t] if t >= 0 else tokens[-1 - t] for t in hyp.target])
            hyp = hyp.parent
        return [word for piece in reversed(pieces) for word in piece]

    def _features(self, hyp: _Hypothesis) -> np.ndarray:
        """The hypothesis' feature vector (in ``FEATURES`` order): table features summed over its
        phrases, plus its distortion (negated: a cost) and LM log-probability."""
        values = np.zeros(len(FEATURES))
        values[-2], values[-1] = -hyp.distortion, hyp.lm
        node = hyp
        while node is not None and node.parent is not None:
            if node.option_row >= 0:
                values[: len(TABLE_FEATURES)] += self.table_features_[node.option_row]
            else:  # pass-through copies a word, drop emits nothing: one phrase either way
                values[4] += 1.0
                values[5] += len(node.target)
            node = node.parent
        return values

    def translate(self, tokens: list[str]) -> list[str]:
        """Translate one sentence of word tokens; unknown words are copied through."""
        self._check_fitted()
        tokens = list(tokens)
        if not tokens:
            return []
        best, _ = self._decode(tokens)
        return self._words(best, tokens)

    def translate_many(self, sentences: list[list[str]], progress: bool = True) -> list[list[str]]:
        return [self.translate(s) for s in track(list(sentences), "translating (SMT)", disable=not progress)]

    def n_best(self, tokens: list[str], n: int = 50) -> list[tuple[list[str], np.ndarray]]:
        """Up to ``n`` distinct translations from the final stack with their feature vectors."""
        self._check_fitted()
        tokens = list(tokens)
        if not tokens:
            return [([], np.zeros(len(FEATURES)))]
        _, final = self._decode(tokens, n_best=n)
        return [(self._words(h, tokens), self._features(h)) for h in final]

    # ------------------------------------------------------------------ tuning
    def tune(self, src_sentences: list[list[str]], ref_sentences: list[list[str]], iterations: int = 4,
             n_best: int = 50, restarts: int = 10, seed: int = 0, progress: bool = True) -> dict[str, float]:
        """Tune the feature weights for BLEU on a tuning set (carve it from TRAIN, never from the
        set you report). MERT's outer loop: decode n-best lists with the current weights, pool
        them with earlier rounds, find the weights that maximise corpus BLEU of the pooled lists
        by coordinate ascent from the current point and ``restarts`` random ones, decode again.
        ``iterations`` decodes in all; the weights whose real 1-best BLEU was highest are kept
        (a round can overshoot: the pooled lists only approximate what the decoder will do)."""
        self._check_fitted()
        if len(src_sentences) != len(ref_sentences) or not src_sentences:
            raise DataError("tuning needs as many reference sentences as source sentences (and at least one)")
        rng = np.random.default_rng(seed)
        references = [list(r) for r in ref_sentences]
        pools: list[dict[tuple[str, ...], np.ndarray]] = [dict() for _ in src_sentences]
        # phrase/word counts may take either sign; the log-probability features and distortion
        # (a cost) only make sense with non-negative weights
        lower = np.array([-np.inf if f in ("phrase_count", "word_count") else 0.0 for f in FEATURES])
        history, best_real = [], (-1.0, dict(self.weights))
        for round_index in range(iterations):
            one_best = np.zeros(10)
            for pool, src, ref in zip(pools, track(list(src_sentences), f"tuning decode {round_index + 1}/{iterations}",
                                                   disable=not progress), references, strict=True):
                hypotheses = self.n_best(src, n_best)
                one_best += _ngram_stats(tuple(hypotheses[0][0]), ref)
                for words, features in hypotheses:
                    pool.setdefault(tuple(words), features)
            real = _corpus_bleu(one_best)
            record = {"round": round_index + 1, "bleu_1best": real, "weights": dict(self.weights)}
            if real > best_real[0]:
                best_real = (real, dict(self.weights))
            if round_index == iterations - 1:
                history.append(record)
                break
            features, stats, offsets = _pooled(pools, references)
            current = np.array([self.weights[f] for f in FEATURES])
            best, best_bleu = current, _bleu_of(current, features, stats, offsets)
            starts = [current] + [np.maximum(current * rng.uniform(0.2, 2.0, current.size), lower)
                                  for _ in range(restarts)]
            for start in starts:
                point, value = _coordinate_ascent(start, features, stats, offsets, lower)
                if value > best_bleu + 1e-9:
                    best, best_bleu = point, value
            history.append(record | {"pooled_bleu_after": best_bleu, "pool_size": int(offsets[-1])})
            # keep the scale of the weights (the decoder's threshold pruning depends on it)
            best = best * (np.abs(current).sum() / max(np.abs(best).sum(), 1e-12))
            self.weights = {f: float(v) for f, v in zip(FEATURES, best, strict=True)}
        self.weights = best_real[1]
        self.tuning_history_ = history
        return dict(self.weights)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """One compressed npz (no pickle), written atomically."""
        self._check_fitted()
        width = max(self.max_phrase_len, 1)

        def pad(phrases: list[tuple[int, ...]]) -> np.ndarray:
            matrix = np.full((len(phrases), width), -1, dtype=np.int32)
            for row, phrase in enumerate(phrases):
                matrix[row, : len(phrase)] = phrase
            return matrix

        meta = {"format": _FORMAT, "weights": self.weights, "train_stats": getattr(self, "train_stats_", {}),
                "params": {name: getattr(self, name) for name in (
                    "max_phrase_len", "lm_order", "distortion_limit", "beam_size", "beam_threshold",
                    "max_translations", "alignment_model", "alignment_iterations")}}
        source_words = sorted(self.source_vocab_, key=self.source_vocab_.get)
        arrays = {"meta": np.array(json.dumps(meta)), "source_words": np.array(source_words, dtype=str),
                  "target_words": np.array(self.target_words_, dtype=str),
                  "table_source": pad(self.table_source_), "table_target": pad(self.table_target_),
                  "table_features": self.table_features_} | self.lm_.to_arrays()
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> PhraseBasedSMT:
        path = Path(path)
        if not path.is_file():
            raise CasebookError(f"SMT model not found: {path}", hint="train one with `mlcasebook translate train "
                                                                     "--arch smt`")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            meta = json.loads(str(arrays["meta"]))
        except Exception as exc:  # numpy raises several types for foreign or truncated files
            raise CasebookError(f"not a valid SMT model file: {path} ({exc.__class__.__name__})",
                                hint="retrain the model") from exc
        if meta.get("format") != _FORMAT:
            raise CasebookError(f"not an mlcasebook SMT model: {path}", hint="retrain the model")
        model = cls(**meta["params"], weights=meta["weights"])
        model.train_stats_ = meta.get("train_stats", {})
        model.source_vocab_ = {str(w): i for i, w in enumerate(arrays["source_words"])}
        model.target_words_ = [str(w) for w in arrays["target_words"]]
        model.target_vocab_ = {w: i for i, w in enumerate(model.target_words_)}

        def unpad(matrix: np.ndarray) -> list[tuple[int, ...]]:
            return [tuple(v for v in row if v >= 0) for row in matrix.tolist()]

        model.table_source_ = unpad(arrays["table_source"])
        model.table_target_ = unpad(arrays["table_target"])
        model.table_features_ = arrays["table_features"].astype(np.float64)
        model.lm_ = KneserNeyLM.from_arrays(arrays)
        model._prepare_decoder()
        return model


# ---------------------------------------------------------------------- BLEU on n-best pools
def _ngram_stats(hypothesis: tuple[str, ...], reference: list[str]) -> np.ndarray:
    """BLEU sufficient statistics: clipped matches and totals for n = 1..4, hyp and ref length."""
    stats = np.zeros(10)
    for order in range(1, 5):
        hyp_grams = Counter(tuple(hypothesis[i:i + order]) for i in range(len(hypothesis) - order + 1))
        ref_grams = Counter(tuple(reference[i:i + order]) for i in range(len(reference) - order + 1))
        stats[order - 1] = sum(min(count, ref_grams[gram]) for gram, count in hyp_grams.items())
        stats[order + 3] = max(len(hypothesis) - order + 1, 0)
    stats[8], stats[9] = len(hypothesis), len(reference)
    return stats


def _pooled(pools, references):
    features, stats, offsets = [], [], [0]
    for pool, reference in zip(pools, references, strict=False):
        for words, vector in pool.items():
            features.append(vector)
            stats.append(_ngram_stats(words, list(reference)))
        offsets.append(offsets[-1] + len(pool))
    return np.array(features), np.array(stats), np.array(offsets)


def _corpus_bleu(stats: np.ndarray) -> float:
    matches, totals = stats[:4], stats[4:8]
    if np.any(matches <= 0):
        return 0.0
    log_precision = np.log(matches / totals).mean()
    brevity = min(0.0, 1.0 - stats[9] / max(stats[8], 1.0))
    return float(100.0 * math.exp(log_precision + brevity))


def _bleu_of(weights: np.ndarray, features: np.ndarray, stats: np.ndarray, offsets: np.ndarray) -> float:
    scores = features @ weights
    chosen = np.empty(offsets.size - 1, dtype=np.int64)
    for sentence in range(offsets.size - 1):  # one argmax per sentence (lists differ in length)
        chosen[sentence] = offsets[sentence] + int(np.argmax(scores[offsets[sentence]:offsets[sentence + 1]]))
    return _corpus_bleu(stats[chosen].sum(axis=0))


def _coordinate_ascent(start: np.ndarray, features, stats, offsets, lower: np.ndarray | None = None,
                       sweeps: int = 4) -> tuple[np.ndarray, float]:
    """Line search along each weight in turn over a grid of values (none below ``lower``); stop
    when a sweep gains nothing."""
    point, value = start.copy(), _bleu_of(start, features, stats, offsets)
    grid = np.concatenate([-np.geomspace(2.0, 0.01, 12), [0.0], np.geomspace(0.01, 2.0, 12)])
    for _ in range(sweeps):
        improved = False
        for k in range(point.size):
            scale = max(abs(point[k]), np.abs(point).mean())
            for candidate in point[k] + scale * grid:
                if lower is not None and candidate < lower[k]:
                    continue
                trial = point.copy()
                trial[k] = candidate
                trial_value = _bleu_of(trial, features, stats, offsets)
                if trial_value > value + 1e-9:
                    point, value, improved = trial, trial_value, True
        if not improved:
            break
    return point, value
