"""Word alignment: IBM Models 1 and 2 trained with EM, both directions, grow-diag-final-and.

The EM is vectorised over the whole corpus: every (target word, candidate source word) link of
every sentence pair is one entry of flat numpy arrays, so an E-step is a gather, a ``bincount``
normalisation per target word and a ``bincount`` of the expected counts — no Python loop over
sentences. 50k short sentence pairs (~5M links) take about a second per iteration.

Conventions: ``P(target | source)``; position 0 of the source side is the NULL word (target
words may be left unaligned); alignments come back as sorted lists of ``(source_index,
target_index)`` pairs, 0-based, NULL links dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlcasebook.core.errors import DataError

Alignment = list[tuple[int, int]]


def _encode(sentences: list[list[str]], offset: int) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Flat word ids (first id = ``offset``), per-sentence lengths, and the vocabulary."""
    vocab: dict[str, int] = {}
    flat = [vocab.setdefault(word, len(vocab) + offset) for sentence in sentences for word in sentence]
    lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
    return np.asarray(flat, dtype=np.int64), lengths, vocab


@dataclass
class IBMModel:
    """A trained IBM Model 1 or 2 for P(target | source) on one corpus.

    ``translation[k]`` is t(e|f) for the k-th distinct (source word, target word) pair that
    co-occurs in the corpus (``source_word`` / ``target_word`` give its strings through the
    vocabularies); ``log_likelihood`` holds the corpus log-likelihood after each EM iteration
    (it never decreases — EM's guarantee, checked by the tests)."""

    model: int
    source_vocab: dict[str, int]
    target_vocab: dict[str, int]
    pair_source: np.ndarray
    pair_target: np.ndarray
    translation: np.ndarray
    log_likelihood: list[float] = field(default_factory=list)
    viterbi: list[Alignment] = field(default_factory=list)

    def prob(self, target_word: str, source_word: str | None) -> float:
        """t(e|f) for two words (``source_word=None`` is the NULL word); 0 if never co-occurring."""
        f = 0 if source_word is None else self.source_vocab.get(source_word, -1)
        e = self.target_vocab.get(target_word, -1)
        hits = np.flatnonzero((self.pair_source == f) & (self.pair_target == e))
        return float(self.translation[hits[0]]) if hits.size else 0.0


