"""Generation 2: GNMT-style seq2seq with attention (Wu et al. 2016), at laptop depth.

As in the paper (figure 1), with its depth a parameter (8 + 8 there, 2 + 2 by default here):
- Encoder: the first layer is a bidirectional LSTM (each direction d/2 units, packed so padding
  never reaches the backward direction), the others are unidirectional LSTMs; from the third
  layer on each layer adds its input to its output (residual connections, which is what let
  GNMT train 8 layers).
- Decoder: stacked unidirectional LSTMs. The bottom layer's output at step t queries the
  attention over the encoder's top layer; the context vector is fed, concatenated, into every
  layer above the bottom, and residual connections again start at the third layer.
  (This is the arrangement of NVIDIA's GNMT v2 reference: attention from the bottom decoder
  layer *of the current step*, so each layer can run over the whole target sequence at once
  in training.) With ``input_feeding`` (the default, as TensorFlow's GNMT wraps the bottom
  cell) the bottom layer also reads the previous step's context, so it knows where it attended
  last; training then runs the bottom layer step by step (~25 % slower on a CPU).
- Attention: additive (Bahdanau: vᵀ tanh(W q + U k), GNMT's choice) or scaled dot product.
- ``pass_hidden_state``: decoder layer i starts from encoder layer i's final (h, c) instead of
  zeros (TensorFlow's GNMT passes the encoder state too); it gives the decoder the source before
  attention has learned where to look.
- The class defaults are the paper's arrangement; the trainer's CPU recipe
  (``NMTConfig.for_arch("gnmt")``) uses dot attention, no input feeding and the passed state,
  which learned fastest per CPU-minute (docs/translate.md).
- Dropout between layers; the output projection is tied to the target embedding (the top
  layer has the embedding's width), and the source embedding too when ``share_embeddings``.

``forward`` gives training logits; ``encode`` / ``init_state`` / ``decode_step`` implement
``beam.IncrementalDecoder`` with the per-layer (h, c) as state, so a decoding step is O(1) in
the prefix length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

Tree = dict[str, Tensor]
ATTENTIONS = ("additive", "dot")


class SourceAttention(nn.Module):
    """Attention of decoder queries [N, T, d] over encoder outputs [N, S, d]; keys are
    projected once per sentence (``project_keys``) and reused for every decoding step."""

    def __init__(self, d_model: int, kind: str):
        super().__init__()
        if kind not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, not {kind!r}")
        self.kind = kind
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.query = nn.Linear(d_model, d_model, bias=kind == "additive")
        self.score = nn.Linear(d_model, 1, bias=False) if kind == "additive" else None

    def project_keys(self, memory: Tensor) -> Tensor:
        return self.key(memory)

    def forward(self, queries: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        projected = self.query(queries)
        if self.score is not None:
            scores = self.score(torch.tanh(projected.unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)
        else:
            scores = projected @ keys.transpose(1, 2) / math.sqrt(keys.shape[-1])
        weights = scores.masked_fill(~mask.unsqueeze(1), -math.inf).softmax(dim=-1)  # [N, T, S]
        return weights @ values, weights


class GNMT(nn.Module):
    """GNMT-style encoder-decoder over integer token ids (see the module docstring)."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
                 d_model: int = 256, enc_layers: int = 2, dec_layers: int = 2, dropout: float = 0.2,
                 attention: str = "additive", share_embeddings: bool = False, input_feeding: bool = True,
                 pass_hidden_state: bool = False):
        super().__init__()
        if d_model % 2:
            raise ValueError("d_model must be even (the bidirectional layer gives each direction d/2)")
        if enc_layers < 1 or dec_layers < 1:
            raise ValueError("GNMT needs at least one encoder and one decoder layer")
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError("share_embeddings needs one joint vocabulary (source and target sizes differ)")
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.d_model, self.input_feeding, self.pass_hidden_state = d_model, input_feeding, pass_hidden_state
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_id)
        self.src_embedding = self.tgt_embedding if share_embeddings else nn.Embedding(src_vocab_size, d_model,
                                                                                      padding_idx=pad_id)
        self.encoder_bidirectional = nn.LSTM(d_model, d_model // 2, batch_first=True, bidirectional=True)
        self.encoder = nn.ModuleList(nn.LSTM(d_model, d_model, batch_first=True) for _ in range(enc_layers - 1))
        self.decoder_bottom = nn.LSTM(2 * d_model if input_feeding else d_model, d_model, batch_first=True)
        self.decoder = nn.ModuleList(nn.LSTM(2 * d_model, d_model, batch_first=True) for _ in range(dec_layers - 1))
        self.attention = SourceAttention(d_model, attention)
        self.drop = nn.Dropout(dropout)
        # Embeddings uniform in [-0.1, 0.1] (GNMT's init); LSTMs and linear layers keep PyTorch's
        # ±1/√d (GNMT put every weight in ±0.1: on a toy copy task that plateaued far longer).
        with torch.no_grad():
            for embedding in (self.src_embedding, self.tgt_embedding):
                nn.init.uniform_(embedding.weight, -0.1, 0.1)
            self.src_embedding.weight[pad_id].zero_()
            self.tgt_embedding.weight[pad_id].zero_()

    # ---- encoder ------------------------------------------------------------------------------
    def _encode(self, src_ids: Tensor, src_mask: Tensor) -> tuple[Tensor, Tree]:
        """Top encoder states [N, S, d], and each layer's final (h, c) at the sentence's real end
        (``enc_h0``, ``enc_c0``, …: the bidirectional layer's two directions side by side)."""
        x = self.drop(self.src_embedding(src_ids))
        lengths = src_mask.sum(dim=1).cpu()
        total = src_ids.shape[1]

        def run(layer: nn.LSTM, inputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            # packed, so padding never reaches a backward direction or the final states
            packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
            out, (h, c) = layer(packed)
            return pad_packed_sequence(out, batch_first=True, total_length=total)[0], h, c

        x, h, c = run(self.encoder_bidirectional, x)
        finals = {"enc_h0": torch.cat([h[0], h[1]], dim=-1), "enc_c0": torch.cat([c[0], c[1]], dim=-1)}
        for index, layer in enumerate(self.encoder):
            out, h, c = run(layer, self.drop(x))
            finals[f"enc_h{index + 1}"], finals[f"enc_c{index + 1}"] = h[0], c[0]
            x = out + x if index >= 1 else out  # encoder layer 3 on (index 1 here) is residual
        return x, finals

    # ---- decoder layers above the bottom one --------------------------------------------------
    def _upper(self, bottom: Tensor, context: Tensor, state: Tree | None) -> tuple[Tensor, Tree]:
        x, new_state = bottom, {}
        for index, layer in enumerate(self.decoder):
            initial = None if state is None else (state[f"h{index + 1}"].unsqueeze(0).contiguous(),
                                                  state[f"c{index + 1}"].unsqueeze(0).contiguous())
            out, (h, c) = layer(self.drop(torch.cat([x, context], dim=-1)), initial)
            new_state[f"h{index + 1}"], new_state[f"c{index + 1}"] = h.squeeze(0), c.squeeze(0)
            x = out + x if index >= 1 else out  # decoder layer 3 on is residual
        return x, new_state

    def logits(self, top: Tensor) -> Tensor:
        """Output scores of top-layer states [..., d] (the trainer projects only real target positions)."""
        return F.linear(self.drop(top), self.tgt_embedding.weight)

    # ---- training ---------------------------------------------------------------------------
    def forward(self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        return self.logits(self.features(src_ids, src_mask, tgt_in))

    def features(self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Top decoder states [N, T, d] under teacher forcing (``logits`` turns them into scores)."""
        memory, finals = self._encode(src_ids, src_mask)
        keys = self.attention.project_keys(memory)
        embedded = self.drop(self.tgt_embedding(tgt_in))
        state = self.init_state({"memory": memory} | finals)
        upper_state = dict(state)  # the upper layers start from the initial state, not the bottom's last
        if self.input_feeding:  # the bottom layer needs the previous context: one step at a time
            steps = [self._bottom_step(embedded[:, t: t + 1], memory, keys, src_mask, state)
                     for t in range(tgt_in.shape[1])]
            bottom = torch.cat([b for b, _, _ in steps], dim=1)
            context = torch.cat([c for _, c, _ in steps], dim=1)
        else:  # the whole target sequence at once, then attention for every position
            bottom, _ = self.decoder_bottom(embedded, (state["h0"].unsqueeze(0).contiguous(),
                                                       state["c0"].unsqueeze(0).contiguous()))
            context, _ = self.attention(bottom, keys, memory, src_mask)
        top, _ = self._upper(bottom, context, upper_state)
        return top

    # ---- incremental decoding (beam.IncrementalDecoder) -------------------------------------
    def encode(self, src_ids: Tensor, src_mask: Tensor) -> Tree:
        memory, finals = self._encode(src_ids, src_mask)
        return {"mask": src_mask, "memory": memory, "keys": self.attention.project_keys(memory)} | (
            finals if self.pass_hidden_state else {})

    def init_state(self, memory: Tree) -> Tree:
        """Zeros, or with ``pass_hidden_state`` decoder layer i starts from encoder layer i's final
        state (a direct path from the source before attention has learned where to look)."""
        zeros = memory["memory"].new_zeros(memory["memory"].shape[0], self.d_model)
        state = {f"{kind}{index}": zeros for index in range(len(self.decoder) + 1) for kind in "hc"}
        if self.pass_hidden_state:
            state |= {f"{kind}{index}": memory[f"enc_{kind}{index}"] for index in range(len(self.decoder) + 1)
                      for kind in "hc" if f"enc_{kind}{index}" in memory}
        return state | ({"context": zeros} if self.input_feeding else {})

    def _bottom_step(self, embedded: Tensor, memory: Tensor, keys: Tensor, mask: Tensor,
                     state: Tree) -> tuple[Tensor, Tensor, Tensor]:
        """Bottom layer + attention for one target position; updates ``state`` (h0, c0, context) in place."""
        inputs = torch.cat([embedded, state["context"].unsqueeze(1)], dim=-1) if self.input_feeding else embedded
        bottom, (h, c) = self.decoder_bottom(inputs, (state["h0"].unsqueeze(0).contiguous(),
                                                      state["c0"].unsqueeze(0).contiguous()))
        context, weights = self.attention(bottom, keys, memory, mask)
        state["h0"], state["c0"] = h.squeeze(0), c.squeeze(0)
        if self.input_feeding:
            state["context"] = context[:, -1]
        return bottom, context, weights

    def decode_step(self, memory: Tree, prev_tokens: Tensor, state: Tree) -> tuple[Tensor, Tensor, Tree]:
        embedded = self.drop(self.tgt_embedding(prev_tokens.unsqueeze(1)))
        bottom_state = dict(state)
        bottom, context, weights = self._bottom_step(embedded, memory["memory"], memory["keys"], memory["mask"],
                                                     bottom_state)
        top, new_state = self._upper(bottom, context, state)
        new_state |= {k: v for k, v in bottom_state.items() if k in ("h0", "c0", "context")}
        return self.logits(top[:, -1]).log_softmax(dim=-1), weights[:, -1], new_state
