"""An n-gram language model with interpolated modified Kneser–Ney smoothing (Chen & Goodman 1998).

Counting is vectorised: every predicted token of the training text is one row, and the k-grams
are numbered level by level by prepending one word to a (k-1)-gram — so each k-gram knows its
suffix (the lower-order n-gram it backs off to) and its context without any Python loop. The
interpolated model is then stored in back-off form (log p of every seen n-gram, log γ of every
seen context), which gives the same probabilities with a couple of dict lookups per query:
what the decoder needs.

Vocabulary: the training words plus ``</s>`` and ``<unk>``; ``<s>`` only ever appears as
context. A probability distribution over that vocabulary sums to one for every context (the
tests check it); ``<unk>`` gets the uniform share of the lowest order. Logs are natural.
"""

from __future__ import annotations

import numpy as np

from mlcasebook.core.errors import DataError

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
_UNK_ID, _BOS_ID, _EOS_ID = 0, 1, 2


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified KN discounts D1, D2, D3+ from counts-of-counts (Chen & Goodman's estimates).

    Where an estimate leaves (0, r] (tiny corpora, odd count spectra) the whole order falls back
    to 0.5 / 1 / 1.5, as KenLM's ``--discount_fallback`` does: a zero discount would leave a
    context no back-off mass, so any unseen word after it would get probability zero."""
    n = [int(np.count_nonzero(counts == r)) for r in range(1, 5)]
    defaults = np.array([0.5, 1.0, 1.5])
    if n[0] == 0 or n[1] == 0 or n[2] == 0:
        return defaults
    y = n[0] / (n[0] + 2 * n[1])
    values = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    if not np.all((values > 0) & (values <= np.array([1.0, 2.0, 3.0]))):
        return defaults
    return values


class KneserNeyLM:
    """Word n-gram LM, interpolated modified Kneser–Ney. ``order`` from 2 to 6 (3–5 usual).

    ``fit(sentences)`` takes token lists; ``logprob(word, context)`` gives ln P(word | context)
    for strings; ``advance(state, word_id)`` is the decoder's fast path over ids and minimal
    states (the longest context suffix the model has seen — exact, and it makes hypotheses
    with equivalent histories recombine)."""

    def __init__(self, order: int = 3):
        if not 2 <= order <= 6:
            raise ValueError("order must be between 2 and 6")
        self.order = order

    # ------------------------------------------------------------------ training
    def fit(self, sentences: list[list[str]]) -> KneserNeyLM:
        vocab = {UNK: _UNK_ID, BOS: _BOS_ID, EOS: _EOS_ID}
        for sentence in sentences:
            for word in sentence:
                vocab.setdefault(word, len(vocab))
        if len(vocab) == 3:
            raise DataError("cannot train a language model on empty text", hint="pass non-empty sentences")
        n, size = self.order, len(vocab)
        pad = [BOS] * (n - 1)
        flat = np.fromiter((vocab[w] for s in sentences for w in pad + list(s) + [EOS]), dtype=np.int64)
        predicted = np.flatnonzero(flat != _BOS_ID)
        # window[:, n-k:] is the k-gram ending at each predicted token (padding keeps it in-sentence)
        window = flat[predicted[:, None] + np.arange(-(n - 1), 1)[None, :]]

        words = [None, np.arange(size)[:, None]]  # words[k][id] = the k-gram's word ids
        contexts = [None, np.zeros((1, 0), dtype=np.int64)]  # contexts[k][cid] = a (k-1)-tuple
        row_ids = window[:, -1]  # id of the k-gram ending at each row, level by level
        suffix = [None, None]
        context_of = [None, np.zeros(size, dtype=np.int64)]
        raw_counts = [None, np.bincount(row_ids, minlength=size)]
        for k in range(2, n + 1):
            n_lower = words[k - 1].shape[0]
            keys, row_ids = np.unique(window[:, n - k] * n_lower + row_ids, return_inverse=True)
            first, lower = keys // n_lower, keys % n_lower
            words.append(np.column_stack([first, words[k - 1][lower]]))
            suffix.append(lower)
            # context(w1..wk) = (w1, context(w2..wk)) — numbered the same way
            n_ctx_lower = contexts[k - 1].shape[0]
            ctx_keys, ctx_ids = np.unique(first * n_ctx_lower + context_of[k - 1][lower], return_inverse=True)
            contexts.append(np.column_stack([ctx_keys // n_ctx_lower, contexts[k - 1][ctx_keys % n_ctx_lower]]))
            context_of.append(ctx_ids)
            raw_counts.append(np.bincount(row_ids, minlength=keys.size))

        # KN counts: raw at the top order (and for n-grams that start with <s>, which nothing
        # precedes); below, the number of distinct words seen before the n-gram
        counts = [None] * (n + 1)
        counts[n] = raw_counts[n].astype(float)
        for k in range(1, n):
            continuation = np.bincount(suffix[k + 1], minlength=words[k].shape[0]).astype(float)
            counts[k] = np.where(words[k][:, 0] == _BOS_ID, raw_counts[k], continuation)
        counts[1][[_BOS_ID, _UNK_ID]] = 0.0

        predictable = size - 1  # everything but <s>
        probs: list = [None]
        self.discounts_ = {}
        log_backoff: list[np.ndarray | None] = [None]
        for k in range(1, n + 1):
            c = counts[k]
            seen = c > 0
            d = _discounts(c[seen])
            self.discounts_[k] = d.tolist()
            discount = np.where(c >= 3, d[2], np.where(c == 2, d[1], np.where(c == 1, d[0], 0.0)))
            n_contexts = contexts[k].shape[0]
            total = np.bincount(context_of[k], weights=c, minlength=n_contexts)
            mass = np.bincount(context_of[k], weights=discount, minlength=n_contexts)
            gamma = np.divide(mass, total, out=np.ones(n_contexts), where=total > 0)
            lower = np.full(size, 1.0 / predictable) if k == 1 else probs[k - 1][suffix[k]]
            alpha = np.divide(c - discount, total[context_of[k]], out=np.zeros_like(c), where=seen)
            probs.append(alpha + gamma[context_of[k]] * lower)
            log_backoff.append(np.log(gamma))
        probs[1][_BOS_ID] = 0.0

        self.vocab_ = vocab
        self.words_ = list(vocab)
        # back-off form, keyed by tuples of ids: every seen n-gram and every seen context
        self._logprob: dict[tuple[int, ...], float] = {}
        self._backoff: dict[tuple[int, ...], float] = {}
        for k in range(1, n + 1):
            keep = counts[k] > 0 if k > 1 else np.arange(size) != _BOS_ID
            with np.errstate(divide="ignore"):
                logp = np.log(probs[k][keep])
            self._logprob.update(zip(map(tuple, words[k][keep].tolist()), logp.tolist(), strict=False))
            if k > 1:
                self._backoff.update(zip(map(tuple, contexts[k].tolist()), log_backoff[k].tolist(), strict=False))
        self._cache: dict = {}
        return self

    # ------------------------------------------------------------------ queries
    def word_id(self, word: str) -> int:
        return self.vocab_.get(word, _UNK_ID)

    def _score(self, word_id: int, context: tuple[int, ...]) -> float:
        backoff = 0.0
        while True:
            value = self._logprob.get(context + (word_id,))
            if value is not None:
                return backoff + value
            if not context:  # only <s> is missing from the unigrams
                return float("-inf")
            backoff += self._backoff.get(context, 0.0)
            context = context[1:]

    def minimal_state(self, history: tuple[int, ...]) -> tuple[int, ...]:
        """The longest suffix of ``history`` (at most order-1 words) the model has seen as a context."""
        state = history[-(self.order - 1):]
        while state and state not in self._backoff:
            state = state[1:]
        return state

    @property
    def start_state(self) -> tuple[int, ...]:
        return self.minimal_state((_BOS_ID,) * (self.order - 1))

    def advance(self, state: tuple[int, ...], word_id: int) -> tuple[float, tuple[int, ...]]:
        """ln P(word | state) and the next minimal state; memoised (the decoder asks the same
        questions many times)."""
        key = (state, word_id)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 500_000:  # bounded: a long-running server stays small
                self._cache.clear()
            hit = (self._score(word_id, state), self.minimal_state(state + (word_id,)))
            self._cache[key] = hit
        return hit

    def logprob(self, word: str, context: list[str] | tuple[str, ...] = ()) -> float:
        """ln P(word | context); unknown words score as ``<unk>``. A context that opens with
        ``<s>`` means the sentence start (the model was trained with order-1 of them)."""
        if word == BOS:
            return float("-inf")
        context = list(context)
        if context and context[0] == BOS:
            context = [BOS] * (self.order - 2) + context
        ids = tuple(self.word_id(w) for w in context)[-(self.order - 1):]
        return self._score(self.word_id(word), ids)

    def sentence_logprob(self, tokens: list[str], eos: bool = True) -> float:
        """ln P of a whole sentence, starting after ``<s>`` and (by default) ending with ``</s>``."""
        state, total = self.start_state, 0.0
        for word_id in [self.word_id(w) for w in tokens] + ([_EOS_ID] if eos else []):
            value, state = self.advance(state, word_id)
            total += value
        return total

    def perplexity(self, sentences: list[list[str]]) -> float:
        total = sum(self.sentence_logprob(s) for s in sentences)
        return float(np.exp(-total / sum(len(s) + 1 for s in sentences)))

    # ------------------------------------------------------------------ persistence
    def to_arrays(self, prefix: str = "lm_") -> dict[str, np.ndarray]:
        """The model as plain arrays (for npz files: no pickle)."""
        arrays: dict[str, np.ndarray] = {f"{prefix}vocab": np.array(self.words_, dtype=str),
                                         f"{prefix}order": np.array([self.order])}
        for name, table in (("prob", self._logprob), ("backoff", self._backoff)):
            for k in range(1, self.order + 1):
                items = [(key, value) for key, value in table.items() if len(key) == k]
                arrays[f"{prefix}{name}{k}_keys"] = np.array([key for key, _ in items],
                                                             dtype=np.int32).reshape(len(items), k)
                arrays[f"{prefix}{name}{k}_values"] = np.array([value for _, value in items], dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "lm_") -> KneserNeyLM:
        model = cls(int(arrays[f"{prefix}order"][0]))
        model.words_ = [str(w) for w in arrays[f"{prefix}vocab"]]
        model.vocab_ = {w: i for i, w in enumerate(model.words_)}
        model._logprob, model._backoff, model._cache = {}, {}, {}
        for name, table in (("prob", model._logprob), ("backoff", model._backoff)):
            for k in range(1, model.order + 1):
                keys = arrays[f"{prefix}{name}{k}_keys"]
                table.update(zip(map(tuple, keys.tolist()), arrays[f"{prefix}{name}{k}_values"].tolist(), strict=False))
        return model
