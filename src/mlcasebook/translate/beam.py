"""Batched beam search with GNMT's length and coverage penalties, over any incremental decoder.

The decoder interface (``IncrementalDecoder``) is what GNMT and the Transformer share, so the
search, the trainer and the CLI treat them alike:

- ``encode(src_ids, src_mask) -> memory``: ``src_ids`` [N, S] int64, ``src_mask`` [N, S] bool
  (True on real tokens). ``memory`` is a dict of tensors whose first dimension is the batch
  (it must hold the mask under ``"mask"``: the search reads the source lengths from it).
- ``init_state(memory) -> state``: the decoder state before the first target token (dict of
  batch-first tensors; empty for a decoder whose cache starts empty).
- ``decode_step(memory, prev_tokens, state) -> (log_probs, attention, state)``: one target
  position for every row: ``prev_tokens`` [N] is the token just emitted (BOS at the start),
  ``log_probs`` [N, V] the next-token distribution, ``attention`` [N, S] the source attention
  of this step (rows sum to one over real tokens; ``None`` if the model has none, then the
  coverage penalty is off) and the new state (the LSTM's h/c, the Transformer's key/value
  cache: one step costs O(t) for the Transformer and O(1) for the LSTM, never a re-run of the
  prefix).
- attributes ``pad_id``, ``bos_id``, ``eos_id``.

Because memory and state are batch-first dicts of tensors, beam search reorders and shrinks
them with one ``index_select`` per tensor (``select_rows``); models keep no hidden per-batch
state of their own (as OpenSpiel's states, everything is passed in and returned).

Scoring follows Wu et al. (2016), section 7:
    s(Y, X) = log P(Y|X) / lp(Y) + cp(X; Y)
    lp(Y)   = (5 + |Y|)^α / (5 + 1)^α
    cp      = β Σ_i log(min(Σ_j p_ij, 1))     (i: source tokens, j: target steps)
with α = β = 0 plain log-probability, and beam size 1 greedy decoding. cp is added when a
hypothesis ends (EOS, or the length limit), as in GNMT's TensorFlow decoder; live prefixes
compete on log P alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

Tree = dict[str, Tensor]


@runtime_checkable
class IncrementalDecoder(Protocol):
    """An encoder-decoder that decodes one target token at a time (see the module docstring)."""

    pad_id: int
    bos_id: int
    eos_id: int

    def encode(self, src_ids: Tensor, src_mask: Tensor) -> Tree: ...

    def init_state(self, memory: Tree) -> Tree: ...

    def decode_step(self, memory: Tree, prev_tokens: Tensor, state: Tree) -> tuple[Tensor, Tensor | None, Tree]: ...


def select_rows(tree: Tree, index: Tensor) -> Tree:
    """Rows ``index`` of every batch-first tensor (reorders beams, repeats or drops sentences)."""
    return {name: value.index_select(0, index) for name, value in tree.items()}


def length_penalty(length: Tensor | int, alpha: float) -> Tensor | float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α; α = 0 gives 1 (no normalisation)."""
    if isinstance(length, Tensor):
        return ((5.0 + length.to(torch.float32)) / 6.0) ** alpha
    return ((5.0 + length) / 6.0) ** alpha


def coverage_penalty(coverage: Tensor, src_mask: Tensor, beta: float, floor: float = 1e-6) -> Tensor:
    """cp = β Σ_i log(min(coverage_i, 1)) over real source tokens (coverage floored: log 0 = -inf)."""
    if beta == 0.0:
        return torch.zeros(coverage.shape[0], dtype=torch.float32, device=coverage.device)
    clipped = coverage.clamp(min=floor, max=1.0).log()
    return beta * (clipped * src_mask).sum(dim=-1)


@dataclass(frozen=True)
class BeamConfig:
    beam_size: int = 4
    alpha: float = 0.6  # length penalty (GNMT used 0.2 with β 0.2 after tuning; 0.6 is fairseq/T2T's)
    beta: float = 0.0  # coverage penalty
    max_len_a: float = 1.5  # max target length = a · source length + b
    max_len_b: int = 10
    exhaustive: bool = False  # stop only when no live hypothesis can still beat the best finished
    # EOS is barred for the first min_len steps (fairseq's --min-len, default 1): an undertrained or
    # multilingual model can give EOS enough mass at step 1 that the empty translation outscores
    # every real one once the length penalty divides the long ones' log P
    min_len: int = 1


