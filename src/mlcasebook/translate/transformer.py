"""Generation 3: the Transformer (Vaswani et al. 2017), pre-norm, sized for a CPU.

- Pre-norm layers (LayerNorm before each sub-layer, one more at the top of each stack): they
  train stably without the long warm-up post-norm needs, which matters on small data and short
  runs (Xiong et al. 2020; fairseq's ``--encoder-normalize-before``).
- Sinusoidal positions (no parameters, any length), embeddings scaled by √d.
- Dropout on the embeddings and every residual branch; attention and ReLU dropout default to 0
  (fairseq's defaults: on a CPU the random masks of those big tensors cost ~10 % of a step).
- ``share_embeddings``: one matrix for source, target and output projection when the
  vocabulary is joint (a SentencePiece model over both languages, as the multilingual model
  has); otherwise the target embedding and the output projection are still tied (Press & Wolf).
- Incremental decoding for beam search: each decoder layer caches the keys/values of the
  target prefix (one step costs O(t), not a re-run of the prefix) and the cross-attention
  keys/values of the source are projected once per sentence in ``encode``.
- ``average_checkpoints``: the element-wise mean of the last N checkpoints' weights, which the
  Transformer paper used for its reported results.

Training forward (teacher forcing) uses ``torch.nn.functional.scaled_dot_product_attention``;
decoding computes the last layer's cross-attention weights explicitly for the coverage penalty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.checkpoint import load_checkpoint

Tree = dict[str, Tensor]


def sinusoids(length: int, dim: int) -> Tensor:
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class Attention(nn.Module):
    """Multi-head attention whose key/value projection is separate, so it can be cached."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not a multiple of heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def _split(self, x: Tensor) -> Tensor:  # [N, L, d] -> [N, heads, L, d/heads]
        n, length, d = x.shape
        return x.view(n, length, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        keys, values = self.key_value(x).chunk(2, dim=-1)
        return self._split(keys), self._split(values)

    def forward(self, x: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None = None,
                causal: bool = False, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """``mask`` [N, 1, 1, S] bool (True = may attend); returns the output and, if asked, the
        head-averaged weights [N, L, S]."""
        query = self._split(self.query(x))
        weights = None
        if need_weights:
            scores = query @ keys.transpose(-1, -2) / math.sqrt(query.shape[-1])
            if mask is not None:
                scores = scores.masked_fill(~mask, -math.inf)
            probs = scores.softmax(dim=-1)
            context = probs @ values
            weights = probs.mean(dim=1)
        else:
            context = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask,
                                                     dropout_p=self.dropout if self.training else 0.0,
                                                     is_causal=causal)
        n, heads, length, head_dim = context.shape
        return self.out(context.transpose(1, 2).reshape(n, length, heads * head_dim)), weights


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, ff_dim: int, dropout: float):  # dropout on the ReLU output
        super().__init__(nn.Linear(d_model, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff_dim: int, dropout: float, attention_dropout: float,
                 activation_dropout: float):
        super().__init__()
        self.norm_attention, self.norm_ff = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = Attention(d_model, heads, attention_dropout)
        self.ff = FeedForward(d_model, ff_dim, activation_dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        normed = self.norm_attention(x)
        x = x + self.drop(self.attention(normed, *self.attention.keys_values(normed), mask=mask)[0])
        return x + self.drop(self.ff(self.norm_ff(x)))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff_dim: int, dropout: float, attention_dropout: float,
                 activation_dropout: float):
        super().__init__()
        self.norm_self, self.norm_cross, self.norm_ff = (nn.LayerNorm(d_model) for _ in range(3))
        self.self_attention = Attention(d_model, heads, attention_dropout)
        self.cross_attention = Attention(d_model, heads, attention_dropout)
        self.ff = FeedForward(d_model, ff_dim, activation_dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, self_keys: Tensor, self_values: Tensor, cross_keys: Tensor, cross_values: Tensor,
                mask: Tensor, causal: bool, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        x = x + self.drop(self.self_attention(self.norm_self(x), self_keys, self_values, causal=causal)[0])
        attended, weights = self.cross_attention(self.norm_cross(x), cross_keys, cross_values, mask=mask,
                                                 need_weights=need_weights)
        x = x + self.drop(attended)
        return x + self.drop(self.ff(self.norm_ff(x))), weights


class Transformer(nn.Module):
    """Pre-norm encoder-decoder Transformer over integer token ids (see the module docstring).

    ``forward(src_ids, src_mask, tgt_in)`` gives training logits [N, T, V];
    ``encode`` / ``init_state`` / ``decode_step`` implement ``beam.IncrementalDecoder``."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
                 d_model: int = 256, heads: int = 4, ff_dim: int = 1024, enc_layers: int = 3, dec_layers: int = 3,
                 dropout: float = 0.1, share_embeddings: bool = True, attention_dropout: float = 0.0,
                 activation_dropout: float = 0.0):
        super().__init__()
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError("share_embeddings needs one joint vocabulary (source and target sizes differ)")
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.d_model = d_model
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_id)
        self.src_embedding = self.tgt_embedding if share_embeddings else nn.Embedding(src_vocab_size, d_model,
                                                                                      padding_idx=pad_id)
        for embedding in {id(e): e for e in (self.src_embedding, self.tgt_embedding)}.values():
            # N(0, d^-1/2): with the √d scale the embedded tokens have unit variance (fairseq's init)
            nn.init.normal_(embedding.weight, mean=0.0, std=d_model ** -0.5)
            with torch.no_grad():
                embedding.weight[pad_id].zero_()
        drops = (dropout, attention_dropout, activation_dropout)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, heads, ff_dim, *drops) for _ in range(enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, heads, ff_dim, *drops) for _ in range(dec_layers))
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self._positions = sinusoids(256, d_model)

    # ---- shared pieces --------------------------------------------------------------------
    def _embed(self, embedding: nn.Embedding, ids: Tensor, start: int = 0) -> Tensor:
        end = start + ids.shape[1]
        if end > self._positions.shape[0]:
            self._positions = sinusoids(2 * end, self.d_model)
        positions = self._positions[start:end].to(ids.device)
        return self.drop(embedding(ids) * math.sqrt(self.d_model) + positions)

    def logits(self, hidden: Tensor) -> Tensor:
        """Output scores of decoder features [..., d] (the trainer projects only real target positions)."""
        return F.linear(self.decoder_norm(hidden), self.tgt_embedding.weight)

    def _encode(self, src_ids: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        mask = src_mask[:, None, None, :]
        x = self._embed(self.src_embedding, src_ids)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.encoder_norm(x), mask

    # ---- training ---------------------------------------------------------------------------
    def forward(self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        return self.logits(self.features(src_ids, src_mask, tgt_in))

    def features(self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Top decoder states [N, T, d] under teacher forcing (``logits`` turns them into scores)."""
        memory, mask = self._encode(src_ids, src_mask)
        x = self._embed(self.tgt_embedding, tgt_in)
        for layer in self.decoder:
            normed = layer.norm_self(x)  # keys/values of the (normed) target come from the same layer
            x, _ = layer(x, *layer.self_attention.keys_values(normed), *layer.cross_attention.keys_values(memory),
                         mask=mask, causal=True)
        return x

    # ---- incremental decoding (beam.IncrementalDecoder) -------------------------------------
    def encode(self, src_ids: Tensor, src_mask: Tensor) -> Tree:
        memory, _ = self._encode(src_ids, src_mask)
        tree = {"mask": src_mask}
        for index, layer in enumerate(self.decoder):
            tree[f"cross_k{index}"], tree[f"cross_v{index}"] = layer.cross_attention.keys_values(memory)
        return tree

    def init_state(self, memory: Tree) -> Tree:
        n = memory["mask"].shape[0]
        heads = self.decoder[0].self_attention.heads if len(self.decoder) else 1
        empty = memory["cross_k0"].new_zeros(n, heads, 0, self.d_model // heads)
        return {f"self_{kind}{index}": empty for index in range(len(self.decoder)) for kind in "kv"}

    def decode_step(self, memory: Tree, prev_tokens: Tensor, state: Tree) -> tuple[Tensor, Tensor | None, Tree]:
        step = state["self_k0"].shape[2]
        x = self._embed(self.tgt_embedding, prev_tokens.unsqueeze(1), start=step)
        mask = memory["mask"][:, None, None, :]
        new_state: Tree = {}
        weights = None
        for index, layer in enumerate(self.decoder):
            new_keys, new_values = layer.self_attention.keys_values(layer.norm_self(x))
            keys = new_state[f"self_k{index}"] = torch.cat([state[f"self_k{index}"], new_keys], dim=2)
            values = new_state[f"self_v{index}"] = torch.cat([state[f"self_v{index}"], new_values], dim=2)
            last = index == len(self.decoder) - 1
            x, layer_weights = layer(x, keys, values, memory[f"cross_k{index}"], memory[f"cross_v{index}"],
                                     mask=mask, causal=False, need_weights=last)
            weights = layer_weights if last else weights
        log_probs = self.logits(x[:, -1]).log_softmax(dim=-1)
        return log_probs, None if weights is None else weights[:, -1], new_state


def inverse_sqrt_lr(step: int, peak_lr: float, warmup: int) -> float:
    """Linear warm-up to ``peak_lr`` over ``warmup`` steps, then ∝ 1/√step (fairseq's inverse_sqrt,
    the Transformer paper's schedule up to its scale). ``step`` counts from 1."""
    step = max(step, 1)
    warmup = max(warmup, 1)
    return peak_lr * min(step / warmup, math.sqrt(warmup / step))


def average_checkpoints(paths: Sequence[Path | str], prefix: str = "model.") -> dict[str, Tensor]:
    """The element-wise mean of the model weights (arrays named ``prefix``…) of several checkpoints
    of one run; integer tensors (counters) are taken from the last. Returns a state_dict."""
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint")
    total: dict[str, Tensor] = {}
    for path in paths:
        arrays, _ = load_checkpoint(path)
        weights = {name.removeprefix(prefix): torch.from_numpy(value.copy())
                   for name, value in arrays.items() if name.startswith(prefix)}
        if total and weights.keys() != total.keys():
            raise ValueError(f"{path} holds other weights than {paths[0]}: not checkpoints of one model")
        for name, value in weights.items():
            if not value.is_floating_point():
                total[name] = value
            else:
                total[name] = total[name] + value.double() if name in total else value.double()
    return {name: (value / len(paths)).float() if value.is_floating_point() else value
            for name, value in total.items()}
