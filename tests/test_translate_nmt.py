"""GNMT-style and Transformer translators: beam search, training, resume, averaging, padding."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from mlcasebook.core.checkpoint import load_checkpoint, save_checkpoint
from mlcasebook.core.errors import CasebookError, DataError
from mlcasebook.translate.beam import BeamConfig, IncrementalDecoder, beam_search, length_penalty
from mlcasebook.translate.nmt_train import (
    NMTConfig,
    build_model,
    dev_loss,
    load_nmt,
    token_batches,
    train_nmt,
    translate_ids,
)
from mlcasebook.translate.transformer import average_checkpoints

PAD, BOS, EOS = 0, 1, 2
A, B = 3, 4


class TableModel:
    """A hand-made "model": the next-token distribution depends only on the previous token.

    From BOS: a 0.6, b 0.4. After a: a 0.36, b 0.34, EOS 0.30. After b: EOS 0.9, a 0.05, b 0.05.
    Greedy takes a, then keeps taking a (0.36 > 0.30) until the length limit; the best complete
    hypothesis is "b EOS" (0.4 · 0.9 = 0.36 against at most 0.6 · 0.30 = 0.18 for "a EOS")."""

    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(self):
        table = torch.full((5, 5), 1e-9)
        table[BOS, [A, B]] = torch.tensor([0.6, 0.4])
        table[A, [A, B, EOS]] = torch.tensor([0.36, 0.34, 0.30])
        table[B, [EOS, A, B]] = torch.tensor([0.9, 0.05, 0.05])
        self.log_table = (table / table.sum(1, keepdim=True)).log()

    def encode(self, src_ids, src_mask):
        return {"mask": src_mask}

    def init_state(self, memory):
        return {}

    def decode_step(self, memory, prev_tokens, state):
        attention = memory["mask"].float() / memory["mask"].float().sum(1, keepdim=True)
        return self.log_table[prev_tokens], attention, state


def _search(beam_size, **kwargs):
    src = torch.tensor([[5, 5, 5, EOS]])
    return beam_search(TableModel(), src, src != PAD, BeamConfig(beam_size=beam_size, **kwargs))[0]


def test_table_model_follows_the_decoder_protocol():
    assert isinstance(TableModel(), IncrementalDecoder)


def test_beam_finds_the_best_hypothesis_that_greedy_misses():
    assert _search(2, alpha=0.0) == [B]
    assert _search(2, alpha=0.0, exhaustive=True) == [B]
    greedy = _search(1, alpha=0.0, max_len_a=1.0, max_len_b=3)
    assert greedy == [A] * 7  # a, a, a, … up to the limit 1.0 · 4 + 3


class EagerEOSModel(TableModel):
    """From BOS: EOS 0.5, a 0.3, b 0.2; after a or b: EOS 0.9. The empty translation (0.5) beats "a" (0.27)."""

    def __init__(self):
        table = torch.full((5, 5), 1e-9)
        table[BOS, [EOS, A, B]] = torch.tensor([0.5, 0.3, 0.2])
        table[A, [EOS, A]] = torch.tensor([0.9, 0.1])
        table[B, [EOS, B]] = torch.tensor([0.9, 0.1])
        self.log_table = (table / table.sum(1, keepdim=True)).log()


def test_beam_never_returns_an_empty_translation_by_default():
    src = torch.tensor([[5, 5, EOS]])
    for beam_size in (1, 4):
        assert beam_search(EagerEOSModel(), src, src != PAD, BeamConfig(beam_size=beam_size, alpha=0.0))[0] == [A]
    # without the minimum length the empty translation wins: the test's model really prefers it
    assert beam_search(EagerEOSModel(), src, src != PAD, BeamConfig(beam_size=4, alpha=0.0, min_len=0))[0] == []


def test_coverage_penalty_scores_finished_translations():
    """β = 1, α = 0, attention spread evenly over the 4 source tokens at every step: a translation
    of n steps (EOS included) covers each token n/4, so cp = 4 log(min(n/4, 1)). The best s(Y, X)
    by hand is "a a b" (log .6·.36·.34·.9 = -2.72, full coverage) against "a b" (-1.70 - 1.15)
    and "b" (-1.02 - 2.77). Charging cp to unfinished prefixes too returned "a b"."""
    assert _search(2, alpha=0.0, beta=1.0) == [A, A, B]


def test_length_penalty_is_gnmt_formula():
    assert length_penalty(1, 0.6) == pytest.approx(1.0)
    assert length_penalty(10, 0.2) == pytest.approx(((5 + 10) / 6) ** 0.2)
    assert float(length_penalty(torch.tensor(3), 1.0)) == pytest.approx(8 / 6)


def test_beam_search_batches_sentences_independently():
    src = torch.tensor([[5, 5, EOS, PAD], [5, 5, 5, EOS]])
    both = beam_search(TableModel(), src, src != PAD, BeamConfig(beam_size=3, alpha=0.0))
    assert both == [[B], [B]]


# ---- a toy task for the real models ---------------------------------------------------------------

VOCAB = {"size": 16, "pad_id": PAD, "bos_id": BOS, "eos_id": EOS}
COPY_TAG, REVERSE_TAG = 14, 15  # like the multilingual "<2xx>" tokens: an ordinary first source token


def toy_pairs(n, seed):
    """Source: a tag then 3–6 symbols; target: the symbols copied or reversed, as the tag says."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        symbols = rng.integers(3, 14, size=rng.integers(3, 7)).tolist()
        reverse = bool(rng.integers(2))
        pairs.append(([REVERSE_TAG if reverse else COPY_TAG, *symbols], symbols[::-1] if reverse else symbols))
    return pairs