def beam_search(model: IncrementalDecoder, src_ids: Tensor, src_mask: Tensor,
                config: BeamConfig = BeamConfig()) -> list[list[int]]:
    """Best hypothesis (token ids without BOS/EOS) for each source row.

    All sentences and all their beams decode together as rows of one batch; a sentence leaves
    the batch as soon as it is finished (its rows are dropped from memory and state), so long
    sentences do not keep short ones' rows alive. A sentence is finished when ``beam_size``
    hypotheses ended with EOS (fairseq's rule) — with ``exhaustive`` only once no live hypothesis
    can still beat the best finished one (its score bound is log P / lp(max length), as log P
    only falls and cp ≤ 0) — or when it reaches its maximum length.
    """
    if config.beam_size < 1:
        raise ValueError("beam_size must be at least 1")
    n_sent = src_ids.shape[0]
    k = config.beam_size
    device = src_ids.device
    src_lengths = src_mask.sum(dim=1)
    max_lengths = (config.max_len_a * src_lengths.to(torch.float32) + config.max_len_b).floor().long().clamp(min=1)
    memory = model.encode(src_ids, src_mask)
    rows = torch.arange(n_sent, device=device).repeat_interleave(k)
    memory = select_rows(memory, rows)
    state = model.init_state(memory)
    mask = memory["mask"].to(torch.float32)
    # live beams: [n_active, k]; the first step expands beam 0 only (the others start at -inf)
    active = torch.arange(n_sent, device=device)
    log_p = torch.full((n_sent, k), -math.inf, device=device)
    log_p[:, 0] = 0.0
    tokens = torch.full((n_sent, k, 0), model.bos_id, dtype=torch.long, device=device)
    coverage = torch.zeros(mask.shape, device=device)
    prev = torch.full((n_sent * k,), model.bos_id, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n_sent)]
    step = 0
    while active.numel():
        step += 1
        step_log_probs, attention, state = model.decode_step(memory, prev, state)
        step_log_probs = step_log_probs.float()
        step_log_probs[:, model.pad_id] = -math.inf
        step_log_probs[:, model.bos_id] = -math.inf
        if step <= config.min_len:
            step_log_probs[:, model.eos_id] = -math.inf
        vocab = step_log_probs.shape[-1]
        n_active = active.numel()
        if attention is not None and config.beta != 0.0:
            coverage = coverage + attention.float()
        cp = coverage_penalty(coverage, mask, config.beta).view(n_active, k)
        at_limit = max_lengths[active] <= step  # these sentences must end now
        candidates = log_p.unsqueeze(-1) + step_log_probs.view(n_active, k, vocab)
        # the score ranks candidates; lp(step) is the same for all of a step. cp scores a finished
        # translation only (as GNMT's decoder does): charged to an unfinished prefix it would rank
        # prefixes by how far their attention has spread, not by how likely they are
        ending = torch.zeros(vocab, dtype=torch.bool, device=device)
        ending[model.eos_id] = True
        ending = ending.view(1, 1, vocab) | at_limit.view(n_active, 1, 1)
        scores = candidates / length_penalty(step, config.alpha) + cp.unsqueeze(-1) * ending
        top_scores, top_index = scores.view(n_active, -1).topk(min(2 * k, k * vocab), dim=1)
        top_beam = torch.div(top_index, vocab, rounding_mode="floor")
        top_token = top_index % vocab
        top_log_p = candidates.view(n_active, -1).gather(1, top_index)
        # 1) candidates that end with EOS (or any candidate of a sentence at its length limit)
        ends = (top_token == model.eos_id) | at_limit.unsqueeze(1)
        ends &= torch.isfinite(top_scores)
        # only the first k ranked candidates may finish (fairseq: a finished hypothesis must
        # have been good enough to stay in the beam)
        ends[:, k:] = False
        for sent_pos, cand in ends.nonzero().tolist():
            beam = int(top_beam[sent_pos, cand])
            hyp = tokens[sent_pos, beam].tolist()
            if int(top_token[sent_pos, cand]) != model.eos_id:
                hyp.append(int(top_token[sent_pos, cand]))
            finished[int(active[sent_pos])].append((float(top_scores[sent_pos, cand]), hyp))
        # 2) the best k candidates that do not end become the new live beams
        alive_scores = top_scores.masked_fill(ends | (top_token == model.eos_id), -math.inf)
        alive_rank = alive_scores.topk(k, dim=1).indices
        new_beam = top_beam.gather(1, alive_rank)
        new_token = top_token.gather(1, alive_rank)
        log_p = top_log_p.gather(1, alive_rank).masked_fill(~torch.isfinite(alive_scores.gather(1, alive_rank)),
                                                            -math.inf)
        # 3) which sentences are done
        n_done = torch.tensor([len(finished[int(s)]) for s in active.tolist()], device=device)
        done = at_limit | (n_done >= k)
        if config.exhaustive:
            best_done = torch.tensor([max((s for s, _ in finished[int(i)]), default=-math.inf)
                                      for i in active.tolist()], device=device)
            bound = log_p.max(dim=1).values / length_penalty(max_lengths[active], config.alpha)
            done = at_limit | ((n_done >= 1) & (best_done >= bound))
        done |= ~torch.isfinite(log_p).any(dim=1)  # nothing left alive
        # reorder the live beams, then drop the finished sentences
        source_rows = (torch.arange(n_active, device=device).unsqueeze(1) * k + new_beam).view(-1)
        prefixes = tokens.reshape(n_active * k, step - 1).index_select(0, source_rows).view(n_active, k, step - 1)
        tokens = torch.cat([prefixes, new_token.unsqueeze(-1)], dim=2)
        coverage = coverage.index_select(0, source_rows)
        state = select_rows(state, source_rows)
        prev = new_token.view(-1)
        keep = (~done).nonzero().squeeze(1)
        if keep.numel() < n_active:
            keep_rows = (keep.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            memory, state = select_rows(memory, keep_rows), select_rows(state, keep_rows)
            mask, coverage, prev = mask.index_select(0, keep_rows), coverage.index_select(0, keep_rows), prev[keep_rows]
            tokens, log_p, active = tokens[keep], log_p[keep], active[keep]
    return [max(hyps, key=lambda item: item[0])[1] if hyps else [] for hyps in finished]