def train_ibm(source: list[list[str]], target: list[list[str]], model: int = 2, model1_iterations: int = 5,
              model2_iterations: int = 5) -> IBMModel:
    """Train IBM Model 1 (``model=1``) or Model 1 then Model 2 (``model=2``) for P(target | source).

    Model 2's alignment table a(i | j, source length, target length) is initialised uniform and
    t(e|f) from Model 1, as Brown et al. do. Returns the model with its Viterbi alignments."""
    if len(source) != len(target):
        raise DataError(f"parallel corpus has {len(source)} source but {len(target)} target sentences",
                        hint="both sides need one sentence per line, in the same order")
    if model not in (1, 2):
        raise ValueError("model must be 1 or 2")
    src_flat, src_len, src_vocab = _encode(source, offset=1)  # id 0 = NULL
    tgt_flat, tgt_len, tgt_vocab = _encode(target, offset=0)
    n_pairs = len(source)

    # One entry per (target token, source position incl. NULL), ordered pair → j → i, so each
    # target token's candidates are contiguous (needed by the Viterbi reduceat below).
    links_per_pair = tgt_len * (src_len + 1)
    n_links = int(links_per_pair.sum())
    pair_of_link = np.repeat(np.arange(n_pairs), links_per_pair)
    within = np.arange(n_links) - np.repeat(np.cumsum(links_per_pair) - links_per_pair, links_per_pair)
    width = (src_len + 1)[pair_of_link]
    j = within // width
    i = within % width  # 0 = NULL
    src_start = np.cumsum(src_len) - src_len
    tgt_start = np.cumsum(tgt_len) - tgt_len
    f_word = np.where(i > 0, src_flat[np.maximum(src_start[pair_of_link] + i - 1, 0)] if src_flat.size else 0, 0)
    target_token = tgt_start[pair_of_link] + j  # the normalisation group of each link
    e_word = tgt_flat[target_token] if tgt_flat.size else np.zeros(0, dtype=np.int64)
    n_target_tokens = int(tgt_len.sum())

    n_e = max(len(tgt_vocab), 1)
    pair_key, pair_index = np.unique(f_word * n_e + e_word, return_inverse=True)
    pair_f, pair_e = pair_key // n_e, pair_key % n_e
    translation = np.full(pair_key.size, 1.0 / n_e)  # uniform start: every target word equally likely
    alignment_prob = np.ones(n_links)
    history: list[float] = []

    a_index = a_group = None
    if model == 2:
        ls, lt = src_len[pair_of_link], tgt_len[pair_of_link]
        # a(i | j, ls, lt): one parameter per (i, j, ls, lt), normalised over i
        max_len = int(max(src_len.max(initial=0), tgt_len.max(initial=0))) + 2
        context = (j * max_len + ls) * max_len + lt
        a_key, a_index = np.unique(context * max_len + i, return_inverse=True)
        _, a_group = np.unique(a_key // max_len, return_inverse=True)

    def e_step(link_prob: np.ndarray) -> np.ndarray:
        normaliser = np.bincount(target_token, weights=link_prob, minlength=n_target_tokens)
        history.append(float(np.log(normaliser[normaliser > 0]).sum()))
        return link_prob / normaliser[target_token]

    def m_step_translation(posterior: np.ndarray) -> np.ndarray:
        counts = np.bincount(pair_index, weights=posterior, minlength=pair_key.size)
        per_source = np.bincount(pair_f, weights=counts)
        return counts / per_source[pair_f]

    for _ in range(model1_iterations):
        posterior = e_step(translation[pair_index])
        translation = m_step_translation(posterior)
    # Model 1's uniform 1/(ls+1) is constant per target token, so it changes neither the
    # posterior nor the argmax; only the reported likelihood needs it.
    uniform_log = float(np.log(src_len + 1.0) @ tgt_len)
    history[:] = [value - uniform_log for value in history]
    if model == 2:
        a_table = np.ones(int(a_index.max(initial=-1)) + 1)
        a_table /= np.bincount(a_group, weights=a_table)[a_group]
        for _ in range(model2_iterations):
            posterior = e_step(translation[pair_index] * a_table[a_index])
            translation = m_step_translation(posterior)
            a_counts = np.bincount(a_index, weights=posterior, minlength=a_table.size)
            a_table = a_counts / np.bincount(a_group, weights=a_counts)[a_group]
        alignment_prob = a_table[a_index]

    score = translation[pair_index] * alignment_prob
    viterbi = _viterbi(score, i, j, pair_of_link, target_token, n_target_tokens, n_pairs)
    return IBMModel(model, src_vocab, tgt_vocab, pair_f, pair_e, translation, history, viterbi)


def _viterbi(score: np.ndarray, i: np.ndarray, j: np.ndarray, pair_of_link: np.ndarray, target_token: np.ndarray,
             n_target_tokens: int, n_pairs: int) -> list[Alignment]:
    """Best source position for every target token (first one on ties); NULL links dropped."""
    alignments: list[Alignment] = [[] for _ in range(n_pairs)]
    if score.size == 0:
        return alignments
    group_start = np.flatnonzero(np.r_[True, target_token[1:] != target_token[:-1]])
    best = np.maximum.reduceat(score, group_start)
    best_full = np.zeros(n_target_tokens)
    best_full[target_token[group_start]] = best
    candidates = np.flatnonzero(score >= best_full[target_token])
    _, first = np.unique(target_token[candidates], return_index=True)
    chosen = candidates[first]
    chosen = chosen[i[chosen] > 0]
    links = zip(pair_of_link[chosen].tolist(), (i[chosen] - 1).tolist(), j[chosen].tolist(), strict=True)
    for pair, src, tgt in links:
        alignments[pair].append((src, tgt))
    return alignments


_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def grow_diag_final_and(forward: Alignment, backward: Alignment) -> Alignment:
    """Symmetrise two directional alignments of one sentence pair (Koehn et al. 2003).

    Both arguments are (source_index, target_index) links. Start from the intersection, grow
    into neighbouring (incl. diagonal) union links that align a word not yet aligned, then add
    union links whose source AND target words are both still unaligned ("final-and")."""
    forward_set, backward_set = set(forward), set(backward)
    union = forward_set | backward_set
    alignment = forward_set & backward_set
    aligned_src = {s for s, _ in alignment}
    aligned_tgt = {t for _, t in alignment}
    added = True
    while added:
        added = False
        for s, t in sorted(alignment):
            for ds, dt in _NEIGHBOURS:
                link = (s + ds, t + dt)
                if link in union and link not in alignment and (
                        link[0] not in aligned_src or link[1] not in aligned_tgt):
                    alignment.add(link)
                    aligned_src.add(link[0])
                    aligned_tgt.add(link[1])
                    added = True
    for directional in (forward, backward):
        for s, t in sorted(directional):
            if s not in aligned_src and t not in aligned_tgt:
                alignment.add((s, t))
                aligned_src.add(s)
                aligned_tgt.add(t)
    return sorted(alignment)


def align_corpus(source: list[list[str]], target: list[list[str]], model: int = 2, model1_iterations: int = 5,
                 model2_iterations: int = 5) -> list[Alignment]:
    """Align a parallel corpus in both directions and symmetrise with grow-diag-final-and.

    Returns one sorted list of (source_index, target_index) links per sentence pair."""
    forward = train_ibm(source, target, model, model1_iterations, model2_iterations)
    backward = train_ibm(target, source, model, model1_iterations, model2_iterations)
    return [grow_diag_final_and(f, [(s, t) for t, s in b])
            for f, b in zip(forward.viterbi, backward.viterbi, strict=True)]
