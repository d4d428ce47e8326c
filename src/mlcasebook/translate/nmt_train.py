"""Training, loading and decoding of the neural translators (GNMT-style and Transformer).

``train_nmt`` is the one fit loop for both architectures (they share ``beam.IncrementalDecoder``
and a ``forward(src_ids, src_mask, tgt_in) -> logits`` for teacher forcing):

- Token-based batching: pairs sorted by length (random tie-break), cut into batches of at most
  ``batch_tokens`` padded tokens, batch order shuffled every epoch — little padding, and every
  step sees about the same number of tokens whatever the sentence lengths.
- Adam (β₂ 0.98), inverse-√ learning rate with linear warm-up, label-smoothed cross entropy,
  gradient-norm clipping.
- Every ``eval_every`` steps: dev NLL / perplexity, the caller's ``on_eval(model)`` (e.g. dev
  BLEU), MLflow metrics, and a checkpoint — model, Adam moments, step, epoch, position in the
  epoch, torch RNG state — written atomically (``core.checkpoint``); the last ``keep_last`` are
  kept. Rerunning the same call after a kill resumes from the newest one and continues the
  same batch sequence (the batch order of epoch e is drawn from (seed, e)).
- ``workers`` > 1: data parallel over CPU cores (``core.data_parallel``): helper processes take a
  share of every batch's rows and the gradients are summed, the same steps as one process.
- Stops at ``max_steps`` or when the wall-clock ``time_budget_s`` (summed over resumed runs) is
  spent, keeping back the time of the final evaluation and averaging (estimated from the last
  evaluation); the shipped ``model.pt`` holds the mean of the last ``average_last`` checkpoints'
  weights (checkpoint averaging, as the Transformer paper reported) when that mean has a dev
  NLL no worse than the last weights (early in training it lags behind), else the last weights.

Conventions for token ids (the caller's SentencePiece ids): the source gets EOS appended here;
the target is trained as ``BOS y`` → ``y EOS``; ``translate_ids`` returns ids without BOS/EOS.
A target-language token such as ``<2de>`` in front of the source is an ordinary source token.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.checkpoint import load_checkpoint, save_checkpoint
from ..core.data_parallel import Group, join
from ..core.errors import CasebookError, DataError
from ..core.progress import bar
from ..core.tracking import tracked_run
from .beam import BeamConfig, beam_search
from .gnmt import GNMT
from .transformer import Transformer, average_checkpoints, inverse_sqrt_lr

ARCHS = ("gnmt", "transformer")
Pair = tuple[list[int], list[int]]
MODEL_FILE = "model.pt"
_CHECKPOINT = re.compile(r"checkpoint_(\d+)\.pt$")


@dataclass(frozen=True)
class NMTConfig:
    """Everything that determines a training run (stored in every checkpoint and in the model).

    The defaults are the CPU Transformer: d 256, 3 + 3 layers, 4 heads, FF 1024 (about the
    Joey NMT / fairseq small-data recipe, shrunk for 2 cores); ``NMTConfig.for_arch("gnmt")``
    gives the GNMT-style defaults."""

    arch: str = "transformer"
    d_model: int = 256
    ff_dim: int = 1024  # Transformer only
    heads: int = 4  # Transformer only
    enc_layers: int = 3
    dec_layers: int = 3
    dropout: float = 0.2  # embeddings, residual branches (Transformer) / between layers (GNMT)
    attention_dropout: float = 0.0  # Transformer only
    activation_dropout: float = 0.0  # Transformer only: on the feed-forward ReLU
    attention: str = "additive"  # GNMT only: additive (Bahdanau, GNMT's) or dot
    input_feeding: bool = True  # GNMT only: the bottom decoder layer also reads the previous context
    pass_hidden_state: bool = False  # GNMT only: decoder layer i starts from encoder layer i's final state
    share_embeddings: bool = True  # one matrix for source, target, output (joint vocabulary only)
    lr: float = 1e-3  # peak learning rate
    warmup: int = 500  # steps of linear warm-up, then the schedule
    # after warm-up: ∝ 1/√step (Transformer), "constant" (LSTM NMT's Adam), or "linear_decay": down to 0
    # at the end of the budget (time or steps, whichever ends first; Li et al. 2020's budgeted training)
    lr_schedule: str = "inverse_sqrt"
    batch_tokens: int = 4096  # padded source-or-target tokens per batch
    label_smoothing: float = 0.1
    clip_norm: float = 1.0  # 0 = no clipping
    max_len: int = 128  # training pairs longer than this (either side, in tokens) are skipped
    max_steps: int = 20_000
    time_budget_s: float | None = None  # wall-clock seconds of training, summed over resumed runs
    seed: int = 0
    eval_every: int = 500  # steps between dev evaluation + checkpoint
    keep_last: int = 5  # checkpoints kept on disk
    average_last: int = 5  # checkpoints averaged into model.pt (1 = the last one as is)
    workers: int = 1  # processes that share every batch (data parallel over CPU cores; core.data_parallel)

    @classmethod
    def for_arch(cls, arch: str, **overrides: Any) -> NMTConfig:
        if arch not in ARCHS:
            raise CasebookError(f"unknown NMT architecture {arch!r}", hint=f"choose one of {', '.join(ARCHS)}")
        # GNMT on a CPU: Luong's dot-product attention and no input feeding (the whole target runs
        # through the bottom layer at once), the encoder's final states passed to the decoder, Adam
        # 3e-3 held constant — each chosen by the tuning split's NLL at equal training time
        # (docs/translate.md): 3.71 after 13 minutes, against 5.05 for GNMT's own additive attention
        # + input feeding at a constant 1e-3.
        base = cls() if arch == "transformer" else cls(
            arch="gnmt", d_model=256, enc_layers=2, dec_layers=2, dropout=0.2, share_embeddings=False,
            attention="dot", input_feeding=False, pass_hidden_state=True, lr=3e-3, lr_schedule="constant",
            warmup=200, clip_norm=5.0, average_last=1)
        return replace(base, **overrides)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NMTConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def build_model(config: NMTConfig, vocab: dict[str, Any]) -> nn.Module:
    src_size, tgt_size = _vocab_sizes(vocab)
    share = config.share_embeddings and src_size == tgt_size
    common = dict(src_vocab_size=src_size, tgt_vocab_size=tgt_size, pad_id=vocab["pad_id"], bos_id=vocab["bos_id"],
                  eos_id=vocab["eos_id"], d_model=config.d_model, enc_layers=config.enc_layers,
                  dec_layers=config.dec_layers, dropout=config.dropout, share_embeddings=share)
    if config.arch == "transformer":
        return Transformer(**common, heads=config.heads, ff_dim=config.ff_dim,
                           attention_dropout=config.attention_dropout, activation_dropout=config.activation_dropout)
    if config.arch == "gnmt":
        return GNMT(**common, attention=config.attention, input_feeding=config.input_feeding,
                    pass_hidden_state=config.pass_hidden_state)
    raise CasebookError(f"unknown NMT architecture {config.arch!r}", hint=f"choose one of {', '.join(ARCHS)}")


def _vocab_sizes(vocab: dict[str, Any]) -> tuple[int, int]:
    missing = [key for key in ("pad_id", "bos_id", "eos_id") if key not in vocab]
    if missing or not ("size" in vocab or ("src_size" in vocab and "tgt_size" in vocab)):
        raise CasebookError(f"vocabulary description lacks {missing or 'size'}",
                            hint="pass {'size': V, 'pad_id': …, 'bos_id': …, 'eos_id': …}")
    return int(vocab.get("src_size", vocab.get("size"))), int(vocab.get("tgt_size", vocab.get("size")))


# ---- batches ---------------------------------------------------------------------------------


def _check_pairs(pairs: Sequence[Pair], vocab: dict[str, Any], what: str) -> None:
    if not pairs:
        raise DataError(f"no {what} sentence pairs", hint="check the data files")
    src_size, tgt_size = _vocab_sizes(vocab)
    for side, size in ((0, src_size), (1, tgt_size)):
        flat = np.fromiter((t for pair in pairs for t in pair[side]), dtype=np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= size):
            raise DataError(f"{what} {'source' if side == 0 else 'target'} ids outside [0, {size})",
                            hint="encode both sides with the vocabulary passed to train_nmt")


def token_batches(lengths: np.ndarray, batch_tokens: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Indices grouped into batches of at most ``batch_tokens`` padded tokens (a pair longer
    than that is a batch of its own). ``lengths`` [n] is each pair's padded length
    (max of both sides). With ``rng``: random tie-break in the sort and shuffled batch order."""
    order = rng.permutation(len(lengths)) if rng is not None else np.arange(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    batches, start = [], 0
    while start < len(order):
        # the batch grows while (count × longest) fits: lengths are sorted, so the longest is the last
        end = start + 1
        while end < len(order) and (end + 1 - start) * lengths[order[end]] <= batch_tokens:
            end += 1
        batches.append(order[start:end])
        start = end
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _pad(rows: Sequence[list[int]], pad_id: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def make_batch(pairs: Sequence[Pair], index: np.ndarray, vocab: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Padded tensors of one batch: source + EOS, target input BOS + y, target output y + EOS."""
    pad, bos, eos = vocab["pad_id"], vocab["bos_id"], vocab["eos_id"]
    src = _pad([list(pairs[i][0]) + [eos] for i in index], pad)
    tgt_in = _pad([[bos] + list(pairs[i][1]) for i in index], pad)
    tgt_out = _pad([list(pairs[i][1]) + [eos] for i in index], pad)
    return {"src": src, "src_mask": src != pad, "tgt_in": tgt_in, "tgt_out": tgt_out}


def _pair_lengths(pairs: Sequence[Pair]) -> np.ndarray:
    return np.fromiter((max(len(s), len(t)) + 1 for s, t in pairs), dtype=np.int64, count=len(pairs))


# ---- checkpoints ------------------------------------------------------------------------------


def _checkpoints(out_dir: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in out_dir.glob("checkpoint_*.pt") if (m := _CHECKPOINT.search(p.name))]
    return [p for _, p in sorted(found)]


def _save_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    arrays: dict[str, Any] = {f"model.{k}": v for k, v in model.state_dict().items()}
    state = optimizer.state_dict()
    for param_id, values in state["state"].items():
        for key, value in values.items():
            arrays[f"optimizer.{param_id}.{key}"] = torch.as_tensor(value)
    arrays["rng.torch"] = torch.get_rng_state()
    save_checkpoint(path, arrays, {**meta, "param_groups": state["param_groups"]})


def _restore_state(arrays: dict[str, np.ndarray], meta: dict[str, Any], model: nn.Module,
                   optimizer: torch.optim.Optimizer) -> None:
    model.load_state_dict({k.removeprefix("model."): torch.from_numpy(v.copy())
                           for k, v in arrays.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in arrays.items():
        if name.startswith("optimizer."):
            _, param_id, key = name.split(".", 2)
            state.setdefault(int(param_id), {})[key] = torch.from_numpy(np.array(value))
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(torch.from_numpy(arrays["rng.torch"].copy()))


def save_model(path: Path, weights: dict[str, torch.Tensor], config: NMTConfig, vocab: dict[str, Any],
               info: dict[str, Any]) -> Path:
    return save_checkpoint(path, {f"model.{k}": v for k, v in weights.items()},
                           {"kind": "mlcasebook.translate.nmt", "config": asdict(config), "vocab": vocab, "info": info})


def load_nmt(path: Path | str) -> tuple[nn.Module, NMTConfig, dict[str, Any]]:
    """The model of a ``model.pt`` (or of any training checkpoint) in eval mode, its config and vocab."""
    arrays, meta = load_checkpoint(path)
    if "config" not in meta or "vocab" not in meta:
        raise CasebookError(f"{path} is not a neural translation model",
                            hint="train one with `mlcasebook translate train`")
    config = NMTConfig.from_dict(meta["config"])
    model = build_model(config, meta["vocab"])
    model.load_state_dict({k.removeprefix("model."): torch.from_numpy(v.copy())
                           for k, v in arrays.items() if k.startswith("model.")})
    return model.eval(), config, meta["vocab"]


# ---- evaluation ----------------------------------------------------------------------------


def _loss(model: nn.Module, batch: dict[str, torch.Tensor], pad_id: int, label_smoothing: float) -> torch.Tensor:
    """Mean (label-smoothed) cross entropy per real target token. Only real positions go through
    the output projection and softmax — the largest matrix product of a step, ~15 % padding saved."""
    features = model.features(batch["src"], batch["src_mask"], batch["tgt_in"])
    real = batch["tgt_out"] != pad_id
    return F.cross_entropy(model.logits(features[real]), batch["tgt_out"][real], label_smoothing=label_smoothing)


@torch.inference_mode()
def dev_loss(model: nn.Module, pairs: Sequence[Pair], vocab: dict[str, Any], batch_tokens: int) -> dict[str, float]:
    """Token-level NLL (no label smoothing) and perplexity of the references."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for index in token_batches(_pair_lengths(pairs), batch_tokens, None):
        batch = make_batch(pairs, index, vocab)
        real = batch["tgt_out"] != vocab["pad_id"]
        total += _loss(model, batch, vocab["pad_id"], 0.0).item() * int(real.sum())
        count += int(real.sum())
    model.train(was_training)
    nll = total / max(count, 1)
    return {"dev_nll": nll, "dev_ppl": math.exp(min(nll, 50.0))}


@torch.inference_mode()
def translate_ids(model: nn.Module, src_batch: Sequence[Sequence[int]], beam_size: int = 4, alpha: float = 0.6,
                  beta: float = 0.0, max_len_a: float = 1.5, max_len_b: int = 10,
                  batch_sentences: int = 32) -> list[list[int]]:
    """Beam-search translations (target ids without BOS/EOS) in input order; beam_size 1 is greedy.

    Sources are decoded in length-sorted groups of ``batch_sentences`` (less padding); EOS is
    appended to each source as in training."""
    was_training = model.training
    model.eval()
    config = BeamConfig(beam_size=beam_size, alpha=alpha, beta=beta, max_len_a=max_len_a, max_len_b=max_len_b)
    order = sorted(range(len(src_batch)), key=lambda i: len(src_batch[i]))
    results: list[list[int]] = [[] for _ in src_batch]
    for start in range(0, len(order), batch_sentences):
        chunk = order[start:start + batch_sentences]
        src = _pad([list(src_batch[i]) + [model.eos_id] for i in chunk], model.pad_id)
        for i, hyp in zip(chunk, beam_search(model, src, src != model.pad_id, config), strict=True):
            results[i] = hyp
    model.train(was_training)
    return results


# ---- training -------------------------------------------------------------------------------


def train_nmt(config: NMTConfig, train_pairs: Sequence[Pair], dev_pairs: Sequence[Pair], vocab: dict[str, Any],
              out_dir: Path | str, progress: bool = True,
              on_eval: Callable[[nn.Module], float | dict[str, float] | None] | None = None,
              track: bool = True, resume: bool = True) -> Path:
    """Train (or resume) a GNMT-style or Transformer translator; returns ``out_dir/model.pt``.

    ``train_pairs`` / ``dev_pairs``: (source ids, target ids) without BOS/EOS. ``vocab``: at
    least ``size`` (or ``src_size`` + ``tgt_size``), ``pad_id``, ``bos_id``, ``eos_id``; it is
    stored in the model as given (other JSON-able keys, e.g. the SentencePiece file, ride along).
    ``on_eval(model)`` is called with the model in eval mode at every evaluation; a float it
    returns is logged as ``dev_score``, a dict as is. Rerunning with the same arguments resumes
    from the newest checkpoint in ``out_dir`` (``resume=False`` starts over)."""
    if config.arch not in ARCHS:
        raise CasebookError(f"unknown NMT architecture {config.arch!r}", hint=f"choose one of {', '.join(ARCHS)}")
    out_dir = Path(out_dir)
    _check_pairs(train_pairs, vocab, "training")
    _check_pairs(dev_pairs, vocab, "dev")
    kept = [p for p in train_pairs if 0 < len(p[0]) < config.max_len and 0 < len(p[1]) < config.max_len]
    if not kept:
        raise DataError(f"every training pair is empty or longer than max_len={config.max_len} tokens",
                        hint="raise max_len or check the tokenization")
    lengths = _pair_lengths(kept)
    torch.manual_seed(config.seed)
    model = build_model(config, vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98), eps=1e-9)
    run: dict[str, Any] = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "train_seconds": 0.0, "history": [],
                           "finished": False, "skipped_pairs": len(train_pairs) - len(kept)}
    model_path = out_dir / MODEL_FILE
    existing = _checkpoints(out_dir) if out_dir.is_dir() else []
    if resume and existing:
        arrays, meta = load_checkpoint(existing[-1])
        if _fixed_settings(meta["config"]) != _fixed_settings(asdict(config)) or meta["vocab"] != _as_json(vocab):
            raise CasebookError(f"{out_dir} holds a run with other settings or another vocabulary",
                                hint="rerun with the same options (only the step/time limits and the checkpoint "
                                     "settings may change), pass --no-resume, or use another --out")
        _restore_state(arrays, meta, model, optimizer)
        run = meta["run"]
    elif not resume:
        for stale in [*existing, model_path]:
            stale.unlink(missing_ok=True)
    session_start, seconds_before = time.perf_counter(), run["train_seconds"]

    def clock() -> float:  # wall-clock seconds of this run, evaluations included, over all sessions
        run["train_seconds"] = seconds_before + time.perf_counter() - session_start
        return run["train_seconds"]

    def budget_left() -> bool:
        # the budget covers the end too: a last evaluation and the averaging's two dev passes
        return config.time_budget_s is None or clock() + 3 * run.get("dev_seconds", 0.0) < config.time_budget_s

    if run["finished"] and model_path.is_file() and not (run["step"] < config.max_steps and budget_left()):
        return model_path  # the same command already ran to its end
    run["finished"] = False

    def checkpoint() -> None:
        path = out_dir / f"checkpoint_{run['step']:07d}.pt"
        _save_state(path, model, optimizer, {"config": asdict(config), "vocab": vocab, "run": run})
        for old in _checkpoints(out_dir)[: -config.keep_last]:
            old.unlink(missing_ok=True)

    def evaluate(tracker, window: dict[str, float]) -> None:
        started = time.perf_counter()
        entry: dict[str, Any] = {"step": run["step"], "epoch": run["epoch"], "train_seconds": clock(),
                                 **window, **dev_loss(model, dev_pairs, vocab, config.batch_tokens)}
        run["dev_seconds"] = time.perf_counter() - started
        if on_eval is not None:
            model.eval()
            score = on_eval(model)
            model.train()
            entry.update(score if isinstance(score, dict) else {} if score is None else {"dev_score": float(score)})
        run["history"].append(entry)
        tracker.metrics({k: v for k, v in entry.items() if k != "step"}, step=run["step"])

    model.train()
    window = {"loss": 0.0, "tokens": 0, "seconds": 0.0, "steps": 0}
    group = None
    if config.workers > 1:
        resumed_from = str(existing[-1]) if resume and existing else None
        group = Group.start(config.workers, _data_parallel_helper, (asdict(config), kept, vocab, resumed_from))
        group.broadcast_module(model)
    with tracked_run("translate", f"{config.arch}-{out_dir.name}", enabled=track) as tracker, \
            bar(*_bar_spec(config, run), disable=not progress) as advance, _closing(group):
        tracker.params({**asdict(config), "train_pairs": len(kept), "dev_pairs": len(dev_pairs),
                        "params": sum(p.numel() for p in model.parameters())})
        while run["step"] < config.max_steps and budget_left():
            batches = token_batches(lengths, config.batch_tokens, np.random.default_rng([config.seed, run["epoch"]]))
            while run["batch_in_epoch"] < len(batches) and run["step"] < config.max_steps and budget_left():
                started = time.perf_counter()
                # in millionths, so data-parallel helpers receive the same value as an integer
                progress_ppm = round(PPM * budget_progress(run["step"], clock(), config))
                if group is not None:
                    group.command([GO, run["epoch"], run["batch_in_epoch"], run["step"], progress_ppm])
                batch = make_batch(kept, batches[run["batch_in_epoch"]], vocab)
                loss = _train_step(model, optimizer, batch, vocab, config, run["step"], progress_ppm, group)
                run["step"] += 1
                run["batch_in_epoch"] += 1
                elapsed = time.perf_counter() - started
                tokens = int((batch["tgt_out"] != vocab["pad_id"]).sum())
                window["loss"] += loss * tokens
                window["tokens"] += tokens
                window["seconds"] += elapsed
                window["steps"] += 1
                advance(1 if config.time_budget_s is None else elapsed)
                if run["step"] % config.eval_every == 0:
                    evaluate(tracker, _window_summary(window))
                    window = {"loss": 0.0, "tokens": 0, "seconds": 0.0, "steps": 0}
                    checkpoint()
            if run["batch_in_epoch"] >= len(batches):
                run["epoch"] += 1
                run["batch_in_epoch"] = 0
        if window["steps"]:
            evaluate(tracker, _window_summary(window))
        run["finished"] = True
        clock()
        checkpoint()
        weights, averaging = _final_weights(model, _checkpoints(out_dir)[-max(config.average_last, 1):], dev_pairs,
                                            vocab, config.batch_tokens)
        info = {"steps": run["step"], "epochs_started": run["epoch"] + 1, "train_seconds": run["train_seconds"],
                **averaging, "skipped_pairs": run["skipped_pairs"], "history": run["history"]}
        tracker.metrics({k: v for k, v in averaging.items() if k.endswith("nll")}, step=run["step"])
        save_model(model_path, weights, config, vocab, info)
        tracker.artifact(model_path)
    return model_path


LR_SCHEDULES = ("inverse_sqrt", "constant", "linear_decay")


def learning_rate(step: int, config: NMTConfig, progress: float = 0.0) -> float:
    """The learning rate of update ``step`` (from 1): linear warm-up, then 1/√step, constant, or a
    linear decay to zero as ``progress`` (the budget's fraction used, 0–1) reaches 1."""
    if config.lr_schedule not in LR_SCHEDULES:
        raise CasebookError(f"unknown learning-rate schedule {config.lr_schedule!r}",
                            hint=f"choose one of {', '.join(LR_SCHEDULES)}")
    if config.lr_schedule == "inverse_sqrt":
        return inverse_sqrt_lr(step, config.lr, config.warmup)
    warm = config.lr * min(step / max(config.warmup, 1), 1.0)
    return warm if config.lr_schedule == "constant" else warm * max(1.0 - progress, 0.0)


def budget_progress(step: int, train_seconds: float, config: NMTConfig) -> float:
    """How much of the run's budget is used: steps of ``max_steps`` or seconds of ``time_budget_s``,
    whichever is further along."""
    by_steps = step / max(config.max_steps, 1)
    return by_steps if config.time_budget_s is None else max(by_steps, train_seconds / config.time_budget_s)


PPM = 1_000_000
GO, STOP = 1, 0  # rank 0 to the data-parallel helpers: [GO, epoch, batch in epoch, step, progress ppm] or [STOP, ...]


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
                vocab: dict[str, Any], config: NMTConfig, step: int, progress_ppm: int, group: Group | None) -> float:
    """One update on ``batch``; returns its (label-smoothed) loss per target token. In a data-parallel
    ``group`` this process takes every ``size``-th row from its rank on and scales its loss by its
    share of the batch's target tokens, so the summed gradients are the whole batch's gradient."""
    for param_group in optimizer.param_groups:
        param_group["lr"] = learning_rate(step + 1, config, progress_ppm / PPM)
    pad = vocab["pad_id"]
    optimizer.zero_grad(set_to_none=True)
    if group is None:
        loss = _loss(model, batch, pad, config.label_smoothing)
        loss.backward()
        value = loss.detach()
    else:
        total = int((batch["tgt_out"] != pad).sum())
        part = {name: tensor[group.rank::group.size] for name, tensor in batch.items()}
        tokens = int((part["tgt_out"] != pad).sum())
        loss = torch.zeros(())
        if tokens:  # a batch of one long pair leaves the other processes nothing to do
            loss = _loss(model, part, pad, config.label_smoothing) * (tokens / total)
            loss.backward()
        value = group.sum_gradients(list(model.parameters()), loss.detach())
    if config.clip_norm > 0:
        nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
    optimizer.step()
    return float(value)