def tiny_config(arch, **overrides):
    sizes = dict(d_model=32, enc_layers=3, dec_layers=3, dropout=0.1, lr=3e-3, warmup=1, batch_tokens=160,
                 max_steps=12, eval_every=6, keep_last=3, average_last=2, seed=0)
    if arch == "transformer":
        sizes.update(ff_dim=64, heads=2)
    else:
        sizes.update(lr=1e-2)  # the LSTMs' uniform init starts slower: a larger step for a 12-step test
    return NMTConfig.for_arch(arch, **{**sizes, **overrides})


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["gnmt", "transformer"])
def trained(request, tmp_path_factory):
    torch.set_num_threads(1)
    config = tiny_config(request.param)
    train, dev = toy_pairs(300, 0), toy_pairs(40, 1)
    seen = []
    path = train_nmt(config, train, dev, VOCAB, tmp_path_factory.mktemp(request.param), progress=False,
                     on_eval=lambda model: seen.append(model.training) or 1.5, track=False)
    return request.param, config, path, train, dev, seen


def test_training_lowers_the_loss(trained):
    arch, config, path, _, dev, seen = trained
    torch.manual_seed(config.seed)
    before = dev_loss(build_model(config, VOCAB), dev, VOCAB, 512)["dev_nll"]
    model, loaded_config, vocab = load_nmt(path)
    after = dev_loss(model, dev, VOCAB, 512)["dev_nll"]
    assert loaded_config == config and vocab == VOCAB
    assert after < before - 0.1, (arch, before, after)
    _, meta = load_checkpoint(path)
    history = meta["info"]["history"]
    assert [entry["step"] for entry in history] == [6, 12]
    assert history[-1]["dev_score"] == 1.5 and seen == [False, False]  # on_eval sees an eval-mode model
    assert history[-1]["target_tokens_per_s"] > 0
    # the shipped weights are the average of the last two checkpoints or the last weights,
    # whichever has the lower dev NLL
    info = meta["info"]
    assert info["averaging_candidates"] == ["checkpoint_0000006.pt", "checkpoint_0000012.pt"]
    assert after == pytest.approx(min(info["last_dev_nll"], info["averaged_dev_nll"]), rel=1e-5)
    assert (info["averaged"] != []) == (info["averaged_dev_nll"] <= info["last_dev_nll"])


