"""The policy-value network: planes, symmetries, heads, save/load, evaluator, a short fit."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mlcasebook.core.checkpoint import save_checkpoint
from mlcasebook.core.errors import CasebookError
from mlcasebook.go.board import BLACK, GoState
from mlcasebook.go.net import (
    GoNet,
    NetConfig,
    NetEvaluator,
    encode,
    inverse_transform,
    load_net,
    losses,
    save_net,
    transform,
    transform_policy,
)

TINY = NetConfig(channels=16, blocks=3, history=2, head_channels=8)


def random_state(size: int, moves: int, seed: int) -> GoState:
    rng = random.Random(seed)
    state = GoState(size)
    for _ in range(moves):
        state.play(rng.choice([a for a in state.legal_actions() if a != state.pass_action]))
    return state


def test_planes_follow_the_side_to_move_and_history():
    state = GoState(5)
    state.play(12)  # black centre
    planes = encode([state], history=2)
    assert planes.shape == (1, 7, 5, 5)
    # white to move: the black stone is an opponent stone; the previous position was empty
    assert planes[0, 1].sum() == 1 and planes[0, 0].sum() == 0 and planes[0, 2:4].sum() == 0
    assert planes[0, 4].max() == 0  # white to move
    assert planes[0, 5].sum() == 24 and planes[0, 6].min() == 1  # legal moves, ones
    state.play(0)
    planes = encode([state], history=2)
    assert planes[0, 0].sum() == 1 and planes[0, 1].sum() == 1 and planes[0, 2].sum() == 1  # history plane
    assert planes[0, 4].min() == 1  # black to move


def test_liberty_planes():
    state = GoState.from_diagram("""
        X O . . .
        . . . . .
        . . X X .
        . . . . .
        . . . . .""", to_play=BLACK)
    planes = encode([state], history=1, liberties=True)[0]
    assert planes.shape == (11, 5, 5)
    own_1, own_2, own_3 = planes[5:8]
    opp_1, opp_2, opp_3 = planes[8:11]
    assert own_1[0, 0] == 1 and own_1.sum() == 1 and own_2.sum() == 0  # the corner stone: one liberty
    assert own_3[2, 2] == own_3[2, 3] == 1 and own_3.sum() == 2  # the pair has six
    assert opp_2[0, 1] == 1 and opp_1.sum() + opp_3.sum() == 0
    # from white's side the roles swap
    state.to_play = 2
    state._legal_cache = None
    swapped = encode([state], history=1, liberties=True)[0]
    assert np.array_equal(swapped[5:8], planes[8:11]) and np.array_equal(swapped[8:11], planes[5:8])


@pytest.mark.parametrize("size", [5, 9])
def test_heads_have_the_right_shapes_on_any_board(size):
    net = GoNet(TINY).eval()
    out = net(torch.from_numpy(encode([GoState(size), random_state(size, 6, 1)], TINY.history, TINY.liberties)))
    assert out["policy"].shape == (2, size * size + 1)
    assert out["value"].shape == (2,) and out["value"].abs().max() <= 1
    assert out["ownership"].shape == (2, size, size) and out["score"].shape == (2,)


def test_symmetries_are_invertible_and_commute_with_the_rules():
    x = torch.arange(2 * 3 * 7 * 7, dtype=torch.float32).reshape(2, 3, 7, 7)
    images = {transform(x, s).numpy().tobytes() for s in range(8)}
    assert len(images) == 8  # eight distinct symmetries
    for s in range(8):
        assert torch.equal(inverse_transform(transform(x, s), s), x)
        assert np.array_equal(inverse_transform(transform(x.numpy(), s), s), x.numpy())
    # a position's transformed stones equal the transform of the position's stones (policy mapping)
    state = random_state(7, 10, 2)
    one_hot = np.zeros(50)
    one_hot[state.moves[-1].action] = 1.0
    for s in range(8):
        moved = transform_policy(one_hot, s, 7)
        target_square = transform(state.stones(), s)
        action = int(np.argmax(moved))
        assert target_square.reshape(-1)[action] == state.stones().reshape(-1)[state.moves[-1].action]
        assert moved[-1] == 0


def test_save_and_load_round_trip(tmp_path):
    net = GoNet(TINY).eval()
    planes = torch.from_numpy(encode([random_state(9, 12, 3)], TINY.history, TINY.liberties))
    path = save_net(tmp_path / "net.ckpt", net, {"games": 7})
    loaded, meta = load_net(path)
    assert meta["games"] == 7 and loaded.config == TINY
    with torch.inference_mode():
        assert torch.allclose(net(planes)["policy"], loaded(planes)["policy"])
    save_checkpoint(tmp_path / "other.ckpt", {"w": np.zeros(3)}, {"format": "something-else"})
    with pytest.raises(CasebookError, match="not a Go network"):
        load_net(tmp_path / "other.ckpt")


@pytest.mark.parametrize("symmetry", ["none", "random", "all"])
def test_evaluator_priors_are_a_distribution_over_legal_moves(symmetry):
    states = [random_state(5, 8, seed) for seed in range(3)]
    priors, values = NetEvaluator(GoNet(TINY), symmetry).evaluate(states)
    assert priors.shape == (3, 26) and np.allclose(priors.sum(1), 1, atol=1e-5)
    for state, row in zip(states, priors, strict=True):
        assert (row[~state.legal_mask()] == 0).all()
    assert np.all(np.abs(values) <= 1)
    with pytest.raises(CasebookError):
        NetEvaluator(GoNet(TINY), "sometimes")


def test_frozen_inference_copy_matches_the_network_on_any_batch_and_board():
    torch.manual_seed(0)
    net = GoNet(NetConfig(channels=16, blocks=3, history=2))
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them is really exercised
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    frozen, eager = NetEvaluator(net, "none"), NetEvaluator(net, "none", frozen=False)
    for size, batch in ((9, 1), (9, 8), (9, 16), (7, 5), (9, 3)):
        states = [random_state(size, 10, seed) for seed in range(batch)]
        fast, slow = frozen.predict(states), eager.predict(states)
        assert np.allclose(fast["policy_logits"], slow["policy_logits"], atol=1e-4)
        assert np.allclose(fast["value"], slow["value"], atol=1e-5)
    assert set(frozen._frozen_by_size) == {7, 9} and all(
        m is not net for m in frozen._frozen_by_size.values())  # really the TorchScript copies


def test_a_few_steps_fit_policy_value_and_ownership():
    torch.manual_seed(0)
    net = GoNet(TINY)
    states = [random_state(5, 6, seed) for seed in range(8)]
    planes = torch.from_numpy(encode(states, TINY.history, TINY.liberties))
    policy_target = torch.zeros(8, 26)
    policy_target[torch.arange(8), torch.tensor([s.legal_actions()[0] for s in states])] = 1
    value_target = torch.tensor([1.0 if s.to_play == BLACK else -1.0 for s in states])
    ownership_target = torch.from_numpy(np.stack([s.area_owner() for s in states]).astype(np.float32))
    ownership_target *= torch.tensor([1.0 if s.to_play == BLACK else -1.0 for s in states])[:, None, None]
    score_target = torch.zeros(8)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        parts = losses(net(planes), policy_target, value_target, ownership_target, score_target)
        optimizer.zero_grad()
        parts["total"].backward()
        optimizer.step()
        first = first if first is not None else float(parts["total"])
    assert float(parts["total"]) < 0.5 * first