@contextmanager
def _closing(group: Group | None):
    """Tell the helpers to stop when training ends; if it fails, do not wait for them."""
    try:
        yield
    except BaseException:
        if group is not None:
            group.abort()
        raise
    if group is not None:
        group.command([STOP, 0, 0, 0, 0])
        group.close()


def _data_parallel_helper(rank: int, size: int, port: int, threads: int, config_values: dict[str, Any],
                          pairs: Sequence[Pair], vocab: dict[str, Any], resumed_from: str | None) -> None:
    """A helper process of a data-parallel run: the same model and optimizer as rank 0, one share of
    every batch, until rank 0 says stop."""
    join(rank, size, port, threads)
    config = NMTConfig.from_dict(config_values)
    torch.manual_seed(config.seed)
    model = build_model(config, vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98), eps=1e-9)
    if resumed_from is not None:
        arrays, meta = load_checkpoint(resumed_from)
        _restore_state(arrays, meta, model, optimizer)
    group = Group(rank, size)
    group.broadcast_module(model)
    torch.manual_seed(config.seed * 1000 + rank)  # its own dropout masks
    model.train()
    lengths, batches, batches_epoch = _pair_lengths(pairs), [], -1
    while True:
        command, epoch, batch_in_epoch, step, progress_ppm = group.command([0, 0, 0, 0, 0])
        if command == STOP:
            break
        if epoch != batches_epoch:  # the same batches as rank 0: drawn from (seed, epoch)
            batches = token_batches(lengths, config.batch_tokens, np.random.default_rng([config.seed, epoch]))
            batches_epoch = epoch
        _train_step(model, optimizer, make_batch(pairs, batches[batch_in_epoch], vocab), vocab, config, step,
                    progress_ppm, group)
    group.close()