def test_padded_batch_matches_single_sentences(trained):
    _, _, path, _, dev, _ = trained
    model, _, _ = load_nmt(path)
    sources = [dev[i][0] for i in range(6)]
    assert len({len(s) for s in sources}) > 1  # different lengths: the batch is padded
    for beam in (1, 3):
        batched = translate_ids(model, sources, beam_size=beam, beta=0.2)
        singles = [translate_ids(model, [s], beam_size=beam, beta=0.2)[0] for s in sources]
        assert batched == singles
        assert all(len(h) <= 1.5 * (len(s) + 1) + 10 for h, s in zip(batched, sources, strict=True))
    # teacher-forced log-probabilities of the real positions do not depend on the padding
    long, short = dev[0] if len(dev[0][0]) > len(dev[1][0]) else dev[1], dev[1] if len(dev[0][0]) > len(dev[1][0]) \
        else dev[0]
    src = torch.full((2, len(long[0]) + 1), PAD)
    src[0, : len(long[0]) + 1] = torch.tensor([*long[0], EOS])
    src[1, : len(short[0]) + 1] = torch.tensor([*short[0], EOS])
    tgt = torch.tensor([[BOS, *short[1]]])
    with torch.no_grad():
        padded = model(src[1:], src[1:] != PAD, tgt)
        alone = model(src[1:, : len(short[0]) + 1], src[1:, : len(short[0]) + 1] != PAD, tgt)
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_resume_continues_exactly(tmp_path):
    train, dev = toy_pairs(120, 2), toy_pairs(10, 3)
    config = tiny_config("transformer", max_steps=4, eval_every=2, average_last=1, dropout=0.3)
    straight = train_nmt(config, train, dev, VOCAB, tmp_path / "straight", progress=False, track=False)
    train_nmt(dataclasses.replace(config, max_steps=2), train, dev, VOCAB,
              tmp_path / "resumed", progress=False, track=False)
    resumed = train_nmt(config, train, dev, VOCAB, tmp_path / "resumed", progress=False, track=False)
    a, meta_a = load_checkpoint(straight)
    b, meta_b = load_checkpoint(resumed)
    assert meta_b["info"]["steps"] == 4
    assert [e["step"] for e in meta_b["info"]["history"]] == [2, 4]
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)
    assert meta_a["info"]["history"][-1]["train_loss"] == pytest.approx(meta_b["info"]["history"][-1]["train_loss"])
    # the same command again does nothing; another architecture in the same folder is refused
    assert train_nmt(config, train, dev, VOCAB, tmp_path / "resumed", progress=False, track=False) == resumed
    with pytest.raises(CasebookError):
        train_nmt(tiny_config("transformer", max_steps=4, d_model=16), train, dev, VOCAB, tmp_path / "resumed",
                  progress=False, track=False)


@pytest.mark.parametrize("arch", ["transformer", "gnmt"])
def test_two_workers_take_the_same_steps_as_one(arch, tmp_path):
    """Data parallel (core.data_parallel): each process computes half of every batch and the gradients
    are summed, so without dropout two processes follow one process's training curve, step by step
    (a half batch's gradient would not). Interrupted after 2 steps and resumed, it still does.
    Weights are compared through the losses: some gradients are exactly zero in theory (attention key
    biases), and Adam blows their rounding noise up to full-size steps that change no output."""
    train, dev = toy_pairs(120, 2), toy_pairs(10, 3)
    config = tiny_config(arch, max_steps=4, eval_every=1, average_last=1, dropout=0.0)
    one = train_nmt(config, train, dev, VOCAB, tmp_path / "one", progress=False, track=False)
    parallel = dataclasses.replace(config, workers=2)
    train_nmt(dataclasses.replace(parallel, max_steps=2), train, dev, VOCAB, tmp_path / "two", progress=False,
              track=False)
    two = train_nmt(parallel, train, dev, VOCAB, tmp_path / "two", progress=False, track=False)
    curves = [load_checkpoint(path)[1]["info"]["history"] for path in (one, two)]
    assert [entry["step"] for entry in curves[1]] == [1, 2, 3, 4]
    for key in ("train_loss", "dev_nll"):
        assert [e[key] for e in curves[1]] == pytest.approx([e[key] for e in curves[0]], rel=1e-5), key