def _final_weights(model: nn.Module, chosen: list[Path], dev_pairs: Sequence[Pair], vocab: dict[str, Any],
                   batch_tokens: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights to ship: the mean of ``chosen`` checkpoints if its dev NLL is no worse than the
    last weights', else the last weights. Averaging pays near convergence; while the loss still
    falls fast (a short CPU budget) the mean lags behind, and the dev split says so."""
    last = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if len(chosen) < 2:
        return last, {"averaged": []}
    averaged = average_checkpoints(chosen)
    last_nll = dev_loss(model, dev_pairs, vocab, batch_tokens)["dev_nll"]
    model.load_state_dict(averaged)
    averaged_nll = dev_loss(model, dev_pairs, vocab, batch_tokens)["dev_nll"]
    model.load_state_dict(last)
    keep_average = averaged_nll <= last_nll
    return (averaged if keep_average else last), {
        "averaged": [p.name for p in chosen] if keep_average else [], "averaging_candidates": [p.name for p in chosen],
        "last_dev_nll": last_nll, "averaged_dev_nll": averaged_nll}


def _bar_spec(config: NMTConfig, run: dict[str, Any]) -> tuple[float, str]:
    """A bar in steps, or in seconds when a time budget bounds the run."""
    if config.time_budget_s is None:
        return config.max_steps - run["step"], f"train {config.arch} (steps)"
    return max(config.time_budget_s - run["train_seconds"], 0.0), f"train {config.arch} (seconds of budget)"


def _fixed_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a resumed run must share with the checkpoint (limits and bookkeeping may change:
    the learning rate is a function of the step alone, so extending a run is sound)."""
    free = {"max_steps", "time_budget_s", "eval_every", "keep_last", "average_last", "workers"}
    return {k: v for k, v in config.items() if k not in free}


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _window_summary(window: dict[str, float]) -> dict[str, float]:
    """Training loss and speed since the last evaluation (label-smoothed loss per target token)."""
    return {"train_loss": window["loss"] / max(window["tokens"], 1),
            "target_tokens_per_s": window["tokens"] / max(window["seconds"], 1e-9),
            "seconds_per_step": window["seconds"] / max(window["steps"], 1)}