def test_two_workers_share_the_decaying_learning_rate(tmp_path):
    """linear_decay's rate depends on the budget's progress, which rank 0 sends the helpers each
    step: a helper stepping at another rate would drift from the one-process curve."""
    train, dev = toy_pairs(120, 2), toy_pairs(10, 3)
    config = tiny_config("transformer", max_steps=3, eval_every=1, average_last=1, dropout=0.0,
                         lr_schedule="linear_decay", warmup=1)
    one = train_nmt(config, train, dev, VOCAB, tmp_path / "one", progress=False, track=False)
    two = train_nmt(dataclasses.replace(config, workers=2), train, dev, VOCAB, tmp_path / "two", progress=False,
                    track=False)
    curves = [load_checkpoint(path)[1]["info"]["history"] for path in (one, two)]
    assert [e["dev_nll"] for e in curves[1]] == pytest.approx([e["dev_nll"] for e in curves[0]], rel=1e-5)


def test_a_failing_data_parallel_run_raises_and_leaves_no_helper(tmp_path):
    import multiprocessing

    def broken_eval(model):
        raise RuntimeError("evaluation broke")

    config = tiny_config("transformer", max_steps=4, eval_every=2, workers=2)
    with pytest.raises(RuntimeError, match="evaluation broke"):
        train_nmt(config, toy_pairs(60, 2), toy_pairs(5, 3), VOCAB, tmp_path, progress=False, track=False,
                  on_eval=broken_eval)
    assert not multiprocessing.active_children()


def test_time_budget_stops_training(tmp_path):
    config = tiny_config("gnmt", max_steps=10_000, time_budget_s=0.5, eval_every=1000)
    path = train_nmt(config, toy_pairs(60, 4), toy_pairs(5, 5), VOCAB, tmp_path, progress=False, track=False)
    _, meta = load_checkpoint(path)
    assert 0 < meta["info"]["steps"] < 10_000
    assert meta["info"]["train_seconds"] < 5


def test_checkpoint_averaging_is_the_mean(tmp_path):
    rng = np.random.default_rng(0)
    weights = [{"w": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32),
                "count": np.array([k], dtype=np.int64)} for k in range(3)]
    paths = [save_checkpoint(tmp_path / f"c{k}.pt", {f"model.{n}": v for n, v in w.items()} | {"optimizer.x": w["b"]})
             for k, w in enumerate(weights)]
    averaged = average_checkpoints(paths)
    assert set(averaged) == {"w", "b", "count"}
    np.testing.assert_allclose(averaged["w"].numpy(), np.mean([w["w"] for w in weights], axis=0), rtol=1e-6)
    np.testing.assert_allclose(averaged["b"].numpy(), np.mean([w["b"] for w in weights], axis=0), rtol=1e-6)
    assert int(averaged["count"]) == 2


def test_token_batches_respect_the_budget():
    lengths = np.random.default_rng(0).integers(2, 30, size=500)
    batches = token_batches(lengths, 100, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    assert all(len(b) * lengths[b].max() <= 100 for b in batches)


def test_learning_rate_schedules():
    from mlcasebook.translate.nmt_train import budget_progress, learning_rate

    inverse = NMTConfig(lr=1e-3, warmup=100)
    constant = NMTConfig(lr=1e-3, warmup=100, lr_schedule="constant")
    for config in (inverse, constant):
        assert learning_rate(50, config) == pytest.approx(5e-4) and learning_rate(100, config) == pytest.approx(1e-3)
    assert learning_rate(400, inverse) == pytest.approx(5e-4)  # 1/√step after the warm-up
    assert learning_rate(400, constant) == pytest.approx(1e-3)
    decay = NMTConfig(lr=1e-3, warmup=100, lr_schedule="linear_decay", max_steps=1000)
    assert learning_rate(50, decay, progress=0.05) == pytest.approx(5e-4 * 0.95)
    assert learning_rate(400, decay, progress=0.75) == pytest.approx(2.5e-4)
    assert learning_rate(999, decay, progress=1.2) == 0.0
    # the budget's progress: steps or seconds, whichever is further along
    assert budget_progress(250, 10.0, decay) == pytest.approx(0.25)
    timed = dataclasses.replace(decay, time_budget_s=100.0)
    assert budget_progress(250, 60.0, timed) == pytest.approx(0.6)
    with pytest.raises(CasebookError, match="schedule"):
        learning_rate(1, NMTConfig(lr_schedule="cosine"))


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(DataError):
        train_nmt(tiny_config("gnmt"), [([3, 99], [4])], [([3], [4])], VOCAB, tmp_path, progress=False, track=False)
    with pytest.raises(DataError):
        train_nmt(tiny_config("gnmt"), [], [([3], [4])], VOCAB, tmp_path, progress=False, track=False)
    with pytest.raises(CasebookError):
        NMTConfig.for_arch("rnn")
    with pytest.raises(CasebookError):
        load_nmt(tmp_path / "missing.pt")


@pytest.mark.parametrize("arch, options", [
    ("gnmt", {}),  # the CPU recipe: dot attention, no input feeding, encoder state passed
    ("gnmt", {"attention": "additive", "input_feeding": True, "pass_hidden_state": False}),  # GNMT's own
    ("gnmt", {"input_feeding": True}), ("transformer", {})])
def test_incremental_decoding_equals_teacher_forcing(arch, options):
    torch.manual_seed(0)
    model = build_model(tiny_config(arch, **options), VOCAB).eval()
    src = torch.tensor([[COPY_TAG, 5, 6, 7, EOS], [REVERSE_TAG, 8, EOS, PAD, PAD]])
    tgt = torch.tensor([[BOS, 5, 6, 7], [BOS, 8, PAD, PAD]])
    with torch.no_grad():
        full = model(src, src != PAD, tgt).log_softmax(-1)
        memory = model.encode(src, src != PAD)
        state = model.init_state(memory)
        steps = []
        for t in range(tgt.shape[1]):
            log_probs, attention, state = model.decode_step(memory, tgt[:, t], state)
            steps.append(log_probs)
            assert torch.allclose(attention.sum(-1), torch.ones(2), atol=1e-5)
            assert float(attention[1, 3:].abs().sum()) == 0.0  # no attention on padding
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert math.isfinite(float(full[:, :, 3:].sum()))


def test_passed_hidden_state_is_the_encoders_final_state_at_the_real_end():
    """With ``pass_hidden_state`` the decoder starts from the encoder's final states, taken at each
    sentence's last real token: padding changes nothing, and the source changes the start."""
    torch.manual_seed(0)
    model = build_model(tiny_config("gnmt", pass_hidden_state=True), VOCAB).eval()
    short = torch.tensor([[COPY_TAG, 5, 6, EOS]])
    padded = torch.tensor([[COPY_TAG, 5, 6, EOS, PAD, PAD]])
    with torch.no_grad():
        alone = model.init_state(model.encode(short, short != PAD))
        with_pad = model.init_state(model.encode(padded, padded != PAD))
        other = model.init_state(model.encode(torch.tensor([[REVERSE_TAG, 7, 8, EOS]]), short != PAD))
    for key in ("h0", "c0", "h2", "c2"):
        torch.testing.assert_close(alone[key], with_pad[key])
    assert not torch.allclose(alone["h1"], other["h1"])
    assert float(alone["h0"].abs().sum()) > 0  # not the zeros of a plain start

